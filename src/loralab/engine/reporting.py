"""Where a run reports progress: the event log, TensorBoard and a tqdm bar (main process only).

A :class:`Window` accumulates loss, samples and tokens between two log lines as device
tensors, so logging costs one reduction every ``log_every`` steps rather than a host sync
per micro-batch.
"""

from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path
from typing import Any

from loralab.engine.events import EventLog
from loralab.engine.faults import memory_gb

HEARTBEAT_SECONDS = 30.0


class Window:
    """Sums over the micro-batches since the last log line (this process's share)."""

    def __init__(self, device):
        self.device = device
        self.reset()

    def reset(self) -> None:
        import torch

        self.sums = torch.zeros(4, dtype=torch.float64, device=self.device)  # loss, micro, samples, tokens
        self.start = time.perf_counter()

    def add(self, loss, samples: int, tokens: int) -> None:
        import torch

        self.sums += torch.stack(
            [
                loss.detach().to(torch.float64),
                torch.ones((), dtype=torch.float64, device=self.device),
                torch.tensor(float(samples), dtype=torch.float64, device=self.device),
                torch.tensor(float(tokens), dtype=torch.float64, device=self.device),
            ]
        )

    def collect(self, accelerator) -> dict[str, float]:
        """Mean loss and throughput over all processes (a collective call: every rank runs it)."""
        sums = (
            accelerator.reduce(self.sums.clone(), reduction="sum")
            if accelerator.num_processes > 1
            else self.sums
        )
        loss, micro, samples, tokens = (float(x) for x in sums.cpu())
        elapsed = max(time.perf_counter() - self.start, 1e-9)
        self.reset()
        return {
            "loss": loss / micro if micro else float("nan"),
            "samples_per_s": samples / elapsed,
            "tokens_per_s": tokens / elapsed,
        }


class Reporter:
    """Event log + TensorBoard + progress bar; silent on non-main processes."""

    def __init__(
        self, run_dir: Path, enabled: bool, purge_step: int | None, total_steps: int, initial_step: int
    ):
        self.enabled = enabled
        self.events = EventLog(run_dir, enabled=enabled)
        self.tb = None
        self.bar = None
        if enabled:
            from torch.utils.tensorboard import SummaryWriter
            from tqdm.auto import tqdm

            # purge_step drops TensorBoard points past the checkpoint a resumed run restarts from.
            self.tb = SummaryWriter(log_dir=str(Path(run_dir) / "logs"), purge_step=purge_step)
            self._tqdm = tqdm
            self._bar_args = dict(total=total_steps, initial=initial_step, desc="train", unit="step")

    def open_bar(self) -> None:
        """Start the progress bar (after the start-up messages, which it would otherwise garble)."""
        if self.enabled and self.bar is None:
            self.bar = self._tqdm(**self._bar_args, dynamic_ncols=True)

    def print(self, text: str) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.write(text)
        else:
            print(text, flush=True)

    def event(self, kind: str, step: int, /, **fields: Any) -> dict:
        return self.events.write(kind, step, **fields)

    def step(
        self, step: int, epoch_progress: float, device, grad_norm: float | None, lr: float, window: dict
    ) -> None:
        if not self.enabled:
            return
        now, peak = memory_gb(device)
        self.events.write(
            "step",
            step,
            epoch=round(epoch_progress, 6),
            loss=window["loss"],
            grad_norm=grad_norm,
            lr=lr,
            samples_per_s=window["samples_per_s"],
            tokens_per_s=window["tokens_per_s"],
            memory_gb=now,
            peak_memory_gb=peak,
        )
        scalars = {
            "train/loss": window["loss"],
            "train/lr": lr,
            "train/samples_per_s": window["samples_per_s"],
        }
        scalars["train/tokens_per_s"] = window["tokens_per_s"]
        if grad_norm is not None:
            scalars["train/grad_norm"] = grad_norm
        if peak is not None:
            scalars["train/peak_memory_gb"] = peak
        for k, v in scalars.items():
            self.tb.add_scalar(k, v, step)
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{window['loss']:.4f}", lr=f"{lr:.2e}", refresh=False)

    def advance(self, n: int = 1) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def metrics(self, step: int, epoch: int, metrics: dict[str, float]) -> None:
        if not self.enabled:
            return
        self.events.write("eval", step, epoch=epoch, metrics=metrics)
        for k, v in metrics.items():
            if isinstance(v, (int, float)):
                self.tb.add_scalar(f"eval/{k}", v, step)
        self.tb.flush()

    @contextlib.contextmanager
    def heartbeat(self, step: int):
        """Write a heartbeat event every HEARTBEAT_SECONDS while the block runs (long evaluation)."""
        if not self.enabled:
            yield
            return
        stop = threading.Event()

        def beat():
            while not stop.wait(HEARTBEAT_SECONDS):
                self.events.write("heartbeat", step)

        thread = threading.Thread(target=beat, daemon=True, name="loralab-heartbeat")
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(timeout=5)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        if self.tb is not None:
            self.tb.flush()
            self.tb.close()
            self.tb = None
