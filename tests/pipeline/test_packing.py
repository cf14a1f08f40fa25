"""Padding-free batches (textcls/model/packing.py): the packed model must give the padded model's logits, loss and
gradients for every supported architecture, the collator's packed batch must be the padded batch laid end to end,
and a run must reach the same metrics either way."""

import dataclasses
import itertools
import json
import os

import numpy as np
import pyarrow as pa
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.helpers import (
    ROOT,
    make_bert,
    make_gpt2,
    make_llama,
    run_main,
    save_tiny,
    sentiment_rows,
    write_rows,
)
from textcls.data import collate as C
from textcls.errors import UserError
from textcls.model import build as M
from textcls.model import packing as P

SIZE = dict(
    vocab_size=100,
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=37,
    max_position_embeddings=64,
)
TINY = {**SIZE, "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}
ENCODER_SIZES = {
    "bert": {},
    "roberta": {"pad_token_id": 1},
    "xlm-roberta": {"pad_token_id": 1},
    "camembert": {"pad_token_id": 1},
    "electra": {"embedding_size": 16},
    "ernie": {},
}
DECODER = {**SIZE, "num_key_value_heads": 2, "pad_token_id": 0}  # 2 key/value heads: grouped-query attention
SIZES = {
    **{k: {**TINY, **v} for k, v in ENCODER_SIZES.items()},
    "distilbert": dict(vocab_size=100, dim=32, n_layers=2, n_heads=4, hidden_dim=37, max_position_embeddings=64)
    | dict(dropout=0.0, attention_dropout=0.0, seq_classif_dropout=0.0),
    "llama": DECODER,
    "mistral": {**DECODER, "sliding_window": 4},  # shorter than most rows below: the window shows
    # one full-attention layer, one sliding-window layer: the mask follows each layer's kind
    "qwen2": {**DECODER, "use_sliding_window": True, "sliding_window": 4, "max_window_layers": 1},
    "qwen3": {**DECODER, "head_dim": 8},
    "gemma": {**DECODER, "head_dim": 8, "num_key_value_heads": 1},
    "gpt2": dict(vocab_size=100, n_embd=32, n_layer=2, n_head=4, n_positions=64, pad_token_id=0)
    | dict(resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0),
}
ARCHITECTURES = sorted(SIZES)


def tiny_model(model_type, num_labels=3):
    from transformers import AutoConfig, AutoModelForSequenceClassification

    config = AutoConfig.for_model(model_type, num_labels=num_labels, **SIZES[model_type])
    torch.manual_seed(0)
    return AutoModelForSequenceClassification.from_config(config, attn_implementation="sdpa")


def padded_batch(model, lengths, seed=0):
    g = torch.Generator().manual_seed(seed)
    rows, width = len(lengths), max(lengths)
    ids = torch.randint(3, 100, (rows, width), generator=g)
    mask = (torch.arange(width)[None] < torch.tensor(lengths)[:, None]).long()
    ids[mask == 0] = model.config.pad_token_id or 0  # decoders' heads find each row's last token by it
    batch = {"input_ids": ids, "attention_mask": mask, "labels": torch.randint(0, 3, (rows,), generator=g)}
    if model.config.model_type in ("bert", "electra", "ernie"):
        batch["token_type_ids"] = (torch.arange(width)[None] >= 3).long() * mask  # a sentence pair
    return batch


def forward_backward(model, batch):
    model.zero_grad()
    out = model(**batch)
    out.loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return out.logits.detach(), out.loss.detach(), grads


def test_supported_list_is_tested_and_documented():
    """One list (packing.SUPPORTED): every architecture on it is checked below, and --padding_free's help and the
    README name exactly these."""
    from textcls.config.args import DataArguments

    assert set(ARCHITECTURES) == set(P.SUPPORTED)
    names = P.supported_names()
    assert names.count(",") == len(P.SUPPORTED) - 1
    help_text = next(f.metadata["help"] for f in dataclasses.fields(DataArguments) if f.name == "padding_free")
    assert f"({names}, with SDPA attention)" in help_text
    with open(os.path.join(ROOT, "README.md")) as f:
        readme_row = next(line for line in f if line.startswith("| `--padding_free"))
    assert f"({names}, with SDPA attention)" in readme_row


@pytest.mark.parametrize("layout", ["buckets", "one_layout", "one_length"])
@pytest.mark.parametrize("model_type", ARCHITECTURES)
def test_packed_model_equals_padded(model_type, layout, monkeypatch):
    # lengths 9, 9, 7, 5, 3, 2: attention in 3 buckets (278 score cells a head instead of 6 x 9² = 486), or in one;
    # one_length: rows of 6 tokens each, no padding anywhere (attention on the packed tokens as they are, no mask)
    monkeypatch.setattr(P, "BUCKET_GAIN", 1.3 if layout == "buckets" else float("inf"))
    lengths = [6] * 6 if layout == "one_length" else [5, 9, 3, 9, 2, 7]
    cu_seq_lens = torch.tensor([0, *itertools.accumulate(lengths)], dtype=torch.int32)
    plan = P.attention_buckets(cu_seq_lens, max(lengths))
    assert [b.longest for b in plan or []] == ([9, 7, 3] if layout == "buckets" else [])
    model = tiny_model(model_type)
    batch = padded_batch(model, lengths)
    logits, loss, grads = forward_backward(model, batch)
    first = M.setup_padding_free(model, "true", pad_to_max_length=False)
    assert model.config._attn_implementation == P.PACKED_ATTENTION
    embedded = []  # what the layers run on: the 35 real tokens, end to end
    model.get_input_embeddings().register_forward_hook(lambda module, args, out: embedded.append(tuple(out.shape[:2])))
    if model_type in P.DECODERS:
        assert first is None  # the batch stays padded up to the base model, which packs it itself
        packed = batch
    else:
        packed = P.pack_padded(batch, first)
        assert packed["input_ids"].shape == (1, sum(lengths))
    p_logits, p_loss, p_grads = forward_backward(model, packed)
    assert embedded == [(1, sum(lengths))]
    torch.testing.assert_close(p_logits, logits, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(p_loss, loss, rtol=1e-5, atol=1e-6)
    assert p_grads.keys() == grads.keys()
    for name in grads:
        torch.testing.assert_close(p_grads[name], grads[name], rtol=1e-4, atol=1e-6, msg=name)
    if model_type in P.ENCODERS:  # the packed model still takes padded batches, unchanged
        torch.testing.assert_close(forward_backward(model, batch)[0], logits, rtol=0, atol=0)


def test_packed_decoder_runs_other_batches_as_they_are():
    """A left-padded batch, or explicit position ids, cannot be laid end to end by the pre-hook: it runs padded,
    with the unpacked model's results."""
    model = tiny_model("llama").eval()
    batch = padded_batch(model, [5, 9, 3])
    left = {k: v for k, v in batch.items() if k != "labels"}
    lengths = batch["attention_mask"].sum(1)
    for key in ("input_ids", "attention_mask"):
        left[key] = torch.stack([row.roll(int(row.numel() - n)) for row, n in zip(batch[key], lengths, strict=True)])
    positions = (left["attention_mask"].cumsum(1) - 1).clamp(min=0)
    expected = [model(**left).logits, model(**batch, position_ids=positions).logits]
    M.setup_padding_free(model, "true", False)
    embedded = []
    model.get_input_embeddings().register_forward_hook(lambda module, args, out: embedded.append(tuple(out.shape[:2])))
    torch.testing.assert_close(model(**left).logits, expected[0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(model(**batch, position_ids=positions).logits, expected[1], rtol=1e-5, atol=1e-6)
    assert embedded == [(3, 9), (3, 9)]  # neither was laid end to end


def test_packed_positions_matter():
    """A shift of every position id changes the logits: the equality above is not blind to positions."""
    for model_type in ("bert", "roberta"):
        model = tiny_model(model_type).eval()
        batch = padded_batch(model, [4, 8, 6])
        first = M.setup_padding_free(model, "true", False)
        packed = P.pack_padded(batch, first)
        same = model(**packed).logits
        packed["position_ids"] = packed["position_ids"] + 1
        assert not torch.allclose(model(**packed).logits, same, atol=1e-4)


@pytest.mark.parametrize("model_type,targets", [("bert", ["query", "value"]), ("llama", ["q_proj", "v_proj"])])
def test_packed_lora_equals_padded(model_type, targets):
    from peft import LoraConfig, TaskType, get_peft_model

    model = tiny_model(model_type)
    config = LoraConfig(task_type=TaskType.SEQ_CLS, r=4, target_modules=targets, lora_dropout=0.0)
    model = get_peft_model(model, config)
    for name, p in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.1)  # B starts at zero: make the adapters change the output
    batch = padded_batch(model.get_base_model(), [6, 2, 8])
    logits, loss, grads = forward_backward(model, batch)
    first = M.setup_padding_free(model, "auto", False)
    assert model.get_base_model().config._attn_implementation == P.PACKED_ATTENTION
    p_logits, p_loss, p_grads = forward_backward(model, batch if first is None else P.pack_padded(batch, first))
    torch.testing.assert_close(p_logits, logits, rtol=1e-5, atol=1e-6)
    assert any("lora_A" in n for n in grads) and p_grads.keys() == grads.keys()
    for name in grads:
        torch.testing.assert_close(p_grads[name], grads[name], rtol=1e-4, atol=1e-6, msg=name)


# ------------------------------------------------------------------------------------------------ when it applies


def test_auto_leaves_unsupported_models_padded(tmp_path):
    from transformers import AutoModelForSequenceClassification

    deberta = AutoModelForSequenceClassification.from_pretrained(make_deberta(tmp_path))
    assert M.setup_padding_free(deberta, "auto", False) is None
    assert deberta.config._attn_implementation != P.PACKED_ATTENTION
    with pytest.raises(UserError, match="model type 'deberta-v2'.*--padding_free auto"):
        M.setup_padding_free(deberta, "true", False)
    llama = tiny_model("llama")
    llama.config.pad_token_id = None  # its head could not find the rows' last tokens
    assert M.setup_padding_free(llama, "auto", False) is None
    assert llama.config._attn_implementation != P.PACKED_ATTENTION


def test_eager_attention_and_pad_to_max_length():
    model = tiny_model("bert")
    model.set_attn_implementation("eager")
    assert M.setup_padding_free(model, "auto", False) is None
    with pytest.raises(UserError, match="attention implementation 'eager'.*--attn_implementation sdpa"):
        M.setup_padding_free(model, "true", False)
    model = tiny_model("bert")
    assert M.setup_padding_free(model, "auto", pad_to_max_length=True) is None
    assert M.setup_padding_free(model, "false", False) is None
    assert model.config._attn_implementation == "sdpa"
    with pytest.raises(UserError, match="opposite"):
        M.setup_padding_free(model, "true", pad_to_max_length=True)


# ------------------------------------------------------------------------------------------------ collator


@settings(max_examples=40, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 12), min_size=1, max_size=9),
    pairs=st.booleans(),
    first=st.sampled_from([0, 2]),
    as_table=st.booleans(),
)
def test_packing_collator_is_the_padded_batch_end_to_end(tiny_bert, lengths, pairs, first, as_table):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    rng = np.random.default_rng(len(lengths))
    rows = []
    for i, n in enumerate(lengths):
        row = {"input_ids": rng.integers(5, 40, n).tolist(), "attention_mask": [1] * n, "labels": i % 3}
        if pairs:
            row["token_type_ids"] = [0] * (n // 2) + [1] * (n - n // 2)
        rows.append(row)
    padded = C.FastPaddingCollator(tokenizer)(rows)
    features = pa.Table.from_pylist(rows) if as_table else rows
    packed = C.FastPaddingCollator(tokenizer, first_position=first)(features)
    expected = P.pack_padded(padded, first)
    assert list(packed)[0] == "labels"  # Trainer takes the batch size from the first tensor
    assert packed.keys() == expected.keys()
    for key, value in expected.items():
        if isinstance(value, torch.Tensor):
            assert packed[key].dtype == value.dtype, key
            assert torch.equal(packed[key], value), key
        else:
            assert packed[key] == value, key


def test_packing_collator_pads_rows_without_tokens(tiny_bert):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    rows = [{"input_ids": [5, 6], "attention_mask": [1, 1]}, {"input_ids": [], "attention_mask": []}]
    batch = C.FastPaddingCollator(tokenizer, first_position=0)(rows)
    assert batch["input_ids"].shape == (2, 2) and "packed_index" not in batch


# ------------------------------------------------------------------------------------------------ end to end


run = run_main


RUN_MODELS = {  # a maker of a saved tiny model, and the config overrides that turn its dropout off
    "bert": (make_bert, "hidden_dropout_prob=0,attention_probs_dropout_prob=0"),
    "llama": (make_llama, "attention_dropout=0"),
    "gpt2": (make_gpt2, "resid_pdrop=0,embd_pdrop=0,attn_pdrop=0"),
}


@pytest.mark.parametrize("model_type", sorted(RUN_MODELS))
def test_run_is_the_same_packed_or_padded(model_type, tmp_path, capfd):
    """Dropout off and sequential batches: the two runs compute the same thing, so they must agree to rounding."""
    make, no_dropout = RUN_MODELS[model_type]
    model = make(tmp_path / model_type)
    rows = write_rows(tmp_path / "rows.csv", sentiment_rows(48, 3))
    flags = [
        "--train_file",
        rows,
        "--validation_file",
        rows,
        "--test_file",
        rows,
        "--do_train",
        "--do_eval",
        "--do_predict",
        "--train_sampling_strategy",
        "sequential",
        "--config_overrides",
        no_dropout,
        "--bf16",
        "false",  # fp32: bf16 training (the default on a CPU with AMX) rounds each layout differently
    ]
    packed = run(model, tmp_path / "packed", *flags)
    assert "padding-free batches" in capfd.readouterr().out
    padded = run(model, tmp_path / "padded", *flags, "--padding_free", "false")
    for key in ("train_loss", "eval_loss", "eval_accuracy"):
        assert packed[key] == pytest.approx(padded[key], rel=1e-4, abs=1e-6), key
    with open(tmp_path / "packed" / "predictions.jsonl") as a, open(tmp_path / "padded" / "predictions.jsonl") as b:
        rows_a, rows_b = [json.loads(x) for x in a], [json.loads(x) for x in b]
    assert [r["id"] for r in rows_a] == [r["id"] for r in rows_b] and len(rows_a) == 48
    for ra, rb in zip(rows_a, rows_b, strict=True):
        assert ra["probabilities"] == pytest.approx(rb["probabilities"], abs=2e-6)
    with open(os.path.join(tmp_path, "packed", "config.json")) as f:
        assert "textcls" not in f.read()  # the saved model loads anywhere, with plain SDPA


def make_deberta(path):
    """A tiny DeBERTa-v2 (its attention does not go through transformers' AttentionInterface), BERT's tokenizer."""
    from transformers import AutoTokenizer, DebertaV2Config, DebertaV2ForSequenceClassification

    tokenizer = AutoTokenizer.from_pretrained(make_bert(path / "bert"))
    config = DebertaV2Config(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=37,
        max_position_embeddings=64,
    )
    return save_tiny(DebertaV2ForSequenceClassification, config, tokenizer, path / "deberta")


def test_padding_free_true_on_unsupported_model_exits_with_the_fix(tmp_path):
    model = make_deberta(tmp_path)
    rows = write_rows(tmp_path / "rows.csv", sentiment_rows(16, 3))
    with pytest.raises(UserError, match="--padding_free true: model type 'deberta-v2'"):
        run(model, tmp_path / "out", "--train_file", rows, "--do_train", "--padding_free", "true")
    assert not os.path.exists(tmp_path / "out" / "recipe.json")
