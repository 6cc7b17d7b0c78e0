"""Named GPUs and how a FLOP count becomes seconds.

Peak dense bf16 tensor throughput and memory bandwidth from the vendors' data sheets. Training
and prefill are compute-bound: seconds = FLOPs / (peak x MFU). A decoding step reads the
weights and the KV cache once: seconds = max(compute time, bytes / (bandwidth x MBU)).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Gpu:
    key: str
    name: str
    bf16_flops: float  # dense, per second
    bandwidth: float  # bytes per second
    memory_gb: float


GPUS = (
    Gpu("h100", "NVIDIA H100 SXM 80GB", 989e12, 3.35e12, 80),
    Gpu("a100_80gb", "NVIDIA A100 80GB SXM", 312e12, 2.039e12, 80),
    Gpu("rtx4090", "NVIDIA GeForce RTX 4090", 165.2e12, 1.008e12, 24),
)
DEFAULT_MFU = 0.40
DEFAULT_MBU = 0.60  # memory-bandwidth utilisation of decoding steps


def compute_seconds(flops: float, gpu: Gpu, mfu: float) -> float:
    return flops / (gpu.bf16_flops * mfu)


def decode_seconds(flops: float, bytes_read: float, gpu: Gpu, mfu: float, mbu: float = DEFAULT_MBU) -> float:
    return max(compute_seconds(flops, gpu, mfu), bytes_read / (gpu.bandwidth * mbu))
