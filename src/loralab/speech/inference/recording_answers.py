"""Assess recordings with a trained model (``assess_items``, behind ``loralab assess`` and
serve): the four scores, what was said (words and phones), and a per-word diagnosis against the
canonical pronunciation (:mod:`loralab.speech.scoring.word_diagnosis`).
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from loralab.errors import DataError
from loralab.speech.inference.generate import BatchedGenerator, answer_token_budget, ideal_apa_answer
from loralab.speech.inference.reading_length import (
    check_context,
    check_reading_length,
    model_context,
    short_recording_note,
)
from loralab.speech.scoring.align import word_tokens
from loralab.speech.scoring.parse import APA_ASPECTS, parse_answer
from loralab.speech.scoring.word_diagnosis import WordDiagnosis, canonical_words, diagnose_words

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")


@dataclass
class Assessment:
    audio: str
    text: str
    scores: dict[str, float]
    word_transcript: str | None
    phoneme_transcript: str | None
    words: list[WordDiagnosis]
    notes: list[str]
    failures: dict[str, str]  # field -> why it could not be read from the model's answer
    raw: dict[str, str]

    def to_dict(self) -> dict:
        d = asdict(self)
        for w, wd in zip(d["words"], self.words):
            # Unreadable phones: nothing is known about the words (null, as the report's "?").
            w["ok"] = wd.ok if self.phoneme_transcript is not None else None
        return d


@dataclass
class AssessItem:
    """One recording and its reference sentence (``id``/``duration`` for the generator)."""

    id: str
    audio_path: str
    text: str
    duration: float = 0.0

    @property
    def canonical_phones(self) -> str:
        """The sentence's canonical phones (for prompts with ``speech.prompt_reference=phones``)."""
        return " ".join(p for _, phones, _ in canonical_words(self.text) for p in phones)


def read_batch(csv_path: str | Path | None = None, audio_dir: str | Path | None = None) -> list[AssessItem]:
    """Items from a CSV (columns ``audio``, ``text``; paths relative to the CSV) or a folder of
    audio files each with a ``<stem>.txt`` holding its reference sentence."""
    items: list[AssessItem] = []
    if csv_path is not None:
        path = Path(csv_path)
        if not path.is_file():
            raise DataError(f"CSV file {path} not found")
        with path.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            if not reader.fieldnames or not {"audio", "text"} <= set(reader.fieldnames):
                raise DataError(
                    f"{path}: needs a header with columns 'audio' and 'text' (got {reader.fieldnames})"
                )
            for n, row in enumerate(reader, 2):
                audio = Path(row["audio"] or "")
                audio = audio if audio.is_absolute() else path.parent / audio
                items.append(AssessItem(f"{path.name}:{n}", str(audio), row["text"] or ""))
    if audio_dir is not None:
        folder = Path(audio_dir)
        if not folder.is_dir():
            raise DataError(f"audio folder {folder} not found")
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in AUDIO_SUFFIXES)
        if not files:
            raise DataError(f"{folder} holds no audio files ({', '.join(AUDIO_SUFFIXES)})")
        for audio in files:
            txt = audio.with_suffix(".txt")
            if not txt.is_file():
                raise DataError(
                    f"{audio}: no reference text beside it (expected {txt.name} with the sentence)"
                )
            items.append(AssessItem(audio.name, str(audio), txt.read_text(encoding="utf-8").strip()))
    return items


def check_items(items: Sequence[AssessItem]) -> None:
    for item in items:
        if not word_tokens(item.text):
            raise DataError(
                f"{item.audio_path}: the reference text is empty; pass the sentence the speaker read"
            )


def _ideal_answer(text: str, task: str) -> str:
    """The answer of a perfect reading of ``text``: the sentence and its canonical phones (MDD),
    full marks (APA); the token budget's measure and the fast decoder's draft."""
    if task == "mdd":
        phones = " ".join(p for _, ps, _ in canonical_words(text) for p in ps)
        return json.dumps({"word_transcript": text, "phoneme_transcript": phones})
    return ideal_apa_answer(task)


def _budgets(tokenizer, text: str) -> dict[str, int]:
    """The evaluation rule (answer length + margin) applied to this sentence's ideal answers."""
    apa, mdd = _ideal_answer(text, "apa"), _ideal_answer(text, "mdd")
    return {"apa": answer_token_budget(tokenizer, [apa]), "mdd": answer_token_budget(tokenizer, [mdd])}


def load_items(items: Sequence[AssessItem]) -> dict[str, object]:
    """Check the texts and load every recording (16 kHz mono), so that bad input fails before
    the model is loaded; a DataError names the file."""
    from loralab.speech.data.audio import load_audio

    check_items(items)
    audios = {item.id: load_audio(item.audio_path) for item in items}
    for item in items:
        item.duration = len(audios[item.id]) / 16000
        check_reading_length(len(item.canonical_phones.split()), item.duration, item.audio_path)
    return audios


def assess_items(inference, items: Sequence[AssessItem], *, audios: dict | None = None, prompt_style: str = "paper",
                 prompt_reference: str = "none", score_decoding: str = "greedy", batch_size: int = 8,
                 max_new_tokens: int | None = None, apa_tasks: Sequence[str] = ("apa",),
                 fast: bool = True) -> list[Assessment]:  # fmt: skip
    """Assess every item; ``audios`` from :func:`load_items` (loaded here when not given).
    ``score_decoding='expected'``: the scores are the expected values read from the model's
    probabilities (one decimal), as the model was evaluated; greedy: the digits it wrote.
    ``apa_tasks``: how the model was trained to score, ``("apa",)`` (all aspects in one answer)
    or one task per aspect (``apa_fluency``, ...), whose answers are merged. ``fast``: one
    recording at a time on the KV cache (:mod:`~loralab.speech.inference.fast_decode`: APA
    constrained to its template under expected-score decoding, greedy answers verified against
    the ideal answer), the same answers and expected scores as batched ``generate``."""
    from loralab.speech.model.gop import little_speech_note

    audios = audios if audios is not None else load_items(items)
    _check_context(inference, items, prompt_reference)
    generator = BatchedGenerator(
        inference, prompt_style=prompt_style, prompt_reference=prompt_reference, batch_size=batch_size
    )
    order = sorted(items, key=lambda it: -it.duration)
    decode = _decode_fast if fast else _decode_batched
    with generator:
        raw, expected, restored = decode(
            generator, order, audios, apa_tasks, batch_size, max_new_tokens, score_decoding
        )
    results = [_assessment(item, _apa_raw(raw, item.id, apa_tasks), raw[(item.id, "mdd")]) for item in items]
    window = inference.backbone.window_seconds
    for item, result in zip(items, results):
        if score_decoding == "expected":
            read = {k: round(v, 1) for k, v in expected.get(item.id, {}).items() if k in result.scores}
            result.scores.update(read)
        note = short_recording_note(len(item.canonical_phones.split()), item.duration)
        result.notes += [note] if note else []
        if item.id in restored:  # the diagnosis is the repaired answer's; raw stays as generated
            count, result.raw["mdd"] = restored[item.id]
            result.notes.append(
                f"the model's phone transcript skipped {count} phones the recogniser heard, in runs "
                "(a jump between repeated words); they were put back from the recogniser's heard phones"
            )
        note = little_speech_note(generator.evidence(item, audios[item.id]), item.canonical_phones)
        result.notes += [note] if note else []
        if window is not None and item.duration > window:
            result.notes.append(
                f"the recording is {item.duration:.1f} s long; this model's audio encoder hears only its "
                f"first {window:g} s (split longer recordings into sentences)"
            )
    return results


def _check_context(inference, items: Sequence[AssessItem], prompt_reference: str) -> None:
    """Refuse a sentence whose answer (and reference) cannot fit the model's context (no model work)."""
    context = model_context(inference.model)
    for item in items:
        needed = _budgets(inference.tokenizer, item.text)["mdd"]
        if prompt_reference != "none":
            needed += len(inference.tokenizer(f"{item.text} {item.canonical_phones}")["input_ids"])
        check_context(needed, context, item.audio_path)


def _decode_fast(generator, order, audios, apa_tasks, batch_size, max_new_tokens, score_decoding):
    """Every item's answers, one recording at a time (:mod:`~.fast_decode`)."""
    from loralab.speech.inference.fast_decode import FastDecoder

    decoder = FastDecoder(generator)
    raw: dict[tuple[str, str], str] = {}
    expected: dict[str, dict[str, float]] = {}
    restored: dict[str, tuple[int, str]] = {}  # id -> (phones put back, the MDD answer as generated)
    for item in order:
        budgets = _budgets(generator.inference.tokenizer, item.text)
        for task in (*apa_tasks, "mdd"):
            answer = decoder.answer(
                task,
                audios[item.id],
                item,
                draft=generator.mdd_draft(item, audios[item.id])
                if task == "mdd"
                else _ideal_answer(item.text, task),
                max_new_tokens=max_new_tokens or budgets["mdd" if task == "mdd" else "apa"],
                read_expected=score_decoding == "expected",
            )
            raw[(item.id, task)] = answer.raw
            expected.setdefault(item.id, {}).update(answer.expected or {})
            if answer.restored:
                restored[item.id] = (answer.restored, answer.model_raw)
    return raw, expected, restored


def _decode_batched(generator, order, audios, apa_tasks, batch_size, max_new_tokens, score_decoding):
    """Every item's answers, batch by batch through ``generate`` (expected scores recorded on the way)."""
    raw: dict[tuple[str, str], str] = {}
    expected: dict[str, dict[str, float]] = {}
    restored: dict[str, tuple[int, str]] = {}
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        for task in (*apa_tasks, "mdd"):
            kind = "mdd" if task == "mdd" else "apa"
            budgets = [
                max_new_tokens or _budgets(generator.inference.tokenizer, it.text)[kind] for it in chunk
            ]
            generator.max_new_tokens[task] = max(budgets)
            for answer in generator.generate(task, [audios[it.id] for it in chunk], chunk):
                raw[(answer.id, task)] = answer.raw
                expected.setdefault(answer.id, {}).update(answer.expected or {})
                if answer.restored:
                    restored[answer.id] = (answer.restored, answer.model_raw)
    return raw, expected, restored


def _apa_raw(raw: dict, item_id: str, apa_tasks: Sequence[str]) -> str:
    """The APA answer; per-aspect answers merged into one JSON object (an unreadable one left out,
    so that its aspect is reported missing)."""
    if tuple(apa_tasks) == ("apa",):
        return raw[(item_id, "apa")]
    merged: dict = {}
    for task in apa_tasks:
        merged.update(parse_answer(task, raw[(item_id, task)]).values)
    return json.dumps(merged)


def _assessment(item: AssessItem, apa_raw: str, mdd_raw: str) -> Assessment:
    apa = parse_answer("apa", apa_raw)
    mdd = parse_answer("mdd", mdd_raw)
    phones = mdd.values.get("phoneme_transcript")
    words = diagnose_words(item.text, phones)
    notes = [
        f"'{w.word}' is not in CMUdict: its canonical phones are a letter-to-sound guess"
        if w.canonical
        else f"'{w.word}' has no letters to pronounce, so it was not assessed (write numbers as words)"
        for w in words
        if w.lexicon == "guessed"
    ]
    failures = {f"apa.{k}": v for k, v in apa.errors.items()} | {f"mdd.{k}": v for k, v in mdd.errors.items()}
    if phones is None:
        notes.append("no phoneme transcript could be read from the model's answer: no per-word diagnosis")
    return Assessment(
        audio=item.audio_path,
        text=item.text,
        scores=dict(apa.values),
        word_transcript=mdd.values.get("word_transcript"),
        phoneme_transcript=phones,
        words=words,
        notes=notes,
        failures=failures,
        raw={"apa": apa_raw, "mdd": mdd_raw},
    )


def format_assessment(a: Assessment) -> str:
    """A readable report of one assessment."""
    lines = [f"audio: {a.audio}", f"text:  {a.text}"]
    score_cells = []
    for aspect in APA_ASPECTS:
        v = a.scores.get(aspect)
        score_cells.append(f"{aspect} {_score(v)}")
    lines.append("scores (0-10): " + "  ".join(score_cells))
    lines.append(f"heard (words):  {a.word_transcript if a.word_transcript is not None else '(unreadable)'}")
    lines.append(
        f"heard (phones): {a.phoneme_transcript if a.phoneme_transcript is not None else '(unreadable)'}"
    )
    if a.words:
        header = ("word", "expected", "heard", "diagnosis")
        rows = [
            (
                w.word + ("*" if w.lexicon == "guessed" else ""),
                " ".join(w.canonical),
                " ".join(w.heard) if a.phoneme_transcript is not None else "?",
                "?"
                if a.phoneme_transcript is None
                else "ok"
                if w.ok
                else ", ".join(e.describe() for e in w.errors),
            )
            for w in a.words
        ]
        widths = [max(len(r[i]) for r in (header, *rows)) for i in range(3)]
        lines.append("")
        for r in (header, *rows):
            lines.append("  ".join(c.ljust(widths[i]) for i, c in enumerate(r[:3])) + "  " + r[3])
        lines.append("(X->Y: X said as Y; -X: X deleted; +Y: Y inserted; *: not in CMUdict, guessed)")
    for note in a.notes:
        lines.append(f"note: {note}")
    for task in ("apa", "mdd"):
        reasons = {k.split(".", 1)[1]: v for k, v in a.failures.items() if k.startswith(task + ".")}
        if len(set(reasons.values())) == 1 and len(reasons) > 1:  # one cause for the whole answer
            lines.append(f"could not read the {task.upper()} answer: {next(iter(reasons.values()))}")
        else:
            lines += [f"could not read {task}.{k} from the model's answer: {v}" for k, v in reasons.items()]
    return "\n".join(lines)


def _score(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "?"
    return f"{value:g}"
