"""The API's routes: ``GET /health``, ``POST /v1/assess`` and ``POST /v1/assess/batch``.

Each POST path takes two bodies, a multipart form and JSON, through two typed handlers: a
:class:`MediaTypeRoute` matches only requests of its content type, so FastAPI parses and
validates each kind as declared (``File``/``Form`` parameters, or a model of
:mod:`loralab.serve.schema`). A request of any other type reaches a third route, which answers
415. The service (model, queue, limits) comes in by ``Depends``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Header, Request, UploadFile
from fastapi.routing import APIRoute
from starlette.routing import Match

from loralab.serve.inputs import ApiError, check_count, json_item, upload_items
from loralab.serve.schema import AssessJson, AssessmentOut, BatchJson, BatchOut, HealthOut, error_responses
from loralab.serve.service import Service

MULTIPART, JSON = "multipart/form-data", "application/json"
ERRORS = error_responses(400, 408, 413, 415, 422, 503)


def media_type(content_type: str | None) -> str:
    """``multipart/form-data`` of ``multipart/form-data; boundary=...``, lower case ('' for none)."""
    return (content_type or "").split(";")[0].strip().lower()


class MediaTypeRoute(APIRoute):
    """An APIRoute that matches only requests whose Content-Type is ``self.media_type``."""

    media_type = ""

    def matches(self, scope):
        match, child = super().matches(scope)
        if match is Match.FULL:
            declared = dict(scope.get("headers") or []).get(b"content-type", b"").decode("latin-1")
            if media_type(declared) != self.media_type:
                return Match.NONE, {}
        return match, child


class MultipartRoute(MediaTypeRoute):
    media_type = MULTIPART


class JsonRoute(MediaTypeRoute):
    media_type = JSON


def get_service(request: Request) -> Service:
    return request.app.state.service


ServiceDep = Annotated[Service, Depends(get_service)]


def client_gone(request: Request) -> Callable[[], Awaitable[None]]:
    """A coroutine function that returns once the client has closed its connection."""

    async def wait() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    return wait


ClientGone = Annotated[Callable[[], Awaitable[None]], Depends(client_gone)]
Audio = Annotated[UploadFile, File(description="the recording (WAV, FLAC, OGG, MP3)")]
Text = Annotated[str, Form(description="the sentence the speaker read")]
AllowGuessed = Annotated[bool, Form(description="accept words missing from CMUdict")]

router = APIRouter()
uploads = APIRouter(route_class=MultipartRoute)
json_bodies = APIRouter(route_class=JsonRoute)
other_types = APIRouter()  # last: what neither of the two above matched
SHARED_PATHS = (uploads, json_bodies)  # their routes share paths: one operation each in the docs


@router.get("/health", summary="Is the service up, what model, how full is the queue")
async def health(service: ServiceDep) -> HealthOut:
    return service.health()


@uploads.post("/v1/assess", summary="Assess one recording", responses=ERRORS)
async def assess_upload(
    service: ServiceDep, gone: ClientGone, audio: Audio, text: Text, allow_guessed: AllowGuessed = False
) -> AssessmentOut:
    recordings = await service.check(
        await upload_items([audio], [text], allow_guessed, service.limits), False
    )
    return (await service.assess(recordings, gone))[0]


@json_bodies.post("/v1/assess", summary="Assess one recording", responses=ERRORS)
async def assess_json(service: ServiceDep, gone: ClientGone, body: AssessJson) -> AssessmentOut:
    recordings = await service.check([json_item(body, 0, service.limits)], False)
    return (await service.assess(recordings, gone))[0]


@uploads.post("/v1/assess/batch", summary="Assess several recordings", responses=ERRORS)
async def assess_batch_upload(
    service: ServiceDep,
    gone: ClientGone,
    audio: Annotated[list[UploadFile], File(description="the recordings, in order")],
    text: Annotated[list[str], Form(description="one sentence per recording, in order")] = (),
    allow_guessed: AllowGuessed = False,
) -> BatchOut:
    raw = await upload_items(audio, list(text), allow_guessed, service.limits)
    return BatchOut(results=await service.assess(await service.check(raw, True), gone))


@json_bodies.post("/v1/assess/batch", summary="Assess several recordings", responses=ERRORS)
async def assess_batch_json(service: ServiceDep, gone: ClientGone, body: BatchJson) -> BatchOut:
    check_count(len(body.items), service.limits.max_batch_items)
    raw = [json_item(item, i, service.limits) for i, item in enumerate(body.items, 1)]
    return BatchOut(results=await service.assess(await service.check(raw, True), gone))


@other_types.post("/v1/assess", include_in_schema=False)
@other_types.post("/v1/assess/batch", include_in_schema=False)
async def unsupported_type(content_type: Annotated[str | None, Header()] = None) -> None:
    kind = media_type(content_type)
    raise ApiError(415, "unsupported_content_type", f"content type '{kind or '(none)'}' is not accepted: "
                   f"send {MULTIPART} (fields 'audio' and 'text') or {JSON} "
                   "({\"audio_base64\": ..., \"text\": ...})")  # fmt: skip


for part in (uploads, json_bodies, other_types):
    router.include_router(part)
