"""Which examples go into which micro-batch, on which process, in which epoch.

The order is a pure function of ``(seed, epoch, lengths, batch_size, world_size)``: nothing
is drawn from the global RNG, so a resumed run sees exactly the batches an uninterrupted
one would, and every process computes the same global plan without talking to the others.

Length grouping (``group_by_length``): shuffle, cut into mega-batches of 50 global batches,
sort each mega-batch by length, cut it into global batches and shuffle the batch order.
Batches then hold utterances of similar length (little padding) while the epoch still
mixes short and long ones. The longest batch is moved first so that an out-of-memory
error shows up at step 1, not hours in.

Distributed: like ``DistributedSampler``, the index list is padded (repeating its start) to
a multiple of ``world_size`` so every process runs the same number of micro-batches (DDP
would hang otherwise); each global batch of ``batch_size * world_size`` examples is split
into one contiguous slice per rank. The padding is at most ``world_size - 1`` examples per
epoch and is reported by :func:`plan_summary`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

MEGA_BATCH_FACTOR = 50


@dataclass(frozen=True)
class EpochPlan:
    """This process's micro-batches for one epoch (lists of dataset indices)."""

    batches: list[list[int]]
    padded_examples: int  # repeated examples added so that ranks stay in step


def _rng(seed: int, epoch: int) -> np.random.Generator:
    # SeedSequence mixes both numbers properly; seed + epoch would collide across runs.
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(epoch)]))


def _global_batches(
    lengths: Sequence[int], global_batch: int, seed: int, epoch: int, group_by_length: bool, world_size: int
) -> tuple[list[list[int]], int]:
    n = len(lengths)
    rng = _rng(seed, epoch)
    order = rng.permutation(n)
    padded = (-n) % world_size
    if padded:
        order = np.concatenate([order, order[:padded]])
    if not group_by_length:
        return [order[i : i + global_batch].tolist() for i in range(0, len(order), global_batch)], padded

    lens = np.asarray(lengths)
    mega = global_batch * MEGA_BATCH_FACTOR
    batches: list[list[int]] = []
    for start in range(0, len(order), mega):
        chunk = order[start : start + mega]
        # Stable sort, longest first: ties keep the shuffled order, so the result is deterministic.
        chunk = chunk[np.argsort(-lens[chunk], kind="stable")]
        batches.extend(chunk[i : i + global_batch].tolist() for i in range(0, len(chunk), global_batch))
    # The final global batch may be short; keep it last so that every rank's slice is even.
    tail = batches.pop() if len(batches[-1]) < global_batch else None
    perm = rng.permutation(len(batches)).tolist()
    batches = [batches[i] for i in perm]
    if batches:
        longest = max(range(len(batches)), key=lambda i: max(lens[j] for j in batches[i]))
        batches[0], batches[longest] = batches[longest], batches[0]
    if tail is not None:
        batches.append(tail)
    return batches, padded


def epoch_plan(
    lengths: Sequence[int],
    batch_size: int,
    seed: int,
    epoch: int,
    group_by_length: bool = True,
    world_size: int = 1,
    rank: int = 0,
) -> EpochPlan:
    """The micro-batches of process ``rank`` in ``epoch`` (1-based or 0-based: any int)."""
    if not lengths:
        raise ValueError("cannot plan batches for an empty training set")
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} outside world size {world_size}")
    global_batches, padded = _global_batches(
        lengths, batch_size * world_size, seed, epoch, group_by_length, world_size
    )
    mine = []
    for gb in global_batches:
        # Every global batch has a multiple of world_size examples (the list was padded).
        per_rank = len(gb) // world_size
        mine.append(gb[rank * per_rank : (rank + 1) * per_rank])
    return EpochPlan(batches=mine, padded_examples=padded)


def micro_batches_per_epoch(n_examples: int, batch_size: int, world_size: int = 1) -> int:
    """How many micro-batches each process runs per epoch (the same on every rank)."""
    padded = n_examples + (-n_examples) % world_size
    return math.ceil(padded / (batch_size * world_size))


def padding_fraction(batches: Sequence[Sequence[int]], lengths: Sequence[int]) -> float:
    """Share of padded positions when each batch is padded to its longest member."""
    total = sum(max(lengths[i] for i in b) * len(b) for b in batches)
    real = sum(lengths[i] for b in batches for i in b)
    return 1.0 - real / total if total else 0.0
