"""Reading and checking what a client sends: a recording and the sentence it reads.

Two request forms, for ``/v1/assess`` (one recording) and ``/v1/assess/batch`` (several):

* ``multipart/form-data``: ``audio`` (a file part) and ``text`` (its sentence), repeated in
  the same order for a batch; optional ``allow_guessed=true``;
* ``application/json``: ``{"audio_base64": "...", "text": "...", "allow_guessed": false}``, or
  ``{"items": [{...}, ...]}`` for a batch.

FastAPI parses both (the routes' ``File``/``Form`` parameters, the models of
:mod:`loralab.serve.schema`); this module turns what it parsed into checked recordings. Every
problem is an :class:`ApiError`: an HTTP status, a short code and a message that names the
problem. Recordings are decoded from memory (multipart parts are spooled by Starlette in the
temporary folder); an uploaded file's name is only echoed back, never used as a path.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
from fastapi import HTTPException, UploadFile

from loralab.serve.limits import MB, ServeLimits
from loralab.serve.schema import AssessJson

AUDIO_TYPES = ("audio/", "application/octet-stream", "video/webm", "video/ogg")
_SAFE_NAME = re.compile(r"[^\w.\- ]+")


class ApiError(HTTPException):
    """A request the service refuses: ``status`` (4xx/503), ``code`` and a message naming the problem.

    An HTTPException, so that FastAPI passes it on unchanged when it is raised while the body
    is read (the request-size guard does that), instead of turning it into a generic 400."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(status, message, headers)
        self.status, self.code, self.message = status, code, message
        self.headers = headers or {}

    def payload(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "status": self.status}}


@dataclass
class Recording:
    """One checked request item: the sentence, 16 kHz mono samples and a label to report."""

    text: str
    samples: np.ndarray
    label: str
    duration_s: float
    source_sample_rate: int


def check_text(text: Any, limits: ServeLimits, allow_guessed: bool = False, where: str = "text") -> str:
    """The reference sentence, stripped; 422 when empty, too long, wordless or with words missing
    from CMUdict (unless ``allow_guessed``: they are then assessed against a letter-to-sound guess)."""
    from loralab.speech.scoring.align import word_tokens
    from loralab.speech.scoring.word_diagnosis import canonical_words

    if not isinstance(text, str):
        raise ApiError(422, "missing_text", f"'{where}' is required: the sentence the speaker read")
    text = text.strip()
    if not text:
        raise ApiError(422, "empty_text", f"'{where}' is empty: give the sentence the speaker read")
    if len(text) > limits.max_text_chars:
        raise ApiError(422, "text_too_long", f"'{where}' has {len(text)} characters; the limit is "
                       f"{limits.max_text_chars} (assess one sentence at a time)")  # fmt: skip
    words = canonical_words(text)
    if not word_tokens(text) or not any(phones for _, phones, _ in words):
        raise ApiError(422, "no_words", f"'{where}' holds no words to pronounce: {text[:80]!r}")
    unspeakable = [w for w, phones, _ in words if not phones]
    if unspeakable:  # digits: no phones to assess, and no guess either
        raise ApiError(422, "unpronounceable_words", f"'{where}' holds {', '.join(dict.fromkeys(unspeakable))}: "
                       "no letters to pronounce; write numbers as words (3 -> three)")  # fmt: skip
    unknown = [w for w, _, lexicon in words if lexicon == "guessed"]
    if unknown and not allow_guessed:
        listed = ", ".join(dict.fromkeys(unknown))
        raise ApiError(422, "unknown_words", f"not in the pronunciation dictionary (CMUdict): {listed}; "
                       "check the spelling, or send allow_guessed=true to assess them against a "
                       "letter-to-sound guess")  # fmt: skip
    return text


def safe_label(name: str | None, default: str) -> str:
    """A file name reduced to a harmless label (its last component, plain characters, 80 at most)."""
    if not name:
        return default
    last = name.replace("\\", "/").rsplit("/", 1)[-1]
    return _SAFE_NAME.sub("_", last)[:80] or default


def decode_recording(data: bytes, label: str, limits: ServeLimits) -> tuple[np.ndarray, float, int]:
    """(16 kHz samples, duration in seconds, source sample rate) of uploaded bytes; 413/422 otherwise."""
    from loralab.errors import DataError
    from loralab.speech.data.audio import ChannelsCancel, check_audio, decode_audio, resample

    if len(data) > limits.max_upload_bytes:
        raise ApiError(413, "audio_too_large", f"{label}: the recording is {len(data) / MB:.1f} MB; "
                       f"the limit is {limits.max_upload_bytes / MB:g} MB")  # fmt: skip
    if not data:
        raise ApiError(422, "empty_audio", f"{label}: the recording is empty (0 bytes)")
    header_rate = check_header(data, label, limits)
    try:
        # One frame past the limit: a header that under-states the length is caught below.
        samples, rate = decode_audio(
            data, name=label, max_frames=int(limits.max_duration_s * header_rate) + 1
        )
    except ChannelsCancel as e:
        raise ApiError(422, "bad_audio", str(e)) from None
    except DataError:
        raise _not_audio(data, label) from None
    duration = len(samples) / rate if rate else 0.0
    if duration > limits.max_duration_s:
        raise ApiError(413, "audio_too_long", f"{label}: the recording lasts {duration:.1f} s; the limit is "
                       f"{limits.max_duration_s:g} s (one sentence per recording)")  # fmt: skip
    try:
        check_audio(samples, rate, label)
    except DataError as e:
        raise ApiError(422, "bad_audio", str(e)) from None
    return resample(samples, rate), duration, rate


def _not_audio(data: bytes, label: str) -> ApiError:
    return ApiError(422, "not_audio", f"{label}: these bytes are not audio that can be decoded "
                    f"({data[:4]!r}...); send WAV, FLAC, OGG (Vorbis/Opus) or MP3")  # fmt: skip


def check_header(data: bytes, label: str, limits: ServeLimits) -> int:
    """The sample rate the header declares, after checking its channels, rate and length against
    ``limits`` without decoding (413/422): the decoded size is not the uploaded size."""
    import io

    import soundfile as sf

    try:
        info = sf.info(io.BytesIO(data))
    except (sf.LibsndfileError, RuntimeError, ValueError, TypeError):
        raise _not_audio(data, label) from None
    if info.samplerate <= 0:
        raise _not_audio(data, label)
    if info.channels > limits.max_channels:
        raise ApiError(422, "too_many_channels", f"{label}: the recording has {info.channels} channels; "
                       f"the limit is {limits.max_channels} (send mono or stereo)")  # fmt: skip
    if info.samplerate > limits.max_sample_rate:
        raise ApiError(422, "sample_rate_too_high", f"{label}: the sample rate is {info.samplerate} Hz; the "
                       f"limit is {limits.max_sample_rate} Hz (speech is assessed at 16 kHz)")  # fmt: skip
    declared = info.frames / info.samplerate
    if declared > limits.max_duration_s:
        raise ApiError(413, "audio_too_long", f"{label}: the recording lasts {declared:.1f} s; the limit is "
                       f"{limits.max_duration_s:g} s (one sentence per recording)")  # fmt: skip
    return info.samplerate


def _check_part_type(content_type: str | None, label: str) -> None:
    kind = (content_type or "application/octet-stream").split(";")[0].strip().lower()
    if not kind.startswith(AUDIO_TYPES):
        raise ApiError(415, "not_audio_type", f"{label}: the audio part has content type '{kind}'; "
                       "send an audio file (audio/wav, audio/flac, audio/ogg, audio/mpeg)")  # fmt: skip


def check_count(count: int, limit: int) -> None:
    """413 for more recordings in one request than ``limit``."""
    if count > limit:
        raise ApiError(413, "too_many_items", f"{count} recordings in one request; the limit is {limit}")


async def upload_items(
    parts: list[UploadFile], texts: list[str], allow: bool, limits: ServeLimits
) -> list[tuple[bytes, str, str, bool]]:
    """(audio bytes, label, text, allow_guessed) per recording of a multipart form (parsed by FastAPI)."""
    check_count(len(parts), limits.max_batch_items)
    if len(texts) != len(parts):
        raise ApiError(422, "texts_mismatch", f"{len(parts)} 'audio' part(s) but {len(texts)} 'text' "
                       "field(s): give one sentence per recording, in the same order")  # fmt: skip
    out = []
    for i, (part, text) in enumerate(zip(parts, texts), 1):
        label = safe_label(part.filename, f"recording-{i}")
        _check_part_type(part.content_type, label)
        # One byte past the limit is enough to refuse it (decode_recording); the part itself is
        # bounded by the request-size guard while it streams in (loralab.serve.sizes).
        out.append((await part.read(limits.max_upload_bytes + 1), label, text, allow))
    return out


def json_item(item: AssessJson, i: int, limits: ServeLimits) -> tuple[bytes, str, str, bool]:
    """(audio bytes, label, text, allow_guessed) of one JSON item (``i``: its 1-based place in a batch, or 0)."""
    where = f"items[{i}]" if i else "body"
    encoded = item.audio_base64
    if not encoded:
        raise ApiError(422, "missing_audio", f"{where}: 'audio_base64' (the recording, base64) is empty")
    if len(encoded) > limits.max_upload_bytes * 4 // 3 + 8:
        raise ApiError(413, "audio_too_large", f"{where}: the recording is over the "
                       f"{limits.max_upload_bytes / MB:g} MB limit")  # fmt: skip
    if encoded.startswith("data:"):
        encoded = encoded.split(",", 1)[-1]
    try:
        # Line-wrapped base64 (MIME, `base64` without -w 0) is the same data: whitespace is dropped.
        data = base64.b64decode("".join(encoded.split()), validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(422, "bad_base64", f"{where}: 'audio_base64' is not valid base64") from None
    return data, safe_label(item.filename, f"recording-{i or 1}"), item.text, item.allow_guessed


def check_item(data: bytes, label: str, text: Any, allow: bool, limits: ServeLimits, where: str) -> Recording:
    """A checked :class:`Recording` (the text first: it is cheap and the commoner mistake)."""
    from loralab.errors import DataError
    from loralab.speech.inference.reading_length import check_reading_length
    from loralab.speech.inference.recording_answers import AssessItem

    text = check_text(text, limits, allow, where)
    samples, duration, rate = decode_recording(data, label, limits)
    try:
        check_reading_length(len(AssessItem("", label, text).canonical_phones.split()), duration, label)
    except DataError as e:
        raise ApiError(422, "text_too_long_for_audio", str(e)) from None
    return Recording(text, samples, label, duration, rate)
