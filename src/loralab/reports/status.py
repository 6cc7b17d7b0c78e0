"""The state and figures of a run, from its event log: what ``loralab status`` reports.

State (of the latest segment, i.e. since the last ``start``):

* **finished**: it has an ``end`` record.
* **crashed**: it has an ``error`` record (kind and message shown), or its process is gone
  without either (killed: ``kill -9``, the OOM killer, a lost machine).
* **running**: the process (``pid`` on ``host`` from ``start``) is alive and wrote recently.
* **stalled**: alive but silent for longer than the stall threshold:
  ``max(300 s, 10 x the median gap between its records)`` (``--stall-after`` overrides).
  The trainer writes a record every ``log_every`` steps and a heartbeat at least every 60 s
  during long work, so ten typical gaps without a word means it is hung (a deadlocked
  collective, a stuck data loader, a full disk), not slow. When ``host`` is another machine
  the pid cannot be checked: silent beyond the threshold counts as stalled, else running.

Figures (``s/step`` etc. are measured over the latest segment, so a resume's start-up does
not skew them):

* ``s_per_step``: (time of its last step record - time of its first) / (steps between);
  with a single step record, from the ``start`` record instead. Pauses for checkpoints
  and evaluation are included, so the ETA is honest.
* ``samples_per_s``: effective batch (batch x accumulation x world size) / s_per_step;
  ``logged_samples_per_s``: the trainer's own figure in the last step record (training only).
* ``eta_s``: (total_steps - step) x s_per_step, for running and stalled runs.
* ``elapsed_s``: summed over segments, each from its ``start`` to its last record (to now
  for a live segment).
* loss drop: mean of the first ``w`` logged losses vs the last ``w`` (see
  :mod:`loralab.reports.analysis` for ``w``), in percent of the first.
* loss table: every ``loss_table_every`` steps (the smallest of 1, 2, 5, 10, 20, 25, 50,
  100, 200, 250, 500, 1000, ... that gives at most 20 rows over the run), the first logged
  step at or after each multiple, plus the first and the last logged step.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from loralab.reports.analysis import Finding, analyse, window_size
from loralab.reports.run_log import RunLog, StepPoint, finite, read_run
from loralab.reports.run_state import run_state

MAX_LOSS_ROWS = 20
NICE_INTERVALS = (1, 2, 5, 10, 20, 25, 50)


@dataclass
class RunStatus:
    run_dir: str
    name: str
    system: str | None
    state: str  # running | finished | crashed | stalled | unknown
    state_reason: str
    error: dict | None
    pid: int | None
    host: str | None
    device: str | None
    precision: str | None
    dtype: str | None
    world_size: int | None
    segments: int
    resumed_from: str | None
    step: int
    total_steps: int | None
    percent: float | None
    epoch: float | None
    epochs: int | None
    steps_per_epoch: int | None
    effective_batch: int | None
    started_at: float | None
    last_event_at: float | None
    seconds_since_last_event: float | None
    stall_threshold_s: float | None
    elapsed_s: float | None
    s_per_step: float | None
    samples_per_s: float | None
    logged_samples_per_s: float | None
    tokens_per_s: float | None
    eta_s: float | None
    loss_first: float | None
    loss_last: float | None
    loss_window: int
    loss_start_mean: float | None
    loss_recent_mean: float | None
    loss_drop_pct: float | None
    loss_table_every: int | None
    loss_table: list[dict]
    evals: list[dict]
    checkpoints: list[dict]
    final_model: dict | None
    memory_gb: float | None
    peak_memory_gb: float | None
    params: dict | None
    config: dict | None
    max_grad_norm: float | None
    findings: list[Finding]
    problems: list[str]
    generated_at: float
    steps: list[StepPoint] = field(default_factory=list, repr=False)

    def to_dict(self, with_steps: bool = False) -> dict:
        d = asdict(self)
        if not with_steps:
            d.pop("steps")
        return d


def loss_table_interval(span_steps: int) -> int:
    """The smallest 'nice' interval giving at most MAX_LOSS_ROWS rows over ``span_steps``."""
    scale = 1
    while True:
        for base in NICE_INTERVALS:
            interval = base * scale
            if span_steps / interval <= MAX_LOSS_ROWS:
                return interval
        scale *= 10
        if scale > 10**9:  # unreachable for real runs; keeps the loop bounded
            return span_steps or 1


def loss_table_points(steps: list[StepPoint], interval: int) -> list[StepPoint]:
    """First and last logged step, and the first logged step at or after each multiple."""
    if not steps:
        return []
    chosen = {steps[0].step: steps[0]}
    next_mark = interval
    for p in steps:
        if p.step >= next_mark:
            chosen.setdefault(p.step, p)
            next_mark = (p.step // interval + 1) * interval
    chosen.setdefault(steps[-1].step, steps[-1])
    return [chosen[s] for s in sorted(chosen)]


def _speed(log: RunLog) -> float | None:
    seg = log.segments[-1]
    seg_steps = [r for r in seg.of("step") if "time" in r]
    if len(seg_steps) >= 2 and seg_steps[-1]["step"] > seg_steps[0]["step"]:
        first, last = seg_steps[0], seg_steps[-1]
    elif len(seg_steps) == 1 and seg.start is not None and seg_steps[0]["step"] > seg.start.get("step", 0):
        first, last = seg.start, seg_steps[0]
    else:
        return None
    return (float(last["time"]) - float(first["time"])) / (int(last["step"]) - int(first.get("step", 0)))


def _elapsed(log: RunLog, live: bool, now: float) -> float | None:
    total, any_start = 0.0, False
    for i, seg in enumerate(log.segments):
        if seg.start is None:
            continue
        any_start = True
        end = now if (live and i == len(log.segments) - 1) else (seg.last_time or float(seg.start["time"]))
        total += max(0.0, end - float(seg.start["time"]))
    return total if any_start else None


def _optional_float(values: list[float], pick) -> float | None:
    values = finite(values)
    return pick(values) if values else None


def _loss_fields(steps: list[StepPoint], total) -> dict:
    """The loss at start and now (window means, the drop) and the sampled loss table."""
    losses = finite([p.loss for p in steps])
    w = window_size(len(losses))
    start_mean = sum(losses[:w]) / w if losses else None
    recent_mean = sum(losses[-w:]) / w if losses else None
    interval = loss_table_interval(int(total or (steps[-1].step if steps else 0))) if steps else None
    return {
        "loss_first": losses[0] if losses else None,
        "loss_last": losses[-1] if losses else None,
        "loss_window": w,
        "loss_start_mean": start_mean,
        "loss_recent_mean": recent_mean,
        "loss_drop_pct": 100.0 * (start_mean - recent_mean) / start_mean if losses and start_mean else None,
        "loss_table_every": interval,
        "loss_table": [
            {"step": p.step, "epoch": p.epoch, "loss": p.loss, "grad_norm": p.grad_norm, "lr": p.lr}
            for p in (loss_table_points(steps, interval) if interval else [])
        ],
    }


def _speed_fields(log: RunLog, start: dict, step: int, live: bool) -> dict:
    """Seconds per step, samples/s (from the effective batch and as logged), tokens/s, ETA."""
    total = start.get("total_steps")
    s_per_step = _speed(log) if log.segments else None
    effective = None
    if all(isinstance(start.get(k), int) for k in ("batch_size", "gradient_accumulation")):
        effective = start["batch_size"] * start["gradient_accumulation"] * int(start.get("world_size") or 1)
    segment_start = float((log.segments[-1].start or {}).get("time", 0)) if log.segments else None
    last_seg_steps = [p for p in log.steps if segment_start is not None and p.time >= segment_start]
    logged_sps = last_seg_steps[-1].samples_per_s if last_seg_steps else None
    tokens = last_seg_steps[-1].tokens_per_s if last_seg_steps else None
    return {
        "effective_batch": effective,
        "s_per_step": s_per_step,
        "samples_per_s": effective / s_per_step if effective and s_per_step else None,
        "logged_samples_per_s": logged_sps if logged_sps is not None and math.isfinite(logged_sps) else None,
        "tokens_per_s": tokens if tokens is not None and math.isfinite(tokens) else None,
        "eta_s": max(0, total - step) * s_per_step if live and total and s_per_step is not None else None,
    }


def _precision(start: dict) -> str | None:
    """ "autocast bf16 (auto: CPU has AVX512-BF16)" from the 'start' event; None for older runs."""
    if "autocast" not in start:
        return None
    line = f"autocast {start.get('autocast') or 'off'}"
    return f"{line} ({start['precision']})" if start.get("precision") else line


def build_status(
    run_dir: str | Path, now: float | None = None, stall_after_s: float | None = None
) -> RunStatus:
    """Read a run directory and compute its status (no files written)."""
    now = time.time() if now is None else now
    log = read_run(run_dir)
    start = log.start or {}
    state, reason, error, threshold = run_state(log, now, stall_after_s)
    steps = log.steps
    step = max([int(r.get("step", 0)) for r in log.records], default=0)
    total = start.get("total_steps")
    live = state in ("running", "stalled")
    last_time = max((float(r["time"]) for r in log.records if "time" in r), default=None)
    typed = log.typed_config()
    max_grad_norm = typed.training.max_grad_norm if typed else None
    return RunStatus(
        run_dir=str(run_dir),
        name=str(start.get("name") or (typed.name if typed else Path(run_dir).name)),
        system=start.get("system") or (typed.system if typed else None),
        state=state,
        state_reason=reason,
        error=error,
        pid=start.get("pid"),
        host=start.get("host"),
        device=start.get("device"),
        dtype=start.get("dtype"),
        precision=_precision(start),
        world_size=start.get("world_size"),
        segments=sum(1 for s in log.segments if s.start is not None),
        resumed_from=start.get("resumed_from"),
        step=step,
        total_steps=total,
        percent=100.0 * step / total if total else None,
        epoch=steps[-1].epoch if steps else None,
        epochs=start.get("epochs"),
        steps_per_epoch=start.get("steps_per_epoch"),
        started_at=float(log.first_start["time"]) if log.first_start else None,
        last_event_at=last_time,
        seconds_since_last_event=now - last_time if last_time is not None else None,
        stall_threshold_s=threshold,
        elapsed_s=_elapsed(log, live, now),
        **_speed_fields(log, start, step, live),
        **_loss_fields(steps, total),
        evals=[asdict(e) for e in log.evals],
        checkpoints=[asdict(c) for c in log.checkpoints],
        final_model=asdict(log.final_model) if log.final_model else None,
        memory_gb=_optional_float([p.memory_gb for p in steps[-1:]], max),
        peak_memory_gb=_optional_float([p.peak_memory_gb for p in steps], max),
        params=start.get("params") or (log.training_config or {}).get("params"),
        config=log.config,
        max_grad_norm=max_grad_norm,
        findings=analyse(steps, max_grad_norm),
        problems=log.problems,
        generated_at=now,
        steps=steps,
    )
