"""--method setfit on a tiny BERT: the setfit library's contrastive phase writes output_dir/setfit_body/, the ordinary
run trains from it and writes, reloads and predicts as any run; a resumed or repeated run reuses the body; pairs and
regression are refused with one line before any training."""

import json
import os

import pytest

import run_classification as R
from tests.helpers import TRAIN_FLAGS, sentiment_rows, write_rows
from textcls.data.labels import Labels

pytest.importorskip("setfit")


def setfit_argv(model, folder, *flags, rows=None):
    train = write_rows(folder / "train.csv", rows if rows is not None else sentiment_rows(16, 0))
    dev = write_rows(folder / "dev.csv", sentiment_rows(12, 1))
    test = write_rows(folder / "test.csv", sentiment_rows(5, 2))
    argv = ["--model_name_or_path", str(model), "--output_dir", str(folder / "out"), *TRAIN_FLAGS]
    argv += ["--train_file", train, "--validation_file", dev, "--test_file", test]
    return argv + [
        "--do_train",
        "--do_eval",
        "--do_predict",
        "--method",
        "setfit",
        "--setfit_num_iterations",
        "2",
        *flags,
    ]


@pytest.fixture(scope="module")
def setfit_run(tiny_bert, tmp_path_factory):
    folder = tmp_path_factory.mktemp("setfit")
    argv = setfit_argv(tiny_bert, folder)
    return folder, argv, R.main(argv)


def test_the_contrastive_phase_moves_the_encoder_and_the_run_trains_from_it(setfit_run, tiny_bert):
    from safetensors.numpy import load_file

    folder, _, results = setfit_run
    body = folder / "out" / "setfit_body"
    marker = json.loads((body / "textcls_setfit.json").read_text())
    assert marker["model"] == str(tiny_bert) and marker["num_iterations"] == 2 and marker["seed"] == 0
    assert marker["pairs"] == 2 * 2 * 16  # setfit's count for num_iterations 2 on 16 texts
    before = load_file(os.path.join(tiny_bert, "model.safetensors"))
    after = load_file(str(body / "model.safetensors"))
    key = next(k for k in after if k.endswith("encoder.layer.0.attention.self.query.weight"))
    original = next(v for k, v in before.items() if k.endswith("encoder.layer.0.attention.self.query.weight"))
    assert abs(after[key] - original).max() > 0  # the pairs trained it
    assert "eval_accuracy" in results and (folder / "out" / "model.safetensors").is_file()
    rows = [json.loads(x) for x in (folder / "out" / "predictions.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == list(range(5))


def test_the_run_reloads_and_a_repeated_command_reuses_the_body(setfit_run):
    folder, argv, results = setfit_run
    stamp = (folder / "out" / "setfit_body" / "model.safetensors").stat().st_mtime_ns
    again = R.main(argv)  # finished: evaluates its saved model, trains nothing
    assert again["eval_accuracy"] == results["eval_accuracy"]
    assert (folder / "out" / "setfit_body" / "model.safetensors").stat().st_mtime_ns == stamp
    reloaded = R.main(["--model", str(folder / "out"), "--test_file", str(folder / "test.csv"), "--do_predict",
                       "--output_dir", str(folder / "pred")])  # fmt: skip
    assert (folder / "pred" / "predictions.jsonl").read_text() == (folder / "out" / "predictions.jsonl").read_text()
    assert "predict_samples" in reloaded


@pytest.mark.parametrize(
    "case, message",
    [("pairs", "this data has text pairs"), ("regression", "these labels are a regression")],
)
def test_pairs_and_regression_are_refused_before_training(tiny_bert, tmp_path, capsys, case, message):
    rows = sentiment_rows(16, 0)
    flags = []
    if case == "pairs":
        rows = [{**r, "sentence2": r["sentence"]} for r in rows]
        flags = ["--text_column", "sentence", "--text_pair_column", "sentence2"]
    else:
        rows = [{**r, "label": 0.25 + 0.5 * r["label"]} for r in rows]
    argv = setfit_argv(tiny_bert, tmp_path, *flags, rows=rows)
    argv = [a for a in argv if a not in ("--validation_file", "--test_file", "--do_eval", "--do_predict")]
    argv = [a for a in argv if not a.endswith(("dev.csv", "test.csv"))]
    assert R.cli(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --method setfit") and message in err and err.count("\n") == 1
    assert not (tmp_path / "out" / "setfit_body").exists()


def test_sentence_transformers_6_pooling_key_is_read(tmp_path):
    from textcls.model.build import sentence_transformers_pooling

    (tmp_path / "1_Pooling").mkdir()
    (tmp_path / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode": "mean"}))
    assert sentence_transformers_pooling(str(tmp_path)) == "mean"


@pytest.mark.parametrize("kind", ["single", "multi"])
def test_the_pair_count_is_setfits_where_small_and_bounded_where_not(kind):
    """contrastive_pairs is the length of setfit's own sampler (oversampling) on few texts, and PAIRS_PER_TEXT pairs of
    each kind per text from 79 texts on, where setfit's would grow as n² (and its memory with it)."""
    import random

    from setfit.sampler import ContrastiveDataset

    from textcls.train.contrastive import PAIRS_PER_TEXT, contrastive_pairs

    rng = random.Random(0)
    for n in (2, 7, 16, 40, 78):
        if kind == "single":
            targets = [rng.randrange(3) for _ in range(n)]
        else:
            targets = [[rng.randrange(2) for _ in range(3)] for _ in range(n)]
        library = ContrastiveDataset([str(i) for i in range(n)], targets, kind == "multi", None, "oversampling")
        assert contrastive_pairs(targets, None) == len(library), n
    assert contrastive_pairs([i % 2 for i in range(79)], None) == 2 * PAIRS_PER_TEXT * 79
    assert contrastive_pairs([i % 2 for i in range(2000)], None) == 80_000  # setfit's own: 2,002,000
    assert contrastive_pairs([0, 1, 1], 5) == 30  # --setfit_num_iterations: setfit's 2 x it x texts


def test_a_training_set_too_large_to_pair_is_refused_before_training(tiny_bert, tmp_path, capsys, monkeypatch):
    from textcls.train import contrastive

    monkeypatch.setattr(contrastive, "MAX_ROWS", 10)
    argv = setfit_argv(tiny_bert, tmp_path)  # 16 training rows
    assert R.cli(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --method setfit on 16 training rows") and "--max_train_samples 10" in err
    assert err.count("\n") == 1 and not (tmp_path / "out" / "setfit_body").exists()


def test_a_streamed_training_set_is_refused_before_training(tiny_bert, tmp_path, capsys):
    argv = setfit_argv(tiny_bert, tmp_path, "--streaming", "true", "--max_steps", "4")
    assert R.cli(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --method setfit pairs every training text") and err.count("\n") == 1


def test_a_run_killed_in_the_contrastive_phase_resumes_with_the_same_command(tiny_bert, tmp_path, monkeypatch):
    """Killed while setfit trains the encoder (its work folder half written, no checkpoint yet), the same command
    trains the body again and finishes, as the README promises; it does not ask for --overwrite_output_dir."""
    from textcls.train import contrastive

    argv = setfit_argv(tiny_bert, tmp_path)
    real = contrastive.train_body

    def killed(source, texts, targets, settings, folder, **_):
        os.makedirs(folder + ".work")
        raise KeyboardInterrupt

    monkeypatch.setattr(contrastive, "train_body", killed)
    assert R.cli(argv) == 130
    assert (tmp_path / "out" / "setfit_body.work").is_dir()
    monkeypatch.setattr(contrastive, "train_body", real)
    assert "eval_accuracy" in R.main(argv)
    assert (tmp_path / "out" / "setfit_body" / contrastive.DONE).is_file()


def test_the_bounded_pairs_are_half_same_class_spread_over_the_classes_and_the_same_each_time():
    """The pairs the phase trains on (setfit's sampler, given our bound as max_pairs, as max_steps x batch makes it):
    as many same-class as other-class pairs, the same-class ones spread over the classes, and the same pairs on every
    call (setfit shuffles with its own fixed seed: --seed changes their order in training, not which they are)."""
    from collections import Counter

    from setfit.sampler import ContrastiveDataset

    from textcls.train.contrastive import contrastive_pairs

    texts, targets = [f"t{i}" for i in range(120)], [i % 3 for i in range(120)]
    bound = contrastive_pairs(targets, None)

    def sample():
        pairs = ContrastiveDataset(texts, targets, False, None, "oversampling", max_pairs=bound)
        return [(p["sentence_1"], p["sentence_2"], p["label"]) for p in pairs]

    first = sample()
    assert len(first) == bound == 2 * 20 * 120 and sum(label for *_, label in first) == bound / 2
    same = Counter(targets[int(a[1:])] for a, b, label in first if label == 1.0)
    assert all(0.25 < n / (bound / 2) < 0.42 for n in same.values()) and len(same) == 3
    assert sample() == first


def test_a_body_whose_marker_lacks_the_pair_count_is_trained_again(tiny_bert, tmp_path, monkeypatch):
    """A body finished before the pair bound (its marker has no pair count) is not reused for a bounded one."""
    from textcls.train import contrastive

    argv = setfit_argv(tiny_bert, tmp_path)
    assert "eval_accuracy" in R.main(argv)
    done = tmp_path / "out" / "setfit_body" / contrastive.DONE
    old = json.loads(done.read_text())
    del old["pairs"]
    done.write_text(json.dumps(old))
    calls = []
    monkeypatch.setattr(contrastive, "train_body", lambda *a, **k: calls.append(a[3]))
    args = R.parse_args(argv)
    train = R.D.load_raw_datasets(args.data, args.model, None)["train"]
    columns = R.D.resolve_split_columns({"train": {"train": train}}, args.data, None, True)
    labels = Labels("single_label_classification", ["0", "1"], None)
    contrastive.setfit_body(args, train, columns, labels, old["max_length"], old["bf16"])
    assert len(calls) == 1  # trained again
    done.write_text(json.dumps({**old, "pairs": 64}))
    contrastive.setfit_body(args, train, columns, labels, old["max_length"], old["bf16"])
    assert len(calls) == 1  # the same settings and count: reused


def test_the_contrastive_phase_trains_in_the_runs_precision(setfit_run, tiny_bert, tmp_path, monkeypatch):
    """The phase runs in bf16 autocast where the run's training steps do (--bf16 true here; unset: a CPU with AMX),
    and the results and the body's marker say which."""
    import setfit
    import torch

    seen = []
    original = setfit.Trainer.train_embeddings

    def spy(self, texts, *args, **kwargs):  # the encoder's output and the embeddings the loss compares, once
        body = self.model.model_body
        linear = next(m for m in body[0].modules() if isinstance(m, torch.nn.Linear))
        inside = []
        hook = linear.register_forward_hook(lambda module, args, output: inside.append(output.dtype))
        out = body[0](dict(body.tokenize(texts[:2])))
        hook.remove()
        embedded = body.encode(texts[:2], convert_to_tensor=True)
        seen.append((torch.is_autocast_enabled("cpu"), inside[0], out["token_embeddings"].dtype, embedded.dtype))
        return original(self, texts, *args, **kwargs)

    monkeypatch.setattr(setfit.Trainer, "train_embeddings", spy)
    results = R.main(setfit_argv(tiny_bert, tmp_path, "--bf16", "true"))
    # bf16 inside the encoder only (its matrix products), fp32 out of it; the rest of the phase not autocast
    assert seen == [(False, torch.bfloat16, torch.float32, torch.float32)]
    assert results["setfit_contrastive_precision"] == "bf16"
    assert json.loads((tmp_path / "out" / "setfit_body" / "textcls_setfit.json").read_text())["bf16"] is True
    folder, _, default = setfit_run  # --bf16 unset: as the training steps were decided on this machine
    steps_bf16 = default["mixed_precision"] == "bf16_training"
    assert default["setfit_contrastive_precision"] == ("bf16" if steps_bf16 else "fp32")


def test_the_contrastive_precision_is_decided_once_and_an_old_body_was_fp32(tmp_path):
    """A fresh run follows its training steps; a resumed one does as its checkpoint's run did, and a checkpoint from
    before the choice was recorded trained its body in fp32 (as a body marker without the key did)."""
    from textcls.train import contrastive

    assert contrastive.contrastive_bf16("setfit", True, {}, resumed=False) is True
    assert contrastive.contrastive_bf16("setfit", False, {}, resumed=False) is False
    assert contrastive.contrastive_bf16("setfit", True, {"bf16": True}, resumed=True) is False  # recorded before
    assert contrastive.contrastive_bf16("setfit", False, {"setfit_bf16": True}, resumed=True) is True
    assert contrastive.contrastive_bf16("finetune", True, {}, resumed=False) is None
    (tmp_path / contrastive.DONE).write_text(json.dumps({"model": "m", "pairs": 8}))
    assert contrastive._done_settings(str(tmp_path)) == {"bf16": False, "model": "m", "pairs": 8}
