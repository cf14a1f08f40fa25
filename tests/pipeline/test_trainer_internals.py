"""A guard for the transformers internals ClassificationTrainer relies on (requirements allow any transformers 5.x):
every Trainer method it overrides must still exist, take what Trainer passes it, and be called when a run trains,
evaluates and saves; every private attribute it reads must still be there at the point it reads it. A transformers
upgrade that renames, re-signs or stops calling one breaks this test, naming the method, not a user's run."""

import inspect

import pytest
from transformers import Trainer

import run_classification as R
from tests.helpers import sentiment_rows, write_rows
from textcls.train.trainer import ClassificationTrainer

OVERRIDES = sorted(
    name
    for name, value in vars(ClassificationTrainer).items()
    if callable(value) and hasattr(Trainer, name) and name != "__init__"
)
# Read (and restored on resume) from Trainer's training loop: the running loss, its sum, the last logged step.
PRIVATE_ATTRIBUTES = ("_tr_loss", "_total_loss_scalar", "_globalstep_last_logged")


def test_the_overrides_are_the_ones_this_guard_knows():
    """A new override joins the list below (and is then held to it), or this fails."""
    assert OVERRIDES == [
        "_finalize_training",
        "_get_dataloader",
        "_get_eval_sampler",
        "_get_train_sampler",
        "_maybe_log_save_evaluate",
        "_remove_unused_columns",
        "_save_checkpoint",
        "autocast_smart_context_manager",
        "create_optimizer",
        "evaluation_loop",
        "log",
        "save_model",
        "save_state",
        "train",
    ]


@pytest.mark.parametrize("name", OVERRIDES)
def test_each_override_accepts_every_parameter_of_trainers_method(name):
    ours = inspect.signature(getattr(ClassificationTrainer, name)).parameters
    theirs = inspect.signature(getattr(Trainer, name)).parameters
    open_ended = any(p.kind in (p.VAR_KEYWORD,) for p in ours.values())
    missing = [p for p in theirs if p not in ours and not open_ended]
    assert not missing, f"Trainer.{name} now takes {missing}, which ClassificationTrainer.{name} does not"
    ordered = [p for p in theirs if p in ours]
    assert ordered == [p for p in ours if p in theirs], f"Trainer.{name} reordered its parameters: {list(theirs)}"


def test_every_override_is_called_and_every_private_attribute_is_there(tiny_bert, tmp_path, monkeypatch):
    """One small run that trains (with layer-wise decay: our optimizer), logs, evaluates and saves every step."""
    called, absent = set(), set()
    for name in OVERRIDES:
        original = getattr(ClassificationTrainer, name)

        def spy(self, *args, _name=name, _original=original, **kwargs):
            called.add(_name)
            if _name in ("_save_checkpoint", "log", "_finalize_training"):
                absent.update(a for a in PRIVATE_ATTRIBUTES if not hasattr(self, a))
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(ClassificationTrainer, name, spy)
    files = [write_rows(tmp_path / f"{s}.csv", sentiment_rows(12, i)) for i, s in enumerate(("train", "dev"))]
    R.main(
        [
            "--model", tiny_bert, "--train_file", files[0], "--validation_file", files[1], "--do_train", "--do_eval",
            "--output_dir", str(tmp_path / "out"), "--max_steps", "2", "--per_device_train_batch_size", "4",
            "--save_strategy", "steps", "--save_steps", "1", "--eval_strategy", "steps", "--eval_steps", "1",
            "--logging_steps", "1", "--layerwise_lr_decay", "0.9", "--disable_tqdm", "true", "--plots", "false",
        ]
    )  # fmt: skip
    assert not set(OVERRIDES) - called, f"Trainer no longer calls {sorted(set(OVERRIDES) - called)}"
    assert not absent, f"Trainer no longer has {sorted(absent)}"
