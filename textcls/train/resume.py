"""Interruptions and exact resumes: SIGTERM or Ctrl-C saves a checkpoint at a step boundary (GracefulStop), the running
training loss is carried across a resume (RestoreLoss), and the length-grouped shuffle depends on (seed, epoch) only
(SeededLengthGroupedSampler), so that a run killed at any point and started again ends bit-identical to one never
interrupted (on CPU)."""

import json
import logging
import os
import signal
import threading

import numpy as np
import torch
from transformers import TrainerCallback
from transformers.trainer_pt_utils import LengthGroupedSampler

logger = logging.getLogger(__name__)


class RestoreLoss(TrainerCallback):
    """On resume, puts back the running loss that ClassificationTrainer saved in the checkpoint. It runs at
    on_train_begin, right after Trainer has reset its loss accumulators and before the first step."""

    def __init__(self, trainer):  # a train.trainer.ClassificationTrainer
        self.trainer = trainer

    def on_train_begin(self, args, state, control, **kwargs):
        t = self.trainer
        t._whole_run_loss = False
        if t._resume_dir is None:
            return
        path = os.path.join(t._resume_dir, t._loss_state_file())
        if not os.path.isfile(path):
            logger.info("%s has no saved loss: train_loss will average the resumed steps only", t._resume_dir)
            return
        with open(path, encoding="utf-8") as f:
            saved = json.load(f)
        if saved["global_step"] != state.global_step:
            return
        t._total_loss_scalar = saved["total_loss"]
        t._tr_loss = torch.tensor(saved["pending_loss"], dtype=t._tr_loss.dtype, device=t._tr_loss.device)
        t._globalstep_last_logged = saved["last_logged_step"]
        t._whole_run_loss = True


class GracefulStop(TrainerCallback):
    """SIGTERM or SIGINT (Ctrl-C) during training: finish the optimizer step under way, save a checkpoint, stop.

    A second signal acts as if the first had not been caught (SIGINT raises KeyboardInterrupt, SIGTERM kills), for
    a user who does not want to wait for the checkpoint.

    It also holds back any checkpoint due at an epoch's last step (a signal's, or --save_steps landing there) until
    that epoch's evaluation and logging have run. Trainer saves at the step's end, before them, so the checkpoint
    lacked the epoch's evaluation in its log history, and its RNG state predated the draws the evaluation makes (its
    DataLoader seeds itself from the global RNG): a run resumed from it started the next epoch with other dropout
    masks and did not end as the uninterrupted run did."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self):
        self.signum = None
        self._previous = {}
        self.saved_step = None
        self.held_save = False

    def on_train_begin(self, args, state, control, **kwargs):
        self.signum = self.saved_step = None
        self.held_save = False
        # Python lets only the main thread install handlers; elsewhere the signals keep their usual effect.
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS}

    def release(self) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, signal.SIG_DFL if handler is None else handler)  # None: not set from Python
        self._previous = {}

    def _handle(self, signum, frame):
        if self.signum is not None:
            self.release()
            signal.raise_signal(signum)
            return
        self.signum = signum
        logger.warning(
            "%s received: saving a checkpoint at the end of this step, then stopping (send it again to stop now).",
            signal.Signals(signum).name,
        )

    def _requested(self, args) -> bool:
        if args.world_size <= 1:
            return self.signum is not None
        # Processes get the signal at slightly different moments; one stopping a step before the others would leave
        # them waiting for it in the next gradient all-reduce forever. So all of them stop when any of them is asked.
        flag = torch.tensor(self.signum or 0, device=args.device)
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
        self.signum = self.signum or int(flag.item()) or None
        return self.signum is not None

    def on_step_end(self, args, state, control, **kwargs):
        if self._requested(args):
            control.should_save = True
            control.should_training_stop = True
        # state.epoch is epoch + steps done / steps in the epoch: a whole number after an epoch's last step only.
        if control.should_save and float(state.epoch).is_integer() and state.global_step < state.max_steps:
            control.should_save, self.held_save = False, True

    def on_save(self, args, state, control, **kwargs):
        self.saved_step = state.global_step

    def on_epoch_end(self, args, state, control, **kwargs):
        if self.held_save:
            control.should_save, self.held_save = True, False
        if self.signum is None:
            return
        if state.global_step < state.max_steps and not float(state.epoch).is_integer():
            # Stopped inside the epoch: its end-of-epoch evaluation and logging belong to the resumed run.
            control.should_evaluate = control.should_log = False
        control.should_save = self.saved_step != state.global_step  # not twice (--save_strategy epoch)

    def owes_checkpoint(self, state, control) -> bool:
        """Stopping on a signal, and the stopping step has no checkpoint once Trainer has logged, evaluated and saved:
        with --save_strategy best its evaluation decides the save itself, and may have declined."""
        stopping = self.signum is not None and control.should_training_stop
        return stopping and not self.held_save and self.saved_step != state.global_step


class SeededLengthGroupedSampler(LengthGroupedSampler):
    """Shuffles from (seed, epoch) alone. The stock sampler draws from the global torch RNG, whose state when an epoch
    starts depends on everything run before it, so a run resumed in a later epoch saw its batches in another order.

    measure (--tokenize per_batch): `lengths` are then estimates, and each megabatch is sorted by the true lengths
    `measure` gives for its rows when the sampler reaches it (lazily_grouped)."""

    def __init__(self, batch_size: int, lengths: list[int], seed: int, epoch, measure=None):
        super().__init__(batch_size, lengths=lengths)
        self.seed = seed
        # A callable: the Trainer's epoch when iteration starts, which a resumed run restores from its checkpoint.
        # (set_epoch does not reach a sampler under both accelerate's shard and skip wrappers.)
        self.epoch = epoch
        self.measure = measure
        self.measured = np.full(len(lengths), -1, dtype=np.int32) if measure else None  # kept over epochs

    def __iter__(self):
        self.generator = torch.Generator().manual_seed(self.seed + self.epoch())
        if self.measure is None:
            return super().__iter__()
        return lazily_grouped(self.lengths, self.batch_size, self.generator, self.measure, self.measured)


def lazily_grouped(estimates, batch_size: int, generator, measure, measured: np.ndarray | None = None):
    """transformers' get_length_grouped_indices (a random permutation, cut into megabatches of up to 50 batches, each
    sorted longest first), with each megabatch sorted by the true lengths `measure` gives for its rows when the
    sampler reaches it, remembered in `measured` (a row's length, -1 until measured) for later epochs.

    A run that tokenizes batch by batch knows a row's true length only once it is tokenized. Sorted by the byte
    estimates instead, padded batches of review-like rows (about 90 tokens) were 10.4% padding (true lengths: 1.0%),
    and training ran 0.89x as fast as up-front tokenizing (35.3-36.3 vs 40.1-40.2 samples/s, 100 steps, alone, on an
    Intel Xeon with AMX, 2026-12-07). Measuring tokenizes each row once more, once a run: 4-9 ms for 32 such rows
    against a ~900 ms step.

    transformers also puts the longest row first (so that memory runs out at once if it will); which row that is is
    decided here by the estimates, so where they agree with the true lengths on it the order is transformers' own
    on the true lengths: the order a run tokenized up front trains in."""
    n = len(estimates)
    measured = np.full(n, -1, dtype=np.int32) if measured is None else measured
    mult = min(n // (batch_size * 4), 50) or 1
    size = mult * batch_size
    indices = torch.randperm(n, generator=generator)
    order = indices.numpy()
    position = int(np.argmax(np.asarray(estimates)[order]))  # the first longest, in shuffled order (as transformers)
    longest, home = int(order[position]), position // size
    megabatches = [indices[i : i + size].tolist() for i in range(0, n, size)]

    def by_length(megabatch: list[int]) -> list[int]:
        rows = np.asarray(megabatch)
        unknown = rows[measured[rows] < 0]
        if len(unknown):
            measured[unknown] = measure(unknown.tolist())
        lengths = measured[rows].tolist()
        # (a stable sort, longest first, ties in shuffled order: transformers' sorted(..., reverse=True))
        return [megabatch[k] for k in sorted(range(len(megabatch)), key=lengths.__getitem__, reverse=True)]

    first = by_length(megabatches[0])
    displaced = first[0]
    if home:
        first[0] = longest
    yield from first
    for m in range(1, len(megabatches)):
        megabatch = by_length(megabatches[m])
        if m == home:
            megabatch[megabatch.index(longest)] = displaced
        yield from megabatch
