"""Length-grouped, seeded, distributed-compatible batch plans."""

from __future__ import annotations

import random

import pytest

from loralab.engine.sampler import epoch_plan, micro_batches_per_epoch, padding_fraction


def _lengths(n=203, seed=0):
    rng = random.Random(seed)
    return [rng.randint(20, 300) for _ in range(n)]


@pytest.mark.parametrize("group", [True, False])
def test_every_example_once_per_epoch_single_process(group):
    lengths = _lengths()
    plan = epoch_plan(lengths, batch_size=8, seed=3, epoch=1, group_by_length=group)
    flat = [i for b in plan.batches for i in b]
    assert sorted(flat) == list(range(len(lengths)))
    assert plan.padded_examples == 0
    assert all(len(b) == 8 for b in plan.batches[:-1])
    assert len(plan.batches) == micro_batches_per_epoch(len(lengths), 8) == -(-203 // 8)


def test_order_is_a_pure_function_of_seed_and_epoch():
    lengths = _lengths()
    a = epoch_plan(lengths, 8, seed=3, epoch=2).batches
    random.seed(999)  # the global RNG must not matter
    import torch

    torch.manual_seed(5)
    assert epoch_plan(lengths, 8, seed=3, epoch=2).batches == a
    assert epoch_plan(lengths, 8, seed=3, epoch=3).batches != a
    assert epoch_plan(lengths, 8, seed=4, epoch=2).batches != a


def test_length_grouping_cuts_padding_against_random_batches():
    lengths = _lengths(400)
    grouped = epoch_plan(lengths, 8, seed=1, epoch=1, group_by_length=True).batches
    shuffled = epoch_plan(lengths, 8, seed=1, epoch=1, group_by_length=False).batches

    # Padding computed by brute force, independently of padding_fraction.
    def waste(batches):
        pad = sum(max(lengths[i] for i in b) - lengths[i] for b in batches for i in b)
        return pad / sum(max(lengths[i] for i in b) * len(b) for b in batches)

    assert waste(grouped) == pytest.approx(padding_fraction(grouped, lengths))
    assert waste(grouped) < 0.1 < waste(shuffled)
    # Grouping still mixes lengths across the epoch: the batch order is shuffled.
    maxima = [max(lengths[i] for i in b) for b in grouped[1:]]
    assert maxima != sorted(maxima) and maxima != sorted(maxima, reverse=True)
    # The longest batch comes first, so an out-of-memory error shows at step 1.
    assert max(lengths[i] for i in grouped[0]) == max(lengths)


@pytest.mark.parametrize("n,world,batch", [(203, 2, 8), (10, 3, 4), (7, 4, 2), (96, 2, 8)])
@pytest.mark.parametrize("group", [True, False])
def test_distributed_shards_cover_everything_in_step(n, world, batch, group):
    lengths = _lengths(n)
    plans = [epoch_plan(lengths, batch, 5, 1, group, world_size=world, rank=r) for r in range(world)]
    counts = {len(p.batches) for p in plans}
    assert counts == {micro_batches_per_epoch(n, batch, world)}  # every rank runs the same number of steps
    for k in range(len(plans[0].batches)):  # and the same micro-batch size at each step
        assert len({len(p.batches[k]) for p in plans}) == 1
    flat = [i for p in plans for b in p.batches for i in b]
    pad = (-n) % world
    assert plans[0].padded_examples == pad and len(flat) == n + pad
    assert set(flat) == set(range(n))
    # Ranks see disjoint examples apart from the padding repeats.
    assert len(flat) - len(set(flat)) == pad
