"""The JSON the service answers with, and the request bodies as the OpenAPI schema shows them."""

from __future__ import annotations

import math
from typing import Any

# The API names error types as nouns (Azure's and the MDD literature's words).
ERROR_KINDS = {"substituted": "substitution", "deleted": "deletion", "inserted": "insertion"}

_ITEM_JSON = {
    "type": "object",
    "required": ["audio_base64", "text"],
    "properties": {
        "audio_base64": {"type": "string", "description": "the recording (WAV, FLAC, OGG, MP3), base64"},
        "text": {"type": "string", "description": "the sentence the speaker read"},
        "filename": {"type": "string", "description": "a label reported back (never used as a path)"},
        "allow_guessed": {"type": "boolean", "description": "accept words missing from CMUdict"},
    },
}
_FORM = {
    "type": "object",
    "required": ["audio", "text"],
    "properties": {
        "audio": {"type": "string", "format": "binary", "description": "the recording"},
        "text": {"type": "string", "description": "the sentence the speaker read"},
        "allow_guessed": {"type": "boolean"},
    },
}
_BATCH_FORM = {
    "type": "object",
    "required": ["audio", "text"],
    "properties": {
        "audio": {"type": "array", "items": {"type": "string", "format": "binary"}},
        "text": {"type": "array", "items": {"type": "string"}, "description": "one per recording, in order"},
        "allow_guessed": {"type": "boolean"},
    },
}
ASSESS_BODY = {
    "requestBody": {
        "required": True,
        "content": {"multipart/form-data": {"schema": _FORM}, "application/json": {"schema": _ITEM_JSON}},
    }
}
BATCH_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {"schema": _BATCH_FORM},
            "application/json": {
                "schema": {"type": "object", "properties": {"items": {"type": "array", "items": _ITEM_JSON}}}
            },
        },
    }
}


def _number(value: Any) -> Any:
    return None if isinstance(value, float) and math.isnan(value) else value


def assessment_payload(outcome, recording, model: str, total_ms: float) -> dict[str, Any]:
    """One assessment as the API returns it (see the README for the fields)."""
    a = outcome.result
    known = a.phoneme_transcript is not None  # unreadable phones: nothing known about the words
    words = []
    for w in a.words:
        errors = [{"type": ERROR_KINDS[e.kind], "expected": e.expected, "heard": e.heard} for e in w.errors]
        words.append({"word": w.word, "expected": w.canonical, "heard": w.heard, "lexicon": w.lexicon,
                      "ok": w.ok if known else None, "errors": errors})  # fmt: skip
    return {
        "model": model,
        "text": a.text,
        "audio": {
            "name": recording.label,
            "duration_s": round(recording.duration_s, 3),
            "sample_rate": recording.source_sample_rate,
        },  # fmt: skip
        "scores": {k: _number(v) for k, v in a.scores.items()},
        "word_transcript": a.word_transcript,
        "phoneme_transcript": a.phoneme_transcript,
        "diagnosis_available": a.phoneme_transcript is not None,
        "words": words,
        "notes": a.notes,
        "failures": a.failures,
        "raw": a.raw,
        "timing": {
            "queued_ms": round(outcome.queued_ms, 1),
            "model_ms": round(outcome.model_ms, 1),
            "total_ms": round(total_ms, 1),
            "batch_size": outcome.batch_size,
        },  # fmt: skip
    }
