"""One process (group) per run directory: ``<run_dir>/.lock`` names the owner.

The lock file is created atomically (``O_CREAT | O_EXCL``) and holds JSON
``{pid, host, started, command, proc_start}``. A second ``train`` / ``train --resume`` on a
run whose owner is alive on this host is refused with a :class:`LoralabError`; a lock whose
owner is dead (killed with ``kill -9``, the machine rebooted) is taken over, saying so; a
lock from another host cannot be checked from here and is refused with how to remove it.
The lock is released on a normal exit, on an exception and on Ctrl-C.

In a distributed run only the main process holds the lock (:func:`hold_run_dir`); its
verdict is broadcast so that every rank goes on, or stops with the same message.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import socket
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

from loralab.errors import LoralabError

LOCK_FILE = ".lock"
_HELD: dict[str, int] = {}  # lock path -> depth, for the locks this process holds (re-entrant)
_READ_TRIES = 5  # an unreadable lock may be one being written this instant: look again briefly


def _stderr(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _proc_start(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), to tell a reused pid apart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2 :].split()  # after "pid (comm) ": state is fields[0]
    return fields[19] if len(fields) > 19 else None


def pid_alive(pid: int, proc_start: str | None = None) -> bool:
    """Whether ``pid`` is a running process on this host (and the same one, where known)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: it exists
    except OSError:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat[stat.rfind(")") + 2 :].split()[0] in ("Z", "X"):
            return False  # exited, not yet reaped
    except (OSError, IndexError):
        pass
    now = _proc_start(pid)
    return not (proc_start and now and proc_start != now)


def _read(path: Path) -> tuple[bytes, dict | None]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return b"", {}
    except OSError:
        return b"", None
    try:
        owner = json.loads(raw.decode("utf-8"))
        int(owner["pid"])
        str(owner["host"])
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        return raw, None
    return raw, owner


def _remove_if_unchanged(path: Path, raw: bytes) -> bool:
    """Remove the stale lock ``path`` only if it still holds ``raw`` (another process may
    have taken it over meanwhile); True when it was removed or is gone."""
    aside = path.with_name(f"{LOCK_FILE}.stale-{os.getpid()}")
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return True
    try:
        if aside.read_bytes() == raw:
            return True
        with contextlib.suppress(FileExistsError):
            os.link(aside, path)  # a live lock moved aside by mistake: put it back
        return False
    finally:
        with contextlib.suppress(OSError):
            aside.unlink()


def _describe(owner: dict) -> str:
    started = owner.get("started") or "an unknown time"
    command = owner.get("command")
    return f"pid {owner['pid']} on {owner['host']} (since {started}{'; ' + command if command else ''})"


def _acquire(run_dir: Path, path: Path, say: Callable[[str], None] | None) -> bytes:
    host = socket.gethostname()
    record = {
        "pid": os.getpid(),
        "host": host,
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": shlex.join(sys.argv),
        "proc_start": _proc_start(os.getpid()),
    }
    data = (json.dumps(record) + "\n").encode()
    unreadable = 0
    for _ in range(20):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            pass
        except OSError as e:
            raise LoralabError(f"cannot create the lock file {path}: {e.strerror or e}") from None
        else:
            try:
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
            return data
        raw, owner = _read(path)
        if owner == {}:
            continue  # released meanwhile: try again
        if owner is None:
            unreadable += 1
            if unreadable < _READ_TRIES:
                time.sleep(0.1)
                continue
            raise LoralabError(
                f"{path} exists but is not a loralab lock that can be read, so {run_dir} may be in use. "
                f"If no process is training {run_dir}, remove {path} and run again."
            )
        pid = int(owner["pid"])
        if owner["host"] != host:
            raise LoralabError(
                f"{run_dir} is locked by {_describe(owner)}; this is {host}, where that process cannot be "
                f"checked. Only one process may train a run at a time. If that run has ended or {owner['host']} "
                f"is gone, remove {path} and run again."
            )
        if pid != os.getpid() and pid_alive(pid, owner.get("proc_start")):
            raise LoralabError(
                f"{run_dir} is being trained by {_describe(owner)}. Only one process may train a run at a "
                f"time: wait for it to finish, or stop it (kill {pid}) and continue with --resume."
            )
        if _remove_if_unchanged(path, raw) and say is not None:
            say(f"{run_dir}: taking over the stale lock of {_describe(owner)}, which is no longer running.")
    raise LoralabError(f"could not take the lock {path}: other processes keep taking it; try again")


@contextlib.contextmanager
def run_lock(run_dir: Path | str, say: Callable[[str], None] | None = _stderr) -> Iterator[Path]:
    """Hold ``<run_dir>/.lock`` for this process (creating ``run_dir`` if needed).

    Re-entrant within a process. Raises :class:`LoralabError` when another live process
    holds it; a stale lock is taken over with a message through ``say``.
    """
    run_dir = Path(run_dir)
    path = (run_dir / LOCK_FILE).absolute()
    key = str(path)
    if key in _HELD:
        _HELD[key] += 1
        try:
            yield path
        finally:
            _HELD[key] -= 1
        return
    created = not run_dir.exists()
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise LoralabError(f"cannot create the run directory {run_dir}: {e.strerror or e}") from None
    try:
        data = _acquire(run_dir, path, say)
    except BaseException:
        if created:
            with contextlib.suppress(OSError):
                run_dir.rmdir()
        raise
    _HELD[key] = 1
    try:
        yield path
    finally:
        del _HELD[key]
        with contextlib.suppress(OSError):
            if path.read_bytes() == data:  # never remove a lock someone else now holds
                path.unlink()
        if created:
            with contextlib.suppress(OSError):
                run_dir.rmdir()  # only if nothing was written: a run that never started


@contextlib.contextmanager
def hold_run_dir(run_dir: Path | str, accelerator) -> Iterator[None]:
    """:func:`run_lock` for a process group: the main process holds the lock and every rank
    learns whether it got it, so that all go on or all stop with the same error."""
    if accelerator is None or accelerator.num_processes <= 1:
        with run_lock(run_dir, say=_stderr):
            yield
        return
    from accelerate.utils import broadcast_object_list

    with contextlib.ExitStack() as stack:
        refusal: list = [None]
        error: BaseException | None = None
        if accelerator.is_main_process:
            try:
                stack.enter_context(run_lock(run_dir, say=_stderr))
            except Exception as e:
                error = e
                refusal[0] = str(e) if isinstance(e, LoralabError) else f"{type(e).__name__}: {e}"
        broadcast_object_list(refusal)
        if error is not None:
            raise error
        if refusal[0] is not None:
            raise LoralabError(refusal[0])
        yield
