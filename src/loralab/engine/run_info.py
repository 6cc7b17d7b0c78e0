"""What a run records about itself: training_config.json, the config hash, parameter tables."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import subprocess
from pathlib import Path
from typing import Any

from loralab.config.schema import ExperimentConfig, config_to_dict, field_defaults, retired_config_keys
from loralab.engine.run_dir import RUN_CONFIG_FILE as TRAINING_CONFIG_FILE  # the run directory owns it
from loralab.engine.system import ParamCount
from loralab.safe_files import write_json_atomic

# Fields that may differ between a run and its resume without changing the numbers:
# where output goes (a run folder may be moved), how often to log, evaluation settings,
# how many loader workers, which GPUs.
RESUME_SAFE_KEYS = (
    "description",
    "output_dir",
    "evaluation.",
    "training.log_every",
    "training.num_workers",
    "training.gpus",
)


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for k, v in data.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: data}


def config_fields(cfg: ExperimentConfig) -> dict[str, Any]:
    """Dotted key -> value of every field that affects the numbers of a run."""
    flat = _flatten(config_to_dict(cfg))
    return {k: v for k, v in flat.items() if not any(k == s or k.startswith(s) for s in RESUME_SAFE_KEYS)}


def config_hash(cfg: ExperimentConfig) -> str:
    return hashlib.sha256(json.dumps(config_fields(cfg), sort_keys=True, default=str).encode()).hexdigest()[
        :16
    ]


def config_differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """'key: old -> new' of each field that differs; a retired key (a checkpoint written before it
    was retired holds it) is no difference: nothing reads it; nor is a field added since, at its
    default (the checkpoint ran as that default does)."""
    defaults = field_defaults()
    keys = sorted((set(old) | set(new)) - set(retired_config_keys()))
    added = {k for k in keys if k not in old and k in defaults and new.get(k) == defaults[k]}
    return [
        f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in keys if k not in added and old.get(k) != new.get(k)
    ]


def library_versions() -> dict[str, str | None]:
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {}
    for name in ("loralab", "torch", "transformers", "peft", "accelerate", "deepspeed"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def git_commit(where: Path | None = None) -> str | None:
    """The commit of the loralab checkout the code runs from (``+dirty`` if modified), or None."""
    where = where or Path(__file__).resolve().parent
    try:
        head = subprocess.run(
            ["git", "-C", str(where), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10
        )
        if head.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "-C", str(where), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = head.stdout.strip()
    return commit + ("+dirty" if dirty.returncode == 0 and dirty.stdout.strip() else "")


def param_table(groups: dict[str, ParamCount]) -> str:
    """Trainable / total parameters per group, aligned, with a total line."""
    rows = [(name, c.trainable, c.total) for name, c in groups.items()]
    if "total" not in groups:  # a system may report its own total (e.g. with shared weights counted once)
        rows.append(("total", sum(r[1] for r in rows), sum(r[2] for r in rows)))
    width = max(len(r[0]) for r in rows)
    lines = [f"{'group':<{width}}  {'trainable':>15}  {'total':>15}  share"]
    for name, trainable, total in rows:
        share = f"{100 * trainable / total:6.2f}%" if total else "     -"
        lines.append(f"{name:<{width}}  {trainable:>15,}  {total:>15,}  {share}")
    return "\n".join(lines)


def write_training_config(
    run_dir: Path,
    cfg: ExperimentConfig,
    groups: dict[str, ParamCount],
    *,
    world_size: int,
    device: str,
    weight_dtype: str,
    autocast_dtype: str | None,
    precision_why: str = "",
    plan: dict[str, Any],
    resumed_from: str | None,
) -> Path:
    """``<run>/training_config.json``: the resolved config and everything needed to redo the run."""
    path = Path(run_dir) / TRAINING_CONFIG_FILE
    write_json_atomic(
        path,
        {
            "config": config_to_dict(cfg),
            "config_hash": config_hash(cfg),
            "versions": library_versions(),
            "git_commit": git_commit(),
            "params": {k: dataclasses.asdict(v) for k, v in groups.items()},
            "world_size": world_size,
            "device": device,
            "weight_dtype": weight_dtype,
            "autocast_dtype": autocast_dtype,
            "precision_why": precision_why,
            "plan": plan,
            "resumed_from": resumed_from,
            "pid": os.getpid(),
        },
    )
    return path
