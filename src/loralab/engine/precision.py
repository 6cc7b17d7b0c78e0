"""Which precision a run computes in, chosen for the hardware it runs on.

One owner for the choice every route makes (training, evaluation, ``assess``, ``serve``, the
protein system): bf16 where the device multiplies bf16 natively, fp32 elsewhere.

* CUDA: bf16 where the GPU supports it, else fp16 (with a gradient scaler in training).
* MPS: bf16.
* CPU: bf16 when torch's kernels use bf16 matrix instructions on this CPU, detected at run
  time from what the processor reports to torch (Intel AMX-BF16, AVX512-BF16 on Intel and AMD,
  the Arm BF16 extension), not from a list of CPU names; fp32 otherwise, where bf16 would be
  emulated and slower than fp32.

Trainable parameters, their optimizer state and the loss reduction stay fp32 in every case
(autocast computes the matrix products in bf16; the engine keeps the master weights fp32).
``LORALAB_CPU_BF16=0`` (or ``1``) overrides the CPU detection, e.g. to compare against fp32.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from loralab.errors import LoralabError

CPU_BF16_ENV = "LORALAB_CPU_BF16"
# torch's own names (torch._C._cpu._get_cpu_capability()) of the instructions that multiply bf16.
CPU_BF16_FLAGS = ("amx_bf16", "avx512_bf16", "bf16", "sve_bf16")


@dataclass(frozen=True)
class Precision:
    """weights: dtype of frozen parameters; autocast: dtype of torch.autocast or None;
    mixed_precision: accelerate's name for it ("bf16", "fp16", "no"); why: one line for people."""

    weights: Any
    autocast: Any | None
    mixed_precision: str
    why: str

    def describe(self) -> str:
        weights = str(self.weights).removeprefix("torch.")
        autocast = str(self.autocast).removeprefix("torch.") if self.autocast is not None else "off"
        return f"weights {weights}, autocast {autocast} ({self.why})"


def cpu_bf16_support() -> tuple[bool, str]:
    """(does this CPU multiply bf16 natively, the reason in words)."""
    forced = os.environ.get(CPU_BF16_ENV)
    if forced is not None and forced.strip() in ("0", "1"):
        on = forced.strip() == "1"
        return on, f"{CPU_BF16_ENV}={forced.strip()}"
    import torch

    try:
        capability = torch._C._cpu._get_cpu_capability()
    except (AttributeError, RuntimeError):  # an older torch: no flags to read
        capability = {}
    flags = [f for f in CPU_BF16_FLAGS if capability.get(f)]
    if flags and torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported():
        return True, f"CPU has {', '.join(f.upper().replace('_', '-') for f in flags)}"
    return False, "CPU has no bf16 matrix instructions (no AMX-BF16 / AVX512-BF16 / Arm BF16)"


def device_bf16_support(device_type: str) -> tuple[bool, str]:
    """(does ``device_type`` multiply bf16 natively, why)."""
    import torch

    if device_type == "cuda":
        ok = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
        return ok, "GPU supports bf16" if ok else "GPU has no bf16 support"
    if device_type == "mps":
        return True, "Apple GPU (MPS)"
    return cpu_bf16_support()


def _names():
    import torch

    return {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32, "no": None}


def training_precision(dtype: str, mixed_precision: str, device_type: str) -> Precision:
    """The precision of a training run from ``model.dtype`` and ``training.mixed_precision``."""
    import torch

    bf16_ok, why = device_bf16_support(device_type)
    mp = mixed_precision
    if mp == "fp16" and device_type == "cpu":
        raise LoralabError(
            "training.mixed_precision=fp16 on a CPU: torch's CPU fp16 kernels are emulated (slower than "
            "fp32) and fp16 needs a gradient scaler made for GPUs; use training.mixed_precision=auto "
            "(bf16 where the CPU multiplies it natively) or no"
        )
    if mp == "bf16" and not bf16_ok:
        hint = "training.mixed_precision=fp16" if device_type == "cuda" else "training.mixed_precision=no"
        raise LoralabError(
            f"training.mixed_precision=bf16 but this {device_type.upper()} cannot multiply bf16 natively "
            f"({why}): it would run several times slower than fp32; use {hint} (or auto)"
        )
    if mp == "auto":
        if bf16_ok:
            mp, why = "bf16", f"auto: {why}"
        elif device_type == "cuda":
            mp, why = "fp16", f"auto: {why}"
        else:
            mp, why = "no", f"auto: {why}"
    else:
        why = f"training.mixed_precision={mp}"
    if dtype != "auto":
        weights = _names()[dtype]
        why += f", model.dtype={dtype}"
    else:
        weights = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(mp, torch.float32)
    return Precision(weights=weights, autocast=_names()[mp], mixed_precision=mp, why=why)


def inference_precision(device: Any, choice: str = "auto") -> Precision:
    """Weights for evaluation, ``assess``, ``serve`` and protein inference (no autocast: the
    model computes in its weights' dtype, as it always has on GPUs).

    ``choice``: auto (bf16 where the device multiplies it natively, fp16 on older GPUs, else
    fp32), bf16, or fp32.
    """
    import torch

    device_type = torch.device(device).type
    bf16_ok, why = device_bf16_support(device_type)
    if choice == "fp32":
        return Precision(torch.float32, None, "no", "precision=fp32")
    if choice == "bf16" and not bf16_ok:
        raise LoralabError(
            f"precision bf16 asked for, but this {device_type.upper()} cannot ({why}); use fp32"
        )
    if choice not in ("auto", "bf16"):
        raise LoralabError(f"precision must be auto, bf16 or fp32, got {choice!r}")
    if bf16_ok:
        return Precision(torch.bfloat16, None, "bf16", why if choice == "auto" else "precision=bf16")
    if device_type == "cuda":
        return Precision(torch.float16, None, "fp16", why)
    return Precision(torch.float32, None, "no", why)


def autocast_context(device: Any, autocast_dtype: Any | None):
    """``torch.autocast`` for ``autocast_dtype`` on ``device``'s type, or a context that does nothing."""
    import contextlib

    import torch

    if autocast_dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=autocast_dtype)
