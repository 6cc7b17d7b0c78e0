"""Memory and time of a preset's training and evaluation, estimated without a GPU.

``estimate(cfg, batch_size=None, mfu=0.4)`` builds the preset's full-size model with fake
tensors and measures one step of the real training code; see :mod:`loralab.estimate.core`.
"""

from __future__ import annotations


def estimate(cfg, batch_size: int | None = None, mfu: float = 0.4) -> dict:
    from loralab.estimate.core import estimate as _estimate

    return _estimate(cfg, batch_size=batch_size, mfu=mfu)


def format_estimate(result: dict) -> str:
    from loralab.estimate.report import format_estimate as _format

    return _format(result)


__all__ = ["estimate", "format_estimate"]
