"""The length-grouped sampler of a run that tokenizes batch by batch: each run of batches sorted by true lengths,
measured when the sampler reaches it."""

import numpy as np
import torch
from transformers.trainer_pt_utils import get_length_grouped_indices

from textcls.train.resume import SeededLengthGroupedSampler, lazily_grouped


def _rows(n=1000, seed=0):
    rng = np.random.default_rng(seed)
    exact = rng.integers(5, 120, n)
    exact[417] = 128  # one longest row, as the estimates see it too
    estimates = np.minimum(exact + rng.integers(-6, 7, n), 127)
    estimates[417] = 200
    return exact.tolist(), estimates.tolist()


def test_measured_megabatches_give_transformers_order_on_the_true_lengths():
    """Where the estimates agree with the true lengths on the longest row, the order is exactly the one transformers'
    sampler gives from the true lengths (the order up-front tokenizing trains in)."""
    exact, estimates = _rows()
    asked = []

    def measure(indices):
        asked.append(len(indices))
        return [exact[i] for i in indices]

    ours = list(lazily_grouped(estimates, 8, torch.Generator().manual_seed(3), measure))
    theirs = get_length_grouped_indices(exact, 8, generator=torch.Generator().manual_seed(3))
    assert ours == theirs
    # by the estimates alone the batches hold far more padding
    by_estimates = get_length_grouped_indices(estimates, 8, generator=torch.Generator().manual_seed(3))

    def padding(order):
        batches = [order[i : i + 8] for i in range(0, len(order), 8)]
        return sum(8 * max(exact[i] for i in b) - sum(exact[i] for i in b) for b in batches)

    assert padding(ours) < 0.5 * padding(by_estimates)
    assert sum(asked) == 1000 and max(asked) == 8 * 31  # megabatches of min(1000 // 32, 50) batches


def test_rows_are_measured_when_reached_and_once_over_epochs():
    exact, estimates = _rows()
    asked = []

    def measure(indices):
        asked.extend(indices)
        return [exact[i] for i in indices]

    epoch = [0]
    sampler = SeededLengthGroupedSampler(8, estimates, seed=3, epoch=lambda: epoch[0], measure=measure)
    order = iter(sampler)
    first = [next(order) for _ in range(8)]  # the first batch: its megabatch measured, no other
    assert len(asked) == 8 * 31 and first[0] == 417
    rest = list(order)
    assert sorted(first + rest) == list(range(1000)) and len(set(asked)) == 1000
    epoch[0] = 1
    second = list(sampler)
    assert len(asked) == 1000 and second != first + rest  # the next epoch: a new order, nothing measured again
    epoch[0] = 0
    assert list(sampler) == first + rest  # (seed, epoch) alone decide it: a resumed run sees the same batches


def test_without_a_measure_the_sampler_is_transformers_own():
    exact, _ = _rows()
    sampler = SeededLengthGroupedSampler(8, exact, seed=3, epoch=lambda: 2)
    assert list(sampler) == get_length_grouped_indices(exact, 8, generator=torch.Generator().manual_seed(5))
