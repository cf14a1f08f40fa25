"""Model side: tokenizer, config with the label map, the classification model, and LoRA through peft."""

import json
import logging
import os

from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

from textcls.errors import UserError

logger = logging.getLogger(__name__)

# Architectures peft has no default LoRA targets for.
EXTRA_LORA_TARGETS = {"distilbert": ["q_lin", "v_lin"]}


def adapter_base(path: str) -> str | None:
    """The base model of a saved LoRA adapter folder, or None when `path` is not one."""
    config_file = os.path.join(path, "adapter_config.json")
    if not os.path.isfile(config_file):
        return None
    with open(config_file, encoding="utf-8") as f:
        return json.load(f)["base_model_name_or_path"]


def _load(loader, name: str, what: str, **kwargs):
    try:
        return loader(name, **kwargs)
    except OSError as e:
        if os.path.isdir(name):
            raise UserError(f"cannot load the {what} from {name}: {e}") from None
        why = "the hub is offline (HF_HUB_OFFLINE=1)" if os.environ.get("HF_HUB_OFFLINE") == "1" else "no download"
        raise UserError(
            f"cannot load the {what} '{name}': it is not a local folder and {why}. "
            "Point --model_name_or_path at a local copy (a folder with config.json and the weights), or connect and "
            "let it download once."
        ) from None


def default_label_names(config) -> bool:
    """True when a config carries transformers' placeholder labels (LABEL_0, ...) rather than a real map."""
    return all(name == f"LABEL_{i}" for i, name in sorted(config.id2label.items()))


def load_config(model_args):
    return _load(
        AutoConfig.from_pretrained,
        model_args.model_name_or_path,
        "model config",
        revision=model_args.revision,
        cache_dir=model_args.cache_dir,
        trust_remote_code=model_args.trust_remote_code,
    )


def load_tokenizer(model_args):
    tokenizer = _load(
        AutoTokenizer.from_pretrained,
        model_args.tokenizer_name or model_args.model_name_or_path,
        "tokenizer",
        revision=model_args.revision,
        cache_dir=model_args.cache_dir,
        trust_remote_code=model_args.trust_remote_code,
    )
    if tokenizer.pad_token is None:
        # Decoder LMs (GPT-2, Llama...) ship without a pad token; EOS is the usual stand-in.
        if tokenizer.eos_token is None:
            raise UserError("the tokenizer has neither a pad nor an EOS token; add a pad token to it first.")
        tokenizer.pad_token = tokenizer.eos_token
    # Right padding keeps every real token at the position it has alone; sequence-classification heads of decoder
    # LMs find the last real token from pad_token_id, so this gives the same logits padded or not.
    tokenizer.padding_side = "right"
    return tokenizer


def build_model(model_args, config, tokenizer, label_names: list[str] | None, problem_type: str):
    """Load the sequence-classification model with our label map written into its config."""
    num_labels = 1 if problem_type == "regression" else len(label_names)
    if problem_type != "regression":
        config.id2label = dict(enumerate(label_names))
        config.label2id = {name: i for i, name in enumerate(label_names)}
    else:
        config.id2label, config.label2id = {0: "LABEL_0"}, {"LABEL_0": 0}
    config.num_labels = num_labels
    config.problem_type = problem_type
    config.pad_token_id = tokenizer.pad_token_id
    kwargs = {}
    if model_args.attn_implementation:
        kwargs["attn_implementation"] = model_args.attn_implementation
    base = adapter_base(model_args.model_name_or_path)
    try:
        model = _load(
            AutoModelForSequenceClassification.from_pretrained,
            base or model_args.model_name_or_path,
            "model",
            config=config,
            revision=model_args.revision,
            cache_dir=model_args.cache_dir,
            trust_remote_code=model_args.trust_remote_code,
            ignore_mismatched_sizes=model_args.ignore_mismatched_sizes and base is None,
            **kwargs,
        )
    except RuntimeError as e:
        if "size mismatch" in str(e):
            raise UserError(
                f"the saved classification head does not match {num_labels} label(s): {e}. Pass "
                "--ignore_mismatched_sizes to start a new head, or use data with the model's labels."
            ) from None
        raise
    model.config.pad_token_id = tokenizer.pad_token_id
    return model


def head_modules(model) -> list[str]:
    """Top-level modules outside the pretrained backbone: the classification head (classifier, score, DistilBERT's
    pre_classifier, DeBERTa's pooler...). They start untrained, so LoRA must train and save them in full."""
    prefix = model.base_model_prefix
    return [
        name for name, module in model.named_children() if name != prefix and any(True for _ in module.parameters())
    ]


def lora_targets(model, requested: list[str] | None) -> list[str]:
    from peft.utils import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as DEFAULTS

    leaves = {name.rsplit(".", 1)[-1] for name, m in model.named_modules() if type(m).__name__ in ("Linear", "Conv1D")}
    if requested is None:
        model_type = model.config.model_type
        requested = DEFAULTS.get(model_type) or EXTRA_LORA_TARGETS.get(model_type)
        if requested is None:
            raise UserError(
                f"no default LoRA targets for model type '{model_type}'. Pass --lora_target_modules; the "
                f"linear layers are: {', '.join(sorted(leaves))}."
            )
        return list(requested)
    all_names = {name for name, _ in model.named_modules()}
    missing = [t for t in requested if t not in leaves and t not in all_names]
    if missing:
        raise UserError(
            f"LoRA target(s) {', '.join(missing)} do not exist in this model. Linear layers it has: "
            f"{', '.join(sorted(leaves))}."
        )
    return list(requested)


def apply_lora(model, lora_args):
    from peft import LoraConfig, TaskType, get_peft_model

    modules_to_save = lora_args.lora_modules_to_save or head_modules(model)
    missing = [
        m
        for m in modules_to_save
        if m not in dict(model.named_modules()) and not any(n.endswith("." + m) for n, _ in model.named_modules())
    ]
    if missing:
        raise UserError(
            f"--lora_modules_to_save {', '.join(missing)} not found. Top-level modules: "
            f"{', '.join(n for n, _ in model.named_children())}."
        )
    config = LoraConfig(
        task_type=TaskType.SEQ_CLS,
        r=lora_args.lora_r,
        lora_alpha=lora_args.lora_alpha,
        lora_dropout=lora_args.lora_dropout,
        target_modules=lora_targets(model, lora_args.lora_target_modules),
        modules_to_save=modules_to_save,
    )
    return get_peft_model(model, config)


def load_adapter(model, adapter_dir: str, is_trainable: bool):
    from peft import PeftModel

    return PeftModel.from_pretrained(model, adapter_dir, is_trainable=is_trainable)


def count_parameters(model) -> dict[str, float]:
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {
        "trainable_params": trainable,
        "total_params": total,
        "trainable_params_pct": round(100.0 * trainable / total, 4) if total else 0.0,
    }
