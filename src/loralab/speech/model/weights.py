"""Loading base weights, below the backbone families (:mod:`loralab.speech.backbones` calls
these; :mod:`loralab.speech.model.load` builds on both): the default weight dtype, attention
kernels per sub-model, and the Phi-4-multimodal specifics.

The vision encoder (``model.model.embed_tokens_extend.image_embed``, ~0.44B parameters on the
real model) is never trained and never used by an audio-only pipeline: it is replaced by a
stub right after loading, so it does not occupy accelerator memory. The forward pass only calls
it when ``image_pixel_values`` are given, which loralab never does.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import torch

from loralab.errors import LoralabError
from loralab.speech.model.layout import check_native_layout

VISION_PATH = "model.embed_tokens_extend.image_embed"


def default_weight_dtype(device: Any):
    """The inference weights' dtype on ``device``: bf16 where it multiplies bf16 natively (GPUs
    that support it, MPS, CPUs with AMX / AVX512-BF16), fp16 on older GPUs, else fp32
    (:func:`loralab.engine.precision.inference_precision`)."""
    from loralab.engine.precision import inference_precision

    return inference_precision(device).weights


def resolve_attn_implementation(choice: str, device: Any) -> dict[str, str]:
    """Per-sub-model attention kernels for ``from_pretrained(attn_implementation=...)``.

    The text decoder gets flash-attention when installed on CUDA (for ``auto``), else SDPA. The
    audio encoder always gets SDPA: it adds a relative-position bias through the attention mask,
    which flash-attention cannot take.
    """
    text = choice
    if choice == "auto":
        on_cuda = torch.device(device).type == "cuda"
        text = "flash_attention_2" if on_cuda and importlib.util.find_spec("flash_attn") else "sdpa"
    audio = "eager" if text == "eager" else "sdpa"
    return {"": text, "audio_config": audio, "vision_config": audio}


class VisionEncoderRemoved(torch.nn.Module):
    """Stands where the vision encoder was (see :func:`drop_vision_encoder`); fails if ever called."""

    def __init__(self, removed_parameters: int):
        super().__init__()
        self.removed_parameters = removed_parameters  # still reported in parameter counts

    def forward(self, *args, **kwargs):
        raise LoralabError(
            "this model was loaded for audio only: its vision encoder was removed to save memory"
        )


def drop_vision_encoder(model) -> int:
    """Replace the image encoder of a ``Phi4MultimodalForCausalLM`` by a stub; returns parameters freed."""
    extend = model.model.embed_tokens_extend
    if isinstance(extend.image_embed, VisionEncoderRemoved):
        return 0
    freed = sum(p.numel() for p in extend.image_embed.parameters())
    extend.image_embed = VisionEncoderRemoved(freed)
    return freed


def load_phi4mm(
    model_dir: str | Path,
    *,
    device: Any = "cpu",
    dtype: Any = None,
    attn_implementation: str = "auto",
    keep_vision: bool = False,
):
    """A native ``Phi4MultimodalForCausalLM`` from ``model_dir``, on ``device``, vision encoder dropped.

    Raises :class:`~loralab.errors.ModelLayoutError` for the original remote-code layout (with the
    convert-checkpoint command to run). ``dtype`` defaults to :func:`default_weight_dtype`.
    """
    from transformers import Phi4MultimodalForCausalLM

    model_dir = Path(model_dir)
    check_native_layout(model_dir)
    device = torch.device(device)
    dtype = dtype or default_weight_dtype(device)
    kwargs: dict[str, Any] = {}
    if device.type != "cpu":
        kwargs["device_map"] = {"": device}
    model = Phi4MultimodalForCausalLM.from_pretrained(
        model_dir,
        dtype=dtype,
        attn_implementation=resolve_attn_implementation(attn_implementation, device),
        **kwargs,
    )
    if not keep_vision:
        drop_vision_encoder(model)
        if device.type == "cuda":
            torch.cuda.empty_cache()
    model.requires_grad_(False)
    return model
