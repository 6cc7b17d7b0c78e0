"""Model answers -> typed values, with every failure kept and explained.

The model is trained on strict JSON, but a partly trained (or untrained) model answers in
whatever shape it likes, and the paper's own prompt shows a single-quoted Python-dict
style whose values may hold apostrophes (``'That's an interesting observation.'``), which
neither ``json`` nor ``ast.literal_eval`` can read. We try, in order:

1. code fences are unwrapped (```` ```json ... ``` ````);
2. every ``{...}`` span starting at the first brace, shortest first, through ``json.loads``
   then ``ast.literal_eval`` (so trailing text after the object is ignored);
3. a tolerant scan: the expected keys are located (quoted or not, after ``{`` or ``,``) and
   each value runs up to the next key, so an apostrophe inside a value is harmless.

Scores are coerced to numbers (``8``, ``8.0``, ``"8"``, ``"8/10"``) and clamped to 0..10
(clamping is recorded). A missing or non-numeric score is a failure of that field, never 0.
Each field is judged on its own: an answer with accuracy but no fluency still counts for the
accuracy correlation, and is listed as a failure for fluency.
"""

from __future__ import annotations

import ast
import json
import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any

APA_ASPECTS = ("accuracy", "fluency", "prosodic", "total")
MDD_FIELDS = ("word_transcript", "phoneme_transcript")
TASK_FIELDS = {"apa": APA_ASPECTS, "mdd": MDD_FIELDS, **{f"apa_{a}": (a,) for a in APA_ASPECTS}}
SCORE_RANGE = (0.0, 10.0)

# Attempts on brace spans are quadratic in the number of braces; real answers hold one or two.
_MAX_BRACE_ATTEMPTS = 64
_FENCE = re.compile(r"```[A-Za-z]*\s*\n?(.*?)```", re.DOTALL)
_NUMBER_TEXT = re.compile(r"^\s*([-+]?\d+(?:\.\d+)?)\s*(?:/\s*10(?:\.0+)?)?\s*$")


@dataclass
class ParsedAnswer:
    """One model answer. ``values`` holds the fields that parsed (scores as float, transcripts
    as str); ``errors`` maps each field that did not to the reason. ``method`` says which
    reader succeeded (json, python, tolerant) or None when no object was found."""

    task: str
    raw: str
    values: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    method: str | None = None
    clamped: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Every expected field parsed."""
        return not self.errors

    @property
    def reason(self) -> str:
        return "; ".join(f"{k}: {v}" for k, v in self.errors.items())

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ParsedAnswer:
        return cls(**d)


def _strip_fences(text: str) -> str:
    m = _FENCE.search(text)
    return m.group(1) if m else text


def _brace_spans(text: str):
    """Candidate ``{...}`` spans: from each '{' (left to right) to each later '}' (shortest first)."""
    opens = [i for i, c in enumerate(text) if c == "{"]
    closes = [i for i, c in enumerate(text) if c == "}"]
    attempts = 0
    for start in opens:
        for end in closes:
            if end <= start:
                continue
            attempts += 1
            if attempts > _MAX_BRACE_ATTEMPTS:
                return
            yield text[start : end + 1]


def _read_object(text: str) -> tuple[dict | None, str | None]:
    for span in _brace_spans(text):
        try:
            obj = json.loads(span)
            if isinstance(obj, dict):
                return obj, "json"
        except ValueError:
            pass
        try:
            obj = ast.literal_eval(span)
            if isinstance(obj, dict):
                return obj, "python"
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            pass
    return None, None


def _tolerant_scan(text: str, keys: tuple[str, ...]) -> dict[str, str]:
    """Raw value text per expected key, values bounded by the next key (see module doc)."""
    start = text.find("{")
    body = text[start:] if start >= 0 else text
    key_alt = "|".join(re.escape(k) for k in keys)
    # Any quoted key after '{' or ',' bounds the previous value (so unexpected keys such as
    # 'completeness' do not leak into it); expected keys may also come unquoted.
    boundary = re.compile(
        rf"""(?:^|[{{,])\s*(?:(["'])(\w+)\1|({key_alt}))\s*:\s*""",
        re.IGNORECASE,
    )
    matches = list(boundary.finditer(body))
    found: dict[str, str] = {}
    for n, m in enumerate(matches):
        name = (m.group(2) or m.group(3) or "").lower()
        if name not in keys or name in found:
            continue
        value_end = matches[n + 1].start() if n + 1 < len(matches) else len(body)
        found[name] = body[m.end() : value_end]
    return found


def _unquote_raw(value: str) -> str | None:
    """Text of a raw value: a quoted string (the last one ends at the quote before '}' or the
    end), else the bare text up to '}'. None when a quoted string never ends."""
    v = value.strip()
    if v[:1] in ("'", '"'):
        q = v[0]
        m = re.search(rf"{q}\s*(?:}}|,?\s*$)", v[1:])
        if m is None:
            return None
        return v[1 : 1 + m.start()]
    return v.split("}", 1)[0].strip().rstrip(",").strip()


def coerce_score(value: Any) -> tuple[float | None, str | None]:
    """A score as a float, or (None, reason). Booleans and non-finite numbers are failures."""
    if isinstance(value, bool):
        return None, f"not a number: {value!r}"
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str):
        m = _NUMBER_TEXT.match(value)
        if not m:
            return None, f"not a number: {value[:40]!r}"
        number = float(m.group(1))
    else:
        return None, f"not a number: {value!r}"[:80]
    if not math.isfinite(number):
        return None, f"not a finite number: {value!r}"
    return number, None


def coerce_transcript(value: Any) -> tuple[str | None, str | None]:
    if isinstance(value, str):
        return " ".join(value.split()), None
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return " ".join(" ".join(value).split()), None
    return None, f"not text: {value!r}"[:80]


def parse_answer(task: str, raw: str) -> ParsedAnswer:
    """Parse one generated answer of ``task`` ('apa' or 'mdd')."""
    if task not in TASK_FIELDS:
        raise ValueError(f"unknown task '{task}' (known: {', '.join(TASK_FIELDS)})")
    keys = TASK_FIELDS[task]
    result = ParsedAnswer(task=task, raw=raw)
    text = _strip_fences(raw or "")
    obj, method = _read_object(text)
    values: dict[str, Any] = {}
    if obj is not None:
        lowered = {str(k).strip().lower(): v for k, v in obj.items()}
        values = {k: lowered[k] for k in keys if k in lowered}
    if obj is None or len(values) < len(keys):
        # A strict reader found nothing, or an object missing keys that the tolerant scan may
        # still see elsewhere (e.g. a second object): take what it adds.
        scanned = _tolerant_scan(text, keys)
        for k, rawv in scanned.items():
            if k in values:
                continue
            unquoted = _unquote_raw(rawv)
            if unquoted is None:
                result.errors[k] = f"unterminated string: {rawv.strip()[:40]!r}"
                continue
            values[k] = unquoted
        if scanned and method is None:
            method = "tolerant"
    result.method = method
    if method is None:
        snippet = (raw or "").strip()[:60]
        reason = "empty answer" if not snippet else f"no answer object found in {snippet!r}"
        result.errors = {k: reason for k in keys}
        return result
    lo, hi = SCORE_RANGE
    for k in keys:
        if k in result.errors:
            continue
        if k not in values:
            result.errors[k] = "missing"
            continue
        if task.startswith("apa"):
            number, why = coerce_score(values[k])
            if why:
                result.errors[k] = why
                continue
            if not lo <= number <= hi:
                result.clamped.append(k)
                number = min(max(number, lo), hi)
            result.values[k] = number
        else:
            text_value, why = coerce_transcript(values[k])
            if why:
                result.errors[k] = why
                continue
            result.values[k] = text_value
    return result


def parse_reference(task: str, answer_json: str) -> dict[str, Any]:
    """The training target of a record (strict JSON written by prepare) as values; a target that
    does not parse is a data bug, raised rather than scored."""
    parsed = parse_answer(task, answer_json)
    if not parsed.ok:
        raise ValueError(f"reference {task} answer does not parse ({parsed.reason}): {answer_json[:80]!r}")
    return parsed.values
