"""Post-hoc temperature scaling (Guo et al. 2017, "On Calibration of Modern Neural Networks"): one temperature T > 0
divides the logits, fitted to minimise the negative log-likelihood on the validation split. T > 1 softens
over-confident probabilities; the argmax, and so accuracy, cannot change. Multi-label: one temperature per label (each
label's sigmoid is its own binary classifier; not yet measured against one shared T), which leaves every decision at
0.5 unchanged.

Fitted with scipy's bounded scalar search on log T in [-4, 4] (T from 0.018 to 55): the likelihood is convex in 1/T
and smooth, so a bounded Brent search converges in a few dozen evaluations (milliseconds on 100k rows)."""

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_expit, logsumexp

from textcls.errors import UserError

BOUNDS = (-4.0, 4.0)  # log T


def _softmax_nll(logits: np.ndarray, gold: np.ndarray, log_t: float) -> float:
    z = logits / np.exp(log_t)
    return float(np.mean(logsumexp(z, axis=1) - z[np.arange(len(gold)), gold]))


def _sigmoid_nll(logits: np.ndarray, hot: np.ndarray, log_t: float) -> float:
    z = logits / np.exp(log_t)
    return float(-np.mean(hot * log_expit(z) + (1 - hot) * log_expit(-z)))


def fit_temperature(logits, label_ids, problem_type: str):
    """The temperature that minimises the validation split's NLL: a float (single-label), or a list with one per
    label (multi-label). Unlabelled rows (-1, -100, NaN) are left out."""
    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(label_ids, dtype=np.float64)
    if problem_type == "regression":
        raise UserError("--calibrate temperature scales class probabilities; a regression has none. Drop the flag.")
    if problem_type == "multi_label_classification":
        keep = ~(np.isnan(labels) | (labels < 0)).any(axis=1)
        logits, hot = logits[keep], (labels[keep] >= 0.5).astype(np.float64)
        if not len(hot):
            raise UserError("--calibrate temperature needs labelled validation rows; this split has none.")
        return [_fit(lambda t, j=j: _sigmoid_nll(logits[:, j], hot[:, j], t)) for j in range(logits.shape[1])]
    flat = labels.reshape(-1)
    keep = ~(np.isnan(flat) | (flat < 0))
    if not keep.any():
        raise UserError("--calibrate temperature needs labelled validation rows; this split has none.")
    gold = flat[keep].astype(int)
    return _fit(lambda t: _softmax_nll(logits[keep], gold, t))


def _fit(nll) -> float:
    found = minimize_scalar(nll, bounds=BOUNDS, method="bounded", options={"xatol": 1e-6})
    return float(np.exp(found.x))


def scale(logits, temperature):
    """The logits divided by the temperature (one, or one per label); unchanged when there is none."""
    if temperature is None:
        return logits
    return np.asarray(logits) / np.asarray(temperature, dtype=np.float64)
