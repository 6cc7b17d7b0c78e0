"""Limits of the assessment service, and where the demo's trained model lives."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

MB = 1024 * 1024
# The demo's trained speech model (``loralab demo`` / ``make demo``), in the order preferred.
DEMO_RUNS = ("demo_qwen2audio", "demo_qwen2audio_lora")


@dataclass(frozen=True)
class ServeLimits:
    """What one request may hold, and how many recordings may wait for the model."""

    max_upload_bytes: int = 10 * MB  # one recording, as uploaded (before decoding)
    max_duration_s: float = 30.0  # one recording, decoded
    # Read from the header before decoding: a few hundred kB of FLAC can hold hours of 8 channels.
    max_channels: int = 8
    max_sample_rate: int = 96000  # Hz; speech needs 16 kHz, studio recorders give 44.1-96 kHz
    max_text_chars: int = 500  # the reference sentence
    max_batch_items: int = 16  # recordings in one /v1/assess/batch request
    queue_capacity: int = 64  # recordings waiting for the model; beyond: 503 + Retry-After
    read_timeout_s: float = 60.0  # to receive a whole request body (10 MB at ~1.4 Mbit/s)
    batch_wait_s: float = 0.02  # how long the first waiting request waits for others to batch with
    workers: int = 1  # recordings on the model at once (each in a thread of its own)
    threads_per_worker: int | None = None  # torch CPU threads of each worker (None: torch's default)

    def request_bytes(self, batch: bool) -> int:
        """Largest request body accepted: the recordings base64-encoded, plus room for the rest."""
        items = self.max_batch_items if batch else 1
        return items * (self.max_upload_bytes * 4 // 3 + 4096) + MB


def default_workers(device_type: str, cores: int, threads: int | None) -> tuple[int, int | None]:
    """(workers, torch threads per worker) for a server on ``device_type`` with ``cores`` cores.

    A GPU runs one batch at a time (one worker, batches fill it). On a CPU one recording uses
    its cores poorly (a batch-of-one decoder is mostly small matrix products), so concurrent
    requests run side by side: up to 4 workers, the cores split among them.
    """
    if device_type != "cpu":
        return 1, threads
    if threads:
        return max(1, cores // threads), threads
    workers = max(1, min(cores, 4))
    return workers, max(1, cores // workers)


def find_demo_model(root: str | Path = "demo_output") -> Path | None:
    """The demo's trained speech model under ``root`` (``<root>/speech/runs/<preset>/final_model``)."""
    from loralab.engine.model_card import has_adapter
    from loralab.engine.run_dir import RunDir

    runs = Path(root) / "speech" / "runs"
    for preset in DEMO_RUNS:
        final = RunDir(runs / preset).final_model
        if has_adapter(final):
            return final
    return None
