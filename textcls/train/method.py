"""--method auto: SetFit or fine-tuning, and the small-data settings, chosen by the training set's rows per class.

MEASURED is, per training-set size (rows per class), the method that won there on the learning curve
(benchmarks/learning_curve.py crossovers() of results/small-data/: all-MiniLM-L6-v2, the mean over tasks of each
method's median over draws; a cheaper method within 0.5 points wins). tests/artifacts/test_results.py recomputes it
from the committed records, so this table cannot drift from what was measured. A training set takes the winner of
the nearest measured size on a log scale (the smaller on a tie), up to twice the largest measured size; beyond it
(more rows per class than the curve measured) the flags' own defaults, which the full-data recipes use.

The methods:
- setfit: SetFit's two phases (`--method setfit`: the contrastive phase, then the head alone on the frozen encoder,
  `--train_layers head`, lr 2e-3, label smoothing 0.1), on the small-data schedule;
- finetune-small: full fine-tuning on the small-data schedule, lr 1e-4;
- setfit-finetune: SetFit's contrastive phase, then the whole model fine-tuned as finetune-small (on the learning
  curve, not yet among auto's picks: measured at every size on every task first);
- finetune: full fine-tuning with the flags' own defaults.

The small-data schedule: batch 8, 10% warm-up and at least MIN_STEPS optimizer steps (3 epochs where that is more):
at 8 rows per class our defaults (3 epochs of batch 8, no warm-up) take 6 steps and scored 58.5 on SST-2 against
64.8 for the same model trained 100 steps at lr 1e-4 (medians of 5 draws). Each setting changed alone on the same
draws (benchmarks/learning_curve.py DETAILS, per-draw differences at 8 / 16 rows per class): no warm-up -1.4 / -1.1
on SST-2, -0.1 / +0.1 on stsb-source; lr 5e-5 +1.1 / +1.4 on SST-2, -0.2 / -0.3 on stsb-source; lr 2e-5 +2.1 / +0.2
on SST-2, -6.6 / -8.8 on stsb-source. None won on both tasks: 1e-4 with warm-up stays. Label smoothing 0.1 (3 draws
at 8, 16, 32 and 64 rows per class): SST-2 -1.3, +0.1, -0.9, +1.3; CoLA (MCC x100) +0.6, +1.7, +1.8, -0.2;
stsb-source -0.2 to +0.2; dev log loss about halved on SST-2 and CoLA (1.2-2.4 -> 0.6-1.6, on CoLA still above a
constant guess's 0.69) and a little worse on stsb-source (0.22-0.28 -> 0.25-0.29): no clear win, not set. The best
checkpoint on a held-out quarter of the rows: -1.6 / -2.5 on SST-2, -1.2 / -1.4 on stsb-source: every row trains.
SetFit at 32 on SST-2: head lr 1e-3 +0.2 (2e-3 stays); the contrastive phase at 5e-5 (setfit's 2e-5) +1.8, but
-0.5 at 64 (3 draws): setfit's 2e-5 stays. At 64 on SST-2, the setfit library's pair count (32 per text and kind;
our bound: 20) -0.2 a draw on all 3: the bound stays.

Label smoothing in SetFit's head (single-label only: the flag refuses other labels): the contrastive phase pulls
each class's training texts into one tight cluster, so a head trained on them to a near-zero loss is sure of every
answer. Rerunning the second phase from the learning curve's saved encoders, without and with smoothing 0.1: dev log
loss 2.05-2.39 -> 0.48-0.50 and calibration error (ECE) 0.20-0.21 -> 0.06-0.10 on SST-2 at 64 rows per class (3
draws), 0.94-1.08 -> 0.61-0.63 and 0.21-0.24 -> 0.04-0.05 at 8 (2 draws); on stsb-source (4 classes) 0.39-0.40 ->
0.21-0.22 in log loss at 64 (ECE 0.05 either way) and 0.75-0.86 -> 0.70-0.72, ECE 0.13-0.14 -> 0.06-0.08 at 8.
Accuracy moved -1.70 to +1.38 points a draw, -0.11 on average over those 9 draws. The setfit library's own head
(scikit-learn's regularised logistic regression) on the first SST-2 64 encoder: log loss 0.47, ECE 0.06 at 78.67 %
accuracy (ours there, smoothed: 0.48, 0.06, 78.56 %; unsmoothed 2.05, 0.20, 78.56 %).

SetFit compares single texts: for text pairs, token ids or LoRA a setfit pick becomes finetune-small. A flag the
user set (on the command line or in the recipe) is never changed; the choice fills in the others. The choice is
logged with its reason, and the run's recipe records the chosen settings, so a replay is the same run.

--auto_select cross_validation (cross_validated): one size threshold cannot serve every task (SST-2: SetFit ahead at 32
and 64 rows per class by 2.4 and 3.7 points; CoLA and stsb-source: small-data fine-tuning ahead), so where the size
rule picks one of CV_CANDIDATES for single texts of one label a row, each is cross-validated on the user's training
rows (CV_FOLDS folds, each fold an ordinary run: textcls.train.cross_validation), and the size rule's pick trains the
model unless the other candidate's pooled out-of-fold score is higher on at least CV_CONFIDENCE of paired bootstrap
resamples of the rows (lead_confidence). A plain "the higher score" picked SetFit on a CoLA draw where both scores were
noise (out of fold 6.3 against -3.1 MCC x100, ahead on 85% of resamples; dev 3.0 against 9.2). CV_CONFIDENCE 90% was
set after seeing 9 draws (SST-2 at 32 and 64 rows per class, CoLA at 64: SetFit ahead on 100, 100 and 96% of resamples
where its dev lead was 2.0, 4.2 and 3.7 points; under 65% on the draws where it gained at most 2.5). Its check, run
after it: CoLA at 32 kept fine-tuning on all 3 draws (median 3.5 MCC x100, fine-tuning's), where "the higher score"
would have taken SetFit on 2 (ahead on 84 and 64% of resamples; dev median -0.8). benchmarks/learning_curve.py's auto-
cv measures this pick on the curve's draws: ahead of the size rule or level with it on every point it ran (SST-2 at
32 and 64 rows per class 74.3 and 78.6 against 73.1 and 74.9; elsewhere the same median; results/README.md), so it
is --method auto's default wherever it applies (select_by); --auto_select size is the one-run pick by size alone."""

import dataclasses
import json
import logging
import math
import os
import shutil
from collections import Counter
from dataclasses import dataclass

import numpy as np

from textcls.data.load import arrow_column
from textcls.evaluation.calibration import fit_temperature
from textcls.evaluation.metrics import compute_metrics, primary_metric, probability_metrics
from textcls.io import write_json_atomic
from textcls.train.cross_validation import read_predictions

logger = logging.getLogger(__name__)

# rows per class -> the winner there: see the module docstring
MEASURED = {8: "finetune-small", 16: "finetune-small", 32: "finetune-small", 64: "finetune-small"}
MIN_STEPS = 100
SCHEDULE = {"per_device_train_batch_size": 8, "warmup_steps": 0.1}
SETTINGS = {
    "setfit": {
        "method": "setfit",
        "train_layers": "head",
        "learning_rate": 2e-3,
        "label_smoothing_factor": 0.1,
        **SCHEDULE,
    },  # fmt: skip
    "finetune-small": {"method": "finetune", "learning_rate": 1e-4, **SCHEDULE},
    # SetFit's contrastive phase, then the whole model fine-tuned as finetune-small (being measured: not yet a pick)
    "setfit-finetune": {"method": "setfit", "learning_rate": 1e-4, **SCHEDULE},
    "finetune": {"method": "finetune"},
}


CV_CANDIDATES = ("finetune-small", "setfit")  # --auto_select cross_validation's, the cheaper first (it wins a tie)
CV_FOLDS = 4
CV_FOLDER = "auto_select"  # in output_dir: each candidate's cross-validation, and selection.json
# the other candidate replaces the size rule's pick only where it scores higher on at least this share of paired
# bootstrap resamples of the out-of-fold rows (the module docstring: a plain "higher" misled on CoLA)
CV_CONFIDENCE = 0.9
CV_RESAMPLES = 1000


@dataclass(frozen=True)
class Choice:
    name: str  # a key of SETTINGS
    settings: dict  # flag -> value, the ones the user did not set
    reason: str
    candidates: tuple = ()  # what --auto_select cross_validation would compare here (none: the size rule stands)
    select: str = "size"  # how the pick is made: "cross_validation" (of the candidates) or "size" (select_by)


def select_by(data, training) -> str:
    """--auto_select as given; unset, cross-validation (its check: ahead of or level with the size rule on every point
    of the learning curve it ran, the module docstring), unless the run cross-validates or searches on its own (a
    cross-validation inside each fold or trial would multiply the cost; the size rule then picks)."""
    if data.auto_select:
        return data.auto_select
    return "size" if data.cross_validate or training.hp_trials else "cross_validation"


def beyond_measured(per_class: int) -> bool:
    """More rows per class than the curve can speak for (over twice its largest size): the flags' defaults."""
    return not MEASURED or per_class > 2 * max(MEASURED)


def pick(per_class: int) -> str:
    """The SETTINGS key --method auto takes for single texts with this many rows in the smallest class."""
    if beyond_measured(per_class):
        return "finetune"
    nearest = min(MEASURED, key=lambda size: (abs(math.log(max(per_class, 1) / size)), size))
    return MEASURED[nearest]


def rows_per_class(train, columns, labels) -> int | None:
    """The smallest class's row count in the training set (multi-label: rows carrying the label); None where it
    cannot be counted (a stream, a regression)."""
    if train is None or not hasattr(train, "__len__") or labels.problem_type == "regression":
        return None
    values = arrow_column(train, columns.label).to_pylist()
    if labels.problem_type == "multi_label_classification":
        counts = Counter(str(x) for v in values for x in (v or []))
    else:
        counts = Counter(str(v) for v in values)
    return min(counts.values()) if counts else None


def choose(args, given: frozenset, train, columns, labels) -> Choice | None:
    """--method auto's pick for this training set; None for any other --method, or without a training set.
    given: the flags the user set (textcls.config.args.given_flags), which the pick leaves as they are."""
    if args.data.method != "auto" or train is None:
        return None
    per_class = rows_per_class(train, columns, labels)
    single_text = columns.text_pair is None and not columns.token_ids and not args.lora.use_lora
    if args.data.auto_pick:  # one candidate's cross-validation, for --auto_select cross_validation
        name, why = args.data.auto_pick, "a candidate of --auto_select cross_validation"
    elif per_class is None:
        name, why = "finetune", "the training set cannot be counted by class (a stream, or a regression)"
    else:
        name = pick(per_class)
        measured = ", ".join(f"{size}: {m}" for size, m in sorted(MEASURED.items()))
        why = f"{per_class} rows in the smallest class; the learning curve's winners by rows per class: {measured}"
        if beyond_measured(per_class):
            why += "; beyond twice the largest size measured, the defaults"
        if name == "setfit" and not single_text:
            name, why = "finetune-small", why + "; SetFit takes single texts without LoRA, so finetune-small"
    candidates = ()
    if name in CV_CANDIDATES and single_text and labels.problem_type == "single_label_classification":
        # a fold must hold out a row of every class
        candidates = CV_CANDIDATES if per_class is not None and per_class >= CV_FOLDS else ()
    given = given - {"method"}  # --method auto itself is the flag being resolved
    settings = {k: v for k, v in SETTINGS[name].items() if k not in given}
    if labels.problem_type != "single_label_classification":  # smoothing is for one class a row (see above)
        settings.pop("label_smoothing_factor", None)
    if name != "finetune" and not given & {"max_steps", "num_train_epochs"}:
        t = args.training
        batch = t.per_device_train_batch_size if "per_device_train_batch_size" in given else settings[
            "per_device_train_batch_size"]  # fmt: skip
        step = batch * t.world_size * t.gradient_accumulation_steps  # rows an optimizer step averages over
        settings["max_steps"] = max(MIN_STEPS, math.ceil(3 * len(train) / step))
    return Choice(name, settings, why, candidates, select_by(args.data, args.training))


def cross_validated(choice: Choice | None, args, argv: list[str], given: frozenset, data: tuple,
                    task_name: str | None, run_main) -> Choice | None:  # fmt: skip
    """--auto_select cross_validation: each of the choice's candidates cross-validated on the training rows (an
    ordinary --cross_validate run of this command, run_main(argv), in output_dir/auto_select/<candidate>/); the size
    rule's pick unless another is ahead beyond noise (decide), with the temperature of the pick's out-of-fold
    predictions unless the user calibrates. Otherwise the choice. data: (train, columns, labels) as choose() takes."""
    train, columns, labels = data
    if choice is None or choice.select != "cross_validation" or args.data.auto_pick:
        return choice
    if not choice.candidates:
        logger.info("--method auto picks by cross-validation only where the size rule picks %s, for single texts "
                    "of one label a row, %d or more rows per class; not here (%s): the size rule's pick stands",
                    " or ".join(CV_CANDIDATES), CV_FOLDS, choice.reason)  # fmt: skip
        return choice
    metric = primary_metric(labels.problem_type, task_name)
    folder = os.path.join(args.training.output_dir, CV_FOLDER)
    what = {"metric": metric, "folds": CV_FOLDS, "candidates": list(choice.candidates), "rows": len(train),
            "train_fingerprint": getattr(train, "_fingerprint", None), "confidence_needed": CV_CONFIDENCE,
            "resamples": CV_RESAMPLES, "temperature_from": "out_of_fold"}  # fmt: skip
    selection = _earlier_selection(os.path.join(folder, "selection.json"), what)
    if selection is None:  # (a run resumed after its pick does not cross-validate again)
        logger.info("--method auto: cross-validating %s on the %d training rows to pick (%d more training runs on "
                    "%d/%d of the rows; --auto_select size picks by rows per class alone, in one run)",
                    " and ".join(choice.candidates), len(train), CV_FOLDS * len(choice.candidates), CV_FOLDS - 1,
                    CV_FOLDS)  # fmt: skip
        for name in choice.candidates:
            _cross_validate(name, os.path.join(folder, name), what, args, argv, run_main)
        # under a distributed launch the main process merges each candidate's out-of-fold predictions: the others
        # wait for it here (they read the files too early otherwise), then take its selection.json
        with args.training.main_process_first(local=False, desc="auto_select: the pick"):
            selection = _earlier_selection(os.path.join(folder, "selection.json"), what)
            if selection is None:
                selection = {**what, **_select(choice, folder, labels, metric, task_name)}
                if args.training.process_index == 0:
                    write_json_atomic(os.path.join(folder, "selection.json"), selection)
                    for name in choice.candidates:  # the folds' models (their predictions and report stay)
                        shutil.rmtree(os.path.join(folder, name, "folds"), ignore_errors=True)
    picked = selection["picked"]
    shown = ", ".join(f"{name} {value:.4f}" for name, value in selection["scores"].items())
    ahead = "; ".join(f"{name} ahead of {choice.name} on {share:.0%} of {CV_RESAMPLES} resamples of the rows"
                      for name, share in selection["confidence"].items())  # fmt: skip
    why = (f"cross-validated on the {len(train)} training rows ({CV_FOLDS} folds, out-of-fold {metric}): {shown}; "
           f"{ahead} (another pick needs {CV_CONFIDENCE:.0%}); the size rule alone: {choice.name}")  # fmt: skip
    pick_args = args._replace(data=dataclasses.replace(args.data, auto_pick=picked))
    chosen = choose(pick_args, given, train, columns, labels)
    # the recipe replays the pick (its --method is no longer auto, so --auto_select goes back to its default); a
    # comment key says how it was made
    settings = {**chosen.settings, "auto_select": "size", "_auto_select": f"cross_validation: {why}"}
    if not given & {"calibrate", "calibration_temperature"}:  # the user's own calibration stands
        temperature = selection["temperature"]
        before, after = selection["out_of_fold_log_loss"]
        why += (f"; calibration temperature {temperature:.3f} from its out-of-fold predictions (log loss "
                f"{before:.3f} -> {after:.3f})")  # fmt: skip
        settings["calibration_temperature"] = temperature
    return Choice(picked, settings, why, choice.candidates, choice.select)


def _select(choice: Choice, folder: str, labels, metric: str, task_name: str | None) -> dict:
    """The candidates' pooled out-of-fold scores, the other's resampled lead, the pick (decide) and the temperature
    of its out-of-fold predictions, from each candidate's oof_predictions.jsonl in folder."""
    oof = {name: os.path.join(folder, name, "oof_predictions.jsonl") for name in choice.candidates}
    scores = {name: pooled_score(oof[name], labels.names, metric, task_name) for name in choice.candidates}
    confidence = {name: lead_confidence(oof[choice.name], oof[name], labels.names, metric)
                  for name in choice.candidates if name != choice.name}  # fmt: skip
    picked = decide(choice.name, scores, confidence)
    temperature, log_loss = out_of_fold_temperature(oof[picked], labels.names)
    return {"scores": scores, "confidence": confidence, "picked": picked, "size_rule": choice.name,
            "temperature": temperature, "out_of_fold_log_loss": log_loss}  # fmt: skip


def _cross_validate(name: str, out: str, what: dict, args, argv: list[str], run_main) -> None:
    """One candidate's cross-validation in out, unless an earlier run of this command finished it there (on the same
    rows: its candidate.json holds `what`)."""
    done = os.path.join(out, "candidate.json")
    if _same(done, what):
        logger.info("--auto_select cross_validation: %s cross-validated by an earlier run of this command: %s",
                    name, out)  # fmt: skip
        return
    logger.info("--auto_select cross_validation: %s, %d folds, in %s", name, CV_FOLDS, out)
    # its folds keep no checkpoints (a fold of a few rows trains again in seconds), so one stopped mid-way has
    # nothing to resume: it starts over
    with args.training.main_process_first(local=False, desc="auto_select"):
        if args.training.process_index == 0 and os.path.isdir(out):
            logger.info("--auto_select cross_validation: %s was stopped mid-way; it starts over", name)
            shutil.rmtree(out)
    run_main([*argv, "--auto_pick", name, "--cross_validate", str(CV_FOLDS), "--cross_validate_refit", "false",
              "--find_label_issues", "false", "--output_dir", out, "--do_eval", "false", "--do_predict", "false",
              "--export", "none", "--plots", "false", "--save_strategy", "no", "--results_file", ""])  # fmt: skip
    if args.training.process_index == 0:
        write_json_atomic(done, what)


def out_of_fold_temperature(path: str, names: list[str]) -> tuple[float, list[float]]:
    """The temperature that minimises the log loss of a cross-validation's out-of-fold predictions (the pick's, for
    the model trained on all the rows: what scikit-learn's CalibratedClassifierCV(ensemble=False) does) and that log
    loss [before, after]. A few rows per class leave no validation split to spare for --calibrate temperature, and
    small-data fine-tuning is overconfident (dev log loss 0.9-2.4 on the learning curve's SST-2 and CoLA draws, worse
    than a constant guess's 0.69 on CoLA). Measured (benchmarks/oof_calibration.py, results/calibration/): on 12
    draws of SST-2 and CoLA at 32 and 64 rows per class, finetune-small's dev log loss, median per point, went from
    0.88-2.23 to 0.54-0.69 with this temperature, within 0.00-0.04 of the temperature fitted on dev itself, and its ECE
    from 0.19-0.47 to 0.02-0.09; lower on every draw in both."""
    logits, gold, _ = read_logits(path, names)
    temperature = fit_temperature(logits, gold, "single_label_classification")
    before = probability_metrics(logits, gold, "single_label_classification").metrics["log_loss"]
    after = probability_metrics(logits / temperature, gold, "single_label_classification").metrics["log_loss"]
    return temperature, [before, after]


def _earlier_selection(path: str, what: dict) -> dict | None:
    """selection.json of an earlier run of this command in output_dir (stopped after its pick), where it compared
    the same candidates on the same training rows; else None."""
    if not _same(path, what):
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _same(path: str, what: dict) -> bool:
    """path is a JSON file written by this command on the same training rows: its keys of `what` equal `what`'s."""
    if not os.path.isfile(path) or what["train_fingerprint"] is None:
        return False
    with open(path, encoding="utf-8") as f:
        found = json.load(f)
    return all(found.get(k) == v for k, v in what.items())


def decide(size_rule: str, scores: dict, confidence: dict) -> str:
    """The pick among cross-validated candidates: the size rule's, unless another scores higher on at least
    CV_CONFIDENCE of the resamples (confidence: candidate -> that share); of several such, the higher score."""
    ahead = [name for name, share in confidence.items() if share >= CV_CONFIDENCE]
    return max(ahead, key=lambda name: scores[name]) if ahead else size_rule


def read_logits(path: str, names: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(logits, gold, predicted) of oof_predictions.jsonl, or of a run's predictions.jsonl of a labelled split
    (cross_validation.read_predictions): the argmax and the softmax of these logits are the probabilities'."""
    probs, gold, predicted = read_predictions(path, names)
    return np.log(np.clip(probs, 1e-12, None)), gold, predicted


def pooled_score(path: str, names: list[str], metric: str, task_name: str | None) -> float:
    """`metric` of a cross-validation's out-of-fold predictions (oof_predictions.jsonl) over all its rows at once:
    a fold of 16 rows gives accuracy, and Matthews correlation the more, in coarse steps."""
    logits, gold, _ = read_logits(path, names)
    return float(compute_metrics(logits, gold, "single_label_classification", task_name, label_names=names)[metric])


def lead_confidence(base: str, other: str, names: list[str], metric: str,
                    resamples: int = CV_RESAMPLES, seed: int = 0) -> float:  # fmt: skip
    """The share of paired bootstrap resamples of the training rows on which `other`'s out-of-fold predictions
    score higher in `metric` than `base`'s (both oof_predictions.jsonl of the same rows; a tie is not ahead).

    Why not the higher pooled score alone: see the module docstring (a CoLA draw where both were noise). A paired test
    counts only the rows the two candidates answer differently, as McNemar's does for accuracy, and this one scores
    any of the decision metrics (accuracy, MCC, F1). The resamples are row weights (multinomial counts) and each
    metric is computed from the weighted confusion matrices of all resamples at once: sklearn's metric functions
    called per resample took 47 s for the 12 comparisons of the unit test, these take well under a second."""
    (_, gold, a), (_, other_gold, b) = read_logits(base, names), read_logits(other, names)
    if not np.array_equal(gold, other_gold):
        raise ValueError(f"{base} and {other} are not predictions of the same rows in the same order")
    k, n = len(names), len(gold)
    weights = np.random.default_rng(seed).multinomial(n, np.full(n, 1 / n), size=resamples)  # (resamples, rows)
    score = _decision_metric(metric)
    confusion = lambda predicted: (weights @ np.eye(k * k)[gold * k + predicted]).reshape(-1, k, k)  # noqa: E731
    return float(np.mean(score(confusion(b)) > score(confusion(a))))


def _decision_metric(metric: str):
    """metric (a compute_metrics key of a decision metric) of confusion matrices (..., gold, predicted), as
    sklearn computes it (zero where undefined; macro F1 over the classes present in gold or predicted)."""

    def f1(c):
        true, said, hit = c.sum(axis=-1), c.sum(axis=-2), np.diagonal(c, axis1=-2, axis2=-1)
        return np.divide(2 * hit, true + said, out=np.zeros_like(hit, dtype=float), where=true + said > 0)

    def mcc(c):  # the multi-class form (Gorodkin 2004), which sklearn computes
        true, said, hit, total = c.sum(axis=-1), c.sum(axis=-2), np.trace(c, axis1=-2, axis2=-1), c.sum(axis=(-2, -1))
        num = hit * total - (true * said).sum(axis=-1)
        den = np.sqrt((total**2 - (said * said).sum(axis=-1)) * (total**2 - (true * true).sum(axis=-1)))
        return np.divide(num, den, out=np.zeros_like(num, dtype=float), where=den > 0)

    def macro_f1(c):
        present = (c.sum(axis=-1) + c.sum(axis=-2)) > 0
        return (f1(c) * present).sum(axis=-1) / np.maximum(present.sum(axis=-1), 1)

    functions = {
        "accuracy": lambda c: np.trace(c, axis1=-2, axis2=-1) / c.sum(axis=(-2, -1)),
        "matthews_correlation": mcc,
        "macro_f1": macro_f1,
        "f1": lambda c: f1(c)[..., 1],
    }
    if metric not in functions:
        raise ValueError(f"--auto_select cross_validation compares by accuracy, MCC or F1, not {metric}")
    return functions[metric]


def apply(args, choice: Choice | None):
    """The run's arguments with the choice's settings in place (and in `resolved`, so the recipe replays it)."""
    if choice is None:
        return args
    shown = {k: v for k, v in choice.settings.items() if not k.startswith("_")}  # (a comment key repeats the reason)
    logger.info("--method auto chose %s: %s; settings %s", choice.name, choice.reason, shown)
    groups = {"model": args.model, "data": args.data, "training": args.training}  # where each flag lives
    changed = {}
    for group, values in groups.items():
        names = {f.name for f in dataclasses.fields(values)}
        mine = {k: v for k, v in choice.settings.items() if k in names}
        changed[group] = dataclasses.replace(values, **mine) if mine else values
    resolved = {**args.resolved, **choice.settings}
    return args._replace(**changed, resolved=resolved)
