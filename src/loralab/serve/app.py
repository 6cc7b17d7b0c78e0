"""The FastAPI application of ``loralab serve``.

Routes: ``GET /`` (the web page), ``GET /static/*`` (its script and style), ``GET /health``,
``POST /v1/assess`` and ``POST /v1/assess/batch``; the OpenAPI schema at ``/openapi.json`` and
its pages at ``/docs`` and ``/redoc`` (FastAPI's own: they fetch their script from a CDN, the
assessment page does not). Every error is JSON: ``{"error": {"code", "message", "status"}}``.
"""

from __future__ import annotations

import asyncio
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from loralab import __version__
from loralab.serve.batching import BatchQueue, QueueFull
from loralab.serve.inputs import ApiError, Recording, check_item, json_items, multipart_items, request_kind
from loralab.serve.limits import ServeLimits
from loralab.serve.schema import ASSESS_BODY, BATCH_BODY, assessment_payload
from loralab.serve.sizes import BodySizeLimit

STATIC = Path(__file__).resolve().parent / "static"


def _error(status: int, code: str, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse(ApiError(status, code, message).payload(), status_code=status, headers=headers)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError):
        return JSONResponse(exc.payload(), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return _error(422, "invalid_request", f"{where}: {first.get('msg', 'invalid request')}")

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception):
        # Starlette logs the traceback after this; the client still gets JSON, never text/plain.
        return _error(500, "internal_error", f"{request.method} {request.url.path}: the service failed "
                      f"on this request ({type(exc).__name__}); the server log has the details")  # fmt: skip

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return _error(exc.status_code, code, f"{request.method} {request.url.path}: {exc.detail}")


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

    async def read(self, request: Request, batch: bool) -> list[Recording]:
        kind = request_kind(request.headers.get("content-type"))
        reader = multipart_items if kind == "multipart" else json_items
        try:  # a client that sends its body slowly (or never) must not hold a connection for ever
            raw = await asyncio.wait_for(reader(request, self.limits, batch), self.limits.read_timeout_s)
        except TimeoutError:
            raise ApiError(408, "request_timeout", f"the request body did not arrive within "
                           f"{self.limits.read_timeout_s:g} s; send it whole") from None  # fmt: skip
        if await request.is_disconnected():  # gone while we read: no model time for it
            raise ApiError(499, "client_closed", "the client closed the connection before assessment")
        out = []
        for i, (data, label, text, allow) in enumerate(raw, 1):
            where = f"text #{i}" if batch else "text"
            out.append(await run_in_threadpool(check_item, data, label, text, allow, self.limits, where))
        return out

    async def assess(self, recordings: list[Recording]) -> list[dict[str, Any]]:
        started = time.perf_counter()
        if len(recordings) > self.queue.capacity:  # would never fit: retrying cannot help
            raise ApiError(413, "too_many_items", f"{len(recordings)} recordings in one request; this "
                           f"server queues at most {self.queue.capacity}")  # fmt: skip
        try:
            futures = self.queue.submit(recordings)
        except QueueFull as e:
            raise ApiError(503, "queue_full", f"{e}; retry in {e.retry_after} s",
                           {"Retry-After": str(e.retry_after)}) from None  # fmt: skip
        try:
            outcomes = await asyncio.gather(*futures)
        except asyncio.CancelledError:
            for f in futures:
                f.cancel()
            raise
        total_ms = (time.perf_counter() - started) * 1000
        return [assessment_payload(o, r, self.assessor.name, total_ms) for o, r in zip(outcomes, recordings)]

    def health(self) -> dict[str, Any]:
        q = self.queue
        return {
            "status": "ok",
            "model": self.assessor.name,
            "model_description": self.assessor.description,
            "version": __version__,
            "uptime_s": round(time.time() - self.started, 1),
            "queue": {
                "waiting": q.waiting,
                "capacity": q.capacity,
                "batch_size": q.batch_size,
                "workers": q.workers,
                "running": q.running,
                "model_busy": q.busy,
            },  # fmt: skip
            "served": {k: round(v, 3) for k, v in q.stats.items()},
            "limits": {
                "max_upload_mb": round(self.limits.max_upload_bytes / 2**20, 2),
                "max_duration_s": self.limits.max_duration_s,
                "max_text_chars": self.limits.max_text_chars,
                "max_batch_items": self.limits.max_batch_items,
            },
        }


def create_app(assessor, limits: ServeLimits | None = None) -> FastAPI:
    """The application serving ``assessor`` (a :class:`loralab.speech.assessor.Assessor`)."""
    service = Service(assessor, limits or ServeLimits())

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await service.queue.start()
        yield
        await service.queue.stop()

    app = FastAPI(
        title="loralab pronunciation assessment",
        version=__version__,
        description="Scores (accuracy, fluency, prosodic, total; 0-10), what was heard (words, phones) "
        "and a per-word diagnosis against the canonical pronunciation (CMUdict).",
        lifespan=lifespan,
    )
    app.state.service = service
    app.add_middleware(BodySizeLimit, limits=service.limits)
    _install_error_handlers(app)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    async def page():
        return FileResponse(STATIC / "index.html", media_type="text/html")

    @app.get("/health", summary="Is the service up, what model, how full is the queue")
    async def health() -> dict:
        return service.health()

    @app.post("/v1/assess", summary="Assess one recording", openapi_extra=ASSESS_BODY)
    async def assess_one(request: Request) -> dict:
        recordings = await service.read(request, batch=False)
        return (await service.assess(recordings))[0]

    @app.post("/v1/assess/batch", summary="Assess several recordings", openapi_extra=BATCH_BODY)
    async def assess_batch(request: Request) -> dict:
        recordings = await service.read(request, batch=True)
        return {"results": await service.assess(recordings)}

    return app
