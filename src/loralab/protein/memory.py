"""Will a prediction fit in memory? Checked before the model loads or a big tensor is made.

The forward pass runs on length-sorted batches, each padded to its longest chain, so its peak is
``batch size x L_max^2`` residue pairs of pair features, not one chain's ``L^2``: four 1,800-residue
chains need four times what one does. :func:`check_fits_in_memory` returns the largest batch size
(at most the one asked for) whose every batch fits, and refuses, saying how long a chain fits, when
one chain alone does not. The 3D reconstruction (MDS, then L-BFGS chain refinement on ``[L, L]``
float64 arrays) runs on the host one chain at a time, and is checked against the host's memory.
"""

from __future__ import annotations

from pathlib import Path

from loralab.errors import DataError

# float64 [L, L] arrays alive at once in chain_refine's objective (diff is [L, L, 3]; dist, resid,
# coef, short, W, D, far, the separation matrix) plus MDS: about 16 of them, 8 bytes each.
RECONSTRUCT_PAIR_BYTES = 16 * 8
GIB = 1024**3


def pair_bytes(cfg, runtime) -> int:
    """Bytes per residue pair at the peak of a forward pass, roughly: the [L, L, channels] pair
    features and MLP activations (in the weight dtype), plus the float32/float64 copies of the
    distance map that MDS works on."""
    import torch

    head = cfg.protein_head
    channels = head.pair_dim + head.hidden_dim + max(head.distogram_bins, 0)
    channels += 2 * getattr(head, "trunk_channels", 0) if getattr(head, "trunk_blocks", 0) else 0
    element = torch.finfo(runtime.weight_dtype).bits // 8
    return element * channels + 4 + 8 + 8


def available_memory(device) -> int | None:
    """Free bytes on ``device`` (a CUDA GPU's free memory, else (also for None) the host's MemAvailable)."""
    import torch

    if getattr(device, "type", None) == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        import os

        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_fits_in_memory(
    summaries: list[dict], cfg, runtime, available: int | None = None, batch_size: int = 1,
    host_available: int | None = None,
) -> int:  # fmt: skip
    """The batch size to predict with (``batch_size`` or less: every length-sorted batch's padded
    pair tensors fit in 80% of ``available``); a DataError, before anything is allocated, when the
    longest chain alone does not fit, for the forward pass or for its 3D reconstruction on the host."""
    if not summaries:
        return batch_size
    longest = max(summaries, key=lambda s: s["predicted_length"])
    per_pair = pair_bytes(cfg, runtime)
    available = available_memory(runtime.device) if available is None else available
    if runtime.device.type == "cpu":
        host_available = available if host_available is None else host_available
    else:
        host_available = available_memory(None) if host_available is None else host_available
    _refuse_if_too_long(longest, per_pair, available, runtime.device.type, cfg, "the [L, L] pair features")
    _refuse_if_too_long(
        longest, RECONSTRUCT_PAIR_BYTES, host_available, "the host", cfg, "its 3D reconstruction"
    )
    if available is None:
        return batch_size
    lengths = sorted(s["predicted_length"] for s in summaries)  # as predict_distance_matrices batches
    for size in range(batch_size, 0, -1):
        chunks = [lengths[i : i + size] for i in range(0, len(lengths), size)]
        if max(len(c) * c[-1] ** 2 for c in chunks) * per_pair <= 0.8 * available:
            return size
    return 1  # not reached: one chain fits (checked above)


def _refuse_if_too_long(
    longest: dict, per_pair: int, available: int | None, where: str, cfg, what: str
) -> None:
    n = longest["predicted_length"]
    if available is None or n * n * per_pair <= 0.8 * available:
        return
    fits = int((0.8 * available / per_pair) ** 0.5)
    raise DataError(
        f"sequence '{longest['given_name']}': {n} residues need about {n * n * per_pair / GIB:,.1f} GiB "
        f"for {what} ({per_pair} bytes per residue pair), but {where} has {available / GIB:,.1f} GiB "
        f"available: up to about {fits:,} residues fit. Crop it (leave out --no-crop: the model's "
        f"protein.max_length is {cfg.protein.max_length}), split it into domains, or use a machine with "
        "more memory"
    )
