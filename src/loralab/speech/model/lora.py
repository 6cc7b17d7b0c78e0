"""The speech LoRA set-ups on any speech backbone (Phi-4-multimodal, Qwen2-Audio), and exact
parameter counts. Module names come from the backbone (:mod:`loralab.speech.backbones`).

Three set-ups (config: ``lora.init`` x ``strategy``):

* ``paper_r64`` (init fresh, strategy lora): a new PEFT LoRA, standard init (A Kaiming-uniform,
  B = 0, so the model's output is unchanged at step 0), r/alpha/dropout from ``cfg.lora``;
* ``pretrained_r320`` (init pretrained): Microsoft's ``speech-lora`` adapter (or
  ``lora.adapter_path``) loaded as trainable and trained further; its rank and alpha must be
  those in the config (they decide the adapter's function, so a mismatch is an error);
* ``unfreeze``: either of the above plus the audio encoder and/or the audio projector trained
  in full (``model.unfreeze``).

Trainable parameters are fp32; frozen ones keep the load dtype (bf16 on GPUs).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from loralab.engine.lora import wrap_with_lora
from loralab.engine.model_card import ADAPTER_CONFIG_FILE, has_adapter
from loralab.engine.system import ParamCount
from loralab.errors import LoralabError
from loralab.safe_files import load_safetensors, read_json
from loralab.speech.model.adapter_targets import (
    ADAPTER_WEIGHTS,
    PEFT_PREFIX,
    adapter_target_regex,
)

_WRAPPER_PREFIXES = re.compile(r"^(module\.)?(peft_model\.)?(base_model\.model\.)?")

GROUP_ORDER = ("lora", "audio_encoder", "audio_projector", "text_decoder", "vision", "total")


def base_name(name: str) -> str:
    """A parameter name as in the plain model: wrapper prefixes (DDP's ``module.``, our
    ``peft_model.``, PEFT's ``base_model.model.``) and ``base_layer.`` removed."""
    return _WRAPPER_PREFIXES.sub("", name).replace(".base_layer.", ".")


def group_of(name: str, backbone) -> str:
    """Which reported group a (plain or PEFT) parameter name belongs to, in ``backbone``'s layout."""
    if ".lora_" in name:
        return "lora"
    return backbone.group_of(base_name(name))


def count_groups(named_parameters, backbone, vision_total: int = 0) -> dict[str, ParamCount]:
    """Trainable/total parameters per group; ``vision_total`` adds a dropped vision encoder's size."""
    groups = {g: ParamCount(0, 0) for g in GROUP_ORDER}
    for name, p in named_parameters:
        g = groups[group_of(name, backbone)]
        g.total += p.numel()
        g.trainable += p.numel() if p.requires_grad else 0
    groups["vision"].total += vision_total
    return with_total(groups)


def with_total(groups: dict[str, ParamCount]) -> dict[str, ParamCount]:
    """``groups`` with its 'total' entry recomputed as the sum of the others."""
    groups["total"] = ParamCount(
        sum(c.trainable for k, c in groups.items() if k != "total"),
        sum(c.total for k, c in groups.items() if k != "total"),
    )
    return groups


def lora_parameter_count(model, target_modules: str, rank: int) -> tuple[int, int]:
    """(LoRA parameters, matched modules) for rank ``rank`` on the Linear layers PEFT would target.

    Computed from layer shapes (r x in for A, out x r for B), so it works on the meta device.
    """
    import torch

    total = modules = 0
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) and re.fullmatch(target_modules, name):
            total += rank * (module.in_features + module.out_features)
            modules += 1
    return total, modules


def read_adapter_config(adapter_dir: Path) -> dict:
    file = Path(adapter_dir) / ADAPTER_CONFIG_FILE
    if not file.is_file():
        raise LoralabError(f"{file} not found: {adapter_dir} is not a PEFT adapter folder")
    return read_json(
        file, "PEFT adapter config", "copy the adapter folder again, or use an earlier checkpoint"
    )


def check_pretrained_matches(adapter_cfg: dict, lora_cfg, adapter_dir: Path) -> None:
    """The adapter's rank and alpha must be the ones the config says (they define its function)."""
    rank, alpha = adapter_cfg.get("r"), adapter_cfg.get("lora_alpha")
    if rank != lora_cfg.rank or alpha != lora_cfg.alpha:
        raise LoralabError(
            f"the adapter in {adapter_dir} has r={rank}, lora_alpha={alpha}, but the config says "
            f"lora.rank={lora_cfg.rank}, lora.alpha={lora_cfg.alpha}: set them to the adapter's values "
            f"(e.g. lora.rank={rank} lora.alpha={alpha})"
        )


def _lora_config(rank: int, alpha: int, dropout: float, target_modules: str):
    from peft import LoraConfig

    return LoraConfig(
        r=rank, lora_alpha=alpha, lora_dropout=dropout, target_modules=target_modules, task_type="CAUSAL_LM"
    )


def _check_targets(model, target_modules: str) -> None:
    _, matched = lora_parameter_count(model, target_modules, 1)
    if matched == 0:
        from loralab.speech.backbones import BACKBONES

        hints = "; ".join(f"{b.title}: {b.default_lora_targets!r}" for b in BACKBONES.values())
        raise LoralabError(
            f"lora.target_modules {target_modules!r} matches no Linear layer of the model ({type(model).__name__}). "
            f"The text decoders' projections are, for {hints}; leave lora.target_modules unset for the "
            "model.family's."
        )


def add_fresh_lora(model, lora_cfg):
    """A new trainable LoRA (standard PEFT init: B = 0) on ``lora_cfg.target_modules``."""
    _check_targets(model, lora_cfg.target_modules)
    config = _lora_config(lora_cfg.rank, lora_cfg.alpha, lora_cfg.dropout, lora_cfg.target_modules)
    return wrap_with_lora(model, config)


def adapter_state_dict(adapter_dir: Path) -> dict:
    """An adapter's tensors with PEFT's saved key names (``base_model.model.`` prefix added if missing:
    transformers' conversion script writes Microsoft's adapters without it)."""
    file = Path(adapter_dir) / ADAPTER_WEIGHTS
    if not file.is_file():
        raise LoralabError(f"{file} not found: the adapter folder {adapter_dir} has no weights")
    saved = load_safetensors(file, hint="copy the adapter folder again, or use an earlier checkpoint")
    return {(k if k.startswith(PEFT_PREFIX) else PEFT_PREFIX + k): v for k, v in saved.items()}


def load_adapter_weights(peft_model, adapter_dir: Path, adapter_name: str = "default") -> None:
    """Load an adapter's tensors into ``peft_model``; every LoRA tensor must be matched both ways."""
    from peft import set_peft_model_state_dict

    state = adapter_state_dict(adapter_dir)
    try:
        result = set_peft_model_state_dict(peft_model, state, adapter_name=adapter_name)
    except RuntimeError as e:  # shape mismatches: an adapter of another model size
        raise LoralabError(f"the adapter in {adapter_dir} does not fit the model: {e}") from None
    missing = [k for k in result.missing_keys if ".lora_" in k and f".{adapter_name}." in k]
    unexpected = list(result.unexpected_keys)
    if missing or unexpected:
        raise LoralabError(
            f"the adapter in {adapter_dir} does not fit the model: {len(missing)} LoRA tensors missing "
            f"(e.g. {missing[:3]}), {len(unexpected)} unexpected (e.g. {unexpected[:3]}). Was it trained for "
            "another model or target_modules?"
        )


def add_pretrained_lora(model, adapter_dir: Path, lora_cfg):
    """Load an existing adapter as TRAINABLE (rank/alpha/targets from the adapter, dropout from config)."""

    adapter_dir = Path(adapter_dir)
    if not has_adapter(adapter_dir):
        raise LoralabError(
            f"lora.init is 'pretrained' but {adapter_dir} holds no adapter ({ADAPTER_CONFIG_FILE}). The native "
            "Phi-4-multimodal folder ships its speech LoRA as speech-lora/ (revision refs/pr/70, or made by "
            "`loralab speech convert-checkpoint`); set lora.adapter_path to the adapter folder, or use "
            "lora.init=fresh (paper_r64)"
        )
    saved = read_adapter_config(adapter_dir)
    check_pretrained_matches(saved, lora_cfg, adapter_dir)
    # The modules its tensors name (a list of plain names would also hit the audio encoder).
    targets = adapter_target_regex(
        model, adapter_dir, saved.get("target_modules") or lora_cfg.target_modules, lora_cfg.target_modules
    )
    _check_targets(model, targets)
    peft_model = wrap_with_lora(
        model, _lora_config(saved["r"], saved["lora_alpha"], lora_cfg.dropout, targets)
    )
    load_adapter_weights(peft_model, adapter_dir)
    return peft_model


def unfreeze(model, groups: list[str], backbone) -> int:
    """Make the named groups (audio_encoder, audio_projector) trainable in fp32; returns tensors unfrozen.

    When either is unfrozen, both are kept in fp32 (the frozen one too): the encoder's output
    feeds the projector directly, and mixed bf16/fp32 weights on that path fail without autocast.
    The backbone's ``fixed_parameters`` (e.g. a sinusoidal position table) stay frozen.
    """
    import torch

    prefixes = backbone.unfreeze_prefixes(groups)
    audio_path = backbone.audio_path_prefixes() if groups else ()
    count = 0
    for name, param in model.named_parameters():
        plain = base_name(name)
        if plain.startswith(audio_path):
            param.data = param.data.to(torch.float32)
        if plain.startswith(prefixes) and plain not in backbone.fixed_parameters:
            param.requires_grad_(True)
            count += 1
    return count


def trainable_to_fp32(model) -> None:
    """Trainable weights in fp32: AMP needs fp32 master weights (fp16 ones cannot be unscaled)."""
    import torch

    for param in model.parameters():
        if param.requires_grad and param.dtype != torch.float32:
            param.data = param.data.to(torch.float32)


def unfrozen_state_dict(model) -> dict:
    """Trainable non-LoRA tensors, keyed by their plain-model names."""
    return {
        base_name(n): p.detach().to("cpu").contiguous()
        for n, p in model.named_parameters()
        if p.requires_grad and ".lora_" not in n
    }


def load_unfrozen(model, file: Path) -> int:
    """Load ``unfrozen.safetensors`` (if present) into ``model`` (plain or PEFT); returns tensors loaded."""
    file = Path(file)
    if not file.is_file():
        return 0
    saved = load_safetensors(file, hint="copy the model folder again, or use an earlier checkpoint")
    params = {base_name(n): p for n, p in model.named_parameters()}
    unknown = [k for k in saved if k not in params]
    if unknown:
        raise LoralabError(f"{file}: {len(unknown)} tensors the model does not have (e.g. {unknown[:3]})")
    for key, value in saved.items():
        params[key].data.copy_(value.to(device=params[key].device, dtype=params[key].dtype))
    return len(saved)


def merge_adapter(model, adapter_dir: Path) -> tuple[Any, int]:
    """``model`` with the adapter in ``adapter_dir`` merged into its weights (for inference)."""

    saved = read_adapter_config(adapter_dir)
    targets = adapter_target_regex(model, adapter_dir, saved.get("target_modules"))
    config = _lora_config(saved["r"], saved["lora_alpha"], 0.0, targets)
    peft_model = wrap_with_lora(model, config)
    load_adapter_weights(peft_model, adapter_dir)
    return peft_model.merge_and_unload(), int(saved["r"])
