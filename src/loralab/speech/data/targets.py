"""From a scores entry to typed words, sentence scores and the training targets.

Each check raises :class:`~loralab.errors.DataError` naming the utterance (and word) and the
problem: a missing field, ``phones`` and ``phones-accuracy`` of different lengths, a symbol
outside the phone inventory, a mispronunciation index out of range.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

from loralab.errors import DataError
from loralab.speech.data.phones import is_canonical_phone, normalize_pronounced, strip_stress
from loralab.speech.data.records import (
    APA_ASPECTS,
    SCORE_ASPECTS,
    Mispronunciation,
    SentenceScores,
    WordRecord,
    check_sentence_scores,
)

WORD_FIELDS = ("text", "accuracy", "stress", "total", "phones", "phones-accuracy")
SENTENCE_FIELDS = ("text", *SCORE_ASPECTS, "words")
# The corpus annotates what was pronounced only where a phone's accuracy is below this.
MISPRONUNCIATION_THRESHOLD = 0.5


@dataclass
class ParsedEntry:
    text: str
    scores: SentenceScores
    words: list[WordRecord]
    # (word index, phone index) of phones scored < 0.5 that carry no annotation: kept canonical.
    unannotated_low_phones: list[tuple[int, int]] = field(default_factory=list)
    # (word index, phone index, annotated canonical-phone, phone at that index) that disagree.
    canonical_mismatches: list[tuple[int, int, str, str]] = field(default_factory=list)
    has_mispronunciation_field: bool = False


def _number(value, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise DataError(f"{where}: expected a number, got {value!r}")
    return float(value)


def parse_entry(utt_id: str, entry: dict, distortion: str = "closest") -> ParsedEntry:
    """Validate one ``scores.json`` entry (or Hugging Face row) and type it."""
    if not isinstance(entry, dict):
        raise DataError(f"utterance {utt_id}: scores entry is not an object")
    missing = [name for name in SENTENCE_FIELDS if entry.get(name) is None]
    if missing:
        raise DataError(f"utterance {utt_id}: scores entry lacks field(s) {', '.join(missing)}")
    scores = SentenceScores(**{a: _number(entry[a], f"utterance {utt_id} '{a}'") for a in SCORE_ASPECTS})
    check_sentence_scores(utt_id, scores.as_dict())
    if not isinstance(entry["words"], list) or not entry["words"]:
        raise DataError(f"utterance {utt_id}: 'words' is empty or not a list")
    parsed = ParsedEntry(text=str(entry["text"]).strip(), scores=scores, words=[])
    for w, word in enumerate(entry["words"]):
        parsed.words.append(_parse_word(utt_id, w, word, distortion, parsed))
    return parsed


def _mispronunciations(annotations: list, phones: list[str], where: str,
                       parsed: ParsedEntry) -> dict[int, Mispronunciation]:  # fmt: skip
    """A word's mispronunciations by phone index, each checked against its phones (a phone
    whose annotated canonical phone differs is noted in ``parsed``)."""
    by_index: dict[int, Mispronunciation] = {}
    for item in annotations:
        try:
            m = Mispronunciation(
                index=int(item["index"]),
                canonical_phone=str(item["canonical-phone"]),
                pronounced_phone=str(item["pronounced-phone"]),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise DataError(f"{where}: malformed mispronunciation {item!r} ({e})") from e
        if not 0 <= m.index < len(phones):
            raise DataError(
                f"{where}: mispronunciation index {m.index} out of range for {len(phones)} phones"
            )
        if m.index in by_index:
            raise DataError(f"{where}: two mispronunciations at phone index {m.index}")
        by_index[m.index] = m
        if strip_stress(m.canonical_phone) != strip_stress(phones[m.index]):
            parsed.canonical_mismatches.append(
                (len(parsed.words), m.index, m.canonical_phone, phones[m.index])
            )
    return by_index


def _parse_word(utt_id: str, w: int, word: dict, distortion: str, parsed: ParsedEntry) -> WordRecord:
    where = f"utterance {utt_id} word {w}"
    if not isinstance(word, dict):
        raise DataError(f"{where}: not an object")
    missing = [name for name in WORD_FIELDS if word.get(name) is None]
    if missing:
        raise DataError(f"{where} ('{word.get('text', '?')}'): lacks field(s) {', '.join(missing)}")
    where = f"{where} ('{word['text']}')"
    phones = word["phones"].split() if isinstance(word["phones"], str) else list(word["phones"])
    accuracies = [_number(a, f"{where} phones-accuracy") for a in word["phones-accuracy"]]
    if len(phones) != len(accuracies):
        raise DataError(f"{where}: {len(phones)} phones but {len(accuracies)} phones-accuracy values")
    if not phones:  # it would vanish from the phone targets while its word stays in the text
        raise DataError(f"{where}: an empty phone list; a word is annotated with its canonical phones")
    for phone in phones:
        if not isinstance(phone, str) or not is_canonical_phone(phone):
            raise DataError(f"{where}: canonical phone {phone!r} is not in the phone inventory (39 ARPAbet)")
    annotations = word.get("mispronunciations")
    if annotations is not None:
        parsed.has_mispronunciation_field = True
    by_index = _mispronunciations(annotations or [], phones, where, parsed)
    pronounced: list[str] = []
    for i, phone in enumerate(phones):
        if i in by_index:
            try:
                pronounced.extend(normalize_pronounced(by_index[i].pronounced_phone, distortion))
            except ValueError as e:
                raise DataError(f"{where} phone {i}: {e}") from e
        else:
            if accuracies[i] < MISPRONUNCIATION_THRESHOLD:
                parsed.unannotated_low_phones.append((len(parsed.words), i))
            pronounced.append(strip_stress(phone))
    return WordRecord(
        text=str(word["text"]),
        canonical_phones=phones,
        phone_accuracies=accuracies,
        accuracy=_number(word["accuracy"], f"{where} accuracy"),
        stress=_number(word["stress"], f"{where} stress"),
        total=_number(word["total"], f"{where} total"),
        pronounced_phones=pronounced,
        mispronunciations=[by_index[i] for i in sorted(by_index)],
    )


def round_score(value: float) -> int:
    """Half-up rounding (7.5 -> 8), not Python's round-half-to-even."""
    return int(math.floor(value + 0.5))


def apa_answer(scores: SentenceScores) -> str:
    """The APA target: strict JSON with integer accuracy, fluency, prosodic, total."""
    return json.dumps({aspect: round_score(scores[aspect]) for aspect in APA_ASPECTS})


def mdd_answer(word_transcript: str, phoneme_transcript: str) -> str:
    """The MDD target: strict JSON with the word and the phoneme transcript."""
    return json.dumps(
        {"word_transcript": word_transcript, "phoneme_transcript": phoneme_transcript}, ensure_ascii=False
    )


def canonical_transcript(words: list[WordRecord]) -> str:
    return " ".join(strip_stress(p) for word in words for p in word.canonical_phones)


def pronounced_transcript(words: list[WordRecord]) -> str:
    return " ".join(p for word in words for p in word.pronounced_phones)
