"""Atomic checkpoints, RNG round trips, weights_only loading, choosing what to resume from."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch

from loralab.engine import checkpoint as ckpt
from loralab.engine.schedule import WarmupDecay, make_scheduler


def _draws():
    return (random.random(), float(np.random.rand()), float(torch.rand(1)))


def test_rng_state_round_trip_through_weights_only_file(tmp_path):
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    _draws()
    torch.save(ckpt.capture_rng_state(), tmp_path / "rng.pth")
    expected = [_draws() for _ in range(3)]
    random.seed(7), np.random.seed(7), torch.manual_seed(7)
    ckpt.restore_rng_state(torch.load(tmp_path / "rng.pth", weights_only=True))
    assert [_draws() for _ in range(3)] == expected


def test_optimizer_and_scheduler_states_load_with_weights_only(tmp_path):
    p = torch.nn.Parameter(torch.ones(3))
    opt = torch.optim.AdamW([p], lr=0.1)
    sched = make_scheduler(opt, "cosine", 2, 10)
    for _ in range(3):
        p.grad = torch.ones(3)
        opt.step()
        sched.step()
    tmp = ckpt.prepare_tmp_dir(tmp_path, 1)
    ckpt.write_states(tmp, opt.state_dict(), sched.state_dict(), {"epoch": 1, "global_step": 3})
    final = ckpt.commit(tmp, ckpt.checkpoint_dir(tmp_path, 1))
    opt2 = torch.optim.AdamW([torch.nn.Parameter(torch.ones(3))], lr=0.1)
    sched2 = make_scheduler(opt2, "linear", 0, 1)  # settings come back from the checkpoint
    opt2.load_state_dict(ckpt.load_torch_file(final / ckpt.OPTIMIZER_FILE))
    sched2.load_state_dict(ckpt.load_torch_file(final / ckpt.SCHEDULER_FILE))
    assert sched2.get_last_lr() == pytest.approx(sched.get_last_lr())
    assert torch.equal(opt2.state_dict()["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])
    sched.step(), sched2.step()
    assert sched2.get_last_lr() == pytest.approx(sched.get_last_lr())


def test_schedule_multipliers_match_closed_forms():
    import math

    lin, cos, const = (WarmupDecay(k, 4, 20) for k in ("linear", "cosine", "constant"))
    for s in range(0, 4):
        assert lin(s) == cos(s) == const(s) == pytest.approx(s / 4)
    for s in range(4, 25):
        frac = min(1.0, (s - 4) / 16)
        assert lin(s) == pytest.approx(1 - frac)
        assert cos(s) == pytest.approx((1 + math.cos(math.pi * frac)) / 2)
        assert const(s) == 1.0


def test_tmp_dirs_are_ignored_and_cleaned(tmp_path):
    for epoch in (1, 2):
        tmp = ckpt.prepare_tmp_dir(tmp_path, epoch)
        ckpt.write_states(tmp, None, {}, {"epoch": epoch})
        ckpt.commit(tmp, ckpt.checkpoint_dir(tmp_path, epoch))
    # A kill during epoch 3's save leaves a temporary directory with some files in it.
    tmp3 = ckpt.prepare_tmp_dir(tmp_path, 3)
    (tmp3 / "adapter.safetensors").write_bytes(b"half")
    assert ckpt.find_last_checkpoint(tmp_path) == ckpt.checkpoint_dir(tmp_path, 2)
    assert [e for e, _ in ckpt.list_checkpoints(tmp_path)] == [1, 2]
    assert ckpt.remove_stale_tmp_dirs(tmp_path) == [tmp3]
    assert not tmp3.exists()


def test_checkpoint_without_state_file_is_skipped(tmp_path):
    tmp = ckpt.prepare_tmp_dir(tmp_path, 1)
    ckpt.write_states(tmp, None, {}, {"epoch": 1})
    ckpt.commit(tmp, ckpt.checkpoint_dir(tmp_path, 1))
    hand_made = ckpt.checkpoint_dir(tmp_path, 2)
    hand_made.mkdir()
    (hand_made / ckpt.STATE_FILE).write_text("{not json")
    assert ckpt.find_last_checkpoint(tmp_path) == ckpt.checkpoint_dir(tmp_path, 1)


def test_commit_replaces_an_existing_checkpoint_whole(tmp_path):
    for value in ("old", "new"):
        tmp = ckpt.prepare_tmp_dir(tmp_path, 1)
        ckpt.write_states(tmp, None, {}, {"epoch": 1, "v": value})
        ckpt.commit(tmp, ckpt.checkpoint_dir(tmp_path, 1))
    state = json.loads((ckpt.checkpoint_dir(tmp_path, 1) / ckpt.STATE_FILE).read_text())
    assert state["v"] == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-epoch-1"]
