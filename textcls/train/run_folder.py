"""The output folder of a training run, made trustworthy: one run at a time holds it (a lock), a run of ours marks it
as its own (so --overwrite_output_dir clears only what we made), its checkpoints count only once verified, and the
training it holds is resumed only by a command with the same training settings.

What the same command does in a folder, decided once by plan_output_dir before any data is read:

| the folder holds | the same command |
|---|---|
| nothing (or no folder) | trains from step 0 |
| a run killed before its first complete checkpoint | starts over (damaged checkpoints removed, named in the log) |
| a complete checkpoint made with these settings | resumes from the newest one; newer damaged ones are removed |
| a finished training (its model saved) with these settings | trains nothing; evaluates and predicts with that model |
| anything above made with other training settings | is refused, naming each difference and the ways out |
| files a run of ours did not write | is refused (with --overwrite_output_dir too) |
| with --overwrite_output_dir, a folder a run of ours made | empties it and trains from step 0 |

A checkpoint is complete when every file it needs is there and whole: sizes match the manifest written last at save
time, and each file's own structure checks out (a safetensors file's header against its length, a torch zip's
central directory, JSON parses). The structural checks read a few kilobytes a file (header and tail), never the
weights, so a resume costs no more time than before; they also catch a file damaged after its manifest was written.
"""

import dataclasses
import fcntl
import glob
import hashlib
import json
import logging
import os
import re
import shutil
import socket
import struct
import time
import zipfile

import torch.distributed as dist
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from textcls.data.load import local_files
from textcls.errors import DiskFull, Interrupted, TrainingStopped, UserError
from textcls.io import free_bytes, size_text, write_json_atomic
from textcls.train.contrastive import BODY

logger = logging.getLogger(__name__)

MARKER = ".textcls_run.json"  # "a run of ours made this folder", and the training settings it holds
LOCK = ".textcls.lock"  # held (flock) while a run writes here; names the holder
MANIFEST = "checkpoint_manifest.json"  # written last into a checkpoint: every file and its size
SETTINGS = "run_settings.json"  # in each checkpoint: the training settings it was made with
DECIDED = "decided"  # in those settings: what 'auto' flags resolved to in that run (with_decided)
TRAINER_STATE = "trainer_state.json"
SEARCH_FILES = ("hp_search.db", "hp_trials.json")  # a hyperparameter search's own folder (textcls.train.search)

# Flags a resumed (or finished) run may change: they decide what is logged, reported, saved or predicted, never the
# trained weights. Every other flag, the training data's content and the number of processes must match. Listed in
# the README's "Interruptions" section (a test keeps the two equal).
SAFE_TO_CHANGE = (
    "output_dir", "overwrite_output_dir", "resume_from_checkpoint", "do_predict", "test_file", "max_predict_samples",
    "per_device_eval_batch_size", "eval_accumulation_steps", "disable_tqdm", "logging_strategy", "logging_steps",
    "logging_first_step", "logging_nan_inf_filter", "log_level", "log_level_replica", "log_on_each_node",
    "report_to", "run_name", "project", "trackio_space_id", "trackio_bucket_id", "trackio_static_space_id",
    "save_steps", "save_total_limit", "save_on_each_node", "results_file", "plots", "preprocessing_num_workers",
    "dataloader_num_workers", "dataloader_pin_memory", "dataloader_persistent_workers", "dataloader_prefetch_factor",
    "dataloader_multiprocessing_context", "cache_dir", "use_cpu", "skip_memory_metrics", "push_to_hub",
    "hub_model_id", "hub_strategy", "hub_token", "hub_private_repo", "hub_always_push", "hub_revision",
    "ddp_timeout", "ddp_backend", "ddp_bucket_cap_mb", "torch_empty_cache_steps", "include_num_input_tokens_seen",
    "metric_name", "trust_remote_code", "local_rank", "debug", "hp_storage", "find_label_issues",
    "cross_validate_refit",
    "train_file",  # its content is compared instead (train_data), so a moved or renamed file still resumes
)  # fmt: skip
# Safe too when the run evaluates only at its end (--eval_strategy no): then evaluation cannot touch training.
SAFE_WITHOUT_EVAL_DURING_TRAINING = ("do_eval", "validation_file", "max_eval_samples")
# Safe too unless the run loads its best checkpoint at the end: which checkpoints are written trains nothing
# differently (saving draws no random numbers), but with --load_best_model_at_end it decides which model is kept.
SAFE_WITHOUT_LOAD_BEST = ("save_strategy",)
# Flags added after checkpoints began to record their settings. A checkpoint whose settings lack one was made by code
# that always did what one of the flag's own values does now: resuming it with a value that can do the same is no
# change (first), and its 'auto' resolves as that code did (second, read back by decided()). Any other value is
# another way of training and refused as a change, as ever.
ADDED_FLAGS = {"tokenize": (("auto", "upfront"), {"tokenize": "upfront"})}  # before it, every split up front
# Flags whose unset value (None) is decided per run, recorded under DECIDED: what a checkpoint trained with is its
# flag when set (checkpoints of code from before the flag could be unset always set it), else its decision. Resuming
# with the flag unset takes that again; setting it to the same value is no change.
DECIDED_WHEN_UNSET = ("bf16",)


# ------------------------------------------------------------------------------------------------ checkpoints

_CHECKPOINT = re.compile(rf"^{PREFIX_CHECKPOINT_DIR}-(\d+)$")
WEIGHTS = ("model.safetensors", "adapter_model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")


def file_problem(path: str) -> str | None:
    """What is wrong with one saved file, judged by its own structure, or None. Reads its header and tail only."""
    try:
        size = os.path.getsize(path)
        name = os.path.basename(path)
        if name.endswith(".safetensors"):
            with open(path, "rb") as f:
                head = f.read(8)
                if len(head) < 8:
                    return f"{name} is truncated ({size} bytes)"
                (n,) = struct.unpack("<Q", head)
                if n > size - 8:
                    return f"{name} is truncated ({size} bytes, its header alone says {n + 8})"
                header = json.loads(f.read(n))
            end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
            if size != 8 + n + end:
                return f"{name} is truncated ({size} bytes of {8 + n + end})"
        elif name.endswith((".pt", ".pth", ".bin")):
            with zipfile.ZipFile(path) as z:  # the central directory is at the end: a cut file has none
                z.infolist()
        elif name.endswith(".json"):
            with open(path, encoding="utf-8") as f:
                json.load(f)
    except (OSError, ValueError, KeyError, TypeError, IndexError, zipfile.BadZipFile, struct.error) as e:
        return f"{os.path.basename(path)} cannot be read ({type(e).__name__}: {str(e)[:120]})"
    return None


def checkpoint_problem(path: str, step: int | None = None) -> str | None:
    """Why this checkpoint cannot be resumed from, or None when it is complete (see the module's docstring)."""
    step = int(_CHECKPOINT.match(os.path.basename(path)).group(1)) if step is None else step
    try:
        with open(os.path.join(path, TRAINER_STATE), encoding="utf-8") as f:
            if json.load(f)["global_step"] != step:
                return f"its {TRAINER_STATE} is for another step"
    except FileNotFoundError:
        return f"it has no {TRAINER_STATE} (the save did not finish)"
    except (OSError, ValueError, KeyError, TypeError):
        return f"its {TRAINER_STATE} is damaged"
    manifest = os.path.join(path, MANIFEST)
    if os.path.isfile(manifest):
        try:
            with open(manifest, encoding="utf-8") as f:
                expected = json.load(f)["files"]
        except (OSError, ValueError, KeyError, TypeError):
            return f"its {MANIFEST} is damaged"
        for name, size in expected.items():
            file = os.path.join(path, name)
            if not os.path.isfile(file):
                return f"{name} is missing"
            if os.path.getsize(file) != size:
                return f"{name} is {os.path.getsize(file)} bytes, {size} when it was saved"
    elif not any(os.path.isfile(os.path.join(path, w)) for w in WEIGHTS):
        return "it holds no model weights"
    for name in sorted(os.listdir(path)):
        file = os.path.join(path, name)
        if os.path.isfile(file) and (problem := file_problem(file)):
            return problem
    return None


def checkpoints(folder: str) -> list[tuple[int, str]]:
    """(step, path) of every checkpoint folder, newest first."""
    if not os.path.isdir(folder):
        return []
    found = ((int(m.group(1)), os.path.join(folder, n)) for n in os.listdir(folder) if (m := _CHECKPOINT.match(n)))
    return sorted(((s, p) for s, p in found if os.path.isdir(p)), reverse=True)


def scan_checkpoints(folder: str) -> tuple[str | None, list[tuple[str, str]]]:
    """(the newest complete checkpoint or None, [(path, why) of each damaged one newer than it]): each checkpoint is
    checked once, newest first, until a complete one."""
    damaged = []
    for step, path in checkpoints(folder):
        problem = checkpoint_problem(path, step)
        if problem is None:
            return path, damaged
        damaged.append((path, problem))
    return None, damaged


def last_complete_checkpoint(folder: str) -> str | None:
    """The newest checkpoint that is complete, or None. (transformers' get_last_checkpoint takes the newest by name,
    and a kill while saving leaves that one half-written: the resume then fails, or silently restarts.)"""
    return scan_checkpoints(folder)[0]


def write_manifest(checkpoint: str) -> None:
    """The checkpoint's files and sizes, written last: from here on the checkpoint counts (checkpoint_problem)."""
    files = {n: os.path.getsize(os.path.join(checkpoint, n)) for n in sorted(os.listdir(checkpoint))}
    files = {n: s for n, s in files.items() if n != MANIFEST and not n.startswith(".")}
    write_json_atomic(os.path.join(checkpoint, MANIFEST), {"files": files})


def model_folder_problem(path: str) -> str | None:
    """What is wrong with a saved model folder given as --model (a truncated weights file, a broken config), or
    None. Only the files transformers or peft will read are checked."""
    names = ("config.json", "adapter_config.json", *WEIGHTS, "tokenizer.json", "tokenizer_config.json")
    for name in names:
        file = os.path.join(path, name)
        if os.path.isfile(file) and (problem := file_problem(file)):
            return problem
    for file in sorted(glob.glob(os.path.join(path, "model-*-of-*.safetensors"))):
        if problem := file_problem(file):
            return problem
    return None


# ------------------------------------------------------------------------------------------------ settings


def file_fingerprint(path: str) -> str:
    """blake2b of the file's bytes; above 256 MB, of its size and 64 evenly spaced 1 MB blocks (the first and the
    last among them). Measured here: hashing runs at about 0.9 GB/s on one core, so a whole hash of a 256 MB file
    costs 0.3 s at every start of a training run, and a sampled one of any size a few milliseconds."""
    h = hashlib.blake2b(digest_size=16)
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        if size <= 256 * 2**20:
            for block in iter(lambda: f.read(2**20), b""):
                h.update(block)
        else:
            h.update(str(size).encode())
            for i in range(64):
                f.seek((size - 2**20) * i // 63)
                h.update(f.read(2**20))
    return h.hexdigest()


def training_data_files(data_args) -> list[str]:
    """The files the training rows are read from: --train_file (a glob: its shards), or a GLUE folder's train file.
    A hub dataset is named by --dataset_name, its config and revision, which the settings hold already."""

    excluded = [data_args.exclude_rows] if getattr(data_args, "exclude_rows", None) else []  # its ids: its content
    if data_args.train_file:
        return local_files(data_args.train_file) + excluded
    if data_args.data_dir:
        return sorted(glob.glob(os.path.join(data_args.data_dir, "train.*"))) + excluded
    return excluded


def training_settings(resolved: dict, data_args, world_size: int) -> dict:
    """What a checkpoint was trained with: every flag but SAFE_TO_CHANGE, the training files' content and the
    number of processes (together with the per-device batch: the batch each step averages over)."""
    settings = {k: v for k, v in resolved.items() if k not in SAFE_TO_CHANGE}
    files = [f for f in training_data_files(data_args) if os.path.isfile(f)]
    settings["train_data"] = [file_fingerprint(f) for f in files]
    settings["processes"] = world_size
    return json.loads(json.dumps(settings, default=str))  # as it reads back from JSON


def with_decided(settings: dict | None, **decided) -> dict | None:
    """The settings each checkpoint records, with what this run's 'auto' flags resolved to (tokenize='per_batch'):
    those depend on more than the flags (the device), so a resume reads them back (decided) rather than deciding
    again where it runs. Not compared: the flags that decide them are."""
    return None if settings is None else {**settings, DECIDED: decided}


def decided(checkpoint: str | None) -> dict:
    """What the run a checkpoint belongs to resolved its 'auto' flags to ({} for no checkpoint or unreadable
    settings); for a flag added after the checkpoint was made (ADDED_FLAGS: absent from its settings, or no settings
    file at all), what the code of then did."""
    if not checkpoint:
        return {}
    try:
        with open(os.path.join(checkpoint, SETTINGS), encoding="utf-8") as f:
            settings = json.load(f)
        found = dict(settings.get(DECIDED) or {})
    except FileNotFoundError:  # a checkpoint of code from before settings were recorded with each
        settings, found = {}, {}
    except (OSError, ValueError, AttributeError):
        return {}
    for flag, (_, then) in ADDED_FLAGS.items():
        if flag not in settings:
            found = {**then, **found}
    for flag in DECIDED_WHEN_UNSET:
        if settings.get(flag) is not None:
            found[flag] = settings[flag]
    if found.get("tokenize") == "per_batch" and "length_order" not in found:
        found["length_order"] = "estimated"  # made before megabatches were measured (length_order)
    return found


def length_order(decided: dict, per_batch: bool) -> str | None:
    """How a per-batch run's length-grouped megabatches are sorted, recorded under DECIDED: "measured", by the rows'
    true lengths, unless the checkpoint it resumes was trained by the byte estimates ("estimated": per-batch
    checkpoints from before commit 5699103 record no order, and decided() says so); None when the split is tokenized
    up front (its lengths are the true ones)."""
    if not per_batch:
        return None
    if decided.get("length_order") == "estimated":
        logger.info(
            "the checkpoint resumed was trained before per-batch runs sorted their length groups by the rows' true "
            "lengths: it goes on sorting them by the estimates, as it began"
        )
    return decided.get("length_order", "measured")


def settings_differences(saved: dict, now: dict) -> list[str]:
    """'--learning_rate 0.001 (the checkpoint: 5e-05)' for each setting that differs."""
    skip = set()
    if saved.get("eval_strategy", "no") == "no" and now.get("eval_strategy", "no") == "no":
        skip |= set(SAFE_WITHOUT_EVAL_DURING_TRAINING)
    if not (saved.get("load_best_model_at_end") or now.get("load_best_model_at_end")):
        skip |= set(SAFE_WITHOUT_LOAD_BEST)
    differences = []
    for key in sorted((set(saved) | set(now)) - skip - set(SAFE_TO_CHANGE) - {DECIDED}):
        if saved.get(key) == now.get(key):
            continue
        if key not in saved and key in ADDED_FLAGS and now.get(key) in ADDED_FLAGS[key][0]:
            continue  # the checkpoint's code did what this value does
        if key in DECIDED_WHEN_UNSET and now.get(key) is None:
            continue  # the resume decides as the checkpoint's run did (decided())
        if key in DECIDED_WHEN_UNSET and now.get(key) == (saved.get(DECIDED) or {}).get(key):
            continue  # set now to what the checkpoint's run decided
        if key == "train_data":
            differences.append("the training data's content (--train_file / --data_dir) changed")
        elif key == "processes":
            differences.append(f"{now.get(key)} process(es) (it was trained with {saved.get(key)})")
        else:
            differences.append(f"--{key} {_show(now.get(key))} (it was {_show(saved.get(key))})")
    return differences


def _show(value) -> str:
    return "unset" if value is None else json.dumps(value) if isinstance(value, dict | list) else str(value)


def _saved_settings(out: str, checkpoint: str | None) -> tuple[dict | None, str]:
    """The settings a checkpoint (else the folder's marker, else its recipe.json, for folders made before settings
    were recorded) says the run was trained with, and where they came from."""
    candidates = [os.path.join(checkpoint, SETTINGS)] if checkpoint else []
    candidates += [os.path.join(out, MARKER), os.path.join(out, "recipe.json")]
    for path in candidates:
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        except (OSError, ValueError):
            continue
        if path.endswith(MARKER):
            data = data.get("settings")
            if data is None:
                continue
        elif path.endswith("recipe.json"):  # no fingerprint or process count: compare the flags alone
            data = {k: v for k, v in data.items() if k not in SAFE_TO_CHANGE}
        return data, path
    return None, ""


# ------------------------------------------------------------------------------------------------ the plan


@dataclasses.dataclass(frozen=True)
class FolderPlan:
    """What this command does in its output_dir (see the module's table)."""

    resume_from: str | None = None  # a complete checkpoint to resume training from
    finished: bool = False  # training finished there earlier: evaluate and predict with its model
    clear: bool = False  # --overwrite_output_dir on a folder of ours: empty it first
    damaged: tuple = ()  # (path, why) of checkpoints to remove: newer than resume_from, or all when starting over


def is_ours(out: str) -> bool:
    """A folder a run of ours made: the marker, or (folders from before the marker) recipe.json, or Trainer's
    checkpoints and nothing else."""
    if any(os.path.isfile(os.path.join(out, n)) for n in (MARKER, "recipe.json")):
        return True
    entries = _our_entries(out)
    return bool(entries) and all(_CHECKPOINT.match(n) for n in entries)


def is_finished(out: str) -> bool:
    """save_training writes trainer_state.json last, after the model and train_results.json."""
    return all(os.path.isfile(os.path.join(out, n)) for n in (TRAINER_STATE, "train_results.json")) and any(
        os.path.isfile(os.path.join(out, w)) for w in WEIGHTS
    )


def _our_entries(out: str) -> list[str]:
    return [n for n in os.listdir(out) if n not in (MARKER, LOCK)]


def plan_output_dir(training_args, overwrite: bool, settings: dict | None) -> FolderPlan:
    """Decide what this command does in output_dir; refuse what would mix runs or lose a user's files. settings: the
    run's training settings (training_settings), None when it does not train."""
    out = training_args.output_dir
    if not os.path.isdir(out) or not _our_entries(out):
        return FolderPlan()
    ours = is_ours(out)
    if not ours and not (getattr(training_args, "hp_trials", 0) and _is_search(out)):
        raise UserError(
            f"output_dir {out} holds files that no run of run_classification.py wrote ({_listing(out)}). Choose "
            "another --output_dir (a new or empty folder); --overwrite_output_dir clears only folders a run of "
            "ours made."
        )
    if overwrite:
        return FolderPlan(clear=True)
    if not training_args.do_train:  # an evaluation or prediction into a run's folder writes its own files
        return FolderPlan()
    if getattr(training_args, "hp_trials", 0) and _is_search(out):
        logger.info("continuing the hyperparameter search in %s (--overwrite_output_dir starts it over)", out)
        return FolderPlan()
    if is_finished(out):
        _check_same_settings(out, None, settings, "finished training")
        return FolderPlan(finished=True)
    last, damaged = scan_checkpoints(out)
    damaged = tuple(damaged)
    if last is not None:
        _check_same_settings(out, last, settings, f"checkpoint {os.path.basename(last)}")
        return FolderPlan(resume_from=last, damaged=damaged)
    # Written before the first checkpoint and redone or reused by the run itself: --method setfit's contrastive phase
    # (a finished body is reused, a partial one, killed mid-phase, trained again: textcls.train.contrastive).
    # And --auto_select cross_validation's candidates (textcls.train.method.CV_FOLDER), cross-validated first.
    before_training = ("recipe.json", "runs", BODY, BODY + ".work", "auto_select")
    leftovers = [n for n in _our_entries(out) if n not in before_training and not _CHECKPOINT.match(n)]
    if leftovers:
        raise UserError(
            f"output_dir {out} holds an earlier run's outputs ({', '.join(sorted(leftovers)[:5])}) but no finished "
            "training and no complete checkpoint to resume. Pass --overwrite_output_dir to clear it and train from "
            "the start, or choose another --output_dir."
        )
    return FolderPlan(damaged=damaged)


def _is_search(out: str) -> bool:
    return any(os.path.isfile(os.path.join(out, n)) for n in SEARCH_FILES)


def _listing(out: str) -> str:
    names = sorted(_our_entries(out))
    return ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")


def _check_same_settings(out: str, checkpoint: str | None, settings: dict | None, what: str) -> None:
    saved, source = _saved_settings(out, checkpoint)
    if saved is None or settings is None:
        if saved is None:
            logger.warning("%s records no training settings: it cannot be checked against this command's", out)
        return
    if source.endswith("recipe.json"):
        settings = {k: v for k, v in settings.items() if k not in ("train_data", "processes")}
    differences = settings_differences(saved, settings)
    if differences:
        raise UserError(
            f"output_dir {out} holds a {what} made with other training settings; continuing it would mix two runs. "
            f"This command has {'; '.join(differences)}. Run it with the settings it was made with to "
            "continue it, or pass --overwrite_output_dir to start over there, or choose another --output_dir."
        )


# ------------------------------------------------------------------------------------------------ lock and claim


class OutputLock:
    """An advisory lock on output_dir (flock on LOCK, which also names the holder). The kernel releases a flock when
    its process dies, however it dies, so a lock left by a killed run is never stale: the next run takes it over and
    says so. (flock works across hosts on NFSv4 and Lustre mounts with flock enabled; other network file systems may
    not lock at all.)"""

    def __init__(self, out: str):
        self.out, self.fd, self.created = out, None, False

    def acquire(self) -> "OutputLock":
        self.created = not os.path.isdir(self.out)
        try:
            os.makedirs(self.out, exist_ok=True)
            path = os.path.join(self.out, LOCK)
            self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except FileExistsError:
            raise UserError(f"output_dir {self.out} is a file, not a folder. Choose another --output_dir.") from None
        except OSError as e:
            raise UserError(
                f"cannot write into output_dir {self.out}: {e.strerror}. Choose a folder you can write to."
            ) from None
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = self._holder()
            os.close(self.fd)
            self.fd = None
            raise UserError(
                f"output_dir {self.out} is in use by another run ({holder}). Wait for it to finish, or stop it, or "
                "choose another --output_dir."
            ) from None
        previous = self._holder(raw=True)
        if previous:
            logger.warning(
                "output_dir %s was held by a run that ended without releasing it (%s): taking it over.",
                self.out,
                self._holder(),
            )
        info = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S")}
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, json.dumps(info).encode(), 0)
        return self

    def _holder(self, raw: bool = False):
        try:
            text = os.pread(self.fd, 4096, 0).decode()
            if raw:
                return text
            info = json.loads(text)
            return f"process {info['pid']} on {info['host']}, started {info['started']}"
        except (OSError, ValueError, KeyError, TypeError):
            return "" if raw else "a process that has not written its name yet"

    def release(self, failed: bool = False) -> None:
        """Unlock; after a refusal (failed) remove the folder if this run made it and wrote nothing else there."""
        if self.fd is None:
            return
        try:
            os.unlink(os.path.join(self.out, LOCK))
        except OSError:
            pass
        os.close(self.fd)  # releases the flock
        self.fd = None
        if failed and self.created and os.listdir(self.out) in ([], [MARKER]):
            shutil.rmtree(self.out, ignore_errors=True)


def claim(out: str, plan: FolderPlan, settings: dict | None) -> None:
    """Carry out the plan's removals and mark the folder as ours (with the settings a training run trains with)."""
    if plan.clear:
        names = _our_entries(out)
        for name in names:
            path = os.path.join(out, name)
            shutil.rmtree(path) if os.path.isdir(path) and not os.path.islink(path) else os.unlink(path)
        if names:
            logger.info("--overwrite_output_dir: cleared %s (%s)", out, ", ".join(sorted(names)[:8]))
    for path, why in plan.damaged:
        logger.warning("%s cannot be resumed from (%s): removing it.", path, why)
        shutil.rmtree(path, ignore_errors=True)
    if plan.resume_from:
        logger.info("Resuming from %s (pass --overwrite_output_dir to start over).", plan.resume_from)
    marker = os.path.join(out, MARKER)
    if (settings is not None and not plan.finished) or not os.path.isfile(marker):  # a finished run's stays
        write_json_atomic(marker, {"written_by": "run_classification.py", "settings": settings})


def rerun_advice(out: str, overwrite: bool) -> str:
    """What the same command will do in this folder now (after an interruption), in one sentence."""
    if overwrite:
        last = last_complete_checkpoint(out)
        keep = f"; drop --overwrite_output_dir to resume from {last} instead" if last else ""
        return f"Run the same command again to start over (--overwrite_output_dir clears {out}){keep}."
    if os.path.isdir(out) and is_finished(out):
        return (
            "Training had finished and its model is saved: run the same command again to evaluate and predict with "
            "it (nothing is trained again)."
        )
    last = last_complete_checkpoint(out)
    if last:
        return f"Run the same command again to resume from {last}."
    return "Run the same command again: no training step was saved, so it starts from the beginning."


def disk_full_message(out: str, what: str, needed: int, error: BaseException) -> str:
    """The first sentence of every full-disk error of a save: where, what it needed, what is free, what failed."""
    return (
        f"the disk holding {out} is full: saving {what} needs about {size_text(needed)} and "
        f"{size_text(free_bytes(out))} is free ({type(error).__name__}: {str(error)[:100]}). "
    )


def checkpoint_bytes(model, optimizer: bool) -> int:
    """About what saving this model takes: the weights a save writes (a LoRA adapter: its trainable weights only),
    plus, for a checkpoint, AdamW's two moments per trainable weight in float32."""
    params = list(model.parameters())
    trainable = sum(p.numel() for p in params if p.requires_grad)
    if hasattr(model, "peft_config"):
        weights = sum(p.numel() * p.element_size() for p in params if p.requires_grad)
    else:
        weights = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    return weights + (8 * trainable if optimizer else 0)


def check_disk_space(training_args, model) -> None:
    """Refuse a training run that cannot save what it trains: the free space must hold the final model and, unless
    --save_strategy no, one checkpoint (a checkpoint is written, and the oldest removed, one at a time). Without it
    the run would train for hours and then lose everything in the final save."""
    if not training_args.do_train:
        return
    out = training_args.output_dir
    saves = str(getattr(training_args.save_strategy, "value", training_args.save_strategy)) != "no"
    needed = checkpoint_bytes(model, optimizer=False) + (checkpoint_bytes(model, optimizer=True) if saves else 0)
    free = free_bytes(out)
    if free < needed:
        raise DiskFull(
            f"the disk holding {out} has {size_text(free)} free, and this run needs about {size_text(needed)} to "
            f"save its model{' and a checkpoint' if saves else ''}. Free some space, or choose an --output_dir on a "
            "disk with room."
        )


def hold_output_dir(training_args, overwrite: bool, settings: dict | None):
    """Lock output_dir (process 0 of a launch), decide what this command does there (plan_output_dir), carry it out
    (claim), and broadcast the plan to the other processes. A context manager: it unlocks on exit, and after a
    refusal removes the folder it created."""
    return _OutputDir(training_args, overwrite, settings)


class _OutputDir:
    def __init__(self, training_args, overwrite, settings):
        self.args, self.overwrite, self.settings = training_args, overwrite, settings
        self.lock = None

    def __enter__(self) -> FolderPlan:
        args = self.args
        main = args.process_index == 0
        plan, error = None, None
        if main:
            self.lock = OutputLock(args.output_dir)
            try:
                self.lock.acquire()
                plan = plan_output_dir(args, self.overwrite, self.settings)
                claim(args.output_dir, plan, self.settings)
            except UserError as e:
                error = e
        if args.world_size > 1:
            shared = [plan, str(error) if error else None]
            dist.broadcast_object_list(shared, src=0)
            plan, message = shared
            if message and not main:
                raise UserError(message)
        if error is not None:
            self.lock.release(failed=True)
            raise error
        return plan

    def __exit__(self, kind, error, tb):
        out = self.args.output_dir
        if self.lock is not None:
            self.lock.release(failed=error is not None)  # a folder it made and wrote nothing into goes
        # An interruption says what the same command will then do in this folder (rerun_advice).
        if isinstance(error, TrainingStopped):
            advice = rerun_advice(out, self.overwrite)
            raise TrainingStopped(error.signum, error.step, error.checkpoint, advice) from None
        if isinstance(error, KeyboardInterrupt) and not isinstance(error, Interrupted):
            raise Interrupted(rerun_advice(out, self.overwrite)) from None
        return False


def evaluate_saved_model(out: str) -> list[str]:
    """The flags that turn a training command into an evaluation of the model it trained into out (a finished run
    asked again): the same command then evaluates and predicts, and trains nothing."""
    logger.info(
        "training finished earlier in %s with these settings: evaluating and predicting with its saved model; nothing "
        "is trained again (--overwrite_output_dir trains anew).",
        out,
    )
    return ["--model_name_or_path", out, "--do_train", "false"]


def finished_results(out: str) -> dict:
    """A finished run asked again with nothing to evaluate or predict: its recorded results."""
    logger.info("training finished earlier in %s with these settings: nothing left to do.", out)
    try:
        with open(os.path.join(out, "all_results.json"), encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}
