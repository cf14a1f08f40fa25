"""Temperature scaling (textcls.evaluation.calibration) recovers a known temperature and never changes a decision."""

import numpy as np
import pytest
from scipy.special import expit, softmax

from textcls.errors import UserError
from textcls.evaluation.calibration import fit_temperature, scale


def test_a_known_temperature_is_recovered_from_single_label_logits():
    rng = np.random.default_rng(0)
    true_logits = rng.normal(0, 2, size=(20000, 3))
    gold = np.array([rng.choice(3, p=p) for p in softmax(true_logits, axis=1)])
    overconfident = true_logits * 2.5  # what a model trained too long reports: the same ranking, sharper
    t = fit_temperature(overconfident, gold, "single_label_classification")
    assert t == pytest.approx(2.5, rel=0.05)
    assert (scale(overconfident, t).argmax(axis=1) == overconfident.argmax(axis=1)).all()


def test_each_labels_temperature_is_recovered_for_multi_label():
    rng = np.random.default_rng(1)
    true_logits = rng.normal(0, 2, size=(20000, 2))
    hot = (rng.random((20000, 2)) < expit(true_logits)).astype(float)
    reported = true_logits * np.array([0.5, 3.0])  # one label under-confident, one over-confident
    t = fit_temperature(reported, hot, "multi_label_classification")
    assert t == pytest.approx([0.5, 3.0], rel=0.05)
    assert ((scale(reported, t) > 0) == (reported > 0)).all()  # every decision at 0.5 is the same


def test_unlabelled_rows_are_left_out_and_regression_is_refused():
    logits = np.array([[2.0, -2.0], [-1.0, 1.0], [3.0, 0.0]])
    with_unlabelled = fit_temperature(logits, np.array([0, 1, -100]), "single_label_classification")
    assert with_unlabelled == pytest.approx(
        fit_temperature(logits[:2], np.array([0, 1]), "single_label_classification")
    )
    with pytest.raises(UserError, match="regression"):
        fit_temperature(np.zeros((2, 1)), np.zeros(2), "regression")
