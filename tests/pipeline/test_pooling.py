"""--pooling mean|max|cls|auto: the masked mean and max by hand on padded and packed rows, auto's choice, a saved
pooled folder that predicts the same here and in transformers' pipeline (trusted), and that a plain pipeline
refuses instead of predicting from [CLS]."""

import json
import shutil
from types import SimpleNamespace

import pytest
import torch

import run_classification as R
from tests.helpers import TRAIN_FLAGS
from textcls.errors import UserError
from textcls.model.build import resolve_pooling
from textcls.model.pooling import pool

# two rows of 3 and 1 real tokens, hidden size 2, padded to 3
HIDDEN = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [5.0, -6.0]], [[7.0, 8.0], [0.0, 0.0], [0.0, 0.0]]])
MASK = torch.tensor([[1, 1, 1], [1, 0, 0]])


def test_masked_mean_and_max_by_hand_padded_and_packed():
    mean = pool(HIDDEN, "mean", mask=MASK)
    assert mean[:, 0].tolist() == [[3.0, 0.0], [7.0, 8.0]]  # (1+3+5)/3, (2+4-6)/3; the second row's one token
    assert torch.equal(mean[:, 1:], HIDDEN[:, 1:])  # only position 0 changes
    top = pool(HIDDEN, "max", mask=MASK)
    assert top[:, 0].tolist() == [[5.0, 4.0], [7.0, 8.0]]  # the padding's zeros never win
    # the same rows laid end to end (1, 4 tokens), as padding-free batches hold them
    packed = torch.cat([HIDDEN[0], HIDDEN[1, :1]])[None]
    starts = torch.tensor([0, 3, 4], dtype=torch.int32)
    out = pool(packed, "mean", starts=starts)
    assert out[0, 0].tolist() == [3.0, 0.0] and out[0, 3].tolist() == [7.0, 8.0]
    assert pool(packed, "max", starts=starts)[0, 0].tolist() == [5.0, 4.0]
    # packed rows already laid back out: the mask comes from the rows' lengths
    assert pool(HIDDEN, "mean", starts=starts)[:, 0].tolist() == [[3.0, 0.0], [7.0, 8.0]]


def test_auto_reads_a_sentence_transformers_folder_and_keeps_cls_otherwise(tiny_bert, tmp_path):
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(tiny_bert)
    assert resolve_pooling(SimpleNamespace(pooling="auto", model_name_or_path=tiny_bert), config) == "cls"
    folder = tmp_path / "st"
    shutil.copytree(tiny_bert, folder)
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_mean_tokens": True}))
    assert resolve_pooling(SimpleNamespace(pooling="auto", model_name_or_path=str(folder)), config) == "mean"
    assert resolve_pooling(SimpleNamespace(pooling="cls", model_name_or_path=str(folder)), config) == "cls"
    gpt2 = SimpleNamespace(model_type="gpt2")
    assert resolve_pooling(SimpleNamespace(pooling="auto", model_name_or_path=str(folder)), gpt2) == "cls"
    with pytest.raises(UserError, match="this model is gpt2, whose head reads its last token"):
        resolve_pooling(SimpleNamespace(pooling="mean", model_name_or_path=None), gpt2)


@pytest.fixture(scope="module")
def pooled(tiny_bert, tmp_path_factory):
    from tests.helpers import sentiment_rows, write_rows

    tmp = tmp_path_factory.mktemp("pooled")
    path = write_rows(tmp / "t.csv", sentiment_rows(48, 0))
    out = tmp / "out"
    argv = ["--model", tiny_bert, "--train_file", path, "--validation_file", path, "--test_file", path]
    argv += ["--do_train", "--do_eval", "--do_predict", "--output_dir", str(out), *TRAIN_FLAGS, "--pooling", "mean"]
    return path, out, R.main([*argv, "--learning_rate", "5e-3"])


def read(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_pooled_folder_predicts_the_same_here_and_in_a_trusted_pipeline(pooled, tmp_path):
    from transformers import pipeline

    path, out, _ = pooled
    config = json.loads((out / "config.json").read_text())
    assert config["textcls_pooling"] == "mean" and config["model_type"] == "textcls-pooled-bert"
    assert "trust_remote_code=True" in (out / "README.md").read_text()  # the model card says how to load it
    again = tmp_path / "again"
    R.main(["--model", str(out), "--test_file", path, "--do_predict", "--use_cpu", "--output_dir", str(again)])
    first, second = read(out / "predictions.jsonl"), read(again / "predictions.jsonl")
    for a, b in zip(first, second, strict=True):
        assert b["probabilities"] == pytest.approx(a["probabilities"], abs=1e-5)
    pipe = pipeline("text-classification", model=str(out), trust_remote_code=True, top_k=None, device="cpu")
    scores = pipe([r["text"] for r in first[:6]])
    for row, got in zip(first, scores, strict=False):
        assert {d["label"]: d["score"] for d in got} == pytest.approx(row["probabilities"], abs=1e-5)
    # without trust, transformers refuses the folder (it would otherwise predict from [CLS], silently)
    with pytest.raises(ValueError, match="trust_remote_code=True"):
        pipeline("text-classification", model=str(out), device="cpu")


def test_the_saved_folder_asked_for_cls_predicts_otherwise(pooled, tmp_path):
    path, out, _ = pooled
    cls = tmp_path / "cls"
    argv = ["--model", str(out), "--test_file", path, "--do_predict", "--use_cpu", "--output_dir", str(cls)]
    R.main([*argv, "--pooling", "cls"])
    assert [r["probabilities"] for r in read(cls / "predictions.jsonl")] != [
        r["probabilities"] for r in read(out / "predictions.jsonl")
    ]


def test_padded_and_padding_free_batches_pool_alike(pooled, tmp_path):
    path, out, _ = pooled
    argv = ["--model", str(out), "--validation_file", path, "--do_eval", "--use_cpu", "--output_dir"]
    padded = R.main([*argv, str(tmp_path / "p"), "--padding_free", "false"])
    free = R.main([*argv, str(tmp_path / "f"), "--padding_free", "true"])
    assert free["eval_loss"] == pytest.approx(padded["eval_loss"], abs=1e-5)


def test_pooling_with_lora_is_refused(tiny_bert, tmp_path, capsys):
    from tests.helpers import sentiment_rows, write_rows

    path = write_rows(tmp_path / "t.csv", sentiment_rows(8, 0))
    argv = ["--model", tiny_bert, "--train_file", path, "--do_train", "--output_dir", str(tmp_path / "o")]
    assert R.cli([*argv, *TRAIN_FLAGS, "--pooling", "mean", "--use_lora"]) == 2
    assert "--pooling mean with LoRA is not supported yet" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
