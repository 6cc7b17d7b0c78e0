"""The real entry point in subprocesses: kill -9 mid-epoch then --resume; two gloo processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import toy_system
import yaml
from safetensors.torch import load_file
from test_engine_trainer import final_weights, reference_training, toy_cfg

from loralab.cli.main import main
from loralab.engine.checkpoint import checkpoint_dir, list_checkpoints
from loralab.engine.events import read_events
from loralab.engine.trainer import run_training

RUNNER = Path(__file__).with_name("run_toy_cli.py")
BIN = Path(sys.executable).parent


def write_config(path: Path, run_dir: Path, **training) -> Path:
    cfg = toy_cfg(run_dir, **training)
    data = {"name": cfg.name, "system": "toy", "output_dir": str(run_dir)}
    data["training"] = {k: getattr(cfg.training, k) for k in (*TRAINING_KEYS, *training)}
    path.write_text(yaml.safe_dump(data))
    return path


TRAINING_KEYS = (
    "epochs",
    "batch_size",
    "gradient_accumulation",
    "learning_rate",
    "warmup_ratio",
    "log_every",
    "seed",
)


def _env(**extra) -> dict:
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1", **extra)
    env.pop("TOY_DUMP_DIR", None)
    env.update(extra)
    return env


def test_kill_9_mid_epoch_then_resume_ends_with_the_uninterrupted_weights(tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    config = write_config(tmp_path / "toy.yaml", run, gradient_accumulation=2)
    proc = subprocess.Popen(
        [sys.executable, str(RUNNER), "train", str(config)],
        env=_env(TOY_SLEEP="0.2"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.time() + 120
    try:
        while time.time() < deadline:
            steps = [e for e in read_events(run) if e["event"] == "step"]
            if steps and steps[-1]["epoch"] > 1.0:  # a step of epoch 2 is in the log
                break
            assert proc.poll() is None, proc.stderr.read().decode()[-3000:]
            time.sleep(0.02)
        else:
            pytest.fail("the run never reached epoch 2")
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert [e for e, _ in list_checkpoints(run)] == [1]  # killed inside epoch 2
    assert read_events(run)[-1]["event"] == "step"  # no word from the killed run

    # The resume runs in this process (one interpreter start less), through the same CLI entry.
    assert main(["train", str(config), "--resume"]) == 0
    assert f"resumed from {checkpoint_dir(run, 1)}" in capsys.readouterr().out
    assert [e for e, _ in list_checkpoints(run)] == [1, 2, 3]
    assert read_events(run)[-1]["event"] == "end"

    reference = tmp_path / "reference"
    run_training(toy_cfg(reference, gradient_accumulation=2), toy_system.make_parts())
    expected, got = final_weights(reference), final_weights(run)
    assert not torch.equal(got["lora_b"], torch.zeros_like(got["lora_b"]))
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=1e-6, atol=1e-7)


def test_two_gloo_processes_train_one_consistent_checkpoint(tmp_path):
    run = tmp_path / "run"
    dumps = tmp_path / "dumps"
    dumps.mkdir()
    config = write_config(tmp_path / "toy.yaml", run, epochs=2, gradient_accumulation=2)
    proc = subprocess.run(
        [str(BIN / "torchrun"), "--standalone", "--nproc_per_node", "2", str(RUNNER), "train", str(config)],
        env=_env(TOY_DUMP_DIR=str(dumps), TOY_DROPOUT="0"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    events = read_events(run)
    assert [e["event"] for e in events].count("start") == 1  # only rank 0 writes
    assert events[0]["world_size"] == 2 and events[-1]["event"] == "end"
    assert [e for e, _ in list_checkpoints(run)] == [1, 2]
    for epoch in (1, 2):
        files = sorted(p.name for p in checkpoint_dir(run, epoch).iterdir())
        assert files == [
            "adapter.safetensors",
            "optimizer.pt",
            "rng_state_0.pth",
            "rng_state_1.pth",
            "run.json",
            "scheduler.pt",
            "trainer_state.json",
        ]
    assert not [p for p in run.iterdir() if p.name.startswith(".tmp")]
    rank0, rank1 = (load_file(str(dumps / f"rank{r}.safetensors")) for r in (0, 1))
    saved = final_weights(run)
    for name in rank0:
        assert torch.equal(rank0[name], rank1[name]), name  # DDP kept the replicas identical
        assert torch.equal(rank0[name], saved[name]), name
    # And the result is the arithmetic of data parallelism: mean of the two ranks' gradients.
    expected = reference_training(
        toy_cfg(run, epochs=2, gradient_accumulation=2), toy_system.make_parts(dropout=0.0), 2
    )
    for name in expected:
        torch.testing.assert_close(saved[name], expected[name], rtol=1e-5, atol=1e-6)
