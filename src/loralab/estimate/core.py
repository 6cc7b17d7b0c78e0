"""``estimate(cfg)``: memory and time of a preset's training step and evaluation, without a GPU.

The preset's full-size model is built from its config with fake weights; one training step of
the real code (see :mod:`loralab.estimate.measure`) runs on the longest batch of each task
(the peak of an epoch: a length-grouped batch is padded to its longest example) and on the
median one (FLOPs). Epoch FLOPs: every batch of the trainer's own epoch plan over
SpeechOcean762-like lengths, each costed by interpolating the measured steps linearly in its
padded length. Evaluation: prefill and decoding with the KV cache at the evaluator's batch size.
"""

from __future__ import annotations

import importlib

import torch

from loralab.errors import LoralabError
from loralab.estimate import hardware, inputs
from loralab.estimate.fake import wide_constants

GB = 1e9
EPOCH_UTTERANCES = inputs.SO762_TRAIN_UTTERANCES


def precision(cfg):
    """(weight dtype of frozen parameters, autocast dtype or None) on a bf16-capable GPU."""
    names = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
    weights = torch.bfloat16 if cfg.model.dtype == "auto" else names[cfg.model.dtype]
    mp = cfg.training.mixed_precision
    autocast = {"auto": torch.bfloat16, "bf16": torch.bfloat16, "fp16": torch.float16, "no": None}[mp]
    return weights, autocast


def precision_names(weight_dtype, autocast_dtype) -> dict:
    return {
        "weights": str(weight_dtype).removeprefix("torch."),
        "autocast": str(autocast_dtype).removeprefix("torch.") if autocast_dtype else "none",
    }


def _interpolate(points: list[tuple[int, float]], length: int) -> float:
    (l0, f0), (l1, f1) = sorted(points)
    if l1 == l0:
        return f1
    return f0 + (f1 - f0) * (length - l0) / (l1 - l0)


def epoch_flops(examples, batch_size: int, training_cfg, points: dict) -> tuple[float, int]:
    """(FLOPs of one epoch, micro-batches) over the trainer's epoch plan of ``examples``."""
    from loralab.engine.sampler import epoch_plan

    lengths = [e.length for e in examples]
    plan = epoch_plan(lengths, batch_size, training_cfg.seed, 1, training_cfg.group_by_length)
    total = 0.0
    for batch in plan.batches:
        padded = max(lengths[i] for i in batch)
        total += sum(_interpolate(points[examples[i].task], padded) for i in batch) / batch_size
    return total, len(plan.batches)


def check_batch_size(batch_size: int | None, default: int) -> int:
    size = default if batch_size is None else batch_size
    if size < 1:
        raise LoralabError(f"--batch-size must be at least 1 (got {size})")
    return size


def estimate(cfg, batch_size: int | None = None, mfu: float = hardware.DEFAULT_MFU) -> dict:
    """The estimate of ``cfg`` as a JSON-ready dict (see :func:`loralab.estimate.report.format_estimate`).

    The config's system answers: its contract's ``ESTIMATOR`` (see :mod:`loralab.engine.system`)
    names the function, which uses the helpers of this module."""
    from loralab.engine.system import system_module

    batch_size = check_batch_size(batch_size, cfg.training.batch_size)
    if not 0 < mfu <= 1:
        raise LoralabError(f"--mfu must be in (0, 1] (got {mfu})")
    target = getattr(system_module(cfg.system), "ESTIMATOR", None)
    if target is None:
        raise LoralabError(f"{cfg.name}: the estimator does not support system '{cfg.system}'")
    module, _, name = target.partition(":")
    estimator = getattr(importlib.import_module(module), name)
    with wide_constants():
        return estimator(cfg, batch_size, mfu, *precision(cfg))


def memory_breakdown(model, optimizer_bytes: int, peak_bytes: int) -> dict:
    trainable = [p for p in model.parameters() if p.requires_grad]
    weights = sum(p.untyped_storage().nbytes() for p in model.parameters())
    grads = sum(p.numel() * p.element_size() for p in trainable)
    activations = max(0, peak_bytes - weights - grads - optimizer_bytes)
    return {
        "params": {
            "total": sum(p.numel() for p in model.parameters()),
            "trainable": sum(p.numel() for p in trainable),
        },
        "memory_gb": {
            "weights": gb(weights),
            "gradients": gb(grads),
            "optimizer": gb(optimizer_bytes),
            "activations": gb(activations),
            "peak": gb(peak_bytes),
        },  # fmt: skip
        "peak_gb": gb(peak_bytes),
        "peak_bytes": int(peak_bytes),
    }


def timing(flops: float, micro_batches: int, mfu: float) -> dict:
    seconds = {g.key: round(hardware.compute_seconds(flops, g, mfu), 1) for g in hardware.GPUS}
    return {
        "micro_batches_per_epoch": micro_batches,
        "tflops_per_step": round(flops / micro_batches / 1e12, 2),
        "tflops_per_epoch": round(flops / 1e12, 1),
        "epoch_seconds": seconds,
        "epoch_seconds_h100": seconds["h100"],
    }


def gb(n: float) -> float:
    return round(n / GB, 2)


def assumptions(mfu: float) -> dict:
    return {
        "epoch": f"{EPOCH_UTTERANCES} utterances x the preset's tasks, each on its speech.task_shares share, prompts "
        "with their reference block (SpeechOcean762 train split)",
        "mfu": mfu,
        "decode_mbu": hardware.DEFAULT_MBU,
        "gpus": {
            g.key: f"{g.name}: {g.bf16_flops / 1e12:g} TFLOPS bf16 dense, {g.bandwidth / 1e12:g} TB/s"
            for g in hardware.GPUS
        },  # fmt: skip
        "lengths": dict(inputs.ASSUMPTIONS),
        "peak": "step 2 (AdamW state allocated) on a batch of the longest example of each task",
        "kernels": "fake tensors on the CPU dispatch path: SDPA attention, CPU autocast op lists",
        "lora_init": "a pretrained adapter costs what a fresh one of the same rank does",
        "audio_encoder_cache": "off (model.cache_audio_encoder saves encoder time after epoch 1, not counted)",
    }
