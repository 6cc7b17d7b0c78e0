"""Recorded event logs for the report tests: plain records in the schema of
``loralab.engine.events`` (what the trainer writes), with controlled times and values."""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def start_record(t: float, *, pid: int | None = None, host: str | None = None, step: int = 0, **over) -> dict:
    record = {
        "event": "start",
        "time": t,
        "step": step,
        "pid": os.getpid() if pid is None else pid,
        "host": socket.gethostname() if host is None else host,
        "name": "recorded",
        "system": "speech",
        "epochs": 3,
        "steps_per_epoch": 100,
        "total_steps": 300,
        "batch_size": 8,
        "gradient_accumulation": 4,
        "world_size": 2,
        "device": "cuda:0",
        "dtype": "bf16",
        "params": {
            "lora": {"trainable": 5000, "total": 5000},
            "frozen": {"trainable": 0, "total": 95000},
        },
        "resumed_from": None,
    }
    record.update(over)
    return record


def step_records(
    t0: float,
    steps: list[int],
    seed: int = 0,
    loss_fn=None,
    steps_per_epoch: int = 100,
    mean_gap: float = 3.0,
) -> list[dict]:
    """Step records at irregular times (so speed is not a trivial constant) with a decaying,
    noisy loss (or ``loss_fn(step)``), a grad norm and a warm-up learning rate."""
    rng = np.random.default_rng(seed)
    out, t = [], t0
    prev = 0
    for s in steps:
        t += (s - prev) * mean_gap * float(rng.uniform(0.5, 1.5))
        prev = s
        loss = loss_fn(s) if loss_fn else 2.5 * math.exp(-s / 120) + 0.4 + float(rng.normal(0, 0.02))
        out.append(
            {
                "event": "step",
                "time": t,
                "step": s,
                "epoch": s / steps_per_epoch,
                "loss": loss if math.isfinite(loss) else str(loss),
                "grad_norm": 0.8 + 0.5 * float(rng.random()),
                "lr": 2e-5 * min(1.0, s / 20),
                "samples_per_s": 60.0 + float(rng.random()),
                "tokens_per_s": 9000.0 + float(rng.random()),
                "memory_gb": 30.0,
                "peak_memory_gb": 40.0 + s / 100,
            }
        )
    return out


def write_log(run_dir: Path, records: list[dict], config: dict | None = None) -> Path:
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    with (run_dir / "events.jsonl").open("w") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")
    if config is not None:
        (run_dir / "training_config.json").write_text(json.dumps({"config": config}))
    return run_dir


def of(records: list[dict], event: str) -> list[dict]:
    return [r for r in records if r["event"] == event]
