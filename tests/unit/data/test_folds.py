"""Fold assignment, the --exclude_rows file formats, and the label-issue ranking through cleanlab, without a model."""

import json
from collections import Counter

import numpy as np
import pytest

from textcls.data.folds import check_folds, fold_positions, read_row_ids
from textcls.errors import UserError
from textcls.evaluation.label_issues import rank


def test_stratified_folds_are_disjoint_cover_every_row_and_keep_the_class_shares():
    labels = ["a"] * 60 + ["b"] * 30 + ["c"] * 10
    folds = fold_positions(labels, "single_label_classification", 5, seed=3)
    assert sorted(np.concatenate(folds).tolist()) == list(range(100))
    for heldout in folds:
        assert Counter(labels[i] for i in heldout) == {"a": 12, "b": 6, "c": 2}
    again = fold_positions(labels, "single_label_classification", 5, seed=3)
    assert all((a == b).all() for a, b in zip(folds, again, strict=True))  # seeded: the same command, the same folds
    other = fold_positions(labels, "single_label_classification", 5, seed=4)
    assert any((a != b).any() for a, b in zip(folds, other, strict=True))


@pytest.mark.parametrize("problem_type", ["regression", "multi_label_classification"])
def test_regression_and_multi_label_get_plain_k_fold(problem_type):
    labels = [[0, 1]] * 7 if problem_type != "regression" else [0.5] * 7
    folds = fold_positions(labels, problem_type, 3, seed=0)
    assert sorted(np.concatenate(folds).tolist()) == list(range(7)) and [len(f) for f in folds] == [3, 2, 2]


def test_check_folds_refuses_too_few_folds_rows_or_class_rows():
    with pytest.raises(UserError, match="at least 2 folds"):
        check_folds([0, 1] * 5, "single_label_classification", 1)
    with pytest.raises(UserError, match="3 rows, fewer than the folds"):
        check_folds([0, 1, 0], "regression", 4)
    with pytest.raises(UserError, match="class 'rare' has 2 training rows"):
        check_folds(["x"] * 10 + ["rare"] * 2, "single_label_classification", 3)
    check_folds(["x"] * 10 + ["rare"] * 3, "single_label_classification", 3)


@pytest.mark.parametrize(
    "text",
    [
        '[3, "a7", 9]',
        "3\na7\n\n9\n",
        '{"rank": 1, "id": 3}\n{"rank": 2, "id": "a7"}\n{"id": 9, "text": "x"}\n',
    ],
)
def test_exclude_files_in_each_format(tmp_path, text):
    path = tmp_path / "ids"
    path.write_text(text)
    assert read_row_ids(str(path)) == ["3", "a7", "9"]


def test_a_json_line_without_an_id_is_named(tmp_path):
    path = tmp_path / "ids.jsonl"
    path.write_text(json.dumps({"id": 1}) + "\n" + json.dumps({"row": 2}) + "\n")
    with pytest.raises(UserError, match='line 2: a JSON line needs an "id"'):
        read_row_ids(str(path))


def test_known_flips_are_found_and_ranked_as_cleanlab_ranks_them():
    """Synthetic out-of-fold probabilities of a good model; 10 of 200 given labels flipped: the wrapper's flagged
    rows are cleanlab's own: every one of them flipped, 7 of the 10 flips (its default filter, prune_by_noise_rate,
    is conservative), and the flipped rows have the lowest label quality."""
    from cleanlab.filter import find_label_issues

    rng = np.random.default_rng(0)
    truth = rng.integers(0, 3, 200)
    probs = rng.dirichlet([1, 1, 1], 200) * 0.3
    probs[np.arange(200), truth] += 0.7
    given = truth.copy()
    flipped = rng.choice(200, 10, replace=False)
    given[flipped] = (truth[flipped] + 1) % 3
    flagged, quality, per_class = rank(given.tolist(), probs, "single_label_classification", ["a", "b", "c"])
    expected = find_label_issues(given, probs, return_indices_ranked_by="self_confidence")
    assert flagged.tolist() == expected.tolist()
    assert set(flagged.tolist()) <= set(flipped.tolist()) and len(flagged) >= 7
    assert quality[flipped].max() < np.delete(quality, flipped).min()  # the flipped rows score lowest
    assert set(per_class) == {"a", "b", "c"} and sum(c["flagged"] for c in per_class.values()) == len(flagged)


def test_multi_label_goes_through_cleanlabs_multi_label_path():
    rng = np.random.default_rng(1)
    truth = rng.random((120, 3)) < 0.4
    probs = np.where(truth, 0.9, 0.1) + rng.normal(0, 0.03, truth.shape)
    given = [list(np.flatnonzero(t)) for t in truth]
    for i in (5, 17, 60):
        given[i] = [j for j in range(3) if j not in given[i]]  # every label of the row wrong
    flagged, quality, per_class = rank(given, np.clip(probs, 0, 1), "multi_label_classification", ["x", "y", "z"])
    assert {5, 17, 60} <= set(flagged.tolist()) and set(per_class) == {"x", "y", "z"}
