"""Hyperparameter search (--hp_trials N with --hp_space): Trainer.hyperparameter_search with optuna.

- The space is JSON, in the recipe or on the command line, of TrainingArguments fields (the ones a trial sets):
  {"learning_rate": {"type": "float", "low": 1e-5, "high": 3e-4, "log": true},
   "num_train_epochs": {"type": "categorical", "choices": [3, 5, 10]},
   "per_device_train_batch_size": {"type": "int", "low": 16, "high": 64, "step": 16}}
  checked whole (unknown flag, low > high, empty choices, a kind optuna has not) before any trial runs.
- The objective is the task's primary metric on the validation split (--metric_for_best_model when given), its
  direction the metric's; the sampler is optuna's TPE seeded with --hp_seed (default --seed), so a search is
  repeatable; optuna's median pruner stops a trial whose evaluation falls below the median of the trials before it
  at the same step (it needs --eval_strategy steps or epoch to see anything).
- The study lives in output_dir/hp_search.db (SQLite, optuna's own storage), or where --hp_storage says (a journal
  file, JSON lines, that can be kept with the results and copied to the next machine; or any optuna storage URL):
  rerunning the same command continues it, running only the trials still missing; a trial cut off by a kill is
  lost, the others are kept. The study records its space and objective, and a run with another of either is refused
  before any trial (its trials would not compare). One search process at a time per study: a trial found RUNNING is
  taken for one a kill cut off.
- Written: hp_trials.json (every trial: number, state, params, value, seconds), hp_trials.png (each trial's value
  and the best so far) and best_recipe.json, an ordinary recipe of the run with the best trial's values that
  `python run_classification.py OUTPUT_DIR/best_recipe.json` replays.
- Trials save no checkpoints (a trial a kill cut off is run again from its start; each one's objective is its
  last evaluation), so a search never fills the disk with them.
- Many machines: Trainer's backend="ray" runs the same search on a Ray cluster (Ray Tune); it is not wired to a flag
  here (README, "Hyperparameter search")."""

import copy
import datetime
import json
import logging
import os
import shlex

import torch.distributed as dist

from textcls.config.args import write_recipe
from textcls.errors import UserError
from textcls.evaluation.report import pyplot, save_figure
from textcls.evaluation.results import environment, git_state
from textcls.io import write_json_atomic
from textcls.train.run_folder import SEARCH_FILES

logger = logging.getLogger(__name__)

KINDS = ("float", "int", "categorical")
STUDY = "run_classification"


def parse_space(text: str, training_args) -> dict:
    """--hp_space JSON -> {flag: spec}, every error one clear message before any trial."""
    try:
        space = json.loads(text) if isinstance(text, str) else text
    except json.JSONDecodeError as e:
        raise UserError(f"--hp_space is not valid JSON: {e.msg} at character {e.pos}.") from None
    if not isinstance(space, dict) or not space:
        raise UserError(
            '--hp_space: give a JSON object of flag -> range, e.g. {"learning_rate": {"type": "float", '
            '"low": 1e-5, "high": 3e-4, "log": true}}.'
        )
    for flag, spec in space.items():
        if not hasattr(training_args, flag) or flag.startswith("hp_"):
            raise UserError(
                f"--hp_space names '{flag}', which is not a training flag a trial can set (a trial sets "
                "TrainingArguments fields: learning_rate, num_train_epochs, per_device_train_batch_size, "
                "weight_decay, warmup_steps, seed, layerwise_lr_decay, ...)."
            )
        kind = spec.get("type") if isinstance(spec, dict) else None
        if kind not in KINDS:
            raise UserError(f"--hp_space {flag}: 'type' must be one of {', '.join(KINDS)}, not {kind!r}.")
        if kind == "categorical":
            choices = spec.get("choices")
            if not isinstance(choices, list) or not choices:
                raise UserError(f"--hp_space {flag}: a categorical range needs a non-empty list of 'choices'.")
            continue
        low, high = spec.get("low"), spec.get("high")
        if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (low, high)):
            raise UserError(f"--hp_space {flag}: a {kind} range needs numbers 'low' and 'high'.")
        if low > high:
            raise UserError(f"--hp_space {flag}: low {low} is above high {high}.")
        if spec.get("log") and low <= 0:
            raise UserError(f"--hp_space {flag}: a log range needs low above 0, not {low}.")
    return space


def optuna_space(space: dict):
    """The hp_space function Trainer calls with each optuna trial."""

    def suggest(trial):
        params = {}
        for flag, spec in space.items():
            if spec["type"] == "categorical":
                params[flag] = trial.suggest_categorical(flag, spec["choices"])
            elif spec["type"] == "int":
                params[flag] = trial.suggest_int(
                    flag, int(spec["low"]), int(spec["high"]), step=int(spec.get("step", 1)), log=bool(spec.get("log"))
                )
            else:
                params[flag] = trial.suggest_float(
                    flag, float(spec["low"]), float(spec["high"]), log=bool(spec.get("log"))
                )
        return params

    return suggest


SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3")


def study_storage(training):
    """(where, storage): the study's file or URL as the log names it, and what optuna takes. A journal path gets its
    storage object only in open_storage, since building one creates the file."""

    spec = training.hp_storage or os.path.join(training.output_dir, SEARCH_FILES[0])
    if "://" in spec:
        return spec, spec
    path = os.path.abspath(spec)
    if path.endswith(SQLITE_SUFFIXES):
        return path, f"sqlite:///{path}"
    return path, None


def open_storage(training, create: bool):
    """The optuna storage of this search, or None when create is False and there is no study to open yet."""
    # optuna: imported by a search only (heavy, optional to every other run)
    import optuna

    where, storage = study_storage(training)
    if "://" not in where and not os.path.isfile(where):
        if not create:
            return None
        os.makedirs(os.path.dirname(where), exist_ok=True)
    if storage is None:
        # optuna: imported by a search only (heavy, optional to every other run)
        from optuna.storages.journal import JournalFileBackend

        storage = optuna.storages.JournalStorage(JournalFileBackend(where))
    return storage


def _objective(metric: str, greater: bool) -> tuple[str, str]:
    """(the trials' metric key, the study's direction) of the run's best metric (train.trainer.BestMetric)."""
    return (metric if metric.startswith("eval_") else f"eval_{metric}"), ("maximize" if greater else "minimize")


def check_study(args, best) -> None:
    """A search's study, when it continues one, must be of this space and objective: trials of another would not
    compare. One error, before the data is tokenized or a trial runs; --overwrite_output_dir (a new study) skips it."""
    # optuna: imported by a search only (heavy, optional to every other run)
    import optuna

    training = args.training
    if not training.hp_trials:
        return
    storage = None if args.data.overwrite_output_dir else open_storage(training, create=False)
    if storage is None or STUDY not in optuna.study.get_all_study_names(storage):
        return
    attrs = optuna.load_study(study_name=STUDY, storage=storage).user_attrs
    where = study_storage(training)[0]
    space = json.dumps(parse_space(training.hp_space, training), sort_keys=True)
    if attrs.get("hp_space", space) != space:
        raise UserError(
            f"the study in {where} was searched over another space: {attrs['hp_space']}, not {space}. Pass the same "
            "--hp_space to continue it, or --overwrite_output_dir (or another --hp_storage) to start a new search."
        )
    key, direction = _objective(best.name, best.greater_is_better)
    if attrs.get("objective", key) != key or attrs.get("direction", direction) != direction:
        raise UserError(
            f"the study in {where} scored {attrs['objective']} ({attrs['direction']}), not {key} ({direction}). Pass "
            "the same --metric_for_best_model to continue it, or --overwrite_output_dir (or another --hp_storage) "
            "to start a new search."
        )


def run_search(trainer, args, argv: list[str]) -> dict:
    """Run (or continue) the search; write hp_trials.json (with the command line `argv` and the code's commit, to
    reproduce it), hp_trials.png and best_recipe.json. Returns the best trial's {objective, params}."""
    # optuna: imported by a search only (heavy, optional to every other run)
    import optuna

    training = args.training
    space = parse_space(training.hp_space, training)
    key, direction = _objective(trainer.args.metric_for_best_model, trainer.args.greater_is_better)  # resolved
    out = training.output_dir
    os.makedirs(out, exist_ok=True)
    where = study_storage(training)[0]
    seed = training.hp_seed if training.hp_seed is not None else training.seed
    # Under DDP, transformers runs the study on process 0 and the other processes train the trials it broadcasts:
    # only process 0 touches the storage (another process could otherwise fail the trial process 0 has just
    # started), and it tells the others how many trials to expect.
    main_process = trainer.is_world_process_zero()
    remaining, started = 0, 0
    storage = None
    if main_process:
        storage = open_storage(training, create=True)
        if args.data.overwrite_output_dir and STUDY in optuna.study.get_all_study_names(storage):
            optuna.delete_study(study_name=STUDY, storage=storage)  # --overwrite_output_dir: a new search
            logger.info("--overwrite_output_dir: the earlier search in %s is discarded", where)
        study = optuna.create_study(study_name=STUDY, storage=storage, load_if_exists=True, direction=direction)
        # What check_study holds a continued search to (a study from before these were recorded gets them now).
        recorded = {"hp_space": json.dumps(space, sort_keys=True), "objective": key, "direction": direction}
        for name, value in recorded.items():
            if name not in study.user_attrs:
                study.set_user_attr(name, value)
        finished = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
        done = [t for t in study.trials if t.state in finished]
        # Trials a kill cut off stay RUNNING in the storage: marked failed, they do not count, and are run again.
        for t in study.trials:
            if t.state == optuna.trial.TrialState.RUNNING:
                study.tell(t.number, state=optuna.trial.TrialState.FAIL)
        remaining, started = training.hp_trials - len(done), len(study.trials)
        logger.info(
            "hyperparameter search: %d of %d trials done, %d to run, objective %s (%s), study in %s",
            len(done),
            training.hp_trials,
            max(remaining, 0),
            key,
            direction,
            where,
        )
    remaining = _from_main_process(remaining, training.world_size)
    if remaining > 0:
        # Seeded from --hp_seed and the trials so far: a continued search is repeatable too (its draws are not the
        # ones an uninterrupted search would have made: optuna's sampler state is not stored).
        sampler = optuna.samplers.TPESampler(seed=seed + started)
        pruner = optuna.pruners.MedianPruner() if training.hp_pruner == "median" else optuna.pruners.NopPruner()
        if training.world_size > 1 and training.hp_pruner == "median":
            # A trial pruned on process 0 leaves train() there only: the other processes keep training it, and the
            # next trial's broadcast meets their gradient all-reduce (measured: gloo "Connection closed by peer"
            # after the first pruned trial). transformers has no way to tell them (PR #19096 leaves it open).
            logger.warning(
                "hyperparameter search on %d processes: trials are not pruned (a trial stopped on process 0 would "
                "keep running on the others and hang the run); each runs to its end",
                training.world_size,
            )
            pruner = optuna.pruners.NopPruner()
        trainer.hyperparameter_search(
            hp_space=optuna_space(space),
            compute_objective=lambda metrics: metrics[key],
            n_trials=remaining,
            direction=direction,
            backend="optuna",
            study_name=STUDY,
            storage=storage,
            load_if_exists=True,
            sampler=sampler,
            pruner=pruner,
        )
    if not main_process:
        return {}
    if remaining > 0:
        study = optuna.load_study(study_name=STUDY, storage=storage)
    trials = [
        {
            "number": t.number,
            "state": t.state.name,
            "params": t.params,
            key: t.value,
            "seconds": (t.datetime_complete - t.datetime_start).total_seconds() if t.datetime_complete else None,
        }
        for t in study.trials
    ]
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not complete:
        raise UserError("the hyperparameter search finished no trial: see the log of each trial above.")
    best = study.best_trial

    record = {
        "command": shlex.join(["python", "run_classification.py", *argv]),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        **git_state(),
        "environment": environment(),
        "objective": key,
        "direction": direction,
        "space": space,
        "sampler": f"TPE, seed {seed}",
        "best": {"number": best.number, key: best.value, "params": best.params},
        "trials": trials,
    }
    write_json_atomic(os.path.join(out, "hp_trials.json"), record)
    write_best_recipe(args, best, space, len(trials), out)
    plot_trials(trials, key, direction, os.path.join(out, "hp_trials.png"))
    logger.info(
        "best trial %d: %s = %.4f with %s; replay: python run_classification.py %s",
        best.number,
        key,
        best.value,
        best.params,
        os.path.join(out, "best_recipe.json"),
    )
    return {"objective": best.value, "params": best.params}


def _from_main_process(value, world_size: int):
    """Process 0's value on every process (under DDP; the value itself otherwise)."""

    if world_size <= 1 or not (dist.is_available() and dist.is_initialized()):
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def write_best_recipe(args, best, space, trials: int, out: str) -> str:

    recipe = copy.deepcopy(args.resolved)
    recipe.update(best.params)
    for flag in ("hp_space", "hp_trials", "hp_seed", "hp_pruner", "hp_storage"):
        recipe.pop(flag, None)
    recipe["output_dir"] = os.path.join(out, "best")
    date = datetime.date.today().isoformat()
    recipe["_source"] = (
        f"hyperparameter search ({date}): trial {best.number} of {trials}, best {best.value:.4f}, "
        f"space {json.dumps(space)}"
    )
    return write_recipe(recipe, out, "best_recipe.json")


def plot_trials(trials, key, direction, path) -> None:
    """Each trial's objective and the best so far; a drawing failure is a warning."""
    try:
        plt = pyplot()
        done = [(t["number"], t[key]) for t in trials if t[key] is not None]
        fig, ax = plt.subplots(figsize=(6, 4))
        numbers, values = zip(*done, strict=True) if done else ((), ())
        ax.scatter(numbers, values, label="trial")
        pick = max if direction == "maximize" else min
        best = [pick(values[: i + 1]) for i in range(len(values))]
        ax.step(numbers, best, where="post", color="C1", label="best so far")
        ax.set_xlabel("trial")
        ax.set_ylabel(key)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
        save_figure(fig, path)
        plt.close(fig)
    except Exception as e:  # a picture is never worth a failed search
        logger.warning("could not draw the trials (%s: %s)", type(e).__name__, e)
