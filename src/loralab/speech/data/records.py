"""Typed manifest records: one :class:`UtteranceRecord` per utterance, one JSON line each.

A manifest folder (written by ``loralab speech prepare``) holds ``train.jsonl``, ``test.jsonl``,
``summary.json`` and ``audio/``. Every line carries ``manifest_version``; a reader of another
version refuses it with a :class:`~loralab.errors.DataError` (re-run prepare) rather than guess.
``audio_path`` is stored relative to the manifest folder and resolved to an absolute path by
:func:`read_manifest`, so a manifest folder can be moved as a whole.

Training targets live in the record, built once by prepare:
``apa_answer`` (strict JSON, integer accuracy/fluency/prosodic/total; completeness is excluded
as in the paper), ``mdd_answer`` (strict JSON ``word_transcript`` + ``phoneme_transcript``),
``canonical_phones`` / ``pronounced_phones`` (space separated, stress stripped) and
``word_transcript``. See :mod:`loralab.speech.data.phones` for the pronounced-phone policy.
"""

from __future__ import annotations

import json
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from loralab.errors import DataError
from loralab.safe_files import write_text_atomic

MANIFEST_VERSION = 1
SCORE_ASPECTS = ("accuracy", "completeness", "fluency", "prosodic", "total")
APA_ASPECTS = ("accuracy", "fluency", "prosodic", "total")  # the paper's targets: no completeness


@dataclass
class Mispronunciation:
    """One annotated mispronunciation, as in the corpus (``pronounced_phone`` unnormalised)."""

    index: int
    canonical_phone: str
    pronounced_phone: str


@dataclass
class SentenceScores:
    """The five sentence-level scores. ``scores["accuracy"]`` works as well as ``scores.accuracy``."""

    accuracy: float
    completeness: float
    fluency: float
    prosodic: float
    total: float

    def __getitem__(self, aspect: str) -> float:
        if aspect not in SCORE_ASPECTS:
            raise KeyError(aspect)
        return getattr(self, aspect)

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass
class WordRecord:
    """One word: the canonical phones (stress as annotated) and what was pronounced (stress stripped)."""

    text: str
    canonical_phones: list[str]
    phone_accuracies: list[float]
    accuracy: float
    stress: float
    total: float
    pronounced_phones: list[str]
    mispronunciations: list[Mispronunciation] = field(default_factory=list)


@dataclass
class UtteranceRecord:
    """One utterance with its scores, words and training targets."""

    id: str
    speaker: str
    split: str
    audio_path: str  # absolute in memory; relative to the manifest folder on disk
    sample_rate: int
    duration: float
    text: str
    scores: SentenceScores
    words: list[WordRecord]
    apa_answer: str
    mdd_answer: str
    canonical_phones: str
    pronounced_phones: str
    word_transcript: str
    gender: str | None = None
    age: int | None = None
    manifest_version: int = MANIFEST_VERSION

    def to_json_dict(self, manifest_dir: str | Path | None = None) -> dict[str, Any]:
        """A JSON-ready dict; with ``manifest_dir``, ``audio_path`` is written relative to it."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}  # asdict's deep copies are slow
        data["scores"] = self.scores.as_dict()
        data["words"] = [
            {
                **{f.name: getattr(w, f.name) for f in fields(w)},
                "mispronunciations": [m.__dict__.copy() for m in w.mispronunciations],
            }
            for w in self.words
        ]
        if manifest_dir is not None:
            path = Path(self.audio_path)
            if path.is_absolute():
                base = Path(manifest_dir)
                data["audio_path"] = path.relative_to(
                    base if base.is_absolute() else base.resolve()
                ).as_posix()
        return data

    @classmethod
    def from_json_dict(cls, data: dict[str, Any], manifest_dir: str | Path | None = None) -> UtteranceRecord:
        """The record from :meth:`to_json_dict`'s output; raises ``DataError`` on a wrong version or shape."""
        version = data.get("manifest_version")
        if version != MANIFEST_VERSION:
            raise DataError(
                f"manifest version {version!r} where this loralab reads version {MANIFEST_VERSION}: "
                "re-run 'loralab speech prepare' to rebuild the manifest"
            )
        _check_keys(cls, data, "utterance record")
        values = dict(data)
        _check_keys(SentenceScores, values["scores"], "scores")
        check_sentence_scores(values.get("id"), values["scores"])
        values["scores"] = SentenceScores(**values["scores"])
        words = []
        for n, word in enumerate(values["words"]):
            _check_keys(WordRecord, word, f"word {n}")
            if not isinstance(word.get("mispronunciations"), list):
                raise DataError(
                    f"utterance {values.get('id')} word {n} ('{word.get('text')}'): 'mispronunciations' is "
                    f"{word.get('mispronunciations', 'missing')!r}, not a list (write [] for none, or re-run prepare)"
                )
            word = dict(word)
            word["mispronunciations"] = [Mispronunciation(**m) for m in word["mispronunciations"]]
            words.append(WordRecord(**word))
        values["words"] = words
        if manifest_dir is not None:
            base = Path(manifest_dir)
            values["audio_path"] = str(
                (base if base.is_absolute() else base.resolve()) / values["audio_path"]
            )
        return cls(**values)


SCORE_RANGE = (0.0, 10.0)


def check_sentence_scores(utt_id: Any, scores: dict[str, Any]) -> None:
    """Sentence scores must be numbers in 0-10: a DataError names the utterance and the field.

    A score of "ten" or 42 would otherwise reach training targets or metrics unnoticed."""
    low, high = SCORE_RANGE
    for aspect in SCORE_ASPECTS:
        if aspect not in scores:
            continue
        value = scores[aspect]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise DataError(f"utterance {utt_id}: scores.{aspect} is {value!r}, not a number (0-10)")
        if not low <= value <= high:
            raise DataError(f"utterance {utt_id}: scores.{aspect} = {value} is outside the range 0-10")


def _check_keys(cls, data: dict, what: str) -> None:
    if not isinstance(data, dict):
        raise DataError(f"{what}: expected a JSON object, got {type(data).__name__}")
    known = {f.name for f in fields(cls)}
    required = {f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING}
    unknown = sorted(set(data) - known)
    missing = sorted(required - set(data))
    if unknown or missing:
        raise DataError(f"{what}: unknown keys {unknown} / missing keys {missing}")


@dataclass
class Manifest:
    """What prepare wrote: the folder, the records per split, the summary."""

    manifest_dir: Path
    splits: dict[str, list[UtteranceRecord]]
    summary: dict[str, Any]

    def records(self, split: str) -> list[UtteranceRecord]:
        return self.splits[split]


def manifest_path(manifest_dir: str | Path, split: str) -> Path:
    return Path(manifest_dir) / f"{split}.jsonl"


def write_manifest(records: list[UtteranceRecord], manifest_dir: str | Path, split: str) -> Path:
    """Write one split as JSONL (one record a line), atomically (a temp file renamed into place)."""
    manifest_dir = Path(manifest_dir).resolve()
    path = manifest_path(manifest_dir, split)
    lines = (json.dumps(record.to_json_dict(manifest_dir), ensure_ascii=False) + "\n" for record in records)
    return write_text_atomic(path, "".join(lines))


def read_manifest(manifest_dir: str | Path, split: str) -> list[UtteranceRecord]:
    """The records of ``split`` in a manifest folder, ``audio_path`` resolved to absolute paths."""
    manifest_dir = Path(manifest_dir).resolve()
    path = manifest_path(manifest_dir, split)
    if not path.is_file():
        available = sorted(p.stem for p in manifest_dir.glob("*.jsonl")) if manifest_dir.is_dir() else []
        hint = f"splits there: {', '.join(available)}" if available else "no manifest there"
        raise DataError(
            f"no '{split}' split in {manifest_dir} ({hint}); "
            "build one with 'loralab speech prepare --source DATA --out DIR'"
        )
    records = []
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(
            f"{path}: bytes that are not UTF-8 text at offset {e.start}; re-run prepare"
        ) from None
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            records.append(UtteranceRecord.from_json_dict(json.loads(line), manifest_dir))
        except json.JSONDecodeError as e:
            raise DataError(f"{path}:{number}: not valid JSON ({e})") from e
        except (DataError, TypeError) as e:
            raise DataError(f"{path}:{number}: {e}") from e
    return records


def task_examples(records: list, tasks: list[str], shares: list[float] = (), seed: int = 0) -> list[tuple]:
    """(record, task) pairs, record by record; with ``shares`` (``speech.task_shares``), each task
    only for its fixed share of the records (drawn per task with ``seed``). Training and the
    estimator (``loralab estimate``) both count an epoch with it."""
    import random

    keep: dict[str, set[int]] = {}
    for k, task in enumerate(tasks):
        share = shares[k] if shares else 1.0
        if share < 1.0:
            count = max(1, round(share * len(records)))
            keep[task] = set(random.Random(f"{seed}:{task}").sample(range(len(records)), count))
    return [(r, t) for i, r in enumerate(records) for t in tasks if t not in keep or i in keep[t]]
