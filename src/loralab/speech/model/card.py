"""Reading ``loralab_model.json`` (the card ``final_model/`` carries) checked like a config.

The card decides how a model is asked (prompt style, reference, tasks, score decoding), so a
wrong type must not be read "somehow": ``"tasks": "apa_total"`` iterated as a string is seven
one-letter tasks and silently the joint prompt. Every field this loralab reads is type-checked
against the config schema's own types; an error names the file and the field. Keys it does not
read are left alone (a card written by a later loralab may carry more).
"""

from __future__ import annotations

import json
import typing
from dataclasses import dataclass
from pathlib import Path

from loralab.config import ConfigError
from loralab.config.loader import build_dataclass
from loralab.config.schema import EvaluationConfig, SpeechDataConfig

MODEL_CARD = "loralab_model.json"  # as loralab.speech.model.load names it (without torch)
# The config schema's own types: the card cannot accept what a config would refuse.
PromptStyle = typing.get_type_hints(SpeechDataConfig)["prompt_style"]
PromptReference = typing.get_type_hints(SpeechDataConfig)["prompt_reference"]
ScoreDecoding = typing.get_type_hints(EvaluationConfig)["score_decoding"]


@dataclass
class _CardFields:
    """The card's fields and their types (module doc); None: not in the card."""

    format: int | None = None
    system: str | None = None
    family: str | None = None
    base_model: str | None = None
    revision: str | None = None
    strategy: str | None = None
    lora: dict | None = None
    unfrozen: list[str] | None = None
    prompt_style: PromptStyle | None = None
    prompt_reference: PromptReference | None = None
    score_decoding: ScoreDecoding | None = None
    tasks: list[str] | None = None
    name: str | None = None


def read_model_card(folder: str | Path) -> dict:
    """The card in ``folder`` as a dict, its fields checked; {} when there is none. A
    :class:`~loralab.config.ConfigError` names the file and the field that is wrong."""
    from loralab.speech.contract import TASKS

    path = Path(folder) / MODEL_CARD
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise ConfigError(f"{path}: cannot read this model card ({e}); copy final_model/ again") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a model card is a JSON object, got {type(data).__name__}")
    known = {k: v for k, v in data.items() if k in _CardFields.__dataclass_fields__ and v is not None}
    if not isinstance(known.get("lora", {}), dict):  # the schema check passes any value for 'dict'
        raise ConfigError(f"{path}: 'lora' must be an object of LoRA settings, got {known['lora']!r}")
    build_dataclass(_CardFields, known, str(path))
    unknown = [t for t in known.get("tasks", []) if t not in TASKS]
    if unknown:
        raise ConfigError(f"{path}: 'tasks' holds unknown task(s) {unknown} (known: {', '.join(TASKS)})")
    return data
