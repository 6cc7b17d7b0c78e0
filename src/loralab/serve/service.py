"""The model behind the routes: its bounded queue, the checks of a request's recordings, and
the health figures."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from starlette.concurrency import run_in_threadpool

from loralab import __version__
from loralab.serve.batching import BatchQueue, QueueFull
from loralab.serve.inputs import ApiError, Recording, check_item
from loralab.serve.limits import MB, ServeLimits
from loralab.serve.schema import AssessmentOut, HealthOut, LimitsOut, QueueOut, assessment_out


class Service:
    """The model's queue and how requests reach it."""

    def __init__(self, assessor, limits: ServeLimits):
        self.assessor, self.limits = assessor, limits
        # The fast route decodes one recording at a time: a worker takes one, and the others
        # take the next ones side by side (batching them onto one worker would serialise them).
        batch_size = 1 if getattr(assessor, "fast", False) else assessor.batch_size
        self.queue = BatchQueue(self._run_batch, capacity=limits.queue_capacity, batch_size=batch_size,
                                batch_wait_s=limits.batch_wait_s, workers=limits.workers,
                                threads_per_worker=limits.threads_per_worker)  # fmt: skip
        self.started = time.time()

    def _run_batch(self, recordings: list[Recording]) -> list:
        return self.assessor.assess_samples([(r.text, r.samples, r.label) for r in recordings])

    async def check(self, raw: list[tuple[bytes, str, str, bool]], batch: bool) -> list[Recording]:
        """Checked recordings (text, then decoding: in a thread, off the event loop)."""
        out = []
        for i, (data, label, text, allow) in enumerate(raw, 1):
            where = f"text #{i}" if batch else "text"
            out.append(await run_in_threadpool(check_item, data, label, text, allow, self.limits, where))
        return out

    async def assess(
        self, recordings: list[Recording], client_gone: Callable[[], Awaitable[None]]
    ) -> list[AssessmentOut]:
        """The answers, in order; when ``client_gone()`` returns first, the recordings leave the
        queue unassessed (the workers skip them) and the request ends as 499."""
        started = time.perf_counter()
        if len(recordings) > self.queue.capacity:  # would never fit: retrying cannot help
            raise ApiError(413, "too_many_items", f"{len(recordings)} recordings in one request; this "
                           f"server queues at most {self.queue.capacity}")  # fmt: skip
        try:
            futures = self.queue.submit(recordings)
        except QueueFull as e:
            raise ApiError(503, "queue_full", f"{e}; retry in {e.retry_after} s",
                           {"Retry-After": str(e.retry_after)}) from None  # fmt: skip
        answers = asyncio.gather(*futures)
        watch = asyncio.ensure_future(client_gone())
        try:
            await asyncio.wait({answers, watch}, return_when=asyncio.FIRST_COMPLETED)
        finally:  # also when this request's task is cancelled: its recordings need no model time
            watch.cancel()
            gone = not answers.done()
            if gone:
                answers.cancel()
        if gone:
            raise ApiError(499, "client_closed", "the client closed the connection before the answer")
        outcomes = answers.result()
        total_ms = (time.perf_counter() - started) * 1000
        return [assessment_out(o, r, self.assessor.name, total_ms) for o, r in zip(outcomes, recordings)]

    def health(self) -> HealthOut:
        q = self.queue
        queue = QueueOut(waiting=q.waiting, capacity=q.capacity, batch_size=q.batch_size, workers=q.workers,
                         running=q.running, model_busy=q.busy)  # fmt: skip
        limits = LimitsOut(max_upload_mb=round(self.limits.max_upload_bytes / MB, 2),
                           max_duration_s=self.limits.max_duration_s, max_text_chars=self.limits.max_text_chars,
                           max_batch_items=self.limits.max_batch_items)  # fmt: skip
        return HealthOut(status="ok", model=self.assessor.name, model_description=self.assessor.description,
                         version=__version__, uptime_s=round(time.time() - self.started, 1), queue=queue,
                         served={k: round(v, 3) for k, v in q.stats.items()}, limits=limits)  # fmt: skip
