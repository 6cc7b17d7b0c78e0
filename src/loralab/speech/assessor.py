"""Load a trained speech model once and assess many recordings with it.

:class:`Assessor` is what ``loralab assess`` and ``loralab serve`` share: it resolves what the
user points at (a run folder, its ``final_model/``, a ``checkpoint-epoch-N/`` or a base model),
reads the settings the model was trained and evaluated with (prompt style, reference in the
prompt, expected-score decoding, one-aspect-at-a-time APA tasks) and runs
:func:`~loralab.speech.inference.recording_answers.assess_items` on recordings given as files or as
16 kHz samples already in memory.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loralab.speech.inference.recording_answers import (
    AssessItem,
    Assessment,
    assess_items,
    check_items,
    load_items,
)


def _trained_configs(path: Path) -> list[dict]:
    """The configs that say how a model was trained, most specific first: its card's
    (:mod:`loralab.engine.model_card`, checked by :func:`~loralab.speech.model.card.read_model_card`;
    the engine's card alone, an older flat card's few sections), then the run's ``training_config.json`` (a run folder's own, or the run a model folder
    belongs to); an unreadable run config counts as none (the defaults, as for a base model)."""
    from loralab.engine.model_card import CARD
    from loralab.engine.run_dir import RunDir
    from loralab.errors import LoralabError
    from loralab.speech.model.card import read_model_card

    card = read_model_card(path)
    if card is not None and card.layout == CARD:
        return [card.config]  # the engine's card holds the whole resolved config
    configs = [card.config] if card is not None else []
    run = RunDir(path) if RunDir(path).config_file.is_file() else RunDir(path.parent)
    if run.config_file.is_file():
        try:
            configs.append(run.raw_config())
        except LoralabError:
            pass
    return configs


def _trained_setting(configs: list[dict], section: str, key: str, default):
    """A setting the model was trained (and evaluated) with, e.g. ``speech.prompt_style``: the
    first config that records it; ``default`` when none does (a base model)."""
    for config in configs:
        part = config.get(section)
        value = part.get(key) if isinstance(part, dict) else None
        if value:
            return value
    return default


@dataclass(frozen=True)
class AssessSettings:
    """How to ask the model: the settings it was trained and evaluated with."""

    prompt_style: str = "paper"
    prompt_reference: str = "none"
    score_decoding: str = "greedy"
    apa_tasks: tuple[str, ...] = ("apa",)

    @classmethod
    def of_model(cls, model_path: str | Path, prompt_style: str | None = None) -> AssessSettings:
        """The settings recorded with ``model_path`` (``prompt_style`` overrides its own)."""
        configs = _trained_configs(Path(model_path))
        tasks = _trained_setting(configs, "speech", "tasks", ["apa"])
        return cls(
            prompt_style=prompt_style or _trained_setting(configs, "speech", "prompt_style", "paper"),
            prompt_reference=_trained_setting(configs, "speech", "prompt_reference", "none"),
            score_decoding=_trained_setting(configs, "evaluation", "score_decoding", "greedy"),
            # the joint answer first: per-aspect answers replace its values (as in evaluation)
            apa_tasks=tuple(sorted((t for t in tasks if t.startswith("apa")), key=lambda t: t != "apa"))
            or ("apa",),
        )


def resolve_model_path(model: str | Path) -> Path | str:
    """The model a path stands for (:func:`loralab.engine.model_card.model_folder`: a run folder
    stands for its ``final_model/``, else its newest checkpoint); a hub id is returned as given."""
    from loralab.engine.model_card import model_folder

    path = Path(str(model)).expanduser()
    if not path.exists():
        return str(model)
    return model_folder(path) or path


def model_id(path: str | Path) -> str:
    """A short name for a model folder: ``<run>/final_model``, ``<run>/checkpoint-epoch-2``, ..."""
    p = Path(str(path))
    if p.name == "final_model" or p.name.startswith("checkpoint-"):
        return f"{p.parent.name}/{p.name}"
    return p.name or str(path)


class Assessor:
    """A loaded model and how to ask it; :meth:`assess` and :meth:`assess_samples` many times."""

    def __init__(self, inference, settings: AssessSettings, *, name: str = "model", batch_size: int = 8,
                 max_new_tokens: int | None = None, fast: bool = True):  # fmt: skip
        """``fast``: one recording at a time on the KV cache (the APA answer constrained to its
        template, greedy answers verified against the ideal one); False: batched ``generate``, the
        expected scores recorded while it generates (the evaluation's route; the same answers, slower)."""
        self.inference = inference
        self.settings = settings
        self.name = name
        self.batch_size = batch_size
        self.max_new_tokens = max_new_tokens
        self.fast = fast

    @classmethod
    def load(cls, model: str | Path, *, device: Any = None, base_model: str | None = None,
             prompt_style: str | None = None, batch_size: int = 8,
             max_new_tokens: int | None = None, fast: bool = True, precision: str = "auto") -> Assessor:  # fmt: skip
        """Load ``model`` (run folder, final_model/, checkpoint or base model) for inference;
        ``precision``: auto, bf16 or fp32 (:func:`loralab.engine.precision.inference_precision`)."""
        from loralab.speech.model.load import load_for_inference

        path = resolve_model_path(model)
        settings = AssessSettings.of_model(path, prompt_style)  # a bad model card fails before the load
        inference = load_for_inference(path, device=device, base_model=base_model, precision=precision)
        return cls(
            inference,
            settings,
            name=model_id(path),
            batch_size=batch_size,
            max_new_tokens=max_new_tokens,
            fast=fast,
        )

    @property
    def description(self) -> str:
        return self.inference.description

    def assess(self, items: Sequence[AssessItem], audios: dict | None = None) -> list[Assessment]:
        """Assess ``items`` (their files loaded here unless ``audios`` maps id -> 16 kHz samples)."""
        s = self.settings
        if audios is not None:
            check_items(items)
        return assess_items(
            self.inference,
            items,
            audios=audios if audios is not None else load_items(items),
            prompt_style=s.prompt_style,
            prompt_reference=s.prompt_reference,
            score_decoding=s.score_decoding,
            apa_tasks=list(s.apa_tasks),
            batch_size=self.batch_size,
            max_new_tokens=self.max_new_tokens,
            fast=self.fast,
        )

    def assess_samples(self, requests: Sequence[tuple[str, Any, str]]) -> list[Assessment]:
        """Assess in-memory recordings: ``(text, 16 kHz mono float32 samples, label)`` each. The
        label is only reported back (as ``audio``), never opened."""
        items, audios = [], {}
        for n, (text, samples, label) in enumerate(requests):
            item = AssessItem(str(n), label, text, duration=len(samples) / 16000)
            items.append(item)
            audios[item.id] = samples
        return self.assess(items, audios)
