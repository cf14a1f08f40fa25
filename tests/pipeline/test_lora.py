"""LoRA through peft, end to end: train, save, reload, merge, resume and best-model loading, for an encoder (BERT)
and decoder LMs (GPT-2, Llama), all on tiny random models built offline. Every run calls run_classification.main
the way the command line does."""

import json
import os
import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import run_classification
from tests.helpers import TRAIN_FLAGS, run_main, sentiment_rows, write_rows
from textcls.errors import UserError
from textcls.model import build as M

TEXTS = ["good", "the movie was really very boring and dull", "cat dog", "not a great film but fun music"]


def _three_labels(rows):
    for row in rows:
        row["label"] = "abc"[row["id"] % 3]
    return rows


def make_files(folder, labels: int = 2) -> dict:
    os.makedirs(folder, exist_ok=True)

    def rows(n, seed):
        r = sentiment_rows(n, seed)
        return _three_labels(r) if labels == 3 else r

    return {
        "train": write_rows(os.path.join(folder, "train.csv"), rows(32, 0)),
        "dev": write_rows(os.path.join(folder, "dev.csv"), rows(12, 1)),
        "test": write_rows(os.path.join(folder, "test.csv"), rows(8, 2)),
    }


def train(model, out, files, *extra, predict=False):
    """One training run (4 steps of 8 rows), evaluated at the end; later flags override TRAIN_FLAGS."""
    argv = ["--train_file", files["train"], "--validation_file", files["dev"], "--do_train", "--do_eval"]
    argv += ["--learning_rate", "1e-2"] + (["--test_file", files["test"], "--do_predict"] if predict else [])
    return run_main(model, out, *argv, *extra)


def evaluate(model, out, files, *extra, predict=False):
    """Evaluate (and predict) from a saved folder, with no flag saying what kind of folder it is."""
    argv = ["--model_name_or_path", str(model), "--validation_file", files["dev"], "--do_eval"]
    argv += ["--output_dir", str(out), "--use_cpu", "--per_device_eval_batch_size", "8"]
    if predict:
        argv += ["--test_file", files["test"], "--do_predict"]
    return run_classification.main(argv + list(extra))


def read_json(path):
    with open(path) as f:
        return json.load(f)


def read_predictions(out):
    with open(os.path.join(out, "predictions.jsonl")) as f:
        return [json.loads(line) for line in f]


def load_trained(out):
    """The model in a run's output_dir as the user would load it: plain transformers, or base + adapter with peft."""
    from peft import PeftModel
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(out)
    base = M.adapter_base(str(out))
    if base is None:
        return AutoModelForSequenceClassification.from_pretrained(out).eval(), tokenizer
    config = AutoConfig.from_pretrained(out)
    model = AutoModelForSequenceClassification.from_pretrained(base, config=config, ignore_mismatched_sizes=True)
    return PeftModel.from_pretrained(model, out).eval(), tokenizer


@torch.no_grad()
def logits(model, tokenizer, texts):
    return model(**tokenizer(texts, padding=True, return_tensors="pt")).logits


# ---- encoder: one LoRA run of BERT with --merge_lora and --do_predict, checked from every side


@pytest.fixture(scope="module")
def bert_lora(tiny_bert, tmp_path_factory):
    root = tmp_path_factory.mktemp("bert-lora")
    files = make_files(root / "data")
    out = root / "out"
    results = train(tiny_bert, out, files, "--use_lora", "--merge_lora", predict=True)
    return {"base": tiny_bert, "out": str(out), "files": files, "results": results, "root": root}


def test_lora_output_dir_holds_adapter_with_head_and_records_trainable_params(bert_lora):
    out, results = bert_lora["out"], bert_lora["results"]
    expected_files = {"adapter_config.json", "adapter_model.safetensors", "config.json", "tokenizer.json"}
    assert expected_files <= set(os.listdir(out))
    assert not os.path.exists(os.path.join(out, "model.safetensors"))  # the adapter, not a full copy of the base
    adapter_config = read_json(os.path.join(out, "adapter_config.json"))
    assert adapter_config["base_model_name_or_path"] == bert_lora["base"]
    assert sorted(adapter_config["target_modules"]) == ["query", "value"]
    assert "classifier" in adapter_config["modules_to_save"]
    saved = load_file(os.path.join(out, "adapter_model.safetensors"))
    head = sorted(k for k in saved if "lora_" not in k)
    assert head == ["base_model.model.classifier.bias", "base_model.model.classifier.weight"]
    assert any(k.endswith("query.lora_B.weight") for k in saved)
    assert any(k.endswith("value.lora_A.weight") for k in saved)
    # The trainable parameters are exactly what the adapter file carries: LoRA matrices plus the head.
    all_results = read_json(os.path.join(out, "all_results.json"))
    for record in (results, all_results, read_json(os.path.join(out, "train_results.json"))):
        assert record["trainable_params"] == sum(t.numel() for t in saved.values())
        assert record["trainable_params_pct"] == round(100 * record["trainable_params"] / record["total_params"], 4)
    assert 0 < all_results["trainable_params_pct"] < 100
    assert read_json(os.path.join(out, "config.json"))["id2label"] == {"0": "0", "1": "1"}


def test_lora_changes_only_adapter_and_head(bert_lora):
    """merged = trained base + scale * B @ A: every weight outside the LoRA targets and the head is bit-identical to
    the base checkpoint, and the targets differ from it by exactly the saved adapter delta (so their frozen base is
    unchanged too)."""
    base = load_file(os.path.join(bert_lora["base"], "model.safetensors"))
    merged = load_file(os.path.join(bert_lora["out"], "merged", "model.safetensors"))
    adapter = load_file(os.path.join(bert_lora["out"], "adapter_model.safetensors"))
    config = read_json(os.path.join(bert_lora["out"], "adapter_config.json"))
    scale = config["lora_alpha"] / config["r"]
    assert set(merged) == set(base)
    targets = 0
    for name, weight in base.items():
        module = name.rsplit(".", 1)[0]
        if name.startswith("classifier."):
            assert torch.equal(merged[name], adapter[f"base_model.model.{name}"])
            assert not torch.equal(merged[name], weight), "the head did not train"
        elif name.endswith(("query.weight", "value.weight")):
            lora_a = adapter[f"base_model.model.{module}.lora_A.weight"]
            lora_b = adapter[f"base_model.model.{module}.lora_B.weight"]
            assert lora_b.abs().max() > 0, "LoRA B is still at its zero init: the adapter did not train"
            torch.testing.assert_close(merged[name] - weight, scale * lora_b @ lora_a, atol=1e-6, rtol=0)
            targets += 1
        else:
            assert torch.equal(merged[name], weight), f"frozen base weight {name} changed"
    assert targets == 4  # query and value of 2 layers


def test_reload_adapter_dir_reproduces_metrics_and_predictions(bert_lora, tmp_path):
    trained = bert_lora["results"]
    again = evaluate(bert_lora["out"], tmp_path / "eval", bert_lora["files"], predict=True)
    for key in ("eval_loss", "predict_loss"):
        assert again[key] == pytest.approx(trained[key], abs=1e-6)
    for key in ("eval_accuracy", "eval_macro_f1", "predict_accuracy"):
        assert again[key] == trained[key]
    assert read_predictions(tmp_path / "eval") == read_predictions(bert_lora["out"])


def test_merged_model_loads_without_peft_and_matches_adapter(bert_lora):
    from transformers import AutoModelForSequenceClassification, pipeline

    merged_dir = os.path.join(bert_lora["out"], "merged")
    assert not os.path.exists(os.path.join(merged_dir, "adapter_config.json"))
    merged = AutoModelForSequenceClassification.from_pretrained(merged_dir).eval()
    assert type(merged).__name__ == "BertForSequenceClassification"
    adapter_model, tokenizer = load_trained(bert_lora["out"])
    expected = logits(adapter_model, tokenizer, TEXTS)
    torch.testing.assert_close(logits(merged, tokenizer, TEXTS), expected, atol=1e-5, rtol=0)
    classify = pipeline("text-classification", model=merged_dir, device="cpu")
    got = classify(TEXTS)
    probs = expected.softmax(-1)
    for row, p in zip(got, probs, strict=True):
        assert row["label"] == merged.config.id2label[int(p.argmax())]
        assert row["score"] == pytest.approx(float(p.max()), abs=1e-5)


# ---- new weights outside the head, and heads of another size


@pytest.mark.parametrize("base", ["backbone", "two_label_head"])
def test_new_weights_are_saved_and_restored(base, tiny_bert, tiny_bert_backbone, tmp_path, monkeypatch):
    """3 labels on (a) a bare BertModel without pooler: head AND pooler are new; (b) a 2-label classifier: the head
    has another size. Both must be trained, saved and restored, or the reload is random. The base is named by a
    relative path, and the reload runs from another directory."""
    model = tiny_bert_backbone if base == "backbone" else tiny_bert
    files = make_files(tmp_path / "data", labels=3)
    monkeypatch.chdir(os.path.dirname(model))
    trained = train(os.path.basename(model), tmp_path / "out", files, "--use_lora", "--max_steps", "2")
    recorded = read_json(tmp_path / "out" / "adapter_config.json")["base_model_name_or_path"]
    assert os.path.isabs(recorded) and os.path.realpath(recorded) == os.path.realpath(model)
    saved = load_file(tmp_path / "out" / "adapter_model.safetensors")
    if base == "backbone":
        assert "base_model.model.bert.pooler.dense.weight" in saved
    assert saved["base_model.model.classifier.weight"].shape == (3, 32)
    monkeypatch.chdir(tmp_path)
    again = evaluate(tmp_path / "out", tmp_path / "eval", files)
    assert again["eval_loss"] == pytest.approx(trained["eval_loss"], abs=1e-6)


def test_adapter_without_the_new_weights_is_an_error(tiny_bert_backbone, tmp_path):
    from peft import LoraConfig, TaskType, get_peft_model
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    files = make_files(tmp_path / "data", labels=3)
    labels = {0: "a", 1: "b", 2: "c"}
    model = AutoModelForSequenceClassification.from_pretrained(tiny_bert_backbone, id2label=labels)
    config = LoraConfig(task_type=TaskType.SEQ_CLS, target_modules=["query"], modules_to_save=["classifier"])
    adapter = tmp_path / "adapter"
    get_peft_model(model, config).save_pretrained(adapter)  # the pooler is new but not saved
    model.config.save_pretrained(adapter)
    AutoTokenizer.from_pretrained(tiny_bert_backbone).save_pretrained(adapter)
    with pytest.raises(UserError, match="does not carry bert.pooler.dense"):
        evaluate(adapter, tmp_path / "eval", files)


# ---- targets and heads


def test_missing_lora_target_lists_existing_modules(tiny_bert, tmp_path):
    files = make_files(tmp_path / "data")
    with pytest.raises(UserError, match=r"target\(s\) q_proj do not exist") as error:
        train(tiny_bert, tmp_path / "out", files, "--use_lora", "--lora_target_modules", "query", "q_proj")
    listed = str(error.value).split("LoRA can adapt: ")[1].rstrip(".").split(", ")
    assert {"query", "key", "value", "dense", "word_embeddings"} <= set(listed)


def _tiny(config_cls, model_cls, **kwargs):
    torch.manual_seed(0)
    return model_cls(config_cls(vocab_size=64, num_hidden_layers=1, num_attention_heads=2, **kwargs))


def test_default_targets_and_heads(tiny_bert, tiny_gpt2, tiny_llama, tiny_distilbert):
    from transformers import (
        AutoModelForSequenceClassification,
        DebertaV2Config,
        DebertaV2ForSequenceClassification,
        ModernBertConfig,
        ModernBertForSequenceClassification,
        MPNetConfig,
        MPNetForSequenceClassification,
    )

    expected = {
        tiny_bert: (["query", "value"], ["classifier"]),
        tiny_gpt2: (["c_attn"], ["score"]),
        tiny_llama: (["q_proj", "v_proj"], ["score"]),
        tiny_distilbert: (["q_lin", "v_lin"], ["pre_classifier", "classifier"]),
    }
    for path, (targets, heads) in expected.items():
        model = AutoModelForSequenceClassification.from_pretrained(path)
        assert M.lora_targets(model, None) == targets, path
        assert M.head_modules(model) == heads, path
    deberta = _tiny(DebertaV2Config, DebertaV2ForSequenceClassification, hidden_size=32, intermediate_size=64)
    assert M.lora_targets(deberta, None) == ["query_proj", "value_proj"]
    assert M.head_modules(deberta) == ["pooler", "classifier"]
    # Types peft has no table entry for: the attention projections are found by name.
    mpnet = _tiny(MPNetConfig, MPNetForSequenceClassification, hidden_size=32, intermediate_size=64)
    assert M.lora_targets(mpnet, None) == ["q", "v"]
    specials = {k: 0 for k in ("pad_token_id", "bos_token_id", "eos_token_id", "cls_token_id", "sep_token_id")}
    modernbert = _tiny(
        ModernBertConfig, ModernBertForSequenceClassification, hidden_size=32, intermediate_size=64, **specials
    )
    assert M.lora_targets(modernbert, None) == ["Wqkv"]
    assert M.head_modules(modernbert) == ["head", "classifier"]
    # A target may be given by the end of its path, as peft matches it.
    bert = AutoModelForSequenceClassification.from_pretrained(tiny_bert)
    assert M.lora_targets(bert, ["self.query", "word_embeddings"]) == ["self.query", "word_embeddings"]


def test_distilbert_lora_saves_both_head_layers(tiny_distilbert):
    from peft.utils import ModulesToSaveWrapper
    from transformers import AutoModelForSequenceClassification

    from textcls.config.args import LoraArguments

    model = AutoModelForSequenceClassification.from_pretrained(tiny_distilbert)
    peft_model = M.apply_lora(model, LoraArguments(use_lora=True))
    wrapped = {n for n, m in peft_model.get_base_model().named_modules() if isinstance(m, ModulesToSaveWrapper)}
    assert wrapped == {"pre_classifier", "classifier"}
    trainable = {n.split(".")[0] for n, p in peft_model.get_base_model().named_parameters() if p.requires_grad}
    assert trainable == {"distilbert", "pre_classifier", "classifier"}  # distilbert: its LoRA matrices only


# ---- best model and resume


def test_load_best_model_and_resume_with_lora(tiny_bert, tmp_path):
    # Trained to call one positive sentence positive (whatever the batch order) and evaluated on that sentence
    # labelled negative, the model gets worse at every step: the best checkpoint is the first, not the last, so
    # loading it at the end is visible.
    data = tmp_path / "data"
    os.makedirs(data)
    rows = [{"id": i, "sentence": "good great fun movie", "label": 1} for i in range(31)]
    files = {
        "train": write_rows(data / "train.csv", [*rows, {"id": 31, "sentence": "bad awful", "label": 0}]),
        "dev": write_rows(data / "dev.csv", [{**row, "label": 0} for row in rows[:2]]),
    }
    out = tmp_path / "out"
    steps = ["--save_strategy", "steps", "--save_steps", "2", "--eval_strategy", "steps", "--eval_steps", "2"]
    steps += ["--save_total_limit", "2"]  # the best and the last (with 1, transformers keeps only the best at the end)
    best = ["--load_best_model_at_end", "--metric_for_best_model", "loss", "--learning_rate", "3e-2"]
    first = train(tiny_bert, out, files, "--use_lora", "--max_steps", "4", *steps, *best)
    state = read_json(out / "trainer_state.json")
    evals = {h["step"]: h["eval_loss"] for h in state["log_history"] if "eval_loss" in h}
    assert state["global_step"] == 4 and sorted(evals) == [2, 4] and evals[2] < evals[4]
    assert state["best_model_checkpoint"].endswith("checkpoint-2")
    assert first["eval_loss"] == pytest.approx(evals[2], abs=1e-6)  # the final evaluation is of the best model
    best_adapter = load_file(out / "checkpoint-2" / "adapter_model.safetensors")
    saved = load_file(out / "adapter_model.safetensors")
    assert saved.keys() == best_adapter.keys() and all(torch.equal(saved[k], best_adapter[k]) for k in saved)
    last_adapter = load_file(out / "checkpoint-4" / "adapter_model.safetensors")
    assert not all(torch.equal(saved[k], last_adapter[k]) for k in saved)
    # A checkpoint folder evaluates directly: its label map comes from the run's config.json.
    from_checkpoint = evaluate(out / "checkpoint-4", tmp_path / "eval4", files)
    assert from_checkpoint["eval_loss"] == pytest.approx(evals[4], abs=1e-6)

    # Killed after checkpoint-4 of a 6-step run, the same command resumes there instead of starting over.
    out6 = tmp_path / "out6"
    out6.mkdir()
    shutil.copy(out / ".textcls_run.json", out6 / ".textcls_run.json")
    shutil.copytree(out / "checkpoint-4", out6 / "checkpoint-4")
    settings = json.loads((out6 / "checkpoint-4" / "run_settings.json").read_text())
    settings["max_steps"] = 6  # what a 6-step run's checkpoint records
    (out6 / "checkpoint-4" / "run_settings.json").write_text(json.dumps(settings))
    (out6 / "checkpoint-4" / "checkpoint_manifest.json").unlink()  # rewritten by hand: judged by its files alone
    train(tiny_bert, out6, files, "--use_lora", "--max_steps", "6", *steps, *best)
    state = read_json(out6 / "trainer_state.json")
    assert state["global_step"] == 6
    logged = [h["step"] for h in state["log_history"] if "loss" in h]
    assert logged == [2, 4, 6]  # continued: steps 1-4 were not run again
    assert [h["step"] for h in state["log_history"] if "eval_loss" in h] == [2, 4, 6]
    assert os.path.isdir(out6 / "checkpoint-6")


# ---- decoder LMs: no pad token of their own, classification from the last real token


@pytest.mark.parametrize("lora", [False, True], ids=["full", "lora"])
@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_decoder_lm_classification_pads_right(arch, lora, request, tmp_path):
    base = request.getfixturevalue(f"tiny_{arch}")
    files = make_files(tmp_path / "data")
    out = tmp_path / "out"
    trained = train(base, out, files, "--max_steps", "3", *(["--use_lora"] if lora else []))
    assert os.path.exists(out / ("adapter_model.safetensors" if lora else "model.safetensors"))
    if lora:
        targets = read_json(out / "adapter_config.json")["target_modules"]
        assert sorted(targets) == (["c_attn"] if arch == "gpt2" else ["q_proj", "v_proj"])
    model, tokenizer = load_trained(out)
    # The pad token is set on the saved tokenizer AND the model config, and padding is on the right.
    assert tokenizer.pad_token is not None and tokenizer.pad_token == tokenizer.eos_token
    assert tokenizer.padding_side == "right"
    assert read_json(out / "config.json")["pad_token_id"] == tokenizer.pad_token_id
    assert model.config.pad_token_id == tokenizer.pad_token_id
    # A row alone and the same row padded in a batch get the same logits.
    batch = tokenizer(TEXTS, padding=True, return_tensors="pt")
    assert (batch["attention_mask"] == 0).any()
    alone = torch.cat([logits(model, tokenizer, [text]) for text in TEXTS])
    torch.testing.assert_close(logits(model, tokenizer, TEXTS), alone, atol=1e-5, rtol=0)
    # End to end: evaluating one row at a time (no padding) reproduces the padded evaluation of the training run.
    again = evaluate(out, tmp_path / "eval", files, "--per_device_eval_batch_size", "1")
    assert again["eval_loss"] == pytest.approx(trained["eval_loss"], abs=1e-5)
    assert again["eval_accuracy"] == trained["eval_accuracy"]
    assert np.isfinite(trained["train_loss"])


def _saved_adapter(tiny_bert, folder, num_labels: int, r: int = 4):
    """A LoRA adapter over the tiny BERT with trained-looking (non-zero) weights, saved as peft saves it."""
    from peft import LoraConfig, TaskType, get_peft_model
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(
        tiny_bert, num_labels=num_labels, ignore_mismatched_sizes=True
    )
    config = LoraConfig(
        task_type=TaskType.SEQ_CLS, r=r, target_modules=["query", "value"], modules_to_save=["classifier"]
    )
    model = get_peft_model(model, config)
    torch.manual_seed(1)
    for name, p in model.named_parameters():
        if "lora_" in name or "modules_to_save" in name:
            torch.nn.init.normal_(p)
    model.save_pretrained(folder)
    return folder


@pytest.mark.parametrize("labels", [3, 2])
def test_lora_init_from_loads_the_adapter_and_the_head_where_it_fits(tiny_bert, tmp_path, labels):
    from peft.utils import load_peft_weights

    from textcls.config.args import parse_args
    from textcls.data.labels import Labels
    from textcls.model.build import build_classifier, load_config_and_tokenizer

    mnli = _saved_adapter(tiny_bert, tmp_path / "mnli", num_labels=3)
    args = parse_args(["--model", tiny_bert, "--do_train", "--use_lora", "--lora_r", "4"])
    args.lora.lora_target_modules, args.lora.lora_init_from = ["query", "value"], str(mnli)
    config, tokenizer = load_config_and_tokenizer(args.model)
    names = ["a", "b", "c"][:labels]
    model, _ = build_classifier(args, config, tokenizer, Labels("single_label_classification", names, None))
    ours = model.state_dict()
    for key, value in load_peft_weights(str(mnli), device="cpu").items():
        module, tensor = key.rsplit(".", 1)
        if ".lora_" in key:
            assert torch.equal(ours[f"{module}.default.{tensor}"], value), key
        else:  # the head: loaded where it is the same size (3 classes), new otherwise
            here = ours[f"{module}.modules_to_save.default.{tensor}"]
            assert torch.equal(here, value) == (labels == 3), key


def test_lora_init_from_an_adapter_of_another_rank_is_refused(tiny_bert, tmp_path, capsys):
    mnli = _saved_adapter(tiny_bert, tmp_path / "mnli", num_labels=3, r=4)
    rows = [{"sentence": "good movie", "label": 1}, {"sentence": "bad film", "label": 0}] * 4
    train = write_rows(tmp_path / "t.csv", rows)
    argv = ["--model", tiny_bert, "--train_file", train, "--do_train", "--output_dir", str(tmp_path / "o")]
    argv += [*TRAIN_FLAGS, "--use_lora", "--lora_r", "8", "--lora_init_from", str(mnli)]
    assert run_classification.cli(argv) == 2
    assert "its LoRA weights do not fit this adapter" in capsys.readouterr().err
