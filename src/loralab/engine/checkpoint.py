"""Per-epoch checkpoints that a kill at any moment cannot leave half-written.

Layout of ``<run>/checkpoint-epoch-N/``::

    <whatever parts.save_trainable writes>   adapter + unfrozen weights (safetensors)
    optimizer.pt, scheduler.pt               torch.save of state dicts (weights_only-loadable)
    rng_state_<rank>.pth                     python, numpy, torch, cuda RNG of each process
    <the model card>                         the checkpoint describing itself (versioned): system,
                                             epoch, step, resolved config, base model, library
                                             versions (loralab.engine.model_card)
    trainer_state.json                       epoch, global_step, config_hash, world_size (written last)

Everything is written into ``.tmp-checkpoint-epoch-N`` first, fsynced, and then renamed with
``os.replace`` (atomic on POSIX). A directory named ``checkpoint-epoch-N`` therefore is
always complete; temporary directories are ignored by :func:`find_last_checkpoint` and
removed at the next save.
"""

from __future__ import annotations

import json
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from loralab.errors import LoralabError
from loralab.safe_files import CorruptFileError, load_torch, replace_folder

CHECKPOINT_PREFIX = "checkpoint-epoch-"
TMP_PREFIX = ".tmp-"
STATE_FILE = "trainer_state.json"
OPTIMIZER_FILE = "optimizer.pt"
SCHEDULER_FILE = "scheduler.pt"
_CHECKPOINT_RE = re.compile(rf"^{CHECKPOINT_PREFIX}(\d+)$")


def checkpoint_dir(run_dir: Path, epoch: int) -> Path:
    return Path(run_dir) / f"{CHECKPOINT_PREFIX}{epoch}"


def tmp_checkpoint_dir(run_dir: Path, epoch: int) -> Path:
    return Path(run_dir) / f"{TMP_PREFIX}{CHECKPOINT_PREFIX}{epoch}"


def rng_file(rank: int) -> str:
    return f"rng_state_{rank}.pth"


def list_checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """Complete checkpoints (epoch, path), oldest first. Temporary directories are skipped."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return []
    found = []
    for p in run_dir.iterdir():
        m = _CHECKPOINT_RE.match(p.name)
        if m and p.is_dir():
            found.append((int(m.group(1)), p))
    return sorted(found)


def find_last_checkpoint(run_dir: Path) -> Path | None:
    """The newest checkpoint with its trainer_state.json readable, or None.

    Only a directory renamed into place is considered; one without a readable state file
    (it can only come from a hand-made copy) is skipped in favour of an older one.
    """
    for _, path in reversed(list_checkpoints(run_dir)):
        try:
            json.loads((path / STATE_FILE).read_text())
        except (OSError, ValueError):  # ValueError: bad JSON or bytes that are not UTF-8
            continue
        return path
    return None


def read_trainer_state(path: Path) -> dict:
    try:
        return json.loads((Path(path) / STATE_FILE).read_text())
    except (OSError, ValueError) as e:
        raise LoralabError(f"{path}: not a complete checkpoint ({STATE_FILE} unreadable: {e})") from None


# --- RNG -----------------------------------------------------------------------------------


def capture_rng_state() -> dict[str, Any]:
    """All RNG states of this process, as types ``torch.load(weights_only=True)`` accepts."""
    version, mt_state, gauss = random.getstate()
    np_state = np.random.get_state(legacy=False)
    state: dict[str, Any] = {
        "python": {"version": version, "state": list(mt_state), "gauss": gauss},
        "numpy": {
            "bit_generator": np_state["bit_generator"],
            "key": torch.from_numpy(np_state["state"]["key"].astype(np.int64)),
            "pos": int(np_state["state"]["pos"]),
            "has_gauss": int(np_state["has_gauss"]),
            "gauss": float(np_state["gauss"]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    if hasattr(torch, "mps") and torch.backends.mps.is_available():
        state["mps"] = torch.mps.get_rng_state()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    py = state["python"]
    random.setstate((py["version"], tuple(py["state"]), py["gauss"]))
    npst = state["numpy"]
    np.random.set_state(
        {
            "bit_generator": npst["bit_generator"],
            "state": {"key": npst["key"].numpy().astype(np.uint32), "pos": npst["pos"]},
            "has_gauss": npst["has_gauss"],
            "gauss": npst["gauss"],
        }
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    if "mps" in state and hasattr(torch, "mps") and torch.backends.mps.is_available():
        torch.mps.set_rng_state(state["mps"])


# --- writing -------------------------------------------------------------------------------


def dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def prepare_tmp_dir(run_dir: Path, epoch: int) -> Path:
    """A fresh, empty temporary directory for epoch ``epoch`` (leftovers of a crash removed)."""
    tmp = tmp_checkpoint_dir(run_dir, epoch)
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    return tmp


def save_rng(tmp: Path, rank: int) -> None:
    torch.save(capture_rng_state(), tmp / rng_file(rank))


def write_states(tmp: Path, optimizer_state: dict | None, scheduler_state: dict, trainer_state: dict) -> None:
    """Optimizer and scheduler state, then trainer_state.json (the completeness marker)."""
    if optimizer_state is not None:
        torch.save(optimizer_state, tmp / OPTIMIZER_FILE)
    torch.save(scheduler_state, tmp / SCHEDULER_FILE)
    (tmp / STATE_FILE).write_text(json.dumps(trainer_state, indent=2) + "\n")


def commit(tmp: Path, final: Path) -> Path:
    """Atomically move a finished temporary checkpoint into place."""
    # Only after a resume that re-trains an epoch is there an old one: moved aside (a name that
    # remove_stale_tmp_dirs deletes), never half-deleted. fsync: a kill -9 keeps the page
    # cache; flushing makes the rename safe against power loss too.
    aside = final.with_name(f"{TMP_PREFIX}old-{final.name}")
    replace_folder(tmp, final, aside, durable=True)
    return final


def remove_stale_tmp_dirs(run_dir: Path) -> list[Path]:
    """Delete temporary checkpoint directories left by a killed run; returns what was removed."""
    removed = []
    run_dir = Path(run_dir)
    if run_dir.is_dir():
        for p in run_dir.iterdir():
            if p.name.startswith(TMP_PREFIX + CHECKPOINT_PREFIX) or p.name.startswith(TMP_PREFIX + "old-"):
                shutil.rmtree(p, ignore_errors=True)
                removed.append(p)
    return removed


# --- reading -------------------------------------------------------------------------------


def load_torch_file(path: Path) -> Any:
    if not path.exists():
        raise LoralabError(f"{path.parent}: checkpoint is missing {path.name}; resume from an earlier one")
    return load_torch(path, hint="the checkpoint is damaged; resume from an earlier one")


def load_rng(path: Path, rank: int) -> dict | None:
    """This rank's RNG state, or None when the checkpoint came from fewer processes."""
    f = path / rng_file(rank)
    return load_torch(f, hint="the checkpoint is damaged; resume from an earlier one") if f.exists() else None


def verify_checkpoint(path: Path) -> None:
    """Cheap structural checks of every file of a checkpoint (safetensors headers against the
    file size, the zip directory of torch files, the JSON); raises CorruptFileError naming the
    first damaged file. Catches truncation before minutes of model loading."""
    import zipfile

    from safetensors import safe_open

    for file in sorted(Path(path).rglob("*")):
        if not file.is_file():
            continue
        try:
            if file.suffix == ".safetensors":
                with safe_open(str(file), framework="pt"):
                    pass
            elif file.suffix in (".pt", ".pth"):  # what torch.save writes here (zip archives)
                with zipfile.ZipFile(file) as z:
                    z.namelist()
            elif file.suffix == ".json":
                json.loads(file.read_text(encoding="utf-8"))
        except Exception as e:  # SafetensorError, BadZipFile, JSON/Unicode errors, OSError
            raise CorruptFileError(file, f"{file.suffix} file", e) from None
