"""What the service reads and answers, as Pydantic models: FastAPI validates requests against
them and writes the OpenAPI description (``/openapi.json``, ``/docs``) from them.

The multipart form (``audio`` file parts and ``text`` fields) is declared on the routes
themselves (:mod:`loralab.serve.routes`), with FastAPI's ``File`` and ``Form``.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from loralab.json_numbers import jsonable

# The API names error types as nouns (Azure's and the MDD literature's words).
ERROR_KINDS = {"substituted": "substitution", "deleted": "deletion", "inserted": "insertion"}


class AssessJson(BaseModel):
    """One recording and its sentence, as JSON."""

    audio_base64: str = Field(description="the recording (WAV, FLAC, OGG, MP3), base64")
    text: str = Field(description="the sentence the speaker read")
    filename: str | None = Field(None, description="a label reported back (never used as a path)")
    allow_guessed: bool = Field(False, description="accept words missing from CMUdict")


class BatchJson(BaseModel):
    """Several recordings, as JSON."""

    items: list[AssessJson] = Field(min_length=1, description="one object per recording, in order")


class ErrorDetail(BaseModel):
    code: str = Field(description="a short name of the problem, e.g. audio_too_long")
    message: str = Field(description="what was wrong, in words")
    status: int = Field(description="the HTTP status, repeated")


class ErrorBody(BaseModel):
    """Every error the service answers, 4xx and 5xx."""

    error: ErrorDetail


class PhoneErrorOut(BaseModel):
    type: str = Field(description="substitution, deletion or insertion")
    expected: str | None
    heard: str | None


class WordOut(BaseModel):
    word: str
    expected: list[str] = Field(description="the canonical phones (CMUdict, or a guess)")
    heard: list[str]
    lexicon: str = Field(description="cmudict or guessed")
    ok: bool | None = Field(description="null when the phones heard could not be read")
    errors: list[PhoneErrorOut]


class AudioOut(BaseModel):
    name: str
    duration_s: float
    sample_rate: int


class TimingOut(BaseModel):
    queued_ms: float
    model_ms: float
    total_ms: float
    batch_size: int


class AssessmentOut(BaseModel):
    """One assessment (see the README for the fields)."""

    model: str
    text: str
    audio: AudioOut
    scores: dict[str, float | None] = Field(description="0-10 per aspect; null where undefined")
    word_transcript: str | None
    phoneme_transcript: str | None
    diagnosis_available: bool
    words: list[WordOut]
    notes: list[str]
    failures: dict[str, str] = Field(description="field -> why it could not be read from the model's answer")
    raw: dict[str, str] = Field(description="the model's answers as generated")
    timing: TimingOut


class BatchOut(BaseModel):
    results: list[AssessmentOut] = Field(description="in the order of the request")


class QueueOut(BaseModel):
    waiting: int
    capacity: int
    batch_size: int
    workers: int
    running: int
    model_busy: bool


class LimitsOut(BaseModel):
    max_upload_mb: float
    max_duration_s: float
    max_text_chars: int
    max_batch_items: int


class HealthOut(BaseModel):
    status: str
    model: str
    model_description: str
    version: str
    uptime_s: float
    queue: QueueOut
    served: dict[str, float] = Field(description="counts since start: batches, assessed, refused, ...")
    limits: LimitsOut


def assessment_out(outcome, recording, model: str, total_ms: float) -> AssessmentOut:
    """One assessment as the API returns it (NaN scores as null: :mod:`loralab.json_numbers`)."""
    a = outcome.result
    known = a.phoneme_transcript is not None  # unreadable phones: nothing known about the words
    words = []
    for w in a.words:
        errors = [
            PhoneErrorOut(type=ERROR_KINDS[e.kind], expected=e.expected, heard=e.heard) for e in w.errors
        ]
        words.append(WordOut(word=w.word, expected=w.canonical, heard=w.heard, lexicon=w.lexicon,
                             ok=w.ok if known else None, errors=errors))  # fmt: skip
    audio = AudioOut(name=recording.label, duration_s=round(recording.duration_s, 3),
                     sample_rate=recording.source_sample_rate)  # fmt: skip
    timing = TimingOut(queued_ms=round(outcome.queued_ms, 1), model_ms=round(outcome.model_ms, 1),
                       total_ms=round(total_ms, 1), batch_size=outcome.batch_size)  # fmt: skip
    return AssessmentOut(
        model=model,
        text=a.text,
        audio=audio,
        scores=jsonable(a.scores),
        word_transcript=a.word_transcript,
        phoneme_transcript=a.phoneme_transcript,
        diagnosis_available=known,
        words=words,
        notes=a.notes,
        failures=a.failures,
        raw=a.raw,
        timing=timing,
    )


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI ``responses`` entry of a route for these error statuses (all :class:`ErrorBody`)."""
    words = {400: "unreadable body", 408: "the body did not arrive in time", 413: "too large or too long",
             415: "wrong content type", 422: "bad input, named", 503: "the queue is full (Retry-After)"}  # fmt: skip
    return {s: {"model": ErrorBody, "description": words[s]} for s in statuses}
