"""``predictions.jsonl``: one line per (utterance, task), appended as soon as it is generated.

Appending line by line (flushed) is what makes an evaluation resumable: a killed run leaves
every finished answer on disk, and a rerun generates only the missing (id, task) pairs. A
kill in the middle of a write leaves a torn last line; it is cut off before appending again
so that it cannot glue itself to the next record.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

PREDICTIONS_FILE = "predictions.jsonl"


class PredictionStore:
    """Read-modify-append access to one epoch's predictions."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.records: dict[tuple[str, str], dict] = {}
        self._load()

    def _load(self) -> None:
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        if data and not data.endswith(b"\n"):
            # Torn last line from a kill mid-write: drop it, it will be generated again.
            keep = data.rfind(b"\n") + 1
            with self.path.open("r+b") as f:
                f.truncate(keep)
            data = data[:keep]
        for line in data.decode("utf-8").splitlines():
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            self.records[(record["id"], record["task"])] = record

    def __contains__(self, key: tuple[str, str]) -> bool:
        return key in self.records

    def __len__(self) -> int:
        return len(self.records)

    def get(self, utterance_id: str, task: str) -> dict | None:
        return self.records.get((utterance_id, task))

    def append_many(self, records: list[dict]) -> None:
        """Write records (each with at least 'id', 'task', 'raw') and flush them to the OS."""
        if not records:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as f:
            for record in records:
                f.write(json.dumps(record, ensure_ascii=False) + "\n")
            f.flush()
        for record in records:
            self.records[(record["id"], record["task"])] = record

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)
        self.records.clear()
