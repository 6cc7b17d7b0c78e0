"""Deciding, before anything is loaded, whether a run directory may be started or resumed."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from loralab.engine import checkpoint as ckpt
from loralab.engine.events import EVENTS_FILE
from loralab.errors import LoralabError

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
    epoch = int(ckpt.read_trainer_state(last)["epoch"])
    if epoch >= epochs and (run_dir / FINAL_MODEL_DIR).exists():
        raise LoralabError(
            f"{run_dir} already finished ({last.name} and {FINAL_MODEL_DIR}/ exist): nothing to resume. "
            "To train longer, start a new run from it or raise training.epochs in a new run directory."
        )
    return last
