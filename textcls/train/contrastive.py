"""--method setfit: SetFit's contrastive phase (Tunstall et al. 2022), run by the setfit library, before the ordinary
run. The sentence encoder is fine-tuned on pairs of training texts, same class pulled together and different classes
pushed apart (setfit.Trainer.train_embeddings: its pair sampler, its CosineSimilarityLoss, its defaults), and saved to
output_dir/setfit_body/. The run then trains its classifier from that encoder as from any model folder, so it writes,
evaluates, reloads, exports and resumes as every run does (`--train_layers head` keeps the encoder as SetFit leaves
it and trains the head alone, as SetFit's second phase does).

The body is written once: a folder holding its completion marker with the same settings is reused (a resumed run does
not train it again); a partial one (killed mid-phase) is trained again.

Pairs, bounded. setfit's sampler lays out the index of every pair of training texts (numpy triu_indices, n²) and, by
default ("oversampling"), keeps and trains on all of them: measured here (setfit 1.2, binary labels), 2,000 texts made
2.0 M pairs and 446 MB, 4,000 texts 8.0 M pairs and 1.7 GB (the memory grows as n²; ~12 GB at 10,000), a day of CPU
steps. So the phase is given setfit's own bound (its max_steps, which also stops the sampler once it has that many
pairs): the library's pair count where it is small, at most PAIRS_PER_TEXT pairs of each kind per text (the SetFit
paper's num_iterations 20) where it is not; --setfit_num_iterations sets the count as in setfit. Bounded, 4,000 texts
took 246 MB and 10,000 texts 1.5 GB (the index layout alone), so more than MAX_ROWS texts are refused."""

import contextlib
import dataclasses
import json
import logging
import math
import os
import shutil
from dataclasses import dataclass

import torch
from transformers.trainer_callback import PrinterCallback, ProgressCallback

from textcls.data.load import arrow_column
from textcls.errors import UserError
from textcls.io import write_json_atomic

logger = logging.getLogger(__name__)

BODY = "setfit_body"
PAIRS_PER_TEXT = 20  # the bound, per text and kind (same class, other class): the SetFit paper's num_iterations
MAX_ROWS = 10_000  # setfit lays out n² pair indices: 1.5 GB at 10,000 texts (measured), ~6 GB at 20,000
DONE = "textcls_setfit.json"  # written last into BODY: the settings it was trained with


@dataclass(frozen=True)
class ContrastiveSettings:
    epochs: int
    learning_rate: float
    batch_size: int
    num_iterations: int | None  # pairs drawn per training text (setfit's num_iterations); None: its oversampling
    max_length: int
    seed: int
    bf16: bool = False  # bf16 autocast over the phase's fp32 weights (contrastive_bf16)


def check_setfit(method: str, columns, labels, do_train: bool, train=None) -> None:
    """What --method setfit cannot train, refused before any training: pairs, regression, token ids, a training set
    too large to pair (or of unknown size: streamed)."""
    if method != "setfit" or not do_train:
        return
    rows = len(train) if train is not None and hasattr(train, "__len__") else None
    if train is not None and rows is None:
        raise UserError(
            "--method setfit pairs every training text with the others, so it reads the training set whole; "
            "--streaming reads it as a stream. Drop --streaming (SetFit is for a few labelled rows per class)."
        )
    if rows is not None and rows > MAX_ROWS:
        raise UserError(
            f"--method setfit on {rows:,} training rows: setfit lays out an index of every pair of them (n²: 1.5 GB "
            f"at {MAX_ROWS:,}), and SetFit is for a few labelled rows per class. Fine-tune instead (drop --method "
            f"setfit), or train on a draw of them (--max_train_samples {MAX_ROWS})."
        )
    if columns.text_pair is not None:
        raise UserError(
            "--method setfit compares single texts; this data has text pairs (--text_pair_column). Drop --method "
            "setfit (full fine-tuning reads pairs)."
        )
    if labels.problem_type == "regression":
        raise UserError("--method setfit needs classes to pair texts by; these labels are a regression. Drop it.")
    if columns.token_ids:
        raise UserError("--method setfit reads texts; this data holds token ids. Drop --method setfit.")


def contrastive_bf16(method: str, bf16: bool, decided: dict, resumed: bool) -> bool | None:
    """Whether --method setfit's contrastive phase runs in bf16 autocast: where the run's training steps do (--bf16,
    or unset on a CPU with AMX: distributed.resolve_bf16), in the encoder only (encoder_in_bf16). Measured on such
    a CPU (an Intel Xeon, one thread beside one other busy process, all-MiniLM-L6-v2, setfit's defaults, 128 SST-2
    texts, 160 steps): 89.6 s against 140.5 s in fp32 (1.57x), a logistic probe of the embeddings on 300 dev
    sentences 76.7% either way; the learning curve's paired runs in results/README.md ("Few labels"). A resumed run
    does as its checkpoint's run did (recorded under run_folder.DECIDED); a checkpoint from before this was recorded
    trained its body in fp32. None for a run without the phase."""
    if method != "setfit":
        return None
    if "setfit_bf16" in decided:
        return bool(decided["setfit_bf16"])
    return False if resumed else bf16


def setfit_body(args, train, columns, labels, max_length: int, bf16: bool = False):
    """--method setfit on a training run: the contrastive phase into output_dir/setfit_body/ (or the one a run of
    the same settings left there); returns the model arguments the run then trains from. Otherwise args.model.
    bf16: the phase in bf16 autocast (contrastive_bf16)."""
    if args.data.method != "setfit" or not args.training.do_train:
        return args.model
    data, training = args.data, args.training
    settings = ContrastiveSettings(
        data.setfit_epochs, data.setfit_learning_rate, data.setfit_batch_size, data.setfit_num_iterations,
        max_length, training.seed, bool(bf16),
    )  # fmt: skip
    folder = os.path.join(training.output_dir, BODY)
    source = args.model.model_name_or_path
    # Process 0 goes first and writes the body; the others then find its marker and reuse it.
    with training.main_process_first(desc="setfit contrastive phase"):
        targets = _targets(arrow_column(train, columns.label).to_pylist(), labels)
        # the pair count in the marker: a body from before the bound (or of another count) is not taken for this one
        if _done_settings(folder) != marker(source, settings, contrastive_pairs(targets, settings.num_iterations)):
            texts = arrow_column(train, columns.text).to_pylist()
            train_body(source, texts, targets, settings, folder, quiet=bool(training.disable_tqdm))
        else:
            logger.info("--method setfit: reusing the contrastive phase's encoder in %s", folder)
    return dataclasses.replace(args.model, model_name_or_path=folder, tokenizer_name=None)


def _targets(values: list, labels) -> list:
    """Labels as setfit's pair sampler takes them: a class id per text (multi-label: 0/1 per label). It only compares
    them, so ids of the raw values (names or numbers) serve."""
    if labels.problem_type == "multi_label_classification":
        known = sorted({str(x) for v in values for x in (v or [])})
        return [[int(k in {str(x) for x in (v or [])}) for k in known] for v in values]
    ids = {v: i for i, v in enumerate(sorted({str(v) for v in values}))}
    return [ids[str(v)] for v in values]


def contrastive_pairs(targets: list, num_iterations: int | None) -> int:
    """How many pairs the phase trains on per epoch: setfit's count (2 x num_iterations x texts when given; by
    default 2 x the larger of its same-class and other-class pair lists, each pair of texts once, a text with
    itself too), bounded by 2 x PAIRS_PER_TEXT x texts. Where setfit's count is within the bound it is exactly
    setfit's, computed here from the pairs themselves (few: the bound holds from 79 texts on)."""
    n = len(targets)
    if num_iterations:
        return 2 * num_iterations * n
    bound = 2 * PAIRS_PER_TEXT * n
    if n * (n + 1) // 2 >= bound:  # the pair lists together hold n(n+1)/2 pairs, so the larger one half of it at least
        return bound
    same = 0
    for i in range(n):
        for j in range(i, n):
            a, b = targets[i], targets[j]
            same += any(x and y for x, y in zip(a, b, strict=True)) if isinstance(a, list) else a == b
    return 2 * max(same, n * (n + 1) // 2 - same)


def train_body(source: str, texts: list[str], targets: list, settings: ContrastiveSettings, folder: str,
               quiet: bool = False) -> None:  # fmt: skip
    """setfit's contrastive phase on (texts, targets) from the encoder at `source`, saved to `folder` with its
    marker last. quiet (--disable_tqdm): the loss as log lines, no progress bar (setfit's show_progress_bar does not
    reach the sentence-transformers trainer it runs, whose bar filled run logs with a line per step)."""
    # optional: only --method setfit needs setfit (and sentence-transformers, which it brings)
    from sentence_transformers import SentenceTransformer
    from setfit import SetFitModel, Trainer, TrainingArguments

    shutil.rmtree(folder, ignore_errors=True)
    pairs = contrastive_pairs(targets, settings.num_iterations)
    # setfit's max_steps bounds both the steps and the pairs its sampler keeps (max_steps x batch size)
    steps = math.ceil(pairs / settings.batch_size) * settings.epochs
    body = SentenceTransformer(source, device=None if torch.cuda.is_available() else "cpu")
    body.max_seq_length = settings.max_length
    model = SetFitModel(model_body=body)
    setfit_args = TrainingArguments(
        output_dir=os.path.join(folder + ".work"),
        batch_size=(settings.batch_size, settings.batch_size),
        num_epochs=(settings.epochs, 1),
        body_learning_rate=(settings.learning_rate, settings.learning_rate),
        num_iterations=settings.num_iterations,
        max_steps=steps,
        seed=settings.seed,
        max_length=settings.max_length,
        show_progress_bar=False,
        report_to="none",
        save_strategy="no",
        logging_steps=50,
    )
    trainer = Trainer(model=model, args=setfit_args)
    if quiet:
        trainer.st_trainer.remove_callback(ProgressCallback)
        trainer.st_trainer.add_callback(PrinterCallback)
    logger.info("--method setfit: contrastive phase on %d texts, %d pairs an epoch, %d steps (%s)", len(texts), pairs,
                steps, settings)  # fmt: skip
    with encoder_in_bf16(body) if settings.bf16 else contextlib.nullcontext():
        trainer.train_embeddings(texts, targets, args=setfit_args)
    body.save(folder)
    shutil.rmtree(folder + ".work", ignore_errors=True)
    write_json_atomic(os.path.join(folder, DONE), marker(source, settings, pairs))
    logger.info("--method setfit: the encoder is in %s; training the classifier from it", folder)


@contextlib.contextmanager
def encoder_in_bf16(body):
    """The sentence encoder's transformer (body[0]) forwards in bf16 autocast and hands its token embeddings on in
    fp32, so pooling, normalisation and the cosine loss stay fp32; the weights and optimizer are fp32 throughout
    (autocast, not setfit's use_amp, which is fp16 on GPUs only). Autocast over the whole phase instead trained a
    body that our head could not learn from at all (SST-2, 64 rows per class, draw 1: 50.9% against 78.6% in fp32)."""
    inner = body[0]
    plain = inner.forward
    device = next(inner.parameters()).device.type

    def forward(features, **kwargs):
        with torch.autocast(device, dtype=torch.bfloat16):
            out = plain(features, **kwargs)
        out["token_embeddings"] = out["token_embeddings"].float()
        return out

    inner.forward = forward
    try:
        yield
    finally:
        del inner.forward  # the module's own forward again


def marker(source: str, settings: ContrastiveSettings, pairs: int) -> dict:
    """What a finished body was trained with (written last into it, compared before reusing it)."""
    return {"model": source, **settings.__dict__, "pairs": pairs}


def _done_settings(folder: str) -> dict | None:
    try:
        with open(os.path.join(folder, DONE), encoding="utf-8") as f:
            done = json.load(f)
    except (OSError, ValueError):
        return None
    return {"bf16": False, **done} if isinstance(done, dict) else None  # a marker without the key: trained in fp32


def contrastive_record(args) -> dict:
    """What a run's results say of its contrastive phase: the precision its body was trained in (from the body's
    marker, so a reused body says how it was made); {} for a run without one."""
    if args.data.method != "setfit" or not args.training.do_train:
        return {}
    done = _done_settings(os.path.join(args.training.output_dir, BODY))
    return {"setfit_contrastive_precision": "bf16" if done["bf16"] else "fp32"} if done else {}
