"""Padding-free batches: the rows of a batch are laid end to end, so every position-wise layer (embeddings, the
Q/K/V and output projections, the feed-forward block, layer norms, dropout: nearly all of a transformer's
arithmetic) runs on the real tokens only. Attention alone is computed on the padded (rows, longest row) layout, where
a padding mask (encoders) or the causal mask (decoders) keeps each row to itself, and the model's last hidden state is
laid back into that layout before the head.

The result is the padded model's, to rounding: the same position ids (right padding: each row starts at the
model's first position), the same attention over each row's own tokens, the same head. Only the outputs at padding
positions differ (zero here, values nobody reads there), and dropout draws fewer random numbers.

How it plugs in, without touching a model's code:
- Encoders (their heads read each row's first token): FastPaddingCollator(first_position=...) (textcls.data.load) emits
  input_ids/token_type_ids/position_ids of shape (1, tokens), plus the keys transformers passes from a model's
  forward down to its attention function: two of its flash-attention varlen keys (cu_seq_lens_q, each row's start;
  max_length_q, the longest row) and `packed_index`, each token's cell in the padded layout. A forward hook on the
  encoder lays its output back out as (rows, longest row, hidden).
- Decoder LMs (their heads find each row's last token in the padded input_ids): batches stay padded up to the base
  model; a forward pre-hook on it lays the rows end to end and adds the same keys (two host syncs: the
  right-padding check and the token count), a forward hook lays its output back out, and the head sees the padded
  batch it expects.
- PACKED_ATTENTION, registered with transformers' AttentionInterface, scatters Q/K/V into the padded layout, runs
  torch's scaled_dot_product_attention with the padding mask (encoders) or causally (decoders; with a sliding window
  where the layer has one), and gathers the real rows back. Without packing keys it is plain SDPA, so a packed model
  still runs ordinary padded batches.

Supported: models whose attention goes through AttentionInterface (ENCODERS and DECODERS below; each is checked
against its padded self in tests/pipeline/test_packing.py). Everything else trains padded.
"""

from typing import NamedTuple

import torch
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import repeat_kv, sdpa_attention_forward, use_gqa_in_sdpa
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, AttentionMaskInterface

PACKED_ATTENTION = "textcls_packed_sdpa"

# The one list of supported models: --padding_free's help and README name these (tests/pipeline/test_packing.py
# checks both).
# Encoders: model_type -> (its name for people, the base model's submodule whose output is the last hidden state,
# before pooler and head).
ENCODERS = {
    "bert": ("BERT", "encoder"),
    "roberta": ("RoBERTa", "encoder"),
    "xlm-roberta": ("XLM-R", "encoder"),
    "camembert": ("CamemBERT", "encoder"),
    "electra": ("ELECTRA", "encoder"),
    "ernie": ("ERNIE", "encoder"),
    "distilbert": ("DistilBERT", "transformer"),
}
# Decoder LMs: model_type -> its name for people. The base model itself is hooked.
DECODERS = {
    "llama": "Llama",
    "mistral": "Mistral",
    "qwen2": "Qwen2",
    "qwen3": "Qwen3",
    "gemma": "Gemma",
    "gpt2": "GPT-2",
}
SUPPORTED = {**{k: name for k, (name, _) in ENCODERS.items()}, **DECODERS}
# RoBERTa-style embeddings number positions from padding_idx + 1
OFFSET_POSITIONS = {"roberta", "xlm-roberta", "camembert"}


def supported_names() -> str:
    return ", ".join(SUPPORTED.values())


class Unsupported(NamedTuple):
    reason: str  # why this model cannot take packed batches
    fix: str | None  # a flag that would make it able to, where there is one


def unsupported_reason(model) -> Unsupported | None:
    """Why this model cannot take packed batches (and the flag that would fix it, if any), or None when it can."""
    config = model.config
    if config.model_type not in SUPPORTED:
        return Unsupported(
            f"model type '{config.model_type}' is not one of those packed batches are checked for "
            f"({', '.join(sorted(SUPPORTED))})",
            None,
        )
    if config.model_type in ENCODERS and getattr(config, "is_decoder", False):
        return Unsupported("the model is configured as a decoder (causal attention)", None)
    if config.model_type in DECODERS and config.pad_token_id is None:
        return Unsupported("the model has no pad_token_id, so its head cannot find each row's last token", None)
    implementation = config._attn_implementation
    if implementation not in ("sdpa", PACKED_ATTENTION):
        return Unsupported(
            f"attention implementation '{implementation}' (packing runs on SDPA)", "--attn_implementation sdpa"
        )
    return None


def first_position(model) -> int | None:
    """The position id of a row's first token, as the model's own embeddings number it, for the collator to lay the
    rows end to end; None for decoders, whose batches stay padded up to the base model."""
    if model.config.model_type in DECODERS:
        return None
    if model.config.model_type in OFFSET_POSITIONS:
        return model.base_model.embeddings.padding_idx + 1
    return 0


def _padding_mask(cu_seq_lens: torch.Tensor, max_length: int) -> torch.Tensor:
    """(rows, max_length): True at each row's real tokens."""
    lengths = (cu_seq_lens[1:] - cu_seq_lens[:-1]).to(torch.long)
    return torch.arange(max_length, device=cu_seq_lens.device)[None, :] < lengths[:, None]


def pad_tokens(packed: torch.Tensor, index: torch.Tensor, rows: int, max_length: int) -> torch.Tensor:
    """(tokens, ...) -> (rows, max_length, ...), zeros at padding cells; differentiable (index_copy)."""
    full = packed.new_zeros((rows * max_length, *packed.shape[1:]))
    return full.index_copy(0, index, packed).view(rows, max_length, *packed.shape[1:])


class Bucket(NamedTuple):
    """Rows of a packed batch whose attention runs together, padded to the longest of them."""

    tokens: torch.Tensor  # their tokens' places in the packed batch, row after row
    cells: torch.Tensor  # each of those tokens' cell in the (rows, longest) layout
    real: torch.Tensor  # (rows, longest): True at their tokens (the padding mask, made once a forward)
    longest: int


# Attention runs per row, but on the padded layout a batch pays rows x longest² score cells for it: in random order
# on sentence pairs (RTE: rows of 20 to 128 tokens) most of that is padding. Rows are therefore sorted by length and
# cut into at most BUCKETS groups of equal count, each padded to its own longest, where that saves at least
# BUCKET_GAIN of the cells (length-grouped batches, nearly equal already, stay one). Measured on MiniLM's shapes (1
# thread, a 32 x 12-head batch, dropout 0.1): attention forward and backward take 292 ms a layer padded to 128 and 85
# ms at 64. On the CPU only: the plan needs the lengths on the host (a device sync per forward on a GPU, where fused
# attention kernels are a different trade: not measured).
BUCKETS = 4
BUCKET_GAIN = 1.3


def attention_buckets(cu_seq_lens: torch.Tensor, max_length: int) -> list[Bucket] | None:
    """The packed batch's rows grouped for attention, or None where one padded layout is as good."""
    lengths = (cu_seq_lens[1:] - cu_seq_lens[:-1]).to(torch.long)
    rows = lengths.numel()
    ordered, order = torch.sort(lengths, descending=True, stable=True)
    sizes = ordered.tolist()

    def cells(k: int) -> int:
        size = -(-rows // k)
        return sum(len(sizes[i : i + size]) * sizes[i] ** 2 for i in range(0, rows, size))

    k = min(range(1, min(BUCKETS, rows) + 1), key=cells)
    if k == 1 or rows * max_length**2 < BUCKET_GAIN * cells(k):
        return None
    starts = cu_seq_lens[:-1].to(torch.long)
    size, buckets = -(-rows // k), []
    for i in range(0, rows, size):
        members, longest = order[i : i + size], sizes[i]
        count = lengths[members]
        # each member's tokens: start + 0..count-1; their cells: slot * longest + 0..count-1
        offsets = torch.arange(longest, device=lengths.device)[None, :]
        real = offsets < count[:, None]
        tokens = (starts[members][:, None] + offsets)[real]
        cells_ = (torch.arange(len(members), device=lengths.device)[:, None] * longest + offsets)[real]
        buckets.append(Bucket(tokens, cells_, real, longest))
    return buckets


# The signature of transformers' AttentionInterface functions (sdpa_attention_forward's), which call it by keyword.
def packed_sdpa(module, query, key, value, attention_mask, dropout=0.0, scaling=None, is_causal=None, **kwargs):
    """AttentionInterface function. query/key/value: (1, heads, tokens, head_dim) for a packed batch. Returns
    (1, tokens, heads, head_dim), the layout transformers' attention functions return."""
    index = kwargs.get("packed_index")
    if index is None:
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, is_causal=is_causal, **kwargs
        )
    causal = is_causal if is_causal is not None else getattr(module, "is_causal", False)
    window = kwargs.get("sliding_window")
    cu_seq_lens, max_length = kwargs["cu_seq_lens_q"], kwargs["max_length_q"]
    if query.device.type == "cpu":
        if not hasattr(index, "_textcls_buckets"):  # once per forward: every layer gets this same index tensor
            index._textcls_buckets = attention_buckets(cu_seq_lens, max_length)
        buckets = index._textcls_buckets
        if buckets:
            packed = [x[0].transpose(0, 1) for x in (query, key, value)]  # (tokens, heads, head_dim)
            parts = []
            for b in buckets:
                q, k, v = (pad_tokens(x.index_select(0, b.tokens), b.cells, len(b.real), b.longest) for x in packed)
                out = _attend(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), b.real, causal, window, dropout,
                              scaling)  # fmt: skip
                parts.append(out.transpose(1, 2).reshape(-1, *out.shape[1:2], out.shape[-1]).index_select(0, b.cells))
            joined, where = torch.cat(parts), torch.cat([b.tokens for b in buckets])
            return joined.new_zeros(joined.shape).index_copy(0, where, joined).unsqueeze(0), None
    rows = cu_seq_lens.numel() - 1
    q, k, v = (pad_tokens(x[0].transpose(0, 1), index, rows, max_length).transpose(1, 2) for x in (query, key, value))
    out = _attend(q, k, v, _padding_mask(cu_seq_lens, max_length), causal, window, dropout, scaling)
    out = out.transpose(1, 2).reshape(rows * max_length, *out.shape[1:2], out.shape[-1])
    return out.index_select(0, index).unsqueeze(0), None


def _attend(q, k, v, real, causal, window, dropout, scaling):
    """SDPA over (rows, heads, longest, head_dim) rows padded on the right; real: (rows, longest) their tokens."""
    max_length = q.shape[2]
    if not causal:
        # (rows, 1, 1, keys): each row's own tokens
        attn_mask = real[:, None, None, :]
    elif window is not None and window < max_length:
        position = torch.arange(max_length, device=q.device)
        distance = position[:, None] - position[None, :]  # query - key
        attn_mask = ((distance >= 0) & (distance < window))[None, None]  # transformers' sliding window
    else:
        # Causal alone keeps a row's real tokens to themselves: right padding puts padding after every real token
        attn_mask = None
    gqa = False
    if k.shape[1] != q.shape[1]:  # grouped-query attention: each key/value head serves several query heads
        # SDPA takes the grouped heads as they are where its kernels can (transformers' rule); else copies
        gqa = use_gqa_in_sdpa(attn_mask, k, v)
        if not gqa:
            k, v = repeat_kv(k, q.shape[1] // k.shape[1]), repeat_kv(v, q.shape[1] // v.shape[1])
    return torch.nn.functional.scaled_dot_product_attention(
        q,
        k,
        v,
        attn_mask=attn_mask,
        dropout_p=dropout,
        scale=scaling,
        is_causal=causal and attn_mask is None,
        enable_gqa=gqa,
    )  # (rows, heads, max_length, head_dim)


def _pack_inputs(module, args, kwargs):
    """Forward pre-hook on a decoder's base model: a right-padded batch (input_ids and a 2D attention_mask) -> the
    rows end to end, with the packing keys. Anything else (a cache, explicit positions, embeddings, left padding)
    runs as it is."""
    if len(args) > 1:  # called with more than input_ids positionally: not how the heads call it
        return None
    input_ids = args[0] if args else kwargs.get("input_ids")
    mask = kwargs.get("attention_mask")
    if (
        input_ids is None
        or mask is None
        or mask.dim() != 2
        or "packed_index" in kwargs
        or kwargs.get("position_ids") is not None
        or kwargs.get("cache") is not None
        or kwargs.get("past_key_values") is not None
    ):
        return None
    mask = mask.bool()
    rows, width = mask.shape
    lengths = mask.sum(1)
    right_padded = mask == (torch.arange(width, device=mask.device)[None, :] < lengths[:, None])
    if not bool(right_padded.all() & (lengths > 0).all()):  # one host sync (the token count below is the other)
        return None
    index = mask.reshape(-1).nonzero().squeeze(1)  # each token's cell in the (rows, width) layout
    kwargs = {k: v for k, v in kwargs.items() if k != "input_ids"}
    kwargs["input_ids"] = input_ids.reshape(-1)[index][None]
    if kwargs.get("token_type_ids") is not None:
        kwargs["token_type_ids"] = kwargs["token_type_ids"].reshape(-1)[index][None]
    kwargs["position_ids"] = (index % width)[None]
    # a prepared 4D mask, which transformers passes on instead of building one (packed attention does not read it)
    kwargs["attention_mask"] = torch.ones((1, 1, 1, 1), dtype=torch.bool, device=mask.device)
    kwargs["use_cache"] = False
    cu_seq_lens = torch.zeros(rows + 1, dtype=torch.int32, device=mask.device)
    cu_seq_lens[1:] = lengths.cumsum(0)
    kwargs.update(cu_seq_lens_q=cu_seq_lens, max_length_q=width, packed_index=index)
    return (), kwargs


def _unpack_output(module, args, kwargs, output):
    index = kwargs.get("packed_index")
    if index is None:
        return output
    hidden = output[0] if isinstance(output, tuple) else output.last_hidden_state
    rows = kwargs["cu_seq_lens_q"].numel() - 1
    full = pad_tokens(hidden[0], index, rows, kwargs["max_length_q"])
    if isinstance(output, tuple):
        return (full, *output[1:])
    output.last_hidden_state = full
    return output


def enable_packing(model) -> None:
    """Make `model` (a transformers model, not a peft wrapper) take packed batches; padded batches still work."""

    unsupported = unsupported_reason(model)
    if unsupported:
        raise ValueError(f"packed batches are not supported: {unsupported.reason}")
    AttentionInterface.register(PACKED_ATTENTION, packed_sdpa)
    # Padded batches still get SDPA's padding mask (without a registered mask function transformers passes none)
    AttentionMaskInterface.register(PACKED_ATTENTION, ALL_MASK_ATTENTION_FUNCTIONS["sdpa"])
    model.set_attn_implementation(PACKED_ATTENTION)
    model_type = model.config.model_type
    hooked = model.base_model if model_type in DECODERS else getattr(model.base_model, ENCODERS[model_type][1])
    if not getattr(hooked, "_textcls_packing_hook", False):
        if model_type in DECODERS:
            hooked.register_forward_pre_hook(_pack_inputs, with_kwargs=True)
        hooked.register_forward_hook(_unpack_output, with_kwargs=True)
        hooked._textcls_packing_hook = True


def disable_packing(model) -> None:
    """Undo enable_packing on `model` (a copy of a trained one, say): its hooks off, plain SDPA attention. The ONNX
    exporter (torch.export) cannot trace _pack_inputs, which asks the data whether a batch is right-padded."""
    for module in model.modules():
        if getattr(module, "_textcls_packing_hook", False):
            for hooks in (module._forward_pre_hooks, module._forward_hooks):
                for key in [k for k, f in hooks.items() if f in (_pack_inputs, _unpack_output)]:
                    del hooks[key]
            module._textcls_packing_hook = False
    if getattr(model.config, "_attn_implementation", None) == PACKED_ATTENTION:
        model.set_attn_implementation("sdpa")


def pack_padded(batch: dict, first_position_id: int = 0) -> dict:
    """A padded, right-padded batch (input_ids, attention_mask, ...) -> the packed batch. For tests and for callers
    holding tensors; the collator builds packed batches directly from the rows."""
    mask = batch["attention_mask"].bool()
    lengths = mask.sum(1)
    rows, width = mask.shape
    out = {k: v for k, v in batch.items() if k not in ("input_ids", "attention_mask", "token_type_ids")}
    for key in ("input_ids", "token_type_ids"):
        if key in batch:
            out[key] = batch[key][mask][None]
    positions = torch.arange(width).expand(rows, width)
    out["position_ids"] = (positions[mask] + first_position_id)[None]
    cu = torch.zeros(rows + 1, dtype=torch.int32)
    cu[1:] = lengths.cumsum(0)
    out["cu_seq_lens_q"] = cu
    longest = int(lengths.max())
    out["max_length_q"] = longest
    out["packed_index"] = (torch.arange(rows)[:, None] * longest + positions)[mask]
    return out
