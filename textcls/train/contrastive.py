"""--method setfit: SetFit's contrastive phase (Tunstall et al. 2022), run by the setfit library, before the ordinary
run. The sentence encoder is fine-tuned on pairs of training texts, same class pulled together and different classes
pushed apart (setfit.Trainer.train_embeddings: its pair sampler, its CosineSimilarityLoss, its defaults), and saved to
output_dir/setfit_body/. The run then trains its classifier from that encoder as from any model folder, so it writes,
evaluates, reloads, exports and resumes as every run does (`--train_layers head` keeps the encoder as SetFit leaves
it and trains the head alone, as SetFit's second phase does).

The body is written once: a folder holding its completion marker with the same settings is reused (a resumed run does
not train it again); a partial one (killed mid-phase) is trained again."""

import dataclasses
import json
import logging
import os
import shutil
from dataclasses import dataclass

import torch

from textcls.data.load import arrow_column
from textcls.errors import UserError
from textcls.io import write_json_atomic

logger = logging.getLogger(__name__)

BODY = "setfit_body"
DONE = "textcls_setfit.json"  # written last into BODY: the settings it was trained with


@dataclass(frozen=True)
class ContrastiveSettings:
    epochs: int
    learning_rate: float
    batch_size: int
    num_iterations: int | None  # pairs drawn per training text (setfit's num_iterations); None: its oversampling
    max_length: int
    seed: int


def check_setfit(method: str, columns, labels, do_train: bool) -> None:
    """What --method setfit cannot train, refused before any training."""
    if method != "setfit" or not do_train:
        return
    if columns.text_pair is not None:
        raise UserError(
            "--method setfit compares single texts; this data has text pairs (--text_pair_column). Drop --method "
            "setfit (full fine-tuning reads pairs)."
        )
    if labels.problem_type == "regression":
        raise UserError("--method setfit needs classes to pair texts by; these labels are a regression. Drop it.")
    if columns.token_ids:
        raise UserError("--method setfit reads texts; this data holds token ids. Drop --method setfit.")


def setfit_body(args, train, columns, labels, max_length: int):
    """--method setfit on a training run: the contrastive phase into output_dir/setfit_body/ (or the one a run of
    the same settings left there); returns the model arguments the run then trains from. Otherwise args.model."""
    if args.data.method != "setfit" or not args.training.do_train:
        return args.model
    data, training = args.data, args.training
    settings = ContrastiveSettings(
        data.setfit_epochs, data.setfit_learning_rate, data.setfit_batch_size, data.setfit_num_iterations,
        max_length, training.seed,
    )  # fmt: skip
    folder = os.path.join(training.output_dir, BODY)
    source = args.model.model_name_or_path
    # Process 0 goes first and writes the body; the others then find its marker and reuse it.
    with training.main_process_first(desc="setfit contrastive phase"):
        if _done_settings(folder) != {"model": source, **settings.__dict__}:
            texts = arrow_column(train, columns.text).to_pylist()
            targets = _targets(arrow_column(train, columns.label).to_pylist(), labels)
            train_body(source, texts, targets, settings, folder)
        else:
            logger.info("--method setfit: reusing the contrastive phase's encoder in %s", folder)
    return dataclasses.replace(args.model, model_name_or_path=folder, tokenizer_name=None)


def _targets(values: list, labels) -> list:
    """Labels as setfit's pair sampler takes them: a class id per text (multi-label: 0/1 per label). It only compares
    them, so ids of the raw values (names or numbers) serve."""
    if labels.problem_type == "multi_label_classification":
        known = sorted({str(x) for v in values for x in (v or [])})
        return [[int(k in {str(x) for x in (v or [])}) for k in known] for v in values]
    ids = {v: i for i, v in enumerate(sorted({str(v) for v in values}))}
    return [ids[str(v)] for v in values]


def train_body(source: str, texts: list[str], targets: list, settings: ContrastiveSettings, folder: str) -> None:
    """setfit's contrastive phase on (texts, targets) from the encoder at `source`, saved to `folder` with its
    marker last."""
    # optional: only --method setfit needs setfit (and sentence-transformers, which it brings)
    from sentence_transformers import SentenceTransformer
    from setfit import SetFitModel, Trainer, TrainingArguments

    shutil.rmtree(folder, ignore_errors=True)
    body = SentenceTransformer(source, device=None if torch.cuda.is_available() else "cpu")
    body.max_seq_length = settings.max_length
    model = SetFitModel(model_body=body)
    setfit_args = TrainingArguments(
        output_dir=os.path.join(folder + ".work"),
        batch_size=(settings.batch_size, settings.batch_size),
        num_epochs=(settings.epochs, 1),
        body_learning_rate=(settings.learning_rate, settings.learning_rate),
        num_iterations=settings.num_iterations,
        seed=settings.seed,
        max_length=settings.max_length,
        show_progress_bar=False,
        report_to="none",
        save_strategy="no",
        logging_steps=50,
    )
    trainer = Trainer(model=model, args=setfit_args)
    logger.info("--method setfit: contrastive phase on %d texts (%s)", len(texts), settings)
    trainer.train_embeddings(texts, targets, args=setfit_args)
    body.save(folder)
    shutil.rmtree(folder + ".work", ignore_errors=True)
    write_json_atomic(os.path.join(folder, DONE), {"model": source, **settings.__dict__})
    logger.info("--method setfit: the encoder is in %s; training the classifier from it", folder)


def _done_settings(folder: str) -> dict | None:
    try:
        with open(os.path.join(folder, DONE), encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None
