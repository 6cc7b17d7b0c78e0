"""One way to read loralab's files, to write them atomically and to create its output folders.

A truncated or corrupt file (JSON, safetensors, ``torch.save``, ``.npy``) and an output
path that cannot be written become a :class:`~loralab.errors.LoralabError` naming the file
and what to do, which the CLI prints without a traceback (exit status 2). Every file that a
reader may open while it is being written (run.json, status.md, manifests, the GOP scorer)
goes through :func:`write_atomically`; whole folders (checkpoints, cached models) through
:func:`replace_folder`.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from loralab.errors import LoralabError


class CorruptFileError(LoralabError):
    """A file exists but cannot be read as what it should be (truncated, binary junk, ...)."""

    def __init__(self, path: str | os.PathLike, what: str, cause: object, hint: str = ""):
        self.path = Path(path)
        self.reason = f"not a readable {what} ({_short(cause)})"
        text = f"{path}: {self.reason}"
        super().__init__(text + (f"; {hint}" if hint else "; restore it or write it again"))


def _short(cause: object) -> str:
    text = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def read_json(path: str | os.PathLike, what: str = "JSON file", hint: str = "") -> Any:
    """The parsed JSON of ``path``; a missing, undecodable or malformed file is a clear error."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise LoralabError(f"{path}: {what} not found" + (f"; {hint}" if hint else "")) from None
    except (OSError, ValueError) as e:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise CorruptFileError(path, what, e, hint) from None


def read_json_lines(path: str | os.PathLike, what: str = "JSON-lines file", hint: str = "") -> list[Any]:
    """Every record of a JSON-lines file; a line that is not JSON is an error naming its number."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise CorruptFileError(
            path, what, f"bytes that are not UTF-8 text at offset {e.start}", hint
        ) from None
    except OSError as e:
        raise CorruptFileError(path, what, e, hint) from None
    records = []
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except ValueError as e:
                raise CorruptFileError(path, what, f"line {number}: {e}", hint) from None
    return records


def load_safetensors(path: str | os.PathLike, device: str = "cpu", hint: str = "") -> dict:
    """The tensors of a ``.safetensors`` file (a truncated or corrupt one is a clear error)."""
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise LoralabError(f"{path}: weights file not found" + (f"; {hint}" if hint else ""))
    try:
        return load_file(str(path), device=str(device))
    except Exception as e:  # safetensors raises its own SafetensorError (and OSError, ValueError)
        raise CorruptFileError(path, "safetensors weights file", e, hint) from None


def load_torch(path: str | os.PathLike, hint: str = "") -> Any:
    """``torch.load(weights_only=True)`` on CPU, with a corrupt or truncated file a clear error."""
    import torch

    path = Path(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise LoralabError(f"{path}: file not found" + (f"; {hint}" if hint else "")) from None
    except Exception as e:  # EOFError, UnpicklingError, RuntimeError (bad zip), ...
        raise CorruptFileError(path, "torch state file", e, hint) from None


def load_npy(path: str | os.PathLike, hint: str = "") -> Any:
    """A ``.npy`` array (no pickles); a truncated or corrupt file is a clear error."""
    import numpy as np

    path = Path(path)
    try:
        return np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise LoralabError(f"{path}: array file not found" + (f"; {hint}" if hint else "")) from None
    except (OSError, ValueError, EOFError) as e:
        raise CorruptFileError(path, ".npy array file", e, hint) from None


def ensure_output_dir(path: str | os.PathLike, option: str = "--out") -> Path:
    """Create the output folder ``path`` (and its parents) and check that files can be written
    into it, before any work: an existing file, ``/proc`` or a read-only folder is a clear
    error naming ``option``."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise LoralabError(f"{option} {path}: exists and is not a folder; choose a folder path")
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".loralab-write-test-", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        reason = e.strerror or str(e)
        where = f" ({e.filename})" if e.filename and str(e.filename) != str(path) else ""
        raise LoralabError(
            f"{option} {path}: cannot write there: {reason}{where}; choose a folder you can write to"
        ) from None
    return path


def ensure_output_file(path: str | os.PathLike, option: str = "--out") -> Path:
    """The parent folder of the output file ``path`` created and writable; ``path`` not a folder."""
    path = Path(path)
    if path.is_dir():
        raise LoralabError(f"{option} {path}: is a folder; give a file name")
    if path.parent.exists() and not path.parent.is_dir():
        raise LoralabError(f"{option} {path}: {path.parent} is a file, not a folder; choose another path")
    try:
        ensure_output_dir(path.parent)
    except LoralabError:
        raise LoralabError(
            f"{option} {path}: cannot write into {path.parent}; choose a path you can write to"
        ) from None
    return path


# --- writing -------------------------------------------------------------------------------


def write_atomically(path: str | os.PathLike, write: Callable[[Path], object]) -> Path:
    """``write(tmp)`` writes the content to a temporary file beside ``path`` (same folder, so
    same file system), which then replaces ``path`` with ``os.replace``: a reader or a crash
    sees the old file or the new one, never half of one. The temporary file is removed when
    ``write`` fails."""
    path = Path(path)
    # Hidden, and not ending in the file's suffix, so a glob for "*.jsonl" never picks it up.
    tmp = path.with_name(f".tmp-{path.name}.{os.getpid()}")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """``text`` into ``path`` (UTF-8) through :func:`write_atomically`."""
    return write_atomically(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_json_atomic(path: str | os.PathLike, data: Any) -> Path:
    """``data`` as indented JSON (anything else as ``str``) through :func:`write_atomically`."""
    return write_text_atomic(path, json.dumps(data, indent=2, default=str) + "\n")


def fsync_dir(path: str | os.PathLike) -> None:
    """Flush a folder's entries (a rename into it) to disk; a no-op where folders cannot be opened."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def fsync_tree(path: str | os.PathLike) -> None:
    """Flush every file under ``path`` and the folder itself to disk."""
    path = Path(path)
    for p in sorted(path.rglob("*")):
        if p.is_file():
            with p.open("rb") as f:
                os.fsync(f.fileno())
    fsync_dir(path)


def replace_folder(tmp: str | os.PathLike, final: str | os.PathLike, aside: str | os.PathLike,
                   durable: bool = False) -> Path:  # fmt: skip
    """Move the finished folder ``tmp`` to ``final``. An existing ``final`` is first moved to
    ``aside`` and deleted only once the new folder is in place, so no moment leaves neither.
    ``durable`` also flushes the files and the rename to disk (safe against power loss, not
    only against a killed process)."""
    tmp, final, aside = Path(tmp), Path(final), Path(aside)
    if durable:
        fsync_tree(tmp)
    old = None
    if final.exists():
        old = aside
        if old.exists():
            shutil.rmtree(old)
        os.replace(final, old)
    os.replace(tmp, final)
    if durable:
        fsync_dir(final.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return final
