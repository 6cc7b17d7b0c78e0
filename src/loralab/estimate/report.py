"""The estimate as text for people (``loralab estimate`` without ``--json``) and as a table row."""

from __future__ import annotations

from loralab.estimate.hardware import GPUS

TARGET_PEAK_GB, TARGET_EPOCH_S = 24.0, 300.0


def _times(seconds: dict) -> str:
    return ", ".join(f"{g.name.removeprefix('NVIDIA ')} {seconds[g.key]:.0f} s" for g in GPUS)


def format_estimate(r: dict) -> str:
    m, ev = r["memory_gb"], r["evaluation"]
    lines = [
        f"{r['preset']}: {r['model']} at micro-batch {r['batch_size']} (accumulation {r['gradient_accumulation']}),"
        f" weights {r['precision']['weights']}, autocast {r['precision']['autocast']},"
        f" activation checkpointing {'on' if r['activation_checkpointing'] else 'off'}",
        f"parameters: {r['params']['total'] / 1e9:.2f} B, trainable {r['params']['trainable'] / 1e6:.1f} M",
        f"memory (GB): weights {m['weights']}, gradients {m['gradients']}, optimizer {m['optimizer']},"
        f" activations {m['activations']}, peak {m['peak']}"
        f" ({'fits' if m['peak'] <= TARGET_PEAK_GB else 'does NOT fit'} in 24 GB)",
        f"training: {r['tflops_per_step']} TFLOP per micro-batch, {r['tflops_per_epoch']:.0f} TFLOP per epoch"
        f" ({r['micro_batches_per_epoch']} micro-batches)",
        f"epoch time at MFU {r['assumptions']['mfu']:.0%}: {_times(r['epoch_seconds'])}",
        f"evaluation (batch {ev['batch_size']}): peak {ev['peak_gb']} GB, {ev['tflops_per_epoch']:.0f} TFLOP;"
        f" {_times(ev['epoch_seconds'])} ({ev['note']})",
        "assumptions:",
    ]
    for key, value in r["assumptions"].items():
        if isinstance(value, dict):
            value = "; ".join(f"{k}={v}" for k, v in value.items())
        lines.append(f"  {key}: {value}")
    return "\n".join(lines)


def _s(seconds: float) -> str:
    return f"{seconds:.1f}" if seconds < 10 else f"{seconds:.0f}"


def table_row(r: dict) -> str:
    m, e, ev = r["memory_gb"], r["epoch_seconds"], r["evaluation"]
    return (
        f"| {r['preset']} | {r['batch_size']} | {r['params']['trainable'] / 1e6:.1f} M | {m['weights']} |"
        f" {m['gradients']} | {m['optimizer']} | {m['activations']} | **{m['peak']}** |"
        f" {r['tflops_per_epoch']:.0f} | {_s(e['h100'])} | {_s(e['a100_80gb'])} | {_s(e['rtx4090'])} |"
        f" {ev['peak_gb']} | {_s(ev['epoch_seconds']['h100'])} |"
    )


TABLE_HEADER = (
    "| preset | batch | trainable | weights GB | grads GB | optimizer GB | activations GB | peak GB |"
    " TFLOP/epoch | epoch s H100 | A100 80GB | RTX 4090 | eval peak GB | eval epoch s H100 |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
)
