"""Training faults turned into messages a user can act on: out of memory, NaN/inf loss."""

from __future__ import annotations

import os
import resource
import sys
from pathlib import Path

from loralab.errors import LoralabError


class NonFiniteLoss(LoralabError):
    """A NaN/inf loss or gradient: training stopped before the optimizer applied it."""

    def __init__(self, message: str, ids: list[str]):
        super().__init__(message)
        self.ids = ids


class TrainingOutOfMemory(LoralabError):
    """The device ran out of memory; the message names a setting that keeps the effective batch."""


def is_oom(error: BaseException) -> bool:
    import torch

    if isinstance(error, torch.OutOfMemoryError):
        return True
    # MPS (and some older CUDA paths) raise a plain RuntimeError.
    return isinstance(error, RuntimeError) and "out of memory" in str(error).lower()


def smaller_batch_settings(batch_size: int, accumulation: int) -> tuple[int, int] | None:
    """(batch_size, gradient_accumulation) with half the memory per micro-batch and the same
    effective batch, or None when the micro-batch is already a single example."""
    if batch_size <= 1:
        return None
    if batch_size % 2 == 0:
        return batch_size // 2, accumulation * 2
    # Odd sizes cannot halve exactly: go to the largest divisor below, keeping the product.
    for b in range(batch_size // 2, 0, -1):
        if batch_size % b == 0:
            return b, accumulation * (batch_size // b)
    return 1, accumulation * batch_size


def oom_message(
    *,
    device: str,
    step: int,
    epoch: int,
    batch_size: int,
    accumulation: int,
    world_size: int,
    peak_gb: float | None,
    ids: list[str],
    run_dir: Path,
) -> str:
    effective = batch_size * accumulation * world_size
    where = f"out of memory on {device} at optimizer step {step + 1} (epoch {epoch})"
    peak = f", peak {peak_gb:.1f} GB" if peak_gb is not None else ""
    lines = [
        f"{where}{peak}, with training.batch_size={batch_size}, training.gradient_accumulation={accumulation} "
        f"(effective batch {effective}); batch ids: {ids[:16]}{' ...' if len(ids) > 16 else ''}."
    ]
    smaller = smaller_batch_settings(batch_size, accumulation)
    if smaller is not None:
        b, a = smaller
        lines.append(
            f"Same effective batch, half the memory per micro-batch: --batch-size {b} --gradient-accumulation {a} "
            f"(training.batch_size={b} training.gradient_accumulation={a})."
        )
    else:
        lines.append(
            "The micro-batch is already one example: turn on model.gradient_checkpointing=true, shorten the "
            "inputs (speech.max_audio_seconds / protein.max_length), lower lora.rank, or spread the run over "
            "several GPUs (accelerate launch with training.deepspeed=zero2)."
        )
    lines.append(
        f"Start a new run (a different --output-dir, or remove {run_dir}): --resume needs the settings unchanged."
    )
    return "\n".join(lines)


def nan_message(
    *,
    value: float,
    step: int,
    epoch: int,
    micro_batch: int,
    ids: list[str],
    what: str,
    last_checkpoint: Path | None,
) -> str:
    kept = (
        f"the last good checkpoint {last_checkpoint} is untouched (resume from it with --resume)"
        if last_checkpoint
        else "no checkpoint had been written yet"
    )
    return (
        f"non-finite {what} ({value}) at optimizer step {step + 1}, epoch {epoch}, micro-batch {micro_batch + 1}; "
        f"batch ids: {ids}. The update was not applied and training stopped; {kept}. Check those examples, "
        "lower training.learning_rate, or use bf16 instead of fp16 (training.mixed_precision=bf16)."
    )


def memory_gb(device) -> tuple[float | None, float | None]:
    """(allocated now, peak) in GB for the run's device; host RSS on CPU."""
    import torch

    kind = getattr(device, "type", str(device))
    if kind == "cuda" and torch.cuda.is_available():
        return torch.cuda.memory_allocated(device) / 1e9, torch.cuda.max_memory_allocated(device) / 1e9
    if kind == "mps" and torch.backends.mps.is_available():
        return torch.mps.current_allocated_memory() / 1e9, torch.mps.driver_allocated_memory() / 1e9
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    peak = peak_kb / 1e6 if sys.platform != "darwin" else peak_kb / 1e9  # macOS reports bytes
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        now = pages * os.sysconf("SC_PAGE_SIZE") / 1e9
    except (OSError, ValueError, IndexError):
        now = None
    return now, peak
