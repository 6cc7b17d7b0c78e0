"""A speech model's card (:mod:`loralab.engine.model_card`) checked like a config.

The card decides how a model is asked (prompt style, reference, tasks, score decoding), so a
wrong type must not be read "somehow": ``"tasks": "apa_total"`` iterated as a string is seven
one-letter tasks and silently the joint prompt. A card the engine wrote is checked against the
config schema; the flat card older loralab versions wrote into ``final_model/``
(:data:`~loralab.engine.model_card.LEGACY_SPEECH_CARD_FILE`) field by field, against the
schema's own types. An error names the file and the field. Keys of a flat card this loralab
does not read are left alone (a card written by a later loralab may carry more).
"""

from __future__ import annotations

import typing
from dataclasses import dataclass
from pathlib import Path

from loralab.config import ConfigError
from loralab.config.loader import build_dataclass
from loralab.config.schema import EvaluationConfig, ExperimentConfig
from loralab.engine.model_card import CARD, LEGACY_SPEECH, ModelCard, read_card
from loralab.errors import LoralabError
from loralab.speech.config import SpeechDataConfig

# The config schema's own types: the card cannot accept what a config would refuse.
PromptStyle = typing.get_type_hints(SpeechDataConfig)["prompt_style"]
PromptReference = typing.get_type_hints(SpeechDataConfig)["prompt_reference"]
ScoreDecoding = typing.get_type_hints(EvaluationConfig)["score_decoding"]


@dataclass
class _CardFields:
    """The flat card's fields and their types (module doc); None: not in the card."""

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


def _check_flat(card: ModelCard) -> None:
    path, data = card.path, card.raw
    known = {k: v for k, v in data.items() if k in _CardFields.__dataclass_fields__ and v is not None}
    if not isinstance(known.get("lora", {}), dict):  # the schema check passes any value for 'dict'
        raise ConfigError(f"{path}: 'lora' must be an object of LoRA settings, got {known['lora']!r}")
    build_dataclass(_CardFields, known, str(path))


def read_model_card(folder: str | Path) -> ModelCard | None:
    """The card in ``folder``, its fields checked; None when there is none. A
    :class:`~loralab.config.ConfigError` names the file and the field that is wrong."""
    from loralab.speech.prompts import TASKS

    try:
        card = read_card(folder, strict=True)
    except LoralabError as e:
        raise ConfigError(str(e)) from None
    if card is None:
        return None
    if card.layout == LEGACY_SPEECH:
        _check_flat(card)
    elif card.layout == CARD:
        build_dataclass(ExperimentConfig, card.config, str(card.path))
    tasks = card.section("speech").get("tasks") or []
    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        raise ConfigError(f"{card.path}: 'tasks' holds unknown task(s) {unknown} (known: {', '.join(TASKS)})")
    return card
