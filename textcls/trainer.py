"""Trainer with two fixes for classification.

1. Length-grouped training batches read the lengths computed at tokenization. Stock Trainer drops the 'length'
   column before building the sampler and then re-measures every row, which costs seconds per 10k rows.
2. Evaluation and prediction always run in dataset order. Stock Trainer uses a length-grouped (shuffled) sampler
   for evaluation too when train_sampling_strategy='group_by_length', so trainer.predict() returns rows in a
   permuted order that no longer lines up with the data. We get the padding savings instead by sorting the eval
   set by length ourselves (sort_by_length) and un-sorting the predictions (unsort)."""

import numpy as np
from torch.utils.data import SequentialSampler
from transformers import Trainer
from transformers.trainer_pt_utils import LengthGroupedSampler


class ClassificationTrainer(Trainer):
    def __init__(self, *args, train_lengths=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.train_lengths = train_lengths

    def _get_train_sampler(self, train_dataset=None):
        if self.args.train_sampling_strategy == "group_by_length" and self.train_lengths is not None:
            return LengthGroupedSampler(
                self.args.train_batch_size * self.args.gradient_accumulation_steps, lengths=self.train_lengths
            )
        return super()._get_train_sampler(train_dataset)

    def _get_eval_sampler(self, eval_dataset):
        if self.args.world_size <= 1:
            return SequentialSampler(eval_dataset)
        return None  # accelerate shards in order and gather_for_metrics restores it


def sort_by_length(ds):
    """Sort a tokenized split by length (stable), returning (sorted split, order) with sorted[i] = ds[order[i]]."""
    order = np.argsort(np.asarray(ds["length"]), kind="stable")
    return ds.select(order), order


def unsort(values: np.ndarray, order: np.ndarray) -> np.ndarray:
    out = np.empty_like(values)
    out[order] = values
    return out
