"""A bounded queue that batches waiting recordings onto the model.

Requests put their recordings in an ``asyncio`` queue of fixed capacity; a full queue refuses
at once (:class:`QueueFull`, answered 503 with ``Retry-After``) instead of letting waits grow
without bound. Each of ``workers`` workers takes the first waiting recording, gathers up to
``batch_size - 1`` more (waiting at most ``batch_wait_s`` for them) and runs the model on the
whole batch in a thread of its own, so the event loop keeps answering ``/health`` and refusing
what does not fit. Several workers share the one model (inference only reads it) and each runs
its batches with ``threads_per_worker`` torch threads, so concurrent requests use every core
instead of queueing behind one another; memory grows only by each batch's activations. A client
that goes away leaves a cancelled future, which the workers skip.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any


class QueueFull(Exception):
    """No room for the recordings of a request; ``retry_after`` seconds is the estimated wait."""

    def __init__(self, waiting: int, capacity: int, retry_after: int):
        super().__init__(f"the queue is full ({waiting} of {capacity} recordings waiting)")
        self.retry_after = retry_after


@dataclass
class Job:
    payload: Any
    future: asyncio.Future
    enqueued: float = field(default_factory=time.perf_counter)


@dataclass
class Outcome:
    """What the model returned for one job, with its timing (milliseconds)."""

    result: Any
    queued_ms: float
    model_ms: float
    batch_size: int


class BatchQueue:
    """``run_batch(payloads) -> results`` (same order) applied to batches of waiting payloads."""

    def __init__(self, run_batch: Callable[[Sequence[Any]], Sequence[Any]], *, capacity: int,
                 batch_size: int, batch_wait_s: float = 0.02, workers: int = 1,
                 threads_per_worker: int | None = None):  # fmt: skip
        self.run_batch = run_batch
        self.capacity = capacity
        self.batch_size = max(1, batch_size)
        self.batch_wait_s = batch_wait_s
        self.workers = max(1, workers)
        self.threads_per_worker = threads_per_worker
        self.queue: asyncio.Queue[Job] | None = None
        self.executor = ThreadPoolExecutor(
            max_workers=self.workers, thread_name_prefix="loralab-model", initializer=self._thread_setup
        )
        self.tasks: list[asyncio.Task] = []
        self.stats = {
            "batches": 0,
            "assessed": 0,
            "refused": 0,
            "failed": 0,
            "abandoned": 0,
            "model_seconds": 0.0,
        }
        self.running = 0  # batches on the model now

    @property
    def busy(self) -> bool:
        return self.running > 0

    def _thread_setup(self) -> None:
        """torch's CPU thread count is per calling thread (OpenMP): each worker thread sets its own."""
        if self.threads_per_worker:
            import torch

            torch.set_num_threads(self.threads_per_worker)

    @property
    def waiting(self) -> int:
        return self.queue.qsize() if self.queue is not None else 0

    async def start(self) -> None:
        self.queue = asyncio.Queue()
        loop = asyncio.get_running_loop()
        self.tasks = [loop.create_task(self._work()) for _ in range(self.workers)]

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            try:
                await task
            except asyncio.CancelledError:
                pass
        self.executor.shutdown(wait=True, cancel_futures=True)

    def retry_after(self) -> int:
        """Seconds until a waiting slot is likely free: the mean batch time times the batches ahead."""
        batches = self.stats["batches"]
        per_batch = self.stats["model_seconds"] / batches if batches else 2.0
        ahead = math.ceil((self.waiting + 1) / (self.batch_size * self.workers))
        return max(1, math.ceil(per_batch * ahead))

    def submit(self, payloads: Sequence[Any]) -> list[asyncio.Future]:
        """Queue every payload of one request, or none of them (:class:`QueueFull`)."""
        if self.queue is None:
            raise RuntimeError("the batch queue is not started")
        if self.waiting + len(payloads) > self.capacity:
            self.stats["refused"] += len(payloads)
            raise QueueFull(self.waiting, self.capacity, self.retry_after())
        loop = asyncio.get_running_loop()
        futures = []
        for payload in payloads:
            job = Job(payload, loop.create_future())
            self.queue.put_nowait(job)
            futures.append(job.future)
        return futures

    async def _gather(self) -> list[Job]:
        """The next batch: the first waiting job, then whatever else arrives within batch_wait_s."""
        jobs = [await self.queue.get()]
        deadline = time.perf_counter() + self.batch_wait_s
        while len(jobs) < self.batch_size:
            left = deadline - time.perf_counter()
            try:
                job = self.queue.get_nowait() if left <= 0 else await asyncio.wait_for(self.queue.get(), left)
            except (asyncio.QueueEmpty, TimeoutError):
                break
            jobs.append(job)
        live = [j for j in jobs if not j.future.done()]  # a client that left cancelled its own
        self.stats["abandoned"] += len(jobs) - len(live)
        return live

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            jobs = await self._gather()
            if not jobs:
                continue
            started = time.perf_counter()
            self.running += 1
            try:
                results = await loop.run_in_executor(self.executor, self.run_batch, [j.payload for j in jobs])
            except Exception as e:  # the model failed: every waiting request hears why
                self.stats["failed"] += len(jobs)
                for job in jobs:
                    if not job.future.done():
                        job.future.set_exception(e)
                continue
            finally:
                self.running -= 1
            seconds = time.perf_counter() - started
            self.stats["batches"] += 1
            self.stats["assessed"] += len(jobs)
            self.stats["model_seconds"] += seconds
            for job, result in zip(jobs, results):
                if not job.future.done():
                    outcome = Outcome(result, (started - job.enqueued) * 1000, seconds * 1000, len(jobs))
                    job.future.set_result(outcome)
