"""What every benchmark records about the machine it ran on: cores, load, bf16 capability."""

from __future__ import annotations

import os


def machine_info() -> dict:
    """Cores (all, and usable by this process), the 1-minute load average and the CPU's bf16 support."""
    import torch

    from loralab.engine.precision import cpu_bf16_support

    bf16, why = cpu_bf16_support()
    try:
        capability = torch._C._cpu._get_cpu_capability()
        cpu_name = capability.get("cpu_name")
    except (AttributeError, RuntimeError):
        cpu_name = None
    return {
        "cpu_count": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "load_average_1min": round(os.getloadavg()[0], 2),
        "cpu_name": cpu_name,
        "cpu_bf16": bf16,
        "cpu_bf16_why": why,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
    }
