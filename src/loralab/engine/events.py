"""The JSONL event log of a run (``<run_dir>/events.jsonl``).

The trainer appends one JSON object per line and flushes each; ``loralab status`` reads
it while the run is going and after it ended or crashed. Every record has ``event``
(below), ``time`` (Unix seconds) and ``step`` (optimizer steps done so far).

=============  ====================================================================
event          further fields
=============  ====================================================================
start          pid, host, name, system, epochs, steps_per_epoch, total_steps,
               batch_size, gradient_accumulation, world_size, device, dtype,
               params: {group: {trainable, total}}, resumed_from (path or null)
step           epoch (float, fractional progress), loss, grad_norm, lr, samples_per_s,
               tokens_per_s, memory_gb (allocated now), peak_memory_gb
checkpoint     epoch (int, completed), path, size_bytes
eval           epoch (int), metrics: {name: value}
heartbeat      (written at least every 60 s during long work, e.g. evaluation)
error          kind ('nan' | 'oom' | 'exception' | 'interrupted'), message, ids (list)
end            status 'finished', final_model (path)
=============  ====================================================================

A NaN or infinite number (a NaN loss, an undefined metric) is written ``null``
(:mod:`loralab.json_numbers`); :func:`to_float` reads it back as NaN.

A run whose last record is ``end`` finished; ``error`` crashed; otherwise it is running
if ``pid`` on ``host`` is alive, else it crashed without a word (killed).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from loralab.json_numbers import jsonable, to_float  # noqa: F401  (to_float: the readers')

EVENTS_FILE = "events.jsonl"


class EventLog:
    """Append-only writer. Only the main process writes (pass enabled=False elsewhere)."""

    def __init__(self, run_dir: str | os.PathLike, enabled: bool = True):
        self.path = Path(run_dir) / EVENTS_FILE
        self.enabled = enabled
        if enabled:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._end_partial_line()

    def _end_partial_line(self) -> None:
        # A run killed mid-write leaves a line without its newline; a resumed run must not
        # glue its first record onto it (read_events skips the broken line alone).
        if self.path.exists() and self.path.stat().st_size > 0:
            with self.path.open("rb") as f:
                f.seek(-1, os.SEEK_END)
                last = f.read(1)
            if last != b"\n":
                with self.path.open("a") as f:
                    f.write("\n")

    def write(self, event: str, step: int, **fields: Any) -> dict:
        record = {"event": event, "time": time.time(), "step": int(step), **jsonable(fields)}
        if self.enabled:
            with self.path.open("a") as f:
                f.write(json.dumps(record) + "\n")
                f.flush()
        return record


def read_events(run_dir: str | os.PathLike) -> list[dict]:
    """All complete records; a half-written last line (a crash mid-write) is ignored."""
    path = Path(run_dir) / EVENTS_FILE
    if not path.exists():
        return []
    records = []
    # Undecodable bytes (a damaged disk block) spoil their line only, like a torn line.
    for line in path.read_bytes().decode("utf-8", errors="replace").splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            records.append(json.loads(line))
        except ValueError:
            continue
    return records
