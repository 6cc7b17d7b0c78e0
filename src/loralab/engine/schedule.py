"""Learning-rate schedules: linear warm-up, then linear, cosine or constant.

The same multipliers as transformers' ``get_scheduler`` ("linear", "cosine",
"constant_with_warmup"), written out here because importing ``transformers.optimization``
pulls in the Trainer stack (peft, torch.distributed.tensor: seconds per process start).
The multiplier is a small callable object, so ``LambdaLR.state_dict()`` stores its
settings as plain numbers and a checkpoint loads with ``weights_only=True``.
"""

from __future__ import annotations

import math

KINDS = ("linear", "cosine", "constant")


class WarmupDecay:
    """lr multiplier at optimizer step ``step`` (0-based: the value used by the (step+1)-th update)."""

    def __init__(self, kind: str, warmup_steps: int, total_steps: int):
        if kind not in KINDS:
            raise ValueError(f"unknown schedule {kind!r} (known: {', '.join(KINDS)})")
        self.kind, self.warmup_steps, self.total_steps = kind, int(warmup_steps), int(total_steps)

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return step / max(1, self.warmup_steps)
        if self.kind == "constant":
            return 1.0
        progress = min(1.0, (step - self.warmup_steps) / max(1, self.total_steps - self.warmup_steps))
        if self.kind == "linear":
            return max(0.0, 1.0 - progress)
        return max(0.0, 0.5 * (1.0 + math.cos(math.pi * progress)))


def warmup_steps(warmup_ratio: float, total_steps: int) -> int:
    """Warm-up steps of a run: the ratio of the total, rounded up, but never every step (the
    warm-up's first step has lr 0, so a 1-step run would log lr 0.0 and train nothing)."""
    return min(math.ceil(warmup_ratio * total_steps), max(0, total_steps - 1))


def make_scheduler(optimizer, kind: str, warmup_steps: int, total_steps: int):
    from torch.optim.lr_scheduler import LambdaLR

    return LambdaLR(optimizer, WarmupDecay(kind, warmup_steps, total_steps))
