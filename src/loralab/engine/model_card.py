"""The model card: what a trained model folder is, without its run folder. One owner.

The engine writes a card (:data:`CARD_FILE`) into every ``checkpoint-epoch-N/`` and into
``final_model/``, for every system: which system, epoch and optimizer step, the resolved
config, the base model (a local folder resolved to an absolute path, so the card still points
at it from another working directory) and the library versions. :func:`read_card` reads it
back as a typed :class:`ModelCard` for every system, and reads the folders older loralab
versions wrote too:

* a checkpoint card of format version 1 (no ``base_model``: the config's model is used);
* speech's flat card in ``final_model/`` (:data:`LEGACY_SPEECH_CARD_FILE`: base model,
  revision, family, strategy, lora, unfrozen groups, prompt settings, tasks), mapped onto the
  config's sections;
* protein's ``final_model/`` config (:data:`LEGACY_CONFIG_FILE`: the resolved config alone).

This module also owns the file name of a PEFT adapter's config (:data:`ADAPTER_CONFIG_FILE`),
which tells an adapter folder from a base model. :func:`model_folder` is the one answer to
"which model does this run folder stand for" (``final_model/``, else the newest checkpoint).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loralab.errors import LoralabError

CARD_FILE = "run.json"
CARD_FORMAT = "loralab-checkpoint"
CARD_VERSION = 2  # 2: base_model and revision; 1 (checkpoints only): without them
ADAPTER_CONFIG_FILE = "adapter_config.json"
LEGACY_SPEECH_CARD_FILE = "loralab_model.json"
LEGACY_CONFIG_FILE = "experiment_config.json"
# ModelCard.layout: which writer made the card.
CARD, LEGACY_SPEECH, LEGACY_CONFIG = "card", "legacy-speech", "legacy-config"

# The flat speech card's keys -> (config section or None for the top level, key).
_LEGACY_SPEECH_KEYS = {
    "base_model": ("model", "name_or_path"),
    "revision": ("model", "revision"),
    "family": ("model", "family"),
    "unfrozen": ("model", "unfreeze"),
    "lora": (None, "lora"),
    "strategy": (None, "strategy"),
    "name": (None, "name"),
    "system": (None, "system"),
    "prompt_style": ("speech", "prompt_style"),
    "prompt_reference": ("speech", "prompt_reference"),
    "tasks": ("speech", "tasks"),
    "score_decoding": ("evaluation", "score_decoding"),
}


@dataclass(frozen=True)
class ModelCard:
    """A model folder's card, whichever layout wrote it.

    config: the resolved config as a plain dict (sectioned like a YAML config; a legacy
    speech card gives only the sections it recorded). base_model/revision: the base model to
    load the adapter onto. epoch/step: None where the card does not say (legacy final_model/).
    path: the file read. raw: that file's JSON object as written. layout: :data:`CARD`,
    :data:`LEGACY_SPEECH` or :data:`LEGACY_CONFIG`.
    """

    system: str | None
    config: dict
    base_model: str | None
    revision: str | None
    path: Path
    epoch: int | None = None
    step: int | None = None
    versions: dict = field(default_factory=dict)
    version: int = CARD_VERSION
    raw: dict = field(default_factory=dict)
    layout: str = CARD

    def section(self, name: str) -> dict:
        """A config section as a dict ({} when the card does not record it)."""
        part = self.config.get(name)
        return part if isinstance(part, dict) else {}


def base_model_of(config: dict) -> tuple[str | None, str | None]:
    """(base model, revision) of a resolved config: a local folder as an absolute path (no
    revision), else the hub id and its revision."""
    model = config.get("model") if isinstance(config.get("model"), dict) else {}
    name = model.get("name_or_path")
    if not isinstance(name, str):
        return None, None
    local = Path(name).expanduser()
    if local.is_dir():
        return str(local.resolve()), None
    return name, model.get("revision")


def card_dict(config: dict, epoch: int, step: int, versions: dict) -> dict[str, Any]:
    """The JSON object :func:`write_card` writes."""
    base, revision = base_model_of(config)
    return {
        "format": CARD_FORMAT,
        "version": CARD_VERSION,
        "system": config.get("system"),
        "epoch": epoch,
        "step": step,
        "base_model": base,
        "revision": revision,
        "config": config,
        "versions": versions,
    }


def write_card(folder: Path, config: dict, epoch: int, step: int, versions: dict) -> Path:
    """Write ``folder``'s card (into a temporary folder that is then renamed into place, so it
    lands atomically with the weights); returns its path."""
    path = Path(folder) / CARD_FILE
    path.write_text(json.dumps(card_dict(config, epoch, step, versions), indent=2, default=str) + "\n")
    return path


def _load_object(path: Path, strict: bool) -> dict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:  # ValueError: bad JSON, or bytes that are not UTF-8
        if strict:
            raise LoralabError(
                f"{path}: cannot read this model card ({e}); copy the model folder again"
            ) from None
        return None
    if not isinstance(data, dict):
        if strict:
            raise LoralabError(f"{path}: a model card is a JSON object, got {type(data).__name__}")
        return None
    return data


def _from_card(path: Path, data: dict) -> ModelCard:
    config = data.get("config") if isinstance(data.get("config"), dict) else {}
    base, revision = data.get("base_model"), data.get("revision")
    if base is None:  # version 1: the config's model, as training named it
        base, revision = base_model_of(config)
    return ModelCard(
        system=data.get("system") or config.get("system"), config=config, base_model=base,
        revision=revision, path=path, epoch=data.get("epoch"), step=data.get("step"),
        versions=data.get("versions") or {}, version=data.get("version", 1), raw=data,
    )  # fmt: skip


def _from_legacy_speech(path: Path, data: dict) -> ModelCard:
    config: dict[str, Any] = {"system": "speech"}
    for key, (section, name) in _LEGACY_SPEECH_KEYS.items():
        if data.get(key) is None:
            continue
        target = config if section is None else config.setdefault(section, {})
        target[name] = data[key]
    return ModelCard(
        system=config["system"], config=config, base_model=data.get("base_model"),
        revision=data.get("revision"), path=path, version=0, raw=data, layout=LEGACY_SPEECH,
    )  # fmt: skip


def _from_legacy_config(path: Path, data: dict) -> ModelCard:
    base, revision = base_model_of(data)
    return ModelCard(
        system=data.get("system"), config=data, base_model=base, revision=revision, path=path, version=0,
        raw=data, layout=LEGACY_CONFIG,
    )  # fmt: skip


def read_card(folder: str | Path, strict: bool = False) -> ModelCard | None:
    """The card of a model folder (any layout, module doc), or None when it has none.

    An unreadable card is None unless ``strict`` (then a LoralabError names the file): a
    checkpoint's card is optional, its run's config says the same; a legacy card is the
    only record of its folder and is always read strictly.
    """
    folder = Path(folder)
    card = folder / CARD_FILE
    if card.is_file():
        data = _load_object(card, strict)
        if data is not None:
            return _from_card(card, data)
    for name, convert in (
        (LEGACY_SPEECH_CARD_FILE, _from_legacy_speech),
        (LEGACY_CONFIG_FILE, _from_legacy_config),
    ):
        if (folder / name).is_file():
            return convert(folder / name, _load_object(folder / name, strict=True))
    return None


def model_config(folder: str | Path) -> tuple[dict, Path] | None:
    """(resolved config, the file it came from) a model folder was trained with: its card's
    (a legacy speech card gives its few sections), else its run's ``training_config.json``;
    None when neither says. An unreadable run config raises (it names itself)."""
    from loralab.engine.run_dir import RunDir

    card = read_card(folder)
    if card is not None and card.config:
        return card.config, card.path
    run = RunDir(Path(folder).parent)
    if run.config_file.is_file():
        return run.raw_config(), run.config_file
    return None


def has_adapter(folder: str | Path) -> bool:
    """A folder holding a PEFT adapter (what save_trainable writes for LoRA)."""
    return (Path(folder) / ADAPTER_CONFIG_FILE).is_file()


def is_model_folder(folder: str | Path) -> bool:
    """A trained model folder: a card of any layout, or an adapter."""
    folder = Path(folder)
    names = (CARD_FILE, LEGACY_SPEECH_CARD_FILE, LEGACY_CONFIG_FILE, ADAPTER_CONFIG_FILE)
    return folder.is_dir() and any((folder / n).is_file() for n in names)


def model_folder(path: str | Path, holds_model: Callable[[Path], bool] | None = None) -> Path | None:
    """The model a path stands for: a run folder stands for its ``final_model/``, else its newest
    complete checkpoint (None when it has neither yet); a model folder, or anything else, is itself.

    ``holds_model`` (default: any folder) tells a usable model folder among a run's, for a
    system whose models need a file of their own (e.g. a head's weights).
    """
    from loralab.engine.run_dir import RunDir

    path = Path(path)
    run = RunDir(path)
    if is_model_folder(path) or not (run.is_run() or run.has_final_model() or run.checkpoints()):
        return path
    holds_model = holds_model or Path.is_dir
    candidates = [run.final_model] + [p for _, p in sorted(run.checkpoints().items(), reverse=True)]
    return next((c for c in candidates if c.is_dir() and holds_model(c)), None)
