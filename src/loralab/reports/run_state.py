"""A run's state from its event log: finished, crashed, stalled or running (see
:mod:`loralab.reports.status` for what each means and how a stall is told apart)."""

from __future__ import annotations

import socket
import statistics
from pathlib import Path

from loralab.engine.run_dir import FINAL_MODEL_DIR
from loralab.engine.run_lock import pid_alive
from loralab.reports.run_log import RunLog

STALL_FLOOR_S = 300.0
STALL_GAP_FACTOR = 10.0


def _stall_threshold(segment_records: list[dict]) -> float:
    times = sorted(float(r["time"]) for r in segment_records if "time" in r)
    gaps = [b - a for a, b in zip(times, times[1:])]
    # The gap from start to the first step includes one-off warm-up: leave it out.
    gaps = gaps[1:] if len(gaps) > 1 else gaps
    if len(gaps) < 2:
        return STALL_FLOOR_S
    return max(STALL_FLOOR_S, STALL_GAP_FACTOR * statistics.median(gaps))


FINAL_MODEL = FINAL_MODEL_DIR


def _final_model_written(log: RunLog, start: dict) -> bool:
    """The run's final_model/ exists and was written after this segment started."""
    if log.final_model is None:
        return False
    try:
        return Path(log.final_model.path).stat().st_mtime >= float(start.get("time", 0)) - 1
    except (OSError, TypeError, ValueError):
        return False


def run_state(
    log: RunLog, now: float, stall_after_s: float | None
) -> tuple[str, str, dict | None, float | None]:
    """(state, reason, error, stall threshold) for the latest segment."""
    seg = log.segments[-1] if log.segments else None
    if seg is None or seg.start is None:
        return "unknown", "the event log has no 'start' record (not written by 'loralab train'?)", None, None
    ends = seg.of("end")
    if ends:
        return "finished", f"finished ({ends[-1].get('status', 'finished')})", None, None
    errors = seg.of("error")
    if errors:
        e = errors[-1]
        kind = e.get("kind", "exception")
        error = {k: e.get(k) for k in ("kind", "message", "ids", "step", "time")}
        return "crashed", f"crashed at step {e.get('step')} ({kind}): {e.get('message', '')}", error, None
    threshold = stall_after_s if stall_after_s is not None else _stall_threshold(seg.records)
    last = seg.last_time or float(seg.start["time"])
    silent = now - last
    pid, host = seg.start.get("pid"), seg.start.get("host")
    same_host = host is None or host == socket.gethostname()
    if same_host and isinstance(pid, int):
        if not pid_alive(pid) and _final_model_written(log, seg.start):
            return (
                "finished",
                f"finished: {FINAL_MODEL}/ was written after the run started (the event log's last record "
                "is torn or missing, e.g. a full disk or a kill after the model was saved)",
                None,
                None,
            )
        if not pid_alive(pid):
            error = {
                "kind": "killed",
                "message": f"process {pid} is gone without an 'end' or 'error' record",
                "ids": [],
                "step": seg.records[-1].get("step"),
                "time": last,
            }
            return (
                "crashed",
                f"process {pid} on {host} is gone without an 'end' or 'error' record "
                "(killed, e.g. kill -9, the out-of-memory killer or a lost machine)",
                error,
                threshold,
            )
        if silent > threshold:
            return (
                "stalled",
                f"pid {pid} is alive but silent for {silent:.0f}s (> {threshold:.0f}s)",
                None,
                threshold,
            )
        return "running", f"pid {pid} on {host} is alive", None, threshold
    where = f"pid {pid} on {host} (another machine: liveness not checked)"
    if silent > threshold:
        return "stalled", f"{where}: silent for {silent:.0f}s (> {threshold:.0f}s)", None, threshold
    return "running", f"{where}: last record {silent:.0f}s ago", None, threshold
