"""Loading a speech backbone (any family, see :mod:`loralab.speech.backbones`) for training
and for inference. The weight-level helpers (dtype, attention kernels, Phi-4-multimodal's
loader and its dropped vision encoder) are :mod:`loralab.speech.model.weights`', below the
backbones, and exported here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from loralab.engine.checkpoint import verify_checkpoint
from loralab.engine.model_card import ADAPTER_CONFIG_FILE, CARD_FILE, LEGACY_SPEECH, has_adapter, read_card
from loralab.errors import LoralabError
from loralab.speech.model.layout import resolve_model_dir
from loralab.speech.model.weights import (  # noqa: F401  (exported: the loaders' public names)
    VisionEncoderRemoved,
    default_weight_dtype,
    drop_vision_encoder,
    load_phi4mm,
    resolve_attn_implementation,
)

UNFROZEN_FILE = "unfrozen.safetensors"


def load_tokenizer(model_dir: str | Path, trust_remote_code: bool = False, backbone=None):
    """The tokenizer of a model folder; one without a chat template gets its family's default
    (the processor's, as transformers would use it), with a note on stderr."""
    import sys

    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir), trust_remote_code=trust_remote_code)
    if getattr(tokenizer, "chat_template", None):
        return tokenizer
    if backbone is None and not (Path(model_dir) / "config.json").is_file():
        raise LoralabError(
            f"the tokenizer in {model_dir} has no chat template, and the folder has no config.json to tell "
            "its model family (whose default template would do); copy the tokenizer files with their "
            "chat_template (tokenizer_config.json or chat_template.jinja)"
        )
    backbone = backbone or resolve_backbone(model_dir, check_weights=False)
    tokenizer.chat_template = backbone.default_chat_template()
    print(
        f"note: the tokenizer in {model_dir} has no chat template; using the {backbone.title} default",
        file=sys.stderr,
    )
    return tokenizer


def resolve_backbone(model_dir: str | Path, family: str | None = None, check_weights: bool = True):
    """The :class:`~loralab.speech.backbones.Backbone` of a model folder (checked against ``family``)."""
    from loralab.speech.backbones import backbone_for
    from loralab.speech.model.layout import read_config_dict

    model_dir = Path(model_dir)
    return backbone_for(model_dir, read_config_dict(model_dir), family, check_weights=check_weights)


def load_feature_extractor(model_dir: str | Path, backbone=None):
    """The audio feature extractor of a model folder, of its family's kind."""
    backbone = backbone or resolve_backbone(model_dir, check_weights=False)
    return backbone.load_feature_extractor(Path(model_dir))


@dataclass
class InferenceModel:
    """What generation needs. ``model`` is in eval mode with any adapter merged into its weights."""

    model: Any
    tokenizer: Any
    feature_extractor: Any
    audio_token_id: int
    end_token_ids: list[int]
    description: str
    backbone: Any = None  # loralab.speech.backbones.Backbone (None: detected from the model)
    gop_scorer: Any = None  # loralab.speech.model.gop.GopScorer of a phones_gop model (else None)

    def __post_init__(self):
        if self.backbone is None:
            from loralab.speech.backbones import backbone_named, family_of_config

            self.backbone = backbone_named(family_of_config(self.model.config.to_dict()) or "phi4mm")


def _base_from_run(checkpoint: Path) -> tuple[str, str | None] | None:
    """The base model the run a model folder belongs to names in its ``training_config.json``."""
    from loralab.engine.run_dir import RunDir

    run = RunDir(checkpoint.parent)
    if not run.config_file.is_file():
        return None
    config = run.raw_config()  # an unreadable file names itself
    try:
        model = config["model"]
        return model["name_or_path"], model.get("revision")
    except (KeyError, TypeError) as e:
        raise LoralabError(
            f"{run.config_file}: cannot read the base model from it ({type(e).__name__}: {e}); pass "
            "base_model explicitly"
        ) from None


def _find_base(path: Path, base_model: str | None) -> tuple[str, str | None]:
    """The base model an adapter folder belongs to (argument, model card, run config, parent folder)."""
    if base_model:
        return base_model, None
    card = read_card(path)
    if card is not None and card.base_model:
        return card.base_model, card.revision
    if card is not None and card.layout == LEGACY_SPEECH:
        raise LoralabError(f"{card.path}: no 'base_model' in this model card; pass --base-model explicitly")
    found = _base_from_run(path)
    if found:
        return found
    if (path.parent / "config.json").is_file():  # e.g. <model>/speech-lora
        return str(path.parent), None
    raise LoralabError(
        f"cannot tell which base model the adapter in {path} belongs to (no {CARD_FILE}, no "
        f"{path.parent / 'training_config.json'}): pass base_model (--base-model) explicitly"
    )


def load_for_inference(
    path: str | Path,
    device: Any = None,
    base_model: str | None = None,
    revision: str | None = None,
    precision: str = "auto",
) -> InferenceModel:
    """Load a model to generate with, from any of:

    * a run's ``final_model/`` or a ``checkpoint-epoch-N/`` (adapter, unfrozen weights; the base
      model named by its model card, :mod:`loralab.engine.model_card`, else by the run's
      ``training_config.json``);
    * a base model folder or hub id, without adapter (the paper's "no training" row);
    * an adapter folder inside a model folder (e.g. ``<model>/speech-lora``).

    ``base_model`` overrides where the base model is looked up (e.g. a run trained elsewhere).
    ``precision``: the weights' dtype, auto (bf16 where the device multiplies it natively, see
    :func:`loralab.engine.precision.inference_precision`), bf16 or fp32.
    """
    from loralab.engine.precision import inference_precision
    from loralab.speech.model.gop import GOP_FILE, load_gop_scorer
    from loralab.speech.model.lora import load_unfrozen, merge_adapter

    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    adapter_dir, base_name, base_revision = _what_to_load(path, base_model, revision)
    base_dir = resolve_model_dir(base_name, revision or base_revision)
    backbone = resolve_backbone(base_dir)
    chosen = inference_precision(device, precision)
    model = backbone.load(base_dir, device=device, dtype=chosen.weights, attn_implementation="auto")
    parts = [f"base {base_name}", chosen.describe()]
    if adapter_dir is not None:
        model, rank = merge_adapter(model, adapter_dir)
        parts.append(f"adapter {adapter_dir} (r={rank}, merged)")
        unfrozen = load_unfrozen(model, adapter_dir / UNFROZEN_FILE)
        if unfrozen:
            parts.append(f"{unfrozen} unfrozen tensors")
    model.eval()
    gop_scorer = None
    if adapter_dir is not None and (adapter_dir / GOP_FILE).is_file():
        gop_scorer = load_gop_scorer(adapter_dir)
        parts.append("GOP scorer")
    tokenizer, feature_extractor = _text_and_audio_processors(adapter_dir, base_dir, backbone)
    return InferenceModel(
        model=model,
        tokenizer=tokenizer,
        feature_extractor=feature_extractor,
        audio_token_id=backbone.audio_token_id(model.config),
        end_token_ids=_end_token_ids(tokenizer, model),
        description=", ".join(parts),
        backbone=backbone,
        gop_scorer=gop_scorer,
    )


def _what_to_load(path, base_model: str | None, revision: str | None) -> tuple[Path | None, str, str | None]:
    """(adapter folder or None, base model name, its revision) for what ``path`` points at."""
    local = Path(str(path)).expanduser()
    if local.is_dir() and has_adapter(local):
        verify_checkpoint(local)  # a damaged file fails now, not after minutes of base model loading
        return (local, *_find_base(local, base_model))
    if local.is_dir() and not (local / "config.json").is_file():
        raise LoralabError(
            f"{local} holds no adapter ({ADAPTER_CONFIG_FILE}) and no model (config.json): a checkpoint folder "
            f"must contain what training saved ({ADAPTER_CONFIG_FILE}, adapter_model.safetensors)"
        )
    return None, str(base_model or path), revision


def _text_and_audio_processors(adapter_dir: Path | None, base_dir: Path, backbone):
    """Tokenizer and feature extractor: the ones saved with the adapter, else the base model's."""
    files_dir = (
        adapter_dir
        if adapter_dir is not None and (adapter_dir / "tokenizer_config.json").is_file()
        else base_dir
    )
    tokenizer = load_tokenizer(files_dir, backbone=backbone)
    feature_extractor = backbone.load_feature_extractor(
        files_dir if (files_dir / "preprocessor_config.json").is_file() else base_dir
    )
    return tokenizer, feature_extractor


def _end_token_ids(tokenizer, model) -> list[int]:
    """The chat format's answer end tokens, then the model's own EOS ids."""
    from loralab.speech.chat_format import answer_end_token_ids

    end_ids = answer_end_token_ids(tokenizer)
    for eos in _as_list(model.generation_config.eos_token_id):
        if eos not in end_ids:
            end_ids.append(eos)
    return end_ids


def _as_list(value) -> list[int]:
    if value is None:
        return []
    return [int(v) for v in value] if isinstance(value, (list, tuple)) else [int(value)]
