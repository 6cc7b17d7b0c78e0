"""The FastAPI application of ``loralab serve``.

Routes: ``GET /`` (the web page), ``GET /static/*`` (its script and style), the API of
:mod:`loralab.serve.routes` (``/health``, ``/v1/assess``, ``/v1/assess/batch``), and its
description (:mod:`loralab.serve.docs`: ``/openapi.json`` and ``/docs``, offline). Every error
is JSON: ``{"error": {"code", "message", "status"}}`` (:class:`~loralab.serve.schema.ErrorBody`).
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from loralab import __version__
from loralab.serve.docs import install_docs
from loralab.serve.inputs import ApiError
from loralab.serve.limits import ServeLimits
from loralab.serve.routes import JSON, MULTIPART, SHARED_PATHS, media_type, router
from loralab.serve.service import Service
from loralab.serve.sizes import BodyGuard

STATIC = Path(__file__).resolve().parent / "static"
# A request field that fails validation -> (the error code clients know it by, what to send).
FIELD_ERRORS = {
    "audio": ("missing_audio", "attach the recording as a file part 'audio'"),
    "audio_base64": ("missing_audio", "'audio_base64' is the recording, base64"),
    "text": ("missing_text", "'text' is the sentence the speaker read"),
    "items": ("missing_items", 'a batch is {"items": [{"audio_base64": ..., "text": ...}, ...]}'),
}


def _error(status: int, code: str, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse(ApiError(status, code, message).payload(), status_code=status, headers=headers)


def _invalid(exc: RequestValidationError) -> JSONResponse:
    """A request FastAPI could not validate, named field first (codes as :data:`FIELD_ERRORS`)."""
    first = exc.errors()[0] if exc.errors() else {}
    loc = [str(p) for p in first.get("loc", ())]
    if first.get("type") == "json_invalid":
        return _error(400, "bad_json", f"the body is not valid JSON ({first.get('ctx', {}).get('error')})")
    where = ".".join(loc[1:] if loc[:1] == ["body"] and len(loc) > 1 else loc)
    if loc == ["body"]:
        return _error(422, "bad_json", f"the body must be an object: {first.get('msg', 'invalid')}")
    field = next((p for p in reversed(loc) if p in FIELD_ERRORS), None)
    sent = getattr(exc, "body", None) or {}
    if field == "text" and first.get("type") == "missing" and "text" in sent:
        # FastAPI reads an empty form field as a missing one; the client sent it, empty
        return _error(422, "empty_text", "'text' is empty: give the sentence the speaker read")
    code, hint = FIELD_ERRORS.get(field, ("invalid_request", ""))
    message = f"{where}: {first.get('msg', 'invalid request')}" + (f"; {hint}" if hint else "")
    return _error(422, code, message)


def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    where = f"{request.method} {request.url.path}"
    if exc.status_code == 400:  # FastAPI or Starlette could not read the body
        kind = media_type(request.headers.get("content-type"))
        code = {JSON: "bad_json", MULTIPART: "bad_multipart"}.get(kind, "bad_request")
        why = exc.detail
        if isinstance(exc.__cause__, RecursionError):
            why = (
                'the body nests arrays or objects too deeply to read; send {"audio_base64": ..., "text": ...}'
            )
        return _error(400, code, f"{where}: cannot read the body: {why}")
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return _error(exc.status_code, code, f"{where}: {exc.detail}", getattr(exc, "headers", None))


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError):
        return JSONResponse(exc.payload(), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        return _invalid(exc)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception):
        # Starlette logs the traceback after this; the client still gets JSON, never text/plain.
        return _error(500, "internal_error", f"{request.method} {request.url.path}: the service failed "
                      f"on this request ({type(exc).__name__}); the server log has the details")  # fmt: skip

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        return _http_error(request, exc)


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
        docs_url=None,  # served by loralab.serve.docs, offline
        redoc_url=None,  # ReDoc's script is on a CDN only
    )
    app.state.service = service
    app.add_middleware(BodyGuard, limits=service.limits)
    _install_error_handlers(app)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.include_router(router)
    install_docs(app, [route for part in SHARED_PATHS for route in part.routes])

    @app.get("/", include_in_schema=False)
    async def page():
        return FileResponse(STATIC / "index.html", media_type="text/html")

    return app
