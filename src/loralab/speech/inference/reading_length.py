"""Is the recording long enough for its sentence, and does the sentence fit the model?

A recording that stops early cannot hold the sentence: its phones outnumber what was said. The
model would still answer, and a GOP estimate of an impossible alignment used to read as perfect
(:mod:`loralab.speech.model.gop`). So the phone rate of the reading (the sentence's canonical
phones per second of audio) is checked:

* above :data:`FAST_PHONES_PER_SECOND`: faster than read speech goes (fast read English is
  ~15 phones/s); the recording is probably cut off, and the assessment says so in a note
  (``assess``, ``serve``) or a warning naming the utterances (``evaluate``);
* above :data:`MAX_PHONES_PER_SECOND`: no one speaks that fast; ``assess`` and ``serve`` refuse
  the item with the limits, before any model work.

And a sentence whose answer (its words and phones, the MDD answer) cannot fit the language
model's context beside the prompt is refused with both numbers (:func:`check_context`).
"""

from __future__ import annotations

from loralab.errors import DataError

FAST_PHONES_PER_SECOND = 20.0
MAX_PHONES_PER_SECOND = 40.0


def phone_rate(n_phones: int, duration_s: float) -> float:
    """Canonical phones per second of audio (inf for no audio)."""
    return n_phones / duration_s if duration_s > 0 else float("inf")


def short_recording_note(n_phones: int, duration_s: float) -> str | None:
    """A note when ``duration_s`` of audio is short for ``n_phones`` phones; None when it is not."""
    rate = phone_rate(n_phones, duration_s)
    if rate <= FAST_PHONES_PER_SECOND:
        return None
    return (
        f"the recording ({duration_s:.2f} s) is short for its sentence ({n_phones} phones: {rate:.0f} "
        f"phones/s, where read speech stays under {FAST_PHONES_PER_SECOND:g}); it may be cut off, "
        "and its scores then say little: record the whole sentence"
    )


def check_reading_length(n_phones: int, duration_s: float, where: str) -> None:
    """A DataError when the sentence is far too long for the recording (module doc)."""
    rate = phone_rate(n_phones, duration_s)
    if rate <= MAX_PHONES_PER_SECOND:
        return
    needed = n_phones / FAST_PHONES_PER_SECOND
    raise DataError(
        f"{where}: the sentence has {n_phones} phones but the recording lasts {duration_s:.2f} s "
        f"({rate:.0f} phones/s; the limit is {MAX_PHONES_PER_SECOND:g}, read speech stays under "
        f"{FAST_PHONES_PER_SECOND:g}): reading it takes about {needed:.1f} s or more. Send the "
        "recording of this sentence, or the sentence of this recording"
    )


def model_context(model) -> int | None:
    """The language model's context in tokens (``max_position_embeddings`` of its config or its
    text config); None when the config does not say."""
    config = getattr(model, "config", None)
    for part in (config, getattr(config, "text_config", None)):
        value = getattr(part, "max_position_embeddings", None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def check_context(needed_tokens: int, context: int | None, where: str) -> None:
    """A DataError when at least ``needed_tokens`` (the answer budget and the reference in the
    prompt) exceed the model's ``context``."""
    if context is None or needed_tokens <= context:
        return
    raise DataError(
        f"{where}: assessing this sentence needs at least {needed_tokens} tokens (its answer and the "
        f"reference in the prompt), past the model's context of {context}: assess one sentence at a time"
    )
