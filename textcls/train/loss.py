"""The training loss of every head: cross-entropy (with Trainer's label smoothing and --class_weights), MSE for
regression, binary cross-entropy per label for multi-label; normalised over the whole optimizer step, so that gradient
accumulation and uneven micro-batches weigh every row alike (see ClassificationTrainer.__init__)."""

import torch
import torch.nn.functional as F


def classification_loss(
    logits, labels, problem_type: str, smoothing: float = 0.0, reduction: str = "mean", weights=None
):
    """The ...ForSequenceClassification heads' loss: cross-entropy (with Trainer's label smoothing), MSE for
    regression, binary cross-entropy per label for multi-label. Computed in float32, as the heads do under autocast.
    weights (--class_weights, one per class): cross-entropy's class weights, or binary cross-entropy's pos_weight."""
    logits = logits.float()
    if weights is not None:
        weights = torch.as_tensor(weights, dtype=torch.float32, device=logits.device)
    if problem_type == "regression":
        return F.mse_loss(logits.squeeze(-1), labels.float().view(-1), reduction=reduction)
    if problem_type == "multi_label_classification":
        return F.binary_cross_entropy_with_logits(logits, labels.float(), reduction=reduction, pos_weight=weights)
    labels = labels.long().view(-1)
    return F.cross_entropy(
        logits.view(labels.numel(), -1), labels, weight=weights, reduction=reduction, label_smoothing=smoothing
    )


def loss_over_step(outputs, labels, num_items_in_batch=None, *, problem_type: str, smoothing: float, weights=None):
    """Trainer's compute_loss_func. num_items_in_batch counts the label entries of the whole optimizer step (rows;
    rows x labels for multi-label), so the micro-batches' sums add up to the mean over the step. Evaluation passes
    none: the batch mean, unweighted (so that the evaluation loss of runs with and without --class_weights compare).
    Training divides the weighted sum by the rows, not by the sum of their weights as cross-entropy's own 'mean'
    does: that sum differs between micro-batches, which would weigh rows unequally under accumulation."""
    logits = outputs["logits"] if isinstance(outputs, dict) else outputs[0]
    if num_items_in_batch is None:
        return classification_loss(logits, labels, problem_type, smoothing)
    loss = classification_loss(logits, labels, problem_type, smoothing, reduction="sum", weights=weights)
    return loss / num_items_in_batch


def exact_loss(logits, labels, problem_type: str, smoothing: float = 0.0) -> float | None:
    """The loss over exactly these rows (mean), or None without labels."""
    if labels is None:
        return None
    return classification_loss(torch.as_tensor(logits), torch.as_tensor(labels), problem_type, smoothing).item()
