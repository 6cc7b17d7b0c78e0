"""One ``evaluate`` at a time per evaluation folder (``<run>/eval/`` or ``<run>/eval-<split>/``).

Two evaluations of one run would append to the same ``predictions.jsonl`` and write the same
``settings.json`` and tables. The lock is an advisory ``flock`` on ``<eval folder>/.evaluate.lock``:
the kernel releases it when its process ends, however it ends (no stale lock to take over), and
the file names the holder for the message. Training the run meanwhile is not blocked (it writes
checkpoints, not evaluations).
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import sys
from collections.abc import Iterator
from pathlib import Path

from loralab.errors import LoralabError

LOCK_NAME = ".evaluate.lock"


@contextlib.contextmanager
def evaluation_lock(eval_dir: Path) -> Iterator[None]:
    """Hold the evaluation folder's lock, or raise a LoralabError naming the process that does."""
    import fcntl

    eval_dir.mkdir(parents=True, exist_ok=True)
    path = eval_dir / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(path)
            raise LoralabError(
                f"{eval_dir} is being written by another 'loralab evaluate' ({holder}): two evaluations of "
                "one run would mix their predictions. Wait for it to finish, or stop it and run again "
                "(it resumes where it stopped)"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "command": shlex.join(sys.argv)}).encode())
        yield
    finally:
        os.close(fd)  # releases the flock


def _holder(path: Path) -> str:
    try:
        data = json.loads(path.read_text())
        return f"pid {data['pid']}: {data.get('command', '?')}"
    except (OSError, ValueError, KeyError, TypeError):
        return "a process that has not written its name yet"
