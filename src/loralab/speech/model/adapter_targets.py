"""Which modules a saved LoRA adapter belongs on: the ones its tensors name.

PEFT writes ``target_modules`` either as a regex (a string) or as plain module names (a list).
A list is matched by suffix, so Microsoft's released ``speech-lora`` (``qkv_proj``, ``o_proj``,
``gate_up_proj``, ``down_proj``) would also wrap the Phi-4-multimodal audio encoder's ``o_proj``
and ``down_proj`` layers, which the adapter has no tensors for: 248 wrapped layers for 128
trained ones, and a load that fails with 240 LoRA tensors missing. So the modules to wrap are
read from the adapter's tensor names (only the safetensors header is read); where the tensors
are not at hand, a list is restricted to the family's text decoder.
"""

from __future__ import annotations

import re
from pathlib import Path

from loralab.errors import LoralabError

PEFT_PREFIX = "base_model.model."
ADAPTER_WEIGHTS = "adapter_model.safetensors"


def adapter_tensor_modules(adapter_dir: Path) -> list[str] | None:
    """The modules (plain-model names) an adapter's LoRA tensors belong to, sorted; None when the
    folder has no weights file. Reads the safetensors header only."""
    from safetensors import safe_open

    file = Path(adapter_dir) / ADAPTER_WEIGHTS
    if not file.is_file():
        return None
    try:
        with safe_open(str(file), framework="pt") as f:
            keys = list(f.keys())
    except Exception as e:  # noqa: BLE001 - safetensors raises its own error types
        raise LoralabError(
            f"{file}: not a readable safetensors file ({e}); copy the adapter folder again"
        ) from None
    modules = {k.removeprefix(PEFT_PREFIX).split(".lora_", 1)[0] for k in keys if ".lora_" in k}
    return sorted(modules)


def exact_regex(modules: list[str]) -> str:
    """A regex that full-matches exactly these module names (PEFT full-matches a string target)."""
    return "|".join(re.escape(m) for m in modules)


def names_within(names: list[str], decoder_regex: str) -> str:
    """A regex for PEFT's list rule (a module whose name ends in one of ``names``) restricted to
    the modules ``decoder_regex`` full-matches."""
    suffixes = "|".join(re.escape(n) for n in names)
    return rf"(?=(?:{decoder_regex})\Z)(?:(?:.*\.)?(?:{suffixes}))"


def _linear_names(model) -> set[str]:
    import torch

    return {name for name, m in model.named_modules() if isinstance(m, torch.nn.Linear)}


def _family(model) -> str | None:
    from loralab.speech.backbones import family_of_config

    config = getattr(model, "config", None)
    return family_of_config(config.to_dict()) if config is not None else None


def _family_title(model) -> str:
    from loralab.speech.backbones import BACKBONES

    family = _family(model)
    return f"{BACKBONES[family].title} (family '{family}')" if family else type(model).__name__


def decoder_regex_of(model) -> str:
    """The text decoder's LoRA targets of ``model``'s family (any Linear for an unknown family)."""
    from loralab.speech.backbones import BACKBONES

    family = _family(model)
    return BACKBONES[family].default_lora_targets if family else ".*"


def _prefixes(modules: list[str], limit: int = 4) -> str:
    """The distinct module prefixes of ``modules`` (layer numbers folded), for an error message."""
    folded = sorted({re.sub(r"\.\d+\.", ".N.", m) for m in modules})
    return ", ".join(folded[:limit]) + (f" (+{len(folded) - limit} more)" if len(folded) > limit else "")


def adapter_target_regex(model, adapter_dir: Path, saved_targets, decoder_regex: str | None = None) -> str:
    """The regex of the modules to wrap for the adapter in ``adapter_dir`` on ``model``.

    From the tensors' names when the weights are there: every one must name a Linear layer of
    the model, else an error names the unmatched prefixes and the model's family. Without the
    weights: a saved regex as it is, a saved list restricted to ``decoder_regex`` (None: the
    text decoder of ``model``'s family).
    """
    modules = adapter_tensor_modules(adapter_dir)
    if modules is None:
        if isinstance(saved_targets, str):
            return saved_targets
        return names_within(list(saved_targets or []), decoder_regex or decoder_regex_of(model))
    if not modules:
        raise LoralabError(f"{Path(adapter_dir) / ADAPTER_WEIGHTS} holds no LoRA tensors (no '.lora_' names)")
    linear = _linear_names(model)
    unmatched = [m for m in modules if m not in linear]
    if unmatched:
        matched = len(modules) - len(unmatched)
        raise LoralabError(
            f"the adapter in {adapter_dir} does not fit this {_family_title(model)} model: "
            f"{len(unmatched)} of its {len(modules)} LoRA modules name no Linear layer of the model "
            f"({matched} do); unmatched: {_prefixes(unmatched)}. Was it trained for another model family "
            "or layout (e.g. the original remote-code Phi-4 layout: convert it with "
            "`loralab speech convert-checkpoint`)?"
        )
    return exact_regex(modules)
