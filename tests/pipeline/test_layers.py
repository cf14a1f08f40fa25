"""--train_layers (head-only and partial fine-tuning) and --layerwise_lr_decay: which weights train, that frozen
ones stay bit-identical and get no optimizer state, and the learning rate of each parameter group."""

import os

import pytest
import torch
from safetensors.torch import load_file

import run_classification as R
from tests.helpers import TRAIN_FLAGS, run_main
from textcls.model.build import parameter_depths
from textcls.train import trainer as T


@pytest.fixture
def optimizers(monkeypatch):
    """Every optimizer the runs build, with each parameter's name."""
    built = []
    original = T.ClassificationTrainer.create_optimizer

    def spy(self, model=None):
        optimizer = original(self, model)
        names = {id(p): n for n, p in self.model.named_parameters()}
        built.append([(g["lr"], [names[id(p)] for p in g["params"]]) for g in optimizer.param_groups])
        return optimizer

    monkeypatch.setattr(T.ClassificationTrainer, "create_optimizer", spy)
    return built


def train(tiny_bert, sentiment_files, out, *flags):
    return run_main(tiny_bert, out, "--train_file", sentiment_files["train"], "--do_train", *flags)


def test_depths_put_embeddings_lowest_and_the_head_on_top(tiny_bert):
    from transformers import AutoModelForSequenceClassification

    depths = parameter_depths(AutoModelForSequenceClassification.from_pretrained(tiny_bert))
    assert depths["bert.embeddings.word_embeddings.weight"] == 0
    assert depths["bert.encoder.layer.0.attention.self.query.weight"] == 1
    assert depths["bert.encoder.layer.1.output.dense.bias"] == 2
    assert depths["bert.pooler.dense.weight"] == depths["classifier.weight"] == 3


@pytest.mark.parametrize(
    "spec, trained",
    [("head", ("bert.pooler.", "classifier.")), ("top:1", ("bert.pooler.", "classifier.", "bert.encoder.layer.1."))],
)
def test_frozen_weights_stay_bit_identical_and_get_no_optimizer_state(
    tiny_bert, sentiment_files, tmp_path, optimizers, spec, trained
):
    results = train(tiny_bert, sentiment_files, tmp_path / "o", "--train_layers", spec)
    before = load_file(os.path.join(tiny_bert, "model.safetensors"))
    after = load_file(str(tmp_path / "o" / "model.safetensors"))
    for name, value in before.items():
        if name.startswith(trained):
            assert not torch.equal(after[name], value), f"{name} should have trained"
        else:
            assert torch.equal(after[name], value), f"{name} should be frozen"
    optimized = {n for _, names in optimizers[-1] for n in names}
    assert optimized and all(n.startswith(trained) for n in optimized)
    assert results["trainable_params"] == sum(before[n].numel() for n in before if n.startswith(trained))


def test_layerwise_lr_decay_gives_each_depth_its_rate(tiny_bert, sentiment_files, tmp_path, optimizers):
    train(tiny_bert, sentiment_files, tmp_path / "o", "--layerwise_lr_decay", "0.5", "--learning_rate", "1e-3")
    groups = optimizers[-1]
    depth = {
        "bert.embeddings.": 0,
        "bert.encoder.layer.0.": 1,
        "bert.encoder.layer.1.": 2,
        "bert.pooler.": 3,
        "classifier.": 3,
    }
    seen = []
    for lr, names in groups:
        for name in names:
            d = next(v for k, v in depth.items() if name.startswith(k))
            assert lr == pytest.approx(1e-3 * 0.5 ** (3 - d)), name
            seen.append(name)
    assert len(seen) == len(set(seen)) == len(load_file(os.path.join(tiny_bert, "model.safetensors")))


@pytest.mark.parametrize(
    "flags, error",
    [
        (["--train_layers", "bottom"], "pass 'all', 'head', or 'top:N'"),
        (["--train_layers", "top:3"], "this model has 2 transformer layers. Pass top:2 or less"),
        (["--train_layers", "head", "--use_lora"], "LoRA already freezes every base weight"),
        (["--layerwise_lr_decay", "1.5"], "pass a factor above 0 and at most 1"),
    ],
)
def test_bad_layer_flags_are_one_clear_error(tiny_bert, sentiment_files, tmp_path, capsys, flags, error):
    argv = ["--model", tiny_bert, "--train_file", sentiment_files["train"], "--do_train"]
    assert R.cli([*argv, "--output_dir", str(tmp_path / "o"), *TRAIN_FLAGS, *flags]) == 2
    assert error in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
