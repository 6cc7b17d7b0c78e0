"""``loralab speech prepare``: SpeechOcean762 (any layout) -> typed JSONL manifests + 16 kHz audio.

Output folder::

    train.jsonl, test.jsonl   one UtteranceRecord per line (loralab.speech.data.records)
    summary.json              counts per split, score histograms, phone inventory seen,
                              skipped items and warnings, the options used
    audio/<utterance id>.wav  16 kHz mono 16-bit PCM (soundfile decode, channel mean,
                              scipy resample_poly)

The new manifest is built aside (``--out/.prepare-partial/``) and swapped in only when it is
complete: a failed run leaves the manifest already in ``--out`` as it was. An utterance id becomes
a file name only when it is a plain name (letters, digits, ``.``, ``_``, ``+``, ``-``, not starting
with ``.``): ``../x`` or ``a/b`` is a bad item, never a path outside ``audio/``.

Bad input (a missing/corrupt/empty/silent/low-rate wav, a scores entry missing a field, an
utterance without audio or audio without an entry, phones vs phones-accuracy length mismatch,
a phone outside the inventory, a mispronunciation index out of range) is a ``DataError``
listing every bad item; with ``skip_bad=True`` those utterances are left out and listed in
``summary.json`` instead. Decoding runs in a thread pool (libsndfile and scipy's filter
release the GIL), with a bounded number of utterances in flight so memory stays flat.
"""

from __future__ import annotations

import os
import re
import shutil
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from loralab.errors import DataError
from loralab.speech.data.audio import (
    TARGET_SAMPLE_RATE,
    check_audio,
    count_clipped,
    decode_audio,
    resample,
    write_wav,
)
from loralab.speech.data.records import Manifest, UtteranceRecord, write_manifest
from loralab.speech.data.sources import SPLITS, Problem, RawUtterance, open_source
from loralab.speech.data.summary import build_summary, write_summary
from loralab.speech.data.targets import (
    ParsedEntry,
    apa_answer,
    canonical_transcript,
    mdd_answer,
    parse_entry,
    pronounced_transcript,
)

AUDIO_FOLDER = "audio"
MAX_LISTED_PROBLEMS = 10
STAGING_FOLDER = ".prepare-partial"  # inside --out: the same file system, so the swap is renames
OLD_FOLDER = ".prepare-old"  # the replaced manifest, for the moment of the swap
MANIFEST_FILES = (*(f"{split}.jsonl" for split in SPLITS), "summary.json")
_SAFE_ID = re.compile(r"[\w+-][\w.+-]{0,199}")


def id_problem(utt_id: str) -> str | None:
    """Why ``utt_id`` cannot name its audio file (``audio/<id>.wav``), or None when it can."""
    if isinstance(utt_id, str) and _SAFE_ID.fullmatch(utt_id):
        return None
    return (
        f"utterance id {utt_id!r} cannot be a file name (only letters, digits, '.', '_', '+', '-', "
        "at most 200, not starting with '.'): rename it in wav.scp and scores.json"
    )


def default_workers() -> int:
    return max(1, min(8, os.cpu_count() or 1))


def convert_audio(audio: Path | bytes, destination: Path, name: str) -> tuple[float, dict | None]:
    """Decode, check, downmix, resample to 16 kHz and write one utterance; returns its duration (s)
    and a clipping warning (samples beyond full scale are hard-clipped in the 16-bit output) or None."""
    samples, sample_rate = decode_audio(audio, name)
    check_audio(samples, sample_rate, name)
    clipped = count_clipped(samples)
    warning = None
    if clipped:
        peak = float(abs(samples).max())
        warning = {
            "kind": "clipped_audio",
            "message": f"{clipped} of {samples.size} samples ({clipped / samples.size:.1%}) lie outside "
            f"[-1, 1] (peak {peak:.2f}) and were clipped to full scale: scale the recording down",
        }
    samples = resample(samples, sample_rate, TARGET_SAMPLE_RATE)
    write_wav(destination, samples, TARGET_SAMPLE_RATE)
    return len(samples) / TARGET_SAMPLE_RATE, warning


def _record(raw: RawUtterance, parsed: ParsedEntry, audio_path: Path, duration: float) -> UtteranceRecord:
    pronounced = pronounced_transcript(parsed.words)
    return UtteranceRecord(
        id=raw.id,
        speaker=raw.speaker,
        split=raw.split,
        audio_path=str(audio_path),
        sample_rate=TARGET_SAMPLE_RATE,
        duration=round(duration, 4),
        text=parsed.text,
        scores=parsed.scores,
        words=parsed.words,
        apa_answer=apa_answer(parsed.scores),
        mdd_answer=mdd_answer(parsed.text, pronounced),
        canonical_phones=canonical_transcript(parsed.words),
        pronounced_phones=pronounced,
        word_transcript=parsed.text,
        gender=raw.gender,
        age=raw.age,
    )


def prepare_speechocean762(
    source: str | Path,
    out_dir: str | Path,
    *,
    skip_bad: bool = False,
    workers: int | None = None,
    distortion: str = "closest",
    allow_missing_mispronunciations: bool = False,
    progress: bool = True,
) -> Manifest:
    """Prepare SpeechOcean762 from ``source`` into ``out_dir``; see the module docstring.

    ``source``: the original release folder, a ``save_to_disk`` folder, a folder or glob of
    parquet files, or a hub id (``mispeech/speechocean762``). ``distortion``: how ``X*``
    annotations enter the phoneme target ("closest": X, "unk": ``<unk>``).
    ``allow_missing_mispronunciations``: accept an old copy without ``mispronunciations``
    (the phoneme targets then equal the canonical phones, which is wrong for MDD training).
    """
    src = open_source(source)
    out_dir = Path(out_dir)
    final_dir = out_dir.resolve()
    stage = final_dir / STAGING_FOLDER
    shutil.rmtree(stage, ignore_errors=True)  # left by a killed run: ours, and incomplete
    (stage / AUDIO_FOLDER).mkdir(parents=True)
    options = {
        "skip_bad": skip_bad,
        "distortion": distortion,
        "allow_missing_mispronunciations": allow_missing_mispronunciations,
    }
    try:
        records, summary = _build(src, stage, options, workers or default_workers(), progress)
    except BaseException as e:
        shutil.rmtree(stage, ignore_errors=True)
        if isinstance(e, DataError) and (final_dir / "train.jsonl").is_file():
            raise DataError(f"{e}\n(the manifest already in {final_dir} was left as it was)") from e
        raise
    _swap_in(stage, final_dir)
    for split_records in records.values():
        for record in split_records:
            record.audio_path = str(final_dir / AUDIO_FOLDER / Path(record.audio_path).name)
    return Manifest(manifest_dir=out_dir, splits=records, summary=summary)


def _build(src, stage: Path, options: dict, workers: int, progress: bool) -> tuple[dict, dict]:
    """The whole manifest written into ``stage``: (records per split, summary)."""
    found = _Collected(bad=list(src.problems))
    _collect(src, found, stage / AUDIO_FOLDER, options["distortion"], workers, progress)
    _refuse_what_is_wrong(src, found, options["skip_bad"], options["allow_missing_mispronunciations"])
    for split in SPLITS:
        found.records[split].sort(key=lambda r: r.id)
        write_manifest(found.records[split], stage, split)
    summary = build_summary(found.records, found.bad, found.warnings, src.description, src.layout, options)
    write_summary(summary, stage)
    return found.records, summary


def _swap_in(stage: Path, out_dir: Path) -> None:
    """Replace the manifest in ``out_dir`` (its split files, summary and audio) by the complete one
    in ``stage``: renames within one file system, the old one deleted only after."""
    old = out_dir / OLD_FOLDER
    shutil.rmtree(old, ignore_errors=True)
    old.mkdir()
    names = (*MANIFEST_FILES, AUDIO_FOLDER)
    for name in names:
        if (out_dir / name).exists():
            os.replace(out_dir / name, old / name)
    for name in names:
        os.replace(stage / name, out_dir / name)
    shutil.rmtree(old, ignore_errors=True)
    shutil.rmtree(stage, ignore_errors=True)


@dataclass
class _Collected:
    """What reading the source found: records per split, bad items, warnings, annotation facts."""

    bad: list[Problem]
    warnings: list[dict] = field(default_factory=list)
    records: dict[str, list[UtteranceRecord]] = field(default_factory=lambda: {split: [] for split in SPLITS})
    saw_annotation_field: bool = False
    low_phone_count: int = 0

    def finish(self, raw: RawUtterance, parsed: ParsedEntry, path: Path, future: Future) -> None:
        """One converted recording in: its record, or why it is bad."""
        try:
            duration, warning = future.result()
        except DataError as e:
            self.bad.append(Problem(raw.id, raw.split, str(e)))
            return
        if warning is not None:
            self.warnings.append({"id": raw.id, **warning})
        self.records[raw.split].append(_record(raw, parsed, path, duration))


def _parse(raw: RawUtterance, found: _Collected, distortion: str) -> ParsedEntry | None:
    """The parsed annotation of ``raw``, or None (with the reason in ``found.bad``)."""
    try:
        parsed = parse_entry(raw.id, raw.entry, distortion)
    except DataError as e:
        found.bad.append(Problem(raw.id, raw.split, str(e)))
        return None
    found.saw_annotation_field |= parsed.has_mispronunciation_field
    found.low_phone_count += len(parsed.unannotated_low_phones)
    found.warnings.extend(_warnings(raw, parsed))
    if raw.audio is None:
        found.bad.append(
            Problem(raw.id, raw.split, f"utterance {raw.id}: entry without audio ({raw.origin})")
        )
        return None
    return parsed


def _collect(src, found: _Collected, audio_dir: Path, distortion: str, workers: int, progress: bool) -> None:
    """Parse every utterance and convert its audio on ``workers`` threads (a bounded queue)."""
    from tqdm.auto import tqdm

    seen: set[str] = set()
    pending: deque[tuple[RawUtterance, ParsedEntry, Path, Future]] = deque()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for raw in tqdm(src.utterances, desc="prepare", unit="utt", total=src.count, disable=not progress):
            if raw.id in seen:
                found.bad.append(Problem(raw.id, raw.split, "duplicate utterance id"))
                continue
            seen.add(raw.id)
            unsafe = id_problem(raw.id)
            if unsafe is not None:
                found.bad.append(Problem(raw.id, raw.split, unsafe))
                continue
            parsed = _parse(raw, found, distortion)
            if parsed is None:
                continue
            path = audio_dir / f"{raw.id}.wav"
            name = f"utterance {raw.id} ({raw.origin})"
            pending.append((raw, parsed, path, pool.submit(convert_audio, raw.audio, path, name)))
            while len(pending) > 4 * workers:
                found.finish(*pending.popleft())
        while pending:
            found.finish(*pending.popleft())


def _refuse_what_is_wrong(src, found: _Collected, skip_bad: bool, allow_missing: bool) -> None:
    """An old copy without mispronunciation annotations, or bad items without --skip-bad: an error."""
    if not found.saw_annotation_field and found.low_phone_count and not allow_missing:
        raise DataError(
            f"{src.description} has no 'mispronunciations' annotations (an older copy), so the phoneme "
            f"targets cannot say what was pronounced ({found.low_phone_count} phones scored < 0.5 would keep "
            "their dictionary phone). Use a current copy (github.com/jimbozhang/speechocean762 or "
            "mispeech/speechocean762), or pass --allow-missing-mispronunciations to accept that"
        )
    bad = found.bad
    if bad and not skip_bad:
        listed = "\n".join(f"  - {p.id} [{p.split or '-'}]: {p.message}" for p in bad[:MAX_LISTED_PROBLEMS])
        more = f"\n  ... and {len(bad) - MAX_LISTED_PROBLEMS} more" if len(bad) > MAX_LISTED_PROBLEMS else ""
        raise DataError(
            f"{len(bad)} bad item(s) in {src.description}:\n{listed}{more}\n"
            "Fix them, or pass --skip-bad to leave them out (they are then listed in summary.json)"
        )


def _warnings(raw: RawUtterance, parsed: ParsedEntry) -> list[dict]:
    """Oddities that do not make an utterance bad but must not pass silently."""
    found = []
    said, listed = parsed.text.upper().split(), [w.text.upper() for w in parsed.words]
    if said != listed:
        found.append(
            {
                "id": raw.id,
                "kind": "text_words_mismatch",
                "message": f"the text {' '.join(said)!r} differs from its annotated words {' '.join(listed)!r}: "
                "the answers use the text, the phone targets the words",
            }
        )
    for w, i in parsed.unannotated_low_phones:
        found.append(
            {
                "id": raw.id,
                "kind": "unannotated_low_accuracy_phone",
                "message": f"word {w} phone {i} scored < 0.5 without a mispronunciation entry: kept canonical",
            }
        )
    for w, i, annotated, actual in parsed.canonical_mismatches:
        found.append(
            {
                "id": raw.id,
                "kind": "canonical_phone_mismatch",
                "message": f"word {w} mispronunciation index {i} says canonical '{annotated}' "
                f"but the phone there is '{actual}': the index was trusted",
            }
        )
    return found
