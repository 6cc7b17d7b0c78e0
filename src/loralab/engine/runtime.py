"""Where a run executes: device, dtypes, process rank. Built by the trainer, passed to systems."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class Runtime:
    """device: torch.device of this process. weight_dtype: dtype of frozen weights (bf16 where
    the device multiplies it natively, see :mod:`loralab.engine.precision`, else fp32);
    trainable parameters are always fp32. autocast_dtype:
    dtype for torch.autocast, or None for no autocast. rank/world_size/local_rank: the
    process in a distributed run (0/1/0 alone). is_main: rank 0, the one that writes files."""

    device: Any
    weight_dtype: Any
    autocast_dtype: Any | None = None
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    precision_why: str = ""  # why this precision (loralab.engine.precision), printed and recorded
    # The checkpoint a resumed run continues from (None: a fresh start). A system restores from it
    # what it would otherwise compute before training (the speech system's GOP scorer); the
    # trainer restores the weights, optimizer and counters later.
    resume_from: Path | None = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def cpu(cls) -> Runtime:
        """A single-process fp32 CPU runtime (tests, counting, tools)."""
        import torch

        return cls(device=torch.device("cpu"), weight_dtype=torch.float32)
