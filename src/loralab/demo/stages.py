"""Named, timed stages of the demo: each one's wall time and outcome end up in summary.json."""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field


@dataclass
class StageRecord:
    """One stage: ``system`` ('setup', 'speech', 'protein'), ``name``, wall seconds, outcome.

    ``cpu_seconds`` is this process's CPU time over the stage (all its threads): about
    ``seconds x threads`` on an idle machine, much less when other work shares the cores,
    so a slow stage can be told from a busy machine.
    """

    system: str
    name: str
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    status: str = "running"  # ok | failed | skipped
    detail: str = ""


@dataclass
class StageClock:
    """Times stages and prints a banner per stage (``log`` is print, or a test's collector)."""

    log: Callable[[str], None] = print
    records: list[StageRecord] = field(default_factory=list)
    started: float = field(default_factory=time.perf_counter)

    @contextmanager
    def stage(self, system: str, name: str, what: str = ""):
        record = StageRecord(system, name)
        self.records.append(record)
        self.log(f"\n=== [{system}] {name}{': ' + what if what else ''}")
        start, cpu_start = time.perf_counter(), time.process_time()
        try:
            yield record
        except BaseException as e:
            record.status = "failed"
            record.detail = f"{type(e).__name__}: {e}"
            raise
        finally:
            record.seconds = round(time.perf_counter() - start, 1)
            record.cpu_seconds = round(time.process_time() - cpu_start, 1)
            if record.status == "running":
                record.status = "ok"
            self.log(f"--- [{system}] {name}: {record.status} in {record.seconds:.1f} s")

    def skip(self, system: str, name: str, why: str) -> None:
        self.records.append(StageRecord(system, name, status="skipped", detail=why))
        self.log(f"--- [{system}] {name}: skipped ({why})")

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def seconds_by_system(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for r in self.records:
            out[r.system] = round(out.get(r.system, 0.0) + r.seconds, 1)
        return out

    def as_list(self) -> list[dict]:
        return [asdict(r) for r in self.records]


def failure_text(error: BaseException) -> str:
    """One line for a user-facing error; a traceback tail for a bug (so it can be reported)."""
    from loralab.config import ConfigError
    from loralab.errors import LoralabError

    if isinstance(error, (LoralabError, ConfigError)):
        return f"{type(error).__name__}: {error}"
    tail = "".join(traceback.format_exception(error)[-3:]).strip()
    return f"{type(error).__name__}: {error}\n{tail}"


def check_row(name: str, value, target: str, passed: bool, required: bool) -> dict:
    """One of the demo's checks as summary.json lists it (a required one that fails fails the demo)."""
    return {"check": name, "value": value, "target": target, "passed": bool(passed), "required": required}
