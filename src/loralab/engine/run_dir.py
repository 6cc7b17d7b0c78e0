"""The run directory: its layout (:class:`RunDir`, the one owner), and deciding, before anything
is loaded, whether a run directory may be started or resumed (:func:`check_run_dir`)."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from loralab.engine import checkpoint as ckpt
from loralab.engine.events import EVENTS_FILE
from loralab.errors import LoralabError
from loralab.safe_files import CorruptFileError

FINAL_MODEL_DIR = "final_model"


RUN_CONFIG_FILE = "training_config.json"
EVAL_DIR = "eval"
_EVAL_ROOT_RE = re.compile(r"^eval(-(?P<split>.+))?$")
_EVAL_EPOCH_RE = re.compile(r"^epoch-(\d+)$")
_SELECTION_HELP = "use all, last, an epoch number or a list like 0,2,3 (0 = the base model)"


@dataclass(frozen=True)
class Selected:
    """One model a ``--checkpoints`` selection names: ``path`` None is the base model (epoch 0)."""

    epoch: int
    path: Path | None
    step: int = 0

    @property
    def label(self) -> str:
        return "base model (no training)" if self.path is None else self.path.name


class RunDir:
    """The one owner of a run directory's layout; every other module asks it.

    ::

        <run>/training_config.json        the resolved config and how the run was made
        <run>/events.jsonl                the event log (loralab.engine.events)
        <run>/checkpoint-epoch-N/         complete checkpoints (loralab.engine.checkpoint), each
                                          with its model card (loralab.engine.model_card)
        <run>/final_model/                what inference needs (the system's save_final) and the card
        <run>/eval/epoch-N/               evaluation of the test split, per epoch
        <run>/eval-<split>/epoch-N/       evaluation of any other split

    ``--checkpoints`` (:meth:`select`): ``all`` = epoch 0 (the base model, no adapter) and every
    trained epoch; ``last`` = the newest trained epoch; ``N`` or ``N,M,...`` = those epochs.
    ``final_model/`` stands for the last epoch when that epoch's checkpoint folder is gone.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    # --- the run config -----------------------------------------------------------------------

    @property
    def config_file(self) -> Path:
        return self.path / RUN_CONFIG_FILE

    @property
    def events_file(self) -> Path:
        return self.path / EVENTS_FILE

    def is_run(self) -> bool:
        """A folder that holds a run (an event log or a run config)."""
        return self.path.is_dir() and (self.events_file.exists() or self.config_file.exists())

    def require(self) -> RunDir:
        """Self, when the folder is a run with its config; else a clear error."""
        if self.path.exists() and not self.path.is_dir():
            raise LoralabError(
                f"'{self.path}' is a file, not a run directory (pass the folder 'loralab train' printed)"
            )
        if not self.path.is_dir():
            raise LoralabError(
                f"run directory '{self.path}' does not exist (pass the folder 'loralab train' printed)"
            )
        if not self.config_file.is_file():
            raise LoralabError(
                f"{self.path} has no {RUN_CONFIG_FILE}: not a loralab run directory (point at the folder "
                "'loralab train' printed, e.g. output/paper_r64)"
            )
        return self

    def run_record(self) -> dict:
        """``training_config.json`` as written (config, versions, params, plan, ...)."""
        self.require()
        try:
            data = json.loads(self.config_file.read_text())
        except (OSError, ValueError) as e:  # ValueError: bad JSON, or bytes that are not UTF-8
            raise LoralabError(f"{self.config_file}: unreadable ({e})") from e
        if not isinstance(data, dict) or not isinstance(data.get("config"), dict):
            raise LoralabError(f"{self.config_file}: it should hold the resolved config under 'config'")
        return data

    def raw_config(self) -> dict:
        """The resolved config as a plain dict."""
        return self.run_record()["config"]

    def config(self):
        """The typed ExperimentConfig the run was trained with."""
        from loralab.config.loader import build_dataclass
        from loralab.config.schema import ExperimentConfig

        return build_dataclass(ExperimentConfig, self.raw_config(), str(self.config_file))

    @property
    def system(self) -> str:
        """The run's system ('speech', 'protein')."""
        system = self.raw_config().get("system")
        if not isinstance(system, str):
            raise LoralabError(f"{self.config_file}: cannot read the run's system")
        return system

    # --- trained models -----------------------------------------------------------------------

    @property
    def final_model(self) -> Path:
        return self.path / FINAL_MODEL_DIR

    def has_final_model(self) -> bool:
        return self.final_model.is_dir()

    def checkpoints(self) -> dict[int, Path]:
        """epoch -> ``checkpoint-epoch-N/``, complete ones only (temporary folders are skipped)."""
        return dict(ckpt.list_checkpoints(self.path))

    def incomplete_checkpoints(self) -> dict[int, Path]:
        """epoch -> ``.tmp-checkpoint-epoch-N/`` (a save that never finished)."""
        if not self.path.is_dir():
            return {}
        found = {}
        for p in self.path.iterdir():
            if p.is_dir() and p.name.startswith(ckpt.TMP_PREFIX + ckpt.CHECKPOINT_PREFIX):
                tail = p.name.removeprefix(ckpt.TMP_PREFIX + ckpt.CHECKPOINT_PREFIX)
                if tail.isdigit():
                    found[int(tail)] = p
        return dict(sorted(found.items()))

    def checkpoint(self, epoch: int) -> Path:
        return ckpt.checkpoint_dir(self.path, epoch)

    def last_checkpoint(self) -> Path | None:
        """The newest checkpoint with a readable trainer state (what ``--resume`` continues)."""
        return ckpt.find_last_checkpoint(self.path)

    def trained_models(self, final_epoch: int | None = None) -> dict[int, Path]:
        """epoch -> folder of every trained model: the checkpoints, and ``final_model/`` for the
        last epoch (``final_epoch``, default the config's ``training.epochs``) when its
        checkpoint is gone."""
        found = self.checkpoints()
        if self.has_final_model():
            if final_epoch is None:
                final_epoch = int(self.raw_config().get("training", {}).get("epochs", 0))
            found.setdefault(final_epoch, self.final_model)
        return dict(sorted(found.items()))

    def select(self, spec: str | int, final_epoch: int | None = None) -> list[Selected]:
        """The models a ``--checkpoints`` value names (the class doc's grammar), oldest first."""
        available = self.trained_models(final_epoch)
        text = str(spec).strip().lower()
        if text in ("all", "last") and not available:
            raise LoralabError(
                f"{self.path} has no checkpoint-epoch-N/ folders and no final_model/: nothing trained to "
                "evaluate (is training still in its first epoch?). '--checkpoints 0' evaluates the base "
                "model alone."
            )
        if text == "all":
            epochs = [0, *available]
        elif text == "last":
            epochs = [max(available)]
        else:
            epochs = _parse_epochs(spec)
            missing = [e for e in epochs if e != 0 and e not in available]
            if missing:
                have = ", ".join(str(e) for e in available) or "none"
                raise LoralabError(
                    f"{self.path}: no checkpoint for epoch(s) {missing} (available: {have}; 0 = base model)"
                )
        return [
            Selected(0, None) if e == 0 else Selected(e, available[e], step_of(available[e])) for e in epochs
        ]

    # --- evaluation folders -------------------------------------------------------------------

    def eval_dir(self, split: str = "test") -> Path:
        """``eval/`` for the test split, ``eval-<split>/`` for any other."""
        return self.path / (EVAL_DIR if split == "test" else f"{EVAL_DIR}-{split}")

    def eval_epoch_dir(self, split: str, epoch: int) -> Path:
        return self.eval_dir(split) / f"epoch-{epoch}"

    def eval_folders(self) -> list[tuple[str, int, Path]]:
        """(split, epoch, folder) of every evaluation folder present, by split then epoch."""
        if not self.path.is_dir():
            return []
        found = []
        for root in self.path.iterdir():
            if (m := _EVAL_ROOT_RE.match(root.name)) and root.is_dir():
                found += [(m.group("split") or "test", e, d) for e, d in epoch_folders(root).items()]
        return sorted(found, key=lambda t: (t[0], t[1]))


def epoch_folders(eval_dir: Path) -> dict[int, Path]:
    """epoch -> ``epoch-N/`` inside one evaluation folder (:meth:`RunDir.eval_dir`), by epoch."""
    eval_dir = Path(eval_dir)
    if not eval_dir.is_dir():
        return {}
    found = {
        int(m.group(1)): d for d in eval_dir.iterdir() if (m := _EVAL_EPOCH_RE.match(d.name)) and d.is_dir()
    }
    return dict(sorted(found.items()))


def _parse_epochs(spec: str | int) -> list[int]:
    try:
        epochs = sorted({int(x) for x in str(spec).split(",") if x.strip()})
    except ValueError:
        raise LoralabError(f"--checkpoints '{spec}': {_SELECTION_HELP}") from None
    if not epochs or any(e < 0 for e in epochs):
        raise LoralabError(f"--checkpoints '{spec}': {_SELECTION_HELP}")
    return epochs


def step_of(checkpoint: Path) -> int:
    """The optimizer step a checkpoint was saved at (0 when it does not say: final_model/)."""
    try:
        return int(json.loads((Path(checkpoint) / ckpt.STATE_FILE).read_text()).get("global_step", 0))
    except (OSError, ValueError, TypeError, AttributeError):
        return 0


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
