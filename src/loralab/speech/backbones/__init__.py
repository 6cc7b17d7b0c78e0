"""Speech-LLM families behind one contract (:class:`~loralab.speech.backbones.base.Backbone`).

``model.family`` in a config names the family; :func:`backbone_for` checks that a model folder
is of that family (an error names both families and the presets that match the model).
"""

from __future__ import annotations

from pathlib import Path

from loralab.errors import ModelLayoutError
from loralab.speech.backbones.base import Backbone
from loralab.speech.backbones.phi4mm import Phi4MultimodalBackbone
from loralab.speech.backbones.qwen2audio import Qwen2AudioBackbone

BACKBONES: dict[str, Backbone] = {b.family: b for b in (Phi4MultimodalBackbone(), Qwen2AudioBackbone())}
FAMILIES = tuple(BACKBONES)


def backbone_named(family: str) -> Backbone:
    if family not in BACKBONES:
        raise ModelLayoutError(f"unknown model.family '{family}' (known: {', '.join(FAMILIES)})")
    return BACKBONES[family]


def family_of_config(config: dict) -> str | None:
    """The family a config.json belongs to (by model_type), or None."""
    model_type = config.get("model_type")
    return next((f for f, b in BACKBONES.items() if model_type in b.model_types), None)


def backbone_for(
    model_dir: Path, config: dict, family: str | None = None, check_weights: bool = True
) -> Backbone:
    """The backbone of a model folder, checked against the configured ``family`` (None: detect)."""
    found = family_of_config(config)
    if family is not None and found is not None and found != family:
        wanted, actual = BACKBONES[family], BACKBONES[found]
        raise ModelLayoutError(
            f"{model_dir} is a {actual.title} model (family '{found}'), but the config is for "
            f"{wanted.title} (model.family '{family}'). Use a {actual.title} preset "
            f"({', '.join(actual.presets)}) or set model.family={found}; or give a {wanted.title} model "
            f"for {', '.join(wanted.presets)}."
        )
    backbone = backbone_named(family or found or "phi4mm")
    backbone.check_model_dir(Path(model_dir), config, check_weights=check_weights)
    return backbone


__all__ = ["BACKBONES", "FAMILIES", "Backbone", "backbone_for", "backbone_named", "family_of_config"]
