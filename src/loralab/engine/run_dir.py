"""Deciding, before anything is loaded, whether a run directory may be started or resumed."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from loralab.engine import checkpoint as ckpt
from loralab.engine.events import EVENTS_FILE
from loralab.errors import LoralabError
from loralab.safe_files import CorruptFileError

FINAL_MODEL_DIR = "final_model"


def _stderr(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def check_run_dir(
    run_dir: Path, resume: bool, epochs: int, say: Callable[[str], None] | None = _stderr
) -> Path | None:
    """The checkpoint to resume from (None: start from the beginning).

    Without ``resume``, a directory that already holds a run is refused rather than
    overwritten. With ``resume``, the newest complete checkpoint is used; if the earlier
    run died before its first checkpoint, training starts again from the beginning.
    """
    run_dir = Path(run_dir)
    checkpoints = ckpt.list_checkpoints(run_dir)
    started = (run_dir / EVENTS_FILE).exists() or bool(checkpoints) or (run_dir / FINAL_MODEL_DIR).exists()
    if not resume:
        if started:
            what = ", ".join(
                [p.name for _, p in checkpoints][-3:]
                + [n for n in (EVENTS_FILE, FINAL_MODEL_DIR) if (run_dir / n).exists()]
            )
            raise LoralabError(
                f"{run_dir} already holds a run ({what}). Continue it with --resume, or start a new one "
                "elsewhere (--output-dir DIR, or another name)."
            )
        return None
    last = ckpt.find_last_checkpoint(run_dir)
    if last is None:
        if say is not None:
            state = "no run yet" if not started else "no complete checkpoint (the run stopped during epoch 1)"
            say(f"--resume: {run_dir} has {state}; starting from the beginning.")
        return None
    try:
        ckpt.verify_checkpoint(last)
    except CorruptFileError as e:
        raise corrupt_checkpoint_error(run_dir, last, e) from None
    epoch = int(ckpt.read_trainer_state(last)["epoch"])
    if epoch >= epochs and (run_dir / FINAL_MODEL_DIR).exists():
        raise LoralabError(
            f"{run_dir} already finished ({last.name} and {FINAL_MODEL_DIR}/ exist): nothing to resume. "
            "To train longer, start a new run from it or raise training.epochs in a new run directory."
        )
    return last


def corrupt_checkpoint_error(run_dir: Path, last: Path, cause: Exception) -> LoralabError:
    """``--resume`` met a damaged checkpoint: name the file and offer the previous complete one."""
    checkpoints = [path for _, path in ckpt.list_checkpoints(run_dir)]
    older = checkpoints[: checkpoints.index(last)] if last in checkpoints else []
    previous = None
    for path in reversed(older):
        try:
            ckpt.read_trainer_state(path)
            ckpt.verify_checkpoint(path)
        except LoralabError:
            continue
        previous = path
        break
    what = f"{cause.path}: {cause.reason}" if isinstance(cause, CorruptFileError) else str(cause)
    text = f"--resume: the last checkpoint is damaged: {what}."
    if previous is not None:
        text += (
            f"\nThe previous complete checkpoint is {previous}. To continue from it, move the damaged one "
            f"aside and resume again:\n  mv {last} {last.parent / ('damaged-' + last.name)}\n  "
            "then rerun the same command with --resume"
        )
    else:
        text += f"\nNo earlier complete checkpoint in {run_dir}: move {last} aside to start again from the beginning."
    return LoralabError(text)
