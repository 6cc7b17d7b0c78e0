"""Everything a report needs from a run directory, read without touching the model.

The run directory's layout is :class:`loralab.engine.run_dir.RunDir`'s: ``events.jsonl`` (the
schema is in :mod:`loralab.engine.events`), ``training_config.json``, the checkpoints (complete
or still being written), ``final_model/`` and, after evaluation, ``metrics.json`` per split
and epoch.

A resumed run appends to the same log: each ``start`` opens a new *segment* (one process's
life). Steps redone after a resume (those after the last checkpoint) are logged twice; the
later record wins, since that is the history the final weights come from.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loralab.engine.events import EVENTS_FILE, read_events, to_float
from loralab.engine.run_dir import RUN_CONFIG_FILE as TRAINING_CONFIG_FILE
from loralab.engine.run_dir import RunDir
from loralab.engine.system import headline_metric_order
from loralab.errors import LoralabError

# Counts and p-values are context, not results: left out of plots and comparison tables.
NOT_HEADLINE_RE = re.compile(r"(^|[._])(n|n_\w+|failed|clamped|count|p_value|all_parsed|num_\w+|ref_len)$")


STEP_FIELDS = (
    "epoch",
    "loss",
    "grad_norm",
    "lr",
    "samples_per_s",
    "tokens_per_s",
    "memory_gb",
    "peak_memory_gb",
)


@dataclass
class StepPoint:
    """One logged optimizer step; numbers the trainer did not write are NaN."""

    step: int
    time: float
    epoch: float
    loss: float
    grad_norm: float
    lr: float
    samples_per_s: float
    tokens_per_s: float
    memory_gb: float
    peak_memory_gb: float
    # Fields the trainer wrote as NaN/inf (as opposed to fields it did not write at all).
    nonfinite: frozenset[str] = frozenset()

    @classmethod
    def from_record(cls, r: dict) -> StepPoint:
        values = {k: to_float(r.get(k)) for k in STEP_FIELDS}
        nonfinite = frozenset(k for k in STEP_FIELDS if r.get(k) is not None and not math.isfinite(values[k]))
        return cls(step=int(r["step"]), time=float(r["time"]), nonfinite=nonfinite, **values)


@dataclass
class Segment:
    """One process's part of the log: its ``start`` record and every record after it."""

    start: dict | None
    records: list[dict] = field(default_factory=list)

    def of(self, event: str) -> list[dict]:
        return [r for r in self.records if r.get("event") == event]

    @property
    def last_time(self) -> float | None:
        times = [float(r["time"]) for r in self.records if "time" in r]
        return max(times) if times else None


@dataclass
class CheckpointInfo:
    name: str
    epoch: int
    path: str
    size_bytes: int | None
    state: str  # 'complete' | 'incomplete' (tmp folder) | 'missing' (logged, gone from disk)


@dataclass
class EvalResult:
    epoch: int
    metrics: dict[str, float]
    source: str  # 'events' or the metrics.json path
    split: str | None = None  # as the evaluator recorded it; None: its default (test)


@dataclass
class RunLog:
    run_dir: Path
    records: list[dict]
    segments: list[Segment]
    steps: list[StepPoint]
    evals: list[EvalResult]
    checkpoints: list[CheckpointInfo]
    final_model: CheckpointInfo | None
    training_config: dict | None
    problems: list[str]  # things we could not read, shown in the report rather than hidden

    @property
    def start(self) -> dict | None:
        """The latest ``start`` record (the current or last process)."""
        for seg in reversed(self.segments):
            if seg.start is not None:
                return seg.start
        return None

    @property
    def first_start(self) -> dict | None:
        return next((s.start for s in self.segments if s.start is not None), None)

    @property
    def config(self) -> dict | None:
        """The resolved config as written (a plain dict, for display)."""
        if self.training_config and isinstance(self.training_config.get("config"), dict):
            return self.training_config["config"]
        return None

    def typed_config(self):
        """The resolved config as an ExperimentConfig, or None (with a note in ``problems``)
        when there is none or it no longer fits the schema (a run from another version)."""
        from loralab.config.loader import ConfigError, build_dataclass
        from loralab.config.schema import ExperimentConfig

        if self.config is None:
            return None
        try:
            return build_dataclass(ExperimentConfig, self.config, str(self.run_dir / TRAINING_CONFIG_FILE))
        except (ConfigError, TypeError) as e:
            note = f"config in {TRAINING_CONFIG_FILE} does not fit this version's schema: {e}"
            if note not in self.problems:
                self.problems.append(note)
            return None


def folder_size(path: Path) -> int:
    """Bytes of all regular files below ``path`` (links not followed)."""
    total = 0
    for p in path.rglob("*"):
        try:
            if p.is_file() and not p.is_symlink():
                total += p.stat().st_size
        except OSError:  # a file removed while we walk (a checkpoint being replaced)
            continue
    return total


def split_segments(records: list[dict]) -> list[Segment]:
    segments: list[Segment] = []
    for r in records:
        if r.get("event") == "start" or not segments:
            segments.append(Segment(start=r if r.get("event") == "start" else None))
        segments[-1].records.append(r)
    return segments


def collect_steps(records: list[dict]) -> list[StepPoint]:
    """Step records by step; a step logged again after a resume replaces the earlier one."""
    by_step: dict[int, StepPoint] = {}
    for r in records:
        if r.get("event") == "step" and "step" in r and "time" in r:
            by_step[int(r["step"])] = StepPoint.from_record(r)
    return [by_step[s] for s in sorted(by_step)]


def flatten_metrics(data: Any, prefix: str = "") -> dict[str, float]:
    """Nested metrics -> {'a.b': number}; null (and older 'nan' strings) become NaN, other text is skipped."""
    out: dict[str, float] = {}
    if isinstance(data, dict):
        for k, v in data.items():
            out.update(flatten_metrics(v, f"{prefix}{k}."))
    elif isinstance(data, bool):
        pass
    elif isinstance(data, (int, float)):
        out[prefix[:-1]] = float(data)
    elif data is None or (isinstance(data, str) and data.lower() in ("nan", "inf", "-inf")):
        out[prefix[:-1]] = to_float(data)  # null (or an older 'nan' string): an undefined metric
    return out


def _read_evals(run_dir: Path, records: list[dict], problems: list[str]) -> list[EvalResult]:
    """Eval metrics per (epoch, split): the ``eval`` events (the latest per epoch and split)
    where the evaluator wrote them, else ``eval[-SPLIT]/epoch-N/metrics.json`` flattened."""
    found: dict[tuple[int, str | None], EvalResult] = {}
    for r in records:
        if r.get("event") == "eval" and isinstance(r.get("metrics"), dict) and "epoch" in r:
            split = r.get("split") if r.get("split") != "test" else None
            found[(int(r["epoch"]), split)] = EvalResult(
                int(r["epoch"]), flatten_metrics(r["metrics"]), "events", split
            )
    for split_name, epoch, d in RunDir(run_dir).eval_folders():
        split = None if split_name == "test" else split_name
        if (epoch, split) in found or not (d / "metrics.json").is_file():
            continue
        try:
            data = json.loads((d / "metrics.json").read_text())
        except (OSError, ValueError) as e:
            problems.append(f"{d / 'metrics.json'}: unreadable ({e})")
            continue
        found[(epoch, split)] = EvalResult(epoch, flatten_metrics(data), str(d / "metrics.json"), split)
    return [found[k] for k in sorted(found, key=lambda k: (k[1] or "", k[0]))]


def _read_checkpoints(run_dir: Path, records: list[dict]) -> list[CheckpointInfo]:
    run = RunDir(run_dir)
    found: dict[str, CheckpointInfo] = {}
    for epoch, d in run.checkpoints().items():
        found[d.name] = CheckpointInfo(d.name, epoch, str(d), folder_size(d), "complete")
    for epoch, d in run.incomplete_checkpoints().items():
        found[d.name] = CheckpointInfo(d.name, epoch, str(d), folder_size(d), "incomplete")
    for r in records:
        if r.get("event") != "checkpoint" or "epoch" not in r:
            continue
        name = run.checkpoint(int(r["epoch"])).name
        if name not in found:
            size = r.get("size_bytes")
            found[name] = CheckpointInfo(
                name, int(r["epoch"]), str(r.get("path", run_dir / name)), size, "missing"
            )
    return sorted(found.values(), key=lambda c: (c.epoch, c.state != "complete"))


def read_run(run_dir: str | Path) -> RunLog:
    """Read a run directory; a folder with neither an event log nor a training config is an error."""
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise LoralabError(
            f"'{run_dir}' is a file, not a run directory (pass the folder 'loralab train' printed)"
        )
    if not run_dir.is_dir():
        raise LoralabError(
            f"run directory '{run_dir}' does not exist (pass the folder 'loralab train' printed)"
        )
    cfg_path = RunDir(run_dir).config_file
    if not RunDir(run_dir).is_run():
        raise LoralabError(
            f"'{run_dir}' is not a run directory: it has no {EVENTS_FILE} and no {TRAINING_CONFIG_FILE}. "
            "Pass the folder a 'loralab train' run writes (default output/<name>)."
        )
    problems: list[str] = []
    records = [r for r in read_events(run_dir) if isinstance(r, dict) and "event" in r]
    training_config = None
    if cfg_path.exists():
        try:
            training_config = json.loads(cfg_path.read_text())
        except (OSError, ValueError) as e:  # ValueError: bad JSON, or bytes that are not UTF-8
            problems.append(f"{cfg_path}: unreadable ({e})")
    final, run = None, RunDir(run_dir)
    if run.has_final_model():
        d = run.final_model
        final = CheckpointInfo(d.name, -1, str(d), folder_size(d), "complete")
    return RunLog(
        run_dir=run_dir,
        records=records,
        segments=split_segments(records),
        steps=collect_steps(records),
        evals=_read_evals(run_dir, records, problems),
        checkpoints=_read_checkpoints(run_dir, records),
        final_model=final,
        training_config=training_config,
        problems=problems,
    )


def finite(values: list[float]) -> list[float]:
    return [v for v in values if math.isfinite(v)]


def headline_metrics(evals: list[dict], finite_only: bool = False) -> list[str]:
    """Metric names of ``evals`` (dicts with ``metrics``) worth showing: numbers, not counts or
    p-values; the preferred names first, then in order of appearance. A NaN metric (e.g. a
    PCC when no answer parsed) is kept for tables, where it says something; ``finite_only``
    drops metrics that are never finite (nothing to plot)."""
    names: list[str] = []
    for e in evals:
        for k, v in e["metrics"].items():
            if k in names or NOT_HEADLINE_RE.search(k) or not isinstance(v, float):
                continue
            if finite_only and not any(math.isfinite(x["metrics"].get(k, math.nan)) for x in evals):
                continue
            names.append(k)

    preferred = headline_metric_order()  # each system's headline metrics, in its order

    def rank(name: str) -> tuple[int, int]:
        leaf = name.rsplit(".", 1)[-1]
        pref = preferred.index(leaf) if leaf in preferred else len(preferred)
        return pref, names.index(name)

    return sorted(names, key=rank)
