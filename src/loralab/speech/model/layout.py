"""Where a Phi-4-multimodal model lives, and whether its layout is one loralab can load.

Two layouts exist of the same weights:

* **native** (transformers' ``Phi4MultimodalForCausalLM``; the hub repo's revision
  ``refs/pr/70``): ``model_type: phi4_multimodal``, plain weight names, the speech and vision
  LoRAs as separate PEFT adapters (``speech-lora/``, ``vision-lora/``).
* **original** (the hub's main branch, Microsoft's remote code): ``model_type: phi4mm``,
  ``speech_lora``/``vision_lora`` fields and an ``auto_map`` in config.json, and the LoRAs
  baked into the checkpoint (``...qkv_proj.base_layer.weight``, ``...lora_A.speech.weight``).

loralab loads only the native layout; the original one is converted offline by
``loralab speech convert-checkpoint SRC DST`` (:mod:`loralab.speech.model.convert`).
"""

from __future__ import annotations

import json
from pathlib import Path

from loralab.errors import LoralabError, ModelLayoutError

NATIVE_MODEL_TYPE = "phi4_multimodal"
ORIGINAL_MODEL_TYPE = "phi4mm"
SPEECH_ADAPTER_DIR = "speech-lora"
VISION_ADAPTER_DIR = "vision-lora"


def _looks_like_local_path(name: str) -> bool:
    # A hub id is "owner/name"; anything else with a path shape is meant as a folder.
    return name.startswith((".", "/", "~")) or name.count("/") != 1 or Path(name).exists()


def _hub_error(name: str, revision: str | None, error: Exception) -> LoralabError:
    rev = f" (revision {revision})" if revision else ""
    return LoralabError(
        f"model '{name}'{rev} is not a local folder and could not be read from the Hugging Face hub "
        f"({type(error).__name__}: {error}). Offline, the model must be in the local hub cache; or download "
        f"it once with `huggingface-cli download {name}"
        + (f" --revision {revision}" if revision else "")
        + " --local-dir DIR` and set model.name_or_path to DIR."
    )


def resolve_model_dir(name_or_path: str, revision: str | None = None) -> Path:
    """The local folder of a model: ``name_or_path`` itself, or the hub snapshot of an id.

    A hub id is fetched with ``huggingface_hub.snapshot_download`` (which honours
    ``HF_HUB_OFFLINE``: offline, only an already cached snapshot is found).
    """
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    if _looks_like_local_path(name_or_path):
        raise LoralabError(
            f"model folder '{name_or_path}' does not exist: set model.name_or_path to a folder holding "
            "config.json and the weights, or to a hub id such as microsoft/Phi-4-multimodal-instruct"
        )
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(name_or_path, revision=revision))
    except Exception as e:  # the hub raises many kinds (offline, not found, gated, HTTP)
        raise _hub_error(name_or_path, revision, e) from None


def resolve_model_file(name_or_path: str, revision: str | None, filename: str) -> Path:
    """One file of a model (e.g. ``config.json``), from its folder or the hub (no weights fetched)."""
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        file = path / filename
        if not file.is_file():
            raise LoralabError(f"{file} not found: '{name_or_path}' is not a complete model folder")
        return file
    if _looks_like_local_path(name_or_path):
        raise LoralabError(f"model folder '{name_or_path}' does not exist")
    from huggingface_hub import hf_hub_download

    try:
        return Path(hf_hub_download(name_or_path, filename, revision=revision))
    except Exception as e:
        raise _hub_error(name_or_path, revision, e) from None


def read_config_dict(model_dir: Path) -> dict:
    """config.json of a model folder as a dict (a clear error if missing or not JSON)."""
    file = Path(model_dir) / "config.json"
    if not file.is_file():
        raise LoralabError(f"{file} not found: '{model_dir}' is not a model folder")
    try:
        return json.loads(file.read_text())
    except json.JSONDecodeError as e:
        raise LoralabError(f"{file}: not valid JSON ({e})") from None


def weight_names(model_dir: Path) -> list[str]:
    """Tensor names of a model folder's safetensors files (headers only, nothing loaded)."""
    model_dir = Path(model_dir)
    index = model_dir / "model.safetensors.index.json"
    if index.is_file():
        return list(json.loads(index.read_text())["weight_map"])
    from safetensors import safe_open

    names: list[str] = []
    for file in sorted(model_dir.glob("*.safetensors")):
        with safe_open(str(file), framework="pt") as f:
            names.extend(f.keys())
    return names


def original_layout_reasons(config: dict, names: list[str] | None = None) -> list[str]:
    """Why a model folder looks like the original remote-code layout (empty: it does not)."""
    reasons = []
    if config.get("model_type") == ORIGINAL_MODEL_TYPE:
        reasons.append(f"config.json has model_type '{ORIGINAL_MODEL_TYPE}'")
    for key in ("speech_lora", "vision_lora"):
        if key in config:
            reasons.append(f"config.json has a '{key}' field")
    # An auto_map naming Microsoft's remote classes (Phi4MM...); any other auto_map is left alone.
    auto_map = config.get("auto_map") or {}
    if any("phi4mm" in str(target).lower() for target in auto_map.values()):
        reasons.append("config.json's auto_map points at the remote code (Phi4MM classes)")
    if names and any(".base_layer." in n for n in names):
        reasons.append("its weights carry 'base_layer.' names (LoRA baked into the checkpoint)")
    return reasons


def check_native_layout(model_dir: Path, config: dict | None = None, check_weights: bool = True) -> dict:
    """Raise :class:`ModelLayoutError` unless ``model_dir`` is a native Phi-4-multimodal folder.

    Returns the config dict. The weight-name check reads safetensors headers only.
    """
    model_dir = Path(model_dir)
    config = read_config_dict(model_dir) if config is None else config
    names = weight_names(model_dir) if check_weights else None
    reasons = original_layout_reasons(config, names)
    if reasons:
        raise ModelLayoutError(
            f"{model_dir} is in the original remote-code layout of Phi-4-multimodal ({'; '.join(reasons)}). "
            "loralab uses transformers' native Phi4MultimodalForCausalLM. Convert it once, offline: "
            f"`loralab speech convert-checkpoint {model_dir} {model_dir}-native` and use the new folder "
            "(or download the native layout: revision refs/pr/70 of microsoft/Phi-4-multimodal-instruct)."
        )
    if config.get("model_type") != NATIVE_MODEL_TYPE:
        raise ModelLayoutError(
            f"{model_dir} holds a '{config.get('model_type')}' model, not Phi-4-multimodal "
            f"(model_type '{NATIVE_MODEL_TYPE}'); the speech system needs Phi4MultimodalForCausalLM weights"
        )
    return config
