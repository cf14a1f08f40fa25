"""--pooling mean|max: the sentence vector an encoder's classification head reads is the masked mean (or max) of the
row's real tokens instead of its first token ([CLS]); the architecture's own head stays on top (BERT: its pooler's
dense + tanh, then the classifier; RoBERTa, ELECTRA: their classification head; DistilBERT: pre_classifier).

How: every encoder head in transformers reads position 0 of the encoder's last hidden state, so a forward hook on
the encoder writes the pooled vector there; a forward pre-hook on the base model keeps the batch's attention mask
(padded batches) or row starts (padding-free batches, textcls.model.packing), so padding never enters the mean. The
weights are the stock model's: nothing new to train beyond what the stock head has.

Saved folders: a stock config would load in transformers as the plain model and silently predict from [CLS]. So
a pooled model's config.json names its own model type (textcls-pooled-<base type>) with an auto_map to this file,
copied into the folder: transformers refuses the folder unless asked to trust it (its error says
trust_remote_code=True), and with trust_remote_code=True (`pipeline("text-classification", model=out,
trust_remote_code=True)`) it runs this code and predicts what run_classification.py predicts. run_classification.py
reads the folder without running its copy (load_pooled_config).

This file is self-contained (torch and transformers only): it is the code a saved folder ships."""

import json
import os
import shutil

import torch
from transformers import CONFIG_MAPPING

POOLINGS = ("mean", "max")
CONFIG_KEY = "textcls_pooling"  # the config attribute that says how this model pools
TYPE_PREFIX = "textcls-pooled-"
CODE_FILE = "textcls_pooling.py"
# encoder model type -> the base model's submodule whose output is the last hidden state (as textcls.model.packing)
ENCODER_MODULES = {
    "bert": "encoder",
    "roberta": "encoder",
    "xlm-roberta": "encoder",
    "camembert": "encoder",
    "electra": "encoder",
    "ernie": "encoder",
    "mpnet": "encoder",
    "deberta": "encoder",
    "deberta-v2": "encoder",
    "distilbert": "transformer",
}


class _Batch:
    """What the base model was called with: the 2-D attention mask (padded batches) or the rows' starts (packed)."""

    mask = None
    starts = None


def pool(hidden: torch.Tensor, how: str, mask=None, starts=None) -> torch.Tensor:
    """hidden (rows, length, H) padded, or (1, tokens, H) packed with `starts` (the rows' first tokens, and the end):
    the same hidden states (a new tensor) with each row's first position holding its masked mean or max over real
    tokens."""
    if starts is not None and hidden.shape[0] == 1 and hidden.shape[1] == int(starts[-1]):
        lengths = (starts[1:] - starts[:-1]).long()
        rows = torch.repeat_interleave(torch.arange(len(lengths), device=hidden.device), lengths)
        tokens = hidden[0]
        if how == "mean":
            sums = torch.zeros(len(lengths), tokens.shape[1], dtype=tokens.dtype, device=tokens.device)
            pooled = sums.index_add(0, rows, tokens) / lengths.clamp(min=1)[:, None].to(tokens.dtype)
        else:
            init = torch.full((len(lengths), tokens.shape[1]), float("-inf"), dtype=tokens.dtype, device=tokens.device)
            pooled = init.scatter_reduce(0, rows[:, None].expand(-1, tokens.shape[1]), tokens, "amax")
        out = hidden.clone()  # (pooled was computed from the original: autograd keeps it intact)
        out[0, starts[:-1].long()] = pooled
        return out
    if mask is None and starts is not None:  # packed rows laid back out (rows, longest): each row's first tokens
        lengths = (starts[1:] - starts[:-1]).long()
        mask = torch.arange(hidden.shape[1], device=hidden.device)[None, :] < lengths[:, None]
    if mask is None:
        mask = torch.ones(hidden.shape[:2], dtype=torch.bool, device=hidden.device)
    mask = mask.to(hidden.device).bool()
    if how == "mean":
        weights = mask[..., None].to(hidden.dtype)
        pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1)
    else:
        pooled = hidden.masked_fill(~mask[..., None], float("-inf")).amax(1)
    out = hidden.clone()
    out[:, 0] = pooled
    return out


def install(model, how: str) -> None:
    """Make `model` (a transformers encoder ...ForSequenceClassification) pool its head's input `how`."""
    if how not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}, not {how!r}")
    base = model.base_model
    model_type = model.config.model_type.removeprefix(TYPE_PREFIX)
    if model_type not in ENCODER_MODULES:
        raise ValueError(f"pooling {how} is for encoders ({', '.join(ENCODER_MODULES)}); this model is {model_type}")
    encoder = getattr(base, ENCODER_MODULES[model_type])
    if getattr(encoder, "_textcls_pooling", None) is not None:
        encoder._textcls_pooling = how
        return
    batch = _Batch()

    def keep_batch(module, args, kwargs):
        mask = kwargs.get("attention_mask")
        batch.mask = mask if mask is not None and mask.dim() == 2 else None
        batch.starts = kwargs.get("cu_seq_lens_q")

    def pool_output(module, args, output):
        hidden = output[0] if isinstance(output, tuple) else output.last_hidden_state
        pooled = pool(hidden, encoder._textcls_pooling, batch.mask, batch.starts)
        if isinstance(output, tuple):
            return (pooled, *output[1:])
        output.last_hidden_state = pooled
        return output

    base.register_forward_pre_hook(keep_batch, with_kwargs=True)
    encoder.register_forward_hook(pool_output)
    encoder._textcls_pooling = how
    setattr(model.config, CONFIG_KEY, how)


def mark_folder(folder: str, config) -> None:
    """A saved model folder of a pooled model: config.json gets its own model type and an auto_map to a copy of this
    file, so transformers runs it only when trusted (see the module docstring). Idempotent."""
    how = getattr(config, CONFIG_KEY, None)
    path = os.path.join(folder, "config.json")
    if how not in POOLINGS or not os.path.isfile(path):
        return
    with open(path, encoding="utf-8") as f:
        saved = json.load(f)
    base_type = saved["model_type"].removeprefix(TYPE_PREFIX)
    saved["model_type"] = TYPE_PREFIX + base_type
    module = CODE_FILE[: -len(".py")]
    saved["auto_map"] = {
        "AutoConfig": f"{module}.PooledConfig",
        "AutoModelForSequenceClassification": f"{module}.PooledModelForSequenceClassification",
    }
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        json.dump(saved, f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(path + ".tmp", path)
    code = os.path.join(folder, CODE_FILE)
    with open(__file__, encoding="utf-8") as f:
        source = f.read()
    with open(code + ".tmp", "w", encoding="utf-8") as f:
        f.write(f"BASE_TYPE = {base_type!r}  # written by run_classification.py: the model type this one pools\n")
        f.write(source)
    os.replace(code + ".tmp", code)
    shutil.copymode(__file__, code)


def load_pooled_config(folder: str):
    """The config of a folder mark_folder wrote, as its base type's config (with its pooling), read without
    running the folder's copy of this file; None for any other folder."""
    path = os.path.join(folder, "config.json")
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        saved = json.load(f)
    if not str(saved.get("model_type", "")).startswith(TYPE_PREFIX):
        return None

    saved = {k: v for k, v in saved.items() if k != "auto_map"}
    base_type = saved.pop("model_type").removeprefix(TYPE_PREFIX)
    return CONFIG_MAPPING[base_type].from_dict(saved)


# ---- what transformers runs from a saved folder, with trust_remote_code=True (BASE_TYPE is written above)
if "BASE_TYPE" in globals():
    from transformers import CONFIG_MAPPING, MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING

    _BaseConfig = CONFIG_MAPPING[BASE_TYPE]  # noqa: F821  (written at the top of the folder's copy)

    class PooledConfig(_BaseConfig):
        model_type = TYPE_PREFIX + BASE_TYPE  # noqa: F821

    class PooledModelForSequenceClassification(MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING[_BaseConfig]):
        config_class = PooledConfig

        def __init__(self, config):
            super().__init__(config)
            install(self, getattr(config, CONFIG_KEY))
