"""The evaluation a person reads: pictures of an evaluated split (confusion matrix, ROC and precision-recall curves,
reliability diagram; predicted-vs-gold for regression), the training curves, and <prefix>_report.md, the one page
to open first (headline metrics, the pictures, the per-class table, the most confident mistakes).

matplotlib draws with its Agg backend (no display). A picture that fails to draw is a warning, never a failed run:
the metrics are written before any picture is drawn."""

import dataclasses
import json
import logging
import os

import numpy as np
from sklearn.metrics import auc, average_precision_score, precision_recall_curve, roc_curve

from textcls.evaluation.metrics import ECE_BINS, confidence_and_correct, confidence_bins, labelled_probabilities
from textcls.io import write_text_atomic

logger = logging.getLogger(__name__)

PLOTS = "plots"  # the pictures' folder in output_dir
CURVES_SHOWN = (
    10  # ROC / PR curves drawn one per class up to this many classes (the most frequent); the rest summed up
)
MISTAKES = 20  # the most confident wrong predictions listed in the report
SCATTER_POINTS = 20_000  # regression: at most this many rows drawn (a seeded sample)
DPI = 110


@dataclasses.dataclass(frozen=True)
class EvaluatedSplit:
    """One evaluated split, as the report reads it."""

    name: str  # the split (validation, validation_matched...)
    prefix: str  # its metrics' prefix (eval, eval_matched)
    predictions: object  # logits, in the split's order
    gold: object  # the gold labels, in the split's order
    report: dict  # metrics.classification_report, with the probability metrics per class
    metrics: dict  # the split's metrics, as written to <prefix>_results.json
    threshold: object = 0.5  # the multi-label threshold it was scored at
    uncalibrated: object = None  # the logits before the temperature fitted on this split (--calibrate temperature)


def pyplot():
    """matplotlib's pyplot on the Agg backend (files only, no display). Imported here, when a picture is drawn: it is
    heavy, and a run with --plots false never needs it."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str) -> str:
    """Written to a temporary name and renamed: a picture is whole or absent."""
    tmp = f"{path}.tmp.png"
    fig.savefig(tmp, dpi=DPI, bbox_inches="tight")
    os.replace(tmp, path)
    return path


def _drawn(name: str, draw, *args) -> str | None:
    """One picture: its path, or None (and a warning) if drawing it failed."""
    plt = pyplot()
    try:
        return draw(*args)
    except Exception as e:  # a picture is never worth a failed run
        logger.warning("could not draw %s (%s: %s); the metrics are written all the same.", name, type(e).__name__, e)
        return None
    finally:
        plt.close("all")


def _short(name: str, width: int = 24) -> str:
    """A long class name cut in the middle: names often differ only at the end (topic_sports, topic_science)."""
    if len(name) <= width:
        return name
    head = (width - 1) // 2
    return name[:head] + "…" + name[len(name) - (width - 1 - head) :]


def confusion_matrix_plot(matrix: np.ndarray, names: list[str], path: str) -> str:
    """Counts and row-normalised (each gold class's share), side by side; class names on both axes. Cells are
    annotated up to 25 classes; the figure grows with the classes so that names stay readable at 20 and more."""
    plt = pyplot()
    matrix = np.asarray(matrix)
    n = len(names)
    side = min(max(4.5, 0.38 * n + 2), 24)
    fig, axes = plt.subplots(1, 2, figsize=(2 * side + 1.5, side), layout="constrained")
    rows = matrix.sum(axis=1, keepdims=True)
    share = np.divide(matrix, rows, out=np.zeros(matrix.shape, dtype=float), where=rows > 0)
    font = max(5, min(10, 220 / max(n, 1)))
    for ax, values, title, fmt in (
        (axes[0], matrix, "counts", "d"),
        (axes[1], share, "share of each gold class", ".2f"),
    ):
        image = ax.imshow(values, cmap="Blues", vmin=0)
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
        ax.set_title(title)
        ax.set_xlabel("predicted")
        ax.set_ylabel("gold")
        labels = [_short(x) for x in names]
        ax.set_xticks(range(n), labels, rotation=90 if n > 6 else 0, fontsize=font)
        ax.set_yticks(range(n), labels, fontsize=font)
        if n <= 25:
            top = values.max() if values.size else 0
            for i in range(n):
                for j in range(n):
                    ax.text(
                        j,
                        i,
                        format(values[i, j], fmt),
                        ha="center",
                        va="center",
                        fontsize=font,
                        color="white" if top and values[i, j] > top / 2 else "black",
                    )
    return save_figure(fig, path)


def _shown_classes(hot: np.ndarray, binary: bool) -> list[int]:
    """Binary (single-label, 2 classes): the positive class. Otherwise every class with both outcomes present, the
    most frequent first, up to CURVES_SHOWN."""
    if binary:
        return [1] if 0 < hot[:, 1].sum() < len(hot) else []
    present = [j for j in range(hot.shape[1]) if 0 < hot[:, j].sum() < len(hot)]
    return sorted(present, key=lambda j: -hot[:, j].sum())[:CURVES_SHOWN]


def curves_plot(
    kind, probs: np.ndarray, hot: np.ndarray, names: list[str], path: str, summary: str, binary: bool
) -> str:
    """ROC (kind 'roc') or precision-recall ('pr') curves, one per shown class (_shown_classes), each with its area
    in the legend; `summary` (the macro values over every class) in the title."""

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    shown = _shown_classes(hot, binary)
    for j in shown:
        if kind == "roc":
            x, y, _ = roc_curve(hot[:, j], probs[:, j])
            area = auc(x, y)
        else:
            y, x, _ = precision_recall_curve(hot[:, j], probs[:, j])
            area = average_precision_score(hot[:, j], probs[:, j])
        ax.plot(x, y, lw=1.5, label=f"{_short(names[j])} ({area:.3f})")
    if kind == "roc":
        ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="chance")
        ax.set_xlabel("false positive rate")
        ax.set_ylabel("true positive rate")
    else:
        ax.set_xlabel("recall")
        ax.set_ylabel("precision")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    rest = sum(1 for j in range(hot.shape[1]) if 0 < hot[:, j].sum() < len(hot)) - len(shown)
    more = f"; {rest} more classes not drawn" if rest > 0 and not binary else ""
    ax.set_title(f"{'ROC' if kind == 'roc' else 'precision-recall'}: {summary}{more}", fontsize=10)
    if shown or kind == "roc":
        ax.legend(fontsize=8, loc="lower right" if kind == "roc" else "lower left")
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


def reliability_plot(confidence: np.ndarray, correct: np.ndarray, ece: float, path: str, before=None) -> str:
    """Accuracy against mean confidence in ECE_BINS equal-width bins (the diagonal is perfect calibration), with
    the rows per bin below. before: (confidence, correct, ece) of the same rows before temperature scaling, drawn as
    a line over the bars."""
    plt = pyplot()
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(6, 6.5), height_ratios=[3, 1], sharex=True)
    which = confidence_bins(confidence)
    centers = (np.arange(ECE_BINS) + 0.5) / ECE_BINS
    counts = np.bincount(which, minlength=ECE_BINS)
    accuracy = np.array([correct[which == b].mean() if counts[b] else 0.0 for b in range(ECE_BINS)])
    top.bar(centers, accuracy, width=1 / ECE_BINS, edgecolor="black", alpha=0.7, label="accuracy in the bin")
    top.plot([0, 1], [0, 1], ls="--", color="grey", label="perfectly calibrated")
    title = f"reliability: expected calibration error {ece:.3f} ({ECE_BINS} bins)"
    if before is not None:
        was = confidence_bins(before[0])
        per_bin = [before[1][was == b].mean() if (was == b).any() else np.nan for b in range(ECE_BINS)]
        top.step(
            centers, per_bin, where="mid", color="tab:red", label=f"before temperature scaling (ECE {before[2]:.3f})"
        )
        title = f"reliability after temperature scaling: ECE {ece:.3f} (before: {before[2]:.3f}; {ECE_BINS} bins)"
    top.set_ylabel("accuracy")
    top.set_ylim(0, 1)
    top.set_title(title, fontsize=10)
    top.legend(fontsize=8, loc="upper left")
    bottom.bar(centers, counts, width=1 / ECE_BINS, edgecolor="black", color="grey")
    bottom.set_xlabel("confidence (probability of the predicted class)")
    bottom.set_ylabel("rows")
    bottom.set_xlim(0, 1)
    return save_figure(fig, path)


def scatter_plot(predicted: np.ndarray, gold: np.ndarray, path: str) -> str:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 5.5))
    rows = np.arange(len(gold))
    if len(rows) > SCATTER_POINTS:
        rows = np.sort(np.random.default_rng(0).choice(rows, SCATTER_POINTS, replace=False))
    ax.scatter(gold[rows], predicted[rows], s=6, alpha=0.4)
    low, high = float(min(gold.min(), predicted.min())), float(max(gold.max(), predicted.max()))
    ax.plot([low, high], [low, high], ls="--", color="grey")
    ax.set_xlabel("gold")
    ax.set_ylabel("predicted")
    ax.set_title(f"predicted vs gold ({len(rows)} of {len(gold)} rows)", fontsize=10)
    return save_figure(fig, path)


def training_curves(out: str) -> str | None:
    """loss per logging step and each evaluation's loss and metrics, from output_dir/trainer_state.json (None when
    the run did not train)."""
    path = os.path.join(out, "trainer_state.json")
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        history = json.load(f).get("log_history", [])

    def draw():
        plt = pyplot()
        train = [(h["step"], h["loss"]) for h in history if "loss" in h and "step" in h]
        evals = [h for h in history if "eval_loss" in h and "step" in h]
        if not train and not evals:
            return None
        names = sorted(
            {
                k
                for h in evals
                for k in h
                if k.startswith("eval_")
                and k != "eval_loss"
                and not k.endswith(("_runtime", "_per_second", "_samples", "_windows", "_log_loss"))
                and isinstance(h[k], (int, float))
            }
        )[:6]
        if names:
            fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")
        else:  # no evaluation during training: the loss alone
            fig, left = plt.subplots(figsize=(6, 4), layout="constrained")
            right = None
        if train:
            left.plot(*zip(*train, strict=True), label="training loss")
        if evals:
            left.plot([h["step"] for h in evals], [h["eval_loss"] for h in evals], marker="o", label="eval loss")
        left.set_xlabel("step")
        left.set_ylabel("loss")
        left.legend(fontsize=8)
        left.grid(alpha=0.3)
        for name in names:
            points = [(h["step"], h[name]) for h in evals if name in h]
            right.plot(*zip(*points, strict=True), marker="o", label=name)
        if right is not None:
            right.set_xlabel("step")
            right.set_title("evaluation metrics", fontsize=10)
            right.legend(fontsize=8)
            right.grid(alpha=0.3)
        os.makedirs(os.path.join(out, PLOTS), exist_ok=True)
        return save_figure(fig, os.path.join(out, PLOTS, "training_curves.png"))

    return _drawn("the training curves", draw)


def split_plots(out, evaluated: EvaluatedSplit, labels) -> dict:
    """The pictures of one evaluated split: {what: path}, for those that were drawn."""
    prefix, predictions, gold, metrics = evaluated.prefix, evaluated.predictions, evaluated.gold, evaluated.metrics
    report = evaluated.report
    os.makedirs(os.path.join(out, PLOTS), exist_ok=True)
    path = lambda what: os.path.join(out, PLOTS, f"{prefix}_{what}.png")  # noqa: E731
    key = lambda name: metrics.get(f"{prefix}_{name}")  # noqa: E731
    drawn = {}
    if labels.problem_type == "regression":
        values = np.asarray(predictions, dtype=float).reshape(len(gold), -1)[:, 0]
        keep = ~np.isnan(np.asarray(gold, dtype=float))
        drawn["predicted vs gold"] = _drawn(
            "the scatter plot", scatter_plot, values[keep], np.asarray(gold)[keep], path("scatter")
        )
        return {k: v for k, v in drawn.items() if v}
    probs, hot, keep = labelled_probabilities(predictions, gold, labels.problem_type)
    if "confusion_matrix" in report:
        drawn["confusion matrix"] = _drawn(
            "the confusion matrix",
            confusion_matrix_plot,
            np.array(report["confusion_matrix"]),
            labels.names,
            path("confusion_matrix"),
        )
    if len(hot):
        for kind, name, title in (
            ("roc", "roc_auc", "ROC curves"),
            ("pr", "average_precision", "precision-recall curves"),
        ):
            value = key(name)
            summary = (
                f"{'AUC' if kind == 'roc' else 'average precision'} {value:.3f}"
                if value is not None
                else "undefined on this split"
            )
            binary = labels.problem_type == "single_label_classification" and len(labels.names) == 2
            if not binary and value is not None:
                summary = "macro " + summary
            drawn[title] = _drawn(title, curves_plot, kind, probs, hot, labels.names, path(kind), summary, binary)
        confidence, correct = confidence_and_correct(probs, hot, labels.problem_type)
        before = None
        if evaluated.uncalibrated is not None:  # calibrated on this split: its ECE before, beside the one after
            raw, raw_hot, _ = labelled_probabilities(evaluated.uncalibrated, gold, labels.problem_type)
            before = (*confidence_and_correct(raw, raw_hot, labels.problem_type), key("ece") or 0.0)
        ece = key("calibrated_ece") if before else key("ece")
        drawn["reliability diagram"] = _drawn(
            "the reliability diagram", reliability_plot, confidence, correct, ece or 0.0, path("reliability"), before
        )
    return {k: v for k, v in drawn.items() if v}


def confident_mistakes(predictions, gold, labels, threshold=0.5, limit: int = MISTAKES) -> list[dict]:
    """The wrong predictions the model was surest of, surest first: {row, gold, predicted, probability} (row: the
    split's row index). Multi-label: each wrong (row, label) decision, its probability that of the decision taken.
    Regression: the largest errors."""
    if labels.problem_type == "regression":
        values = np.asarray(predictions, dtype=float).reshape(len(gold), -1)[:, 0]
        gold = np.asarray(gold, dtype=float)
        keep = np.flatnonzero(~np.isnan(gold))
        error = np.abs(values[keep] - gold[keep])
        order = keep[np.argsort(-error, kind="stable")[:limit]]
        return [
            {
                "row": int(i),
                "gold": float(gold[i]),
                "predicted": float(values[i]),
                "error": float(abs(values[i] - gold[i])),
            }
            for i in order
        ]
    probs, hot, keep = labelled_probabilities(predictions, gold, labels.problem_type)
    names = labels.names
    if labels.problem_type == "multi_label_classification":
        cuts = np.broadcast_to(np.asarray(threshold, dtype=float), (probs.shape[1],))
        decided = probs >= cuts
        wrong = np.argwhere(decided != hot.astype(bool))
        surety = np.where(decided, probs, 1 - probs)[wrong[:, 0], wrong[:, 1]]
        order = np.argsort(-surety, kind="stable")[:limit]
        return [
            {
                "row": int(keep[r]),
                "label": names[c],
                "gold": bool(hot[r, c]),
                "predicted": bool(decided[r, c]),
                "probability": float(probs[r, c]),
            }
            for r, c in wrong[order]
        ]
    predicted = probs.argmax(axis=1)
    truth = hot.argmax(axis=1)
    wrong = np.flatnonzero(predicted != truth)
    order = wrong[np.argsort(-probs[wrong, predicted[wrong]], kind="stable")[:limit]]
    return [
        {
            "row": int(keep[i]),
            "gold": names[truth[i]],
            "predicted": names[predicted[i]],
            "probability": float(probs[i, predicted[i]]),
        }
        for i in order
    ]


def _texts(rows, columns, indices: list[int]) -> dict[int, str]:
    """The texts (and pairs) of a few rows of the split, by row index; {} when the data holds token ids only."""
    if rows is None or not indices or columns.token_ids or columns.text not in rows.column_names:
        return {}
    picked = rows.select(indices)
    texts = {}
    for i, row in zip(indices, picked, strict=True):
        text = str(row[columns.text] or "")
        if columns.text_pair:
            text = f"{text} [SEP] {row[columns.text_pair] or ''}"
        texts[i] = text
    return texts


def _row(*cells) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _cell(text) -> str:
    text = str(text).replace("|", "\\|").replace("\n", " ")
    return text if len(text) <= 300 else text[:299] + "…"


def write_report(out, evaluated: EvaluatedSplit, labels, columns, rows, plots=True) -> str:
    """output_dir/<prefix>_report.md for one evaluated split (and its pictures when `plots`); rows: the split's rows,
    for the texts of its mistakes. Returns its path."""
    split, prefix, predictions, gold = evaluated.name, evaluated.prefix, evaluated.predictions, evaluated.gold
    report, metrics, threshold = evaluated.report, evaluated.metrics, evaluated.threshold
    drawn = split_plots(out, evaluated, labels) if plots else {}
    headline = {
        k[len(prefix) + 1 :]: v
        for k, v in metrics.items()
        if k.startswith(prefix + "_") and not k.endswith(("_runtime", "_per_second", "_preparation_time"))
    }
    lines = [f"# Evaluation: the {split} split", ""]
    lines += ["| metric | value |", "|---|---|"]
    lines += [f"| {k} | {v:.4f} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in headline.items()]
    for name, why in report.get("undefined", {}).items():
        lines.append(f"| {name} | not computed: {_cell(why)} |")
    lines.append("")
    if drawn:
        lines += ["## Pictures", ""]
        lines += [f"![{what}]({os.path.relpath(p, out)})" for what, p in drawn.items()]
        lines.append("")
    elif plots:
        lines += ["(no picture could be drawn: see the run's log)", ""]
    per_class = report.get("per_class", {})
    if per_class:
        extra = [k for k in ("roc_auc", "average_precision") if any(k in c for c in per_class.values())]
        lines += ["## Per class", "", _row("class", "precision", "recall", "F1", "support", *extra)]
        lines.append(_row(*["---"] * (5 + len(extra))))
        for name, c in per_class.items():
            scores = [f"{c[k]:.3f}" for k in ("precision", "recall", "f1")]
            more = [f"{c[k]:.3f}" if k in c else "–" for k in extra]
            lines.append(_row(_cell(name), *scores, c["support"], *more))
        lines.append("")
    mistakes = confident_mistakes(predictions, gold, labels, threshold)
    texts = _texts(rows, columns, sorted({m["row"] for m in mistakes}))
    text = lambda m: _cell(texts.get(m["row"], ""))  # noqa: E731
    yes = lambda value: "yes" if value else "no"  # noqa: E731
    if labels.problem_type == "regression":
        head = ["row", "text", "gold", "predicted"]
        body = [_row(m["row"], text(m), f"{m['gold']:.3f}", f"{m['predicted']:.3f}") for m in mistakes]
        title = "## Largest errors"
    elif labels.problem_type == "multi_label_classification":
        head = ["row", "text", "label", "gold", "predicted", "probability"]
        body = [
            _row(m["row"], text(m), _cell(m["label"]), yes(m["gold"]), yes(m["predicted"]), f"{m['probability']:.3f}")
            for m in mistakes
        ]
        title = f"## The {len(mistakes)} most confident mistakes"
    else:
        head = ["row", "text", "gold", "predicted", "probability"]
        body = [
            _row(m["row"], text(m), _cell(m["gold"]), _cell(m["predicted"]), f"{m['probability']:.3f}")
            for m in mistakes
        ]
        title = f"## The {len(mistakes)} most confident mistakes"
    lines += [title, "", _row(*head), _row(*["---"] * len(head)), *(body or [_row("(none)")]), ""]
    path = os.path.join(out, f"{prefix}_report.md")
    write_text_atomic(path, "\n".join(lines))
    return path
