"""Readers for the layouts SpeechOcean762 comes in; each yields :class:`RawUtterance` items.

1. The original release (OpenSLR 101): ``WAVE/SPEAKERnnnn/*.WAV``, Kaldi folders ``train/`` and
   ``test/`` (``wav.scp``, ``utt2spk``, ``spk2age``, ``spk2gender``), ``resource/scores.json``
   (older copies: ``scores.json`` at the top).
2. The Hugging Face data set ``mispeech/speechocean762``: a ``save_to_disk`` folder, its parquet
   files (a folder or a glob; the split comes from the file name ``train-*``/``test-*`` or a
   ``train``/``test`` parent folder), or the hub id itself (through ``datasets``, when online).
   Rows have no utterance id: it is the audio file's name without extension.

Audio stays undecoded here (a path or the encoded bytes); problems that concern the source as a
whole (an unlisted WAV, a listed utterance without a score entry) come back as :class:`Problem`.
"""

from __future__ import annotations

import glob as globlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from loralab.errors import DataError

HF_COLUMNS = ("accuracy", "completeness", "fluency", "prosodic", "text", "total", "words", "audio")
HF_OPTIONAL_COLUMNS = ("speaker", "gender", "age")
SPLITS = ("train", "test")


@dataclass
class RawUtterance:
    id: str
    split: str
    speaker: str
    gender: str | None
    age: int | None
    entry: dict  # the scores.json entry (or the HF row without audio/speaker columns)
    audio: Path | bytes | None
    origin: str  # where it came from, for messages


@dataclass
class Problem:
    id: str
    split: str | None
    message: str


@dataclass
class Source:
    layout: str  # original | save_to_disk | parquet | hub
    description: str
    utterances: Iterator[RawUtterance]
    problems: list[Problem] = field(default_factory=list)
    count: int | None = None  # rows to expect, for the progress bar


def open_source(source: str | Path) -> Source:
    """Recognise the layout of ``source`` and return a reader over it."""
    text = str(source)
    path = Path(source).expanduser()
    if path.is_dir():
        root = _original_root(path)
        if root is not None:
            return _read_original(root)
        if (path / "dataset_dict.json").is_file() or (path / "state.json").is_file():
            return _read_datasets(path, "save_to_disk")
        parquet = sorted(path.rglob("*.parquet"))
        if parquet:
            return _read_parquet(parquet, text)
        raise DataError(
            f"{path}: not a SpeechOcean762 copy loralab knows: expected the original release "
            "(train/wav.scp, test/wav.scp, resource/scores.json, WAVE/), a save_to_disk folder "
            "(dataset_dict.json) or parquet files"
        )
    if path.is_file() and path.suffix == ".parquet":
        return _read_parquet([path], text)
    if any(ch in text for ch in "*?["):
        matches = sorted(Path(p) for p in globlib.glob(str(path)) if p.endswith(".parquet"))
        if not matches:
            raise DataError(f"no parquet files match '{text}'")
        return _read_parquet(matches, text)
    if path.exists():
        raise DataError(f"{path}: expected a folder or parquet files")
    if text.count("/") == 1 and not text.startswith((".", "/", "~")):
        return _read_datasets(text, "hub")
    raise DataError(f"{text}: no such file or folder (and not a Hugging Face data set id like owner/name)")


# ---- the original release -----------------------------------------------------------------


def _original_root(path: Path) -> Path | None:
    for candidate in (path, path / "speechocean762"):
        if any((candidate / split / "wav.scp").is_file() for split in SPLITS):
            return candidate
    return None


def _kaldi_pairs(path: Path) -> list[tuple[str, str]]:
    """``key<whitespace>value`` lines in order (repeated keys kept); a missing file has none."""
    pairs = []
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                key, _, value = line.strip().partition(" ") if "\t" not in line else line.partition("\t")
                pairs.append((key.strip(), value.strip()))
    return pairs


def _kaldi_table(path: Path) -> dict[str, str]:
    """``key<whitespace>value`` lines as a dict; a missing file is an empty table."""
    return dict(_kaldi_pairs(path))


def _repeated_ids(pairs: list[tuple[str, str]]) -> dict[str, list[str]]:
    """Keys listed more than once with different values -> those values."""
    values: dict[str, list[str]] = {}
    for key, value in pairs:
        values.setdefault(key, []).append(value)
    return {k: v for k, v in values.items() if len(set(v)) > 1}


def _read_scores(root: Path) -> tuple[Path, dict]:
    """``resource/scores.json``: utterance id -> its sentence/word/phone scores."""
    scores_path = next(
        (p for p in (root / "resource/scores.json", root / "scores.json") if p.is_file()), None
    )
    if scores_path is None:
        raise DataError(f"{root}: no resource/scores.json (the sentence/word/phone scores) in this release")
    try:
        scores = json.loads(scores_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise DataError(f"{scores_path}: not valid JSON ({e})") from e
    if not isinstance(scores, dict):
        raise DataError(f"{scores_path}: expected an object mapping utterance id -> scores")
    return scores_path, scores


@dataclass
class _Listing:
    """What the Kaldi tables of the original release list, and what is wrong with them."""

    scores_path: Path
    scores: dict
    problems: list[Problem] = field(default_factory=list)
    items: list[RawUtterance] = field(default_factory=list)
    listed_audio: set[Path] = field(default_factory=set)
    listed_ids: set[str] = field(default_factory=set)


def _read_split_tables(root: Path, split: str, found: _Listing) -> None:
    """One split's ``wav.scp`` (repeated ids are problems), speakers, ages and genders."""
    folder = root / split
    wav_pairs = _kaldi_pairs(folder / "wav.scp")
    wav_scp = dict(wav_pairs)
    for utt_id, paths in _repeated_ids(wav_pairs).items():
        found.listed_audio.update((root / p).resolve() for p in paths)
        found.listed_ids.add(utt_id)
        wav_scp.pop(utt_id, None)
        message = f"listed {len(paths)} times in {split}/wav.scp with different audio ({', '.join(paths)}): keep one line"
        found.problems.append(Problem(utt_id, split, message))
    utt2spk = _kaldi_table(folder / "utt2spk")
    spk2age = _kaldi_table(folder / "spk2age")
    spk2gender = _kaldi_table(folder / "spk2gender")
    for utt_id, relative in sorted(wav_scp.items()):
        audio = (root / relative).resolve()
        found.listed_audio.add(audio)
        if utt_id in found.listed_ids:
            found.problems.append(Problem(utt_id, split, "listed in both train/ and test/ wav.scp"))
            continue
        found.listed_ids.add(utt_id)
        if utt_id not in found.scores:
            message = f"audio without an entry: in {split}/wav.scp, not in {found.scores_path.name}"
            found.problems.append(Problem(utt_id, split, message))
            continue
        speaker = utt2spk.get(utt_id, utt_id[1:5] if len(utt_id) == 9 else "")
        age = spk2age.get(speaker)
        found.items.append(
            RawUtterance(
                id=utt_id,
                split=split,
                speaker=speaker,
                gender=spk2gender.get(speaker),
                age=int(age) if age and age.isdigit() else None,
                entry=found.scores[utt_id],
                audio=audio,
                origin=f"{split}/wav.scp",
            )
        )


def _unlisted_problems(root: Path, found: _Listing) -> None:
    """Entries in no wav.scp, and WAVE/ files no table lists."""
    wave = root / "WAVE"
    unlisted = {}
    if wave.is_dir():
        unlisted = {
            wav.stem: wav
            for wav in sorted(wave.glob("*/*"))
            if wav.suffix.lower() == ".wav" and wav.resolve() not in found.listed_audio
        }
    name = found.scores_path.name
    for utt_id in sorted(set(found.scores) - found.listed_ids):
        if utt_id in unlisted:
            message = (
                f"has audio ({unlisted.pop(utt_id)}) but is in no wav.scp, so its split is unknown: "
                "add it to train/wav.scp or test/wav.scp"
            )
        else:
            message = f"entry in {name} without audio (in no wav.scp, no WAVE/ file)"
        found.problems.append(Problem(utt_id, None, message))
    for stem, wav in unlisted.items():
        found.problems.append(
            Problem(stem, None, f"audio without an entry: {wav} is in no wav.scp or {name}")
        )


def _read_original(root: Path) -> Source:
    found = _Listing(*_read_scores(root))
    for split in SPLITS:
        _read_split_tables(root, split, found)
    _unlisted_problems(root, found)
    items = found.items
    return Source("original", f"original release at {root}", iter(items), found.problems, len(items))


# ---- Hugging Face layouts -------------------------------------------------------------------


def _utterance_id(audio: dict | None, origin: str) -> str:
    name = (audio or {}).get("path") or ""
    stem = Path(str(name)).stem
    if not stem:
        raise DataError(f"{origin}: no audio file name, so the utterance id cannot be recovered")
    return stem


def _speaker(value) -> str:
    if value is None:
        return ""
    return f"{value:04d}" if isinstance(value, int) else str(value)


def _rows_to_utterances(rows: Iterator[dict], split: str, origin: str) -> Iterator[RawUtterance]:
    for number, row in enumerate(rows):
        where = f"{origin} row {number}"
        audio = row.get("audio")
        utt_id = _utterance_id(audio, where)
        data = (audio or {}).get("bytes")
        age = row.get("age")
        yield RawUtterance(
            id=utt_id,
            split=split,
            speaker=_speaker(row.get("speaker")),
            gender=row.get("gender"),
            age=int(age) if age is not None else None,
            entry={k: v for k, v in row.items() if k not in ("audio", *HF_OPTIONAL_COLUMNS)},
            audio=bytes(data) if data else None,
            origin=where,
        )


def _check_columns(names, origin: str) -> None:
    missing = [c for c in HF_COLUMNS if c not in names]
    if missing:
        raise DataError(f"{origin}: missing column(s) {', '.join(missing)} of the SpeechOcean762 schema")


def _parquet_split(path: Path) -> str:
    """``train-00000-of-00001.parquet`` (the hub's data/ files) or ``train/0000.parquet`` (its parquet export)."""
    for split in SPLITS:
        if path.name.startswith((f"{split}-", f"{split}_", f"{split}.")):
            return split
    for part in reversed(path.parent.parts):
        if part in SPLITS:
            return part
    raise DataError(
        f"{path}: cannot tell the split: name the file train-*.parquet / test-*.parquet "
        "or put it in a train/ or test/ folder"
    )


def _read_parquet(paths: list[Path], description: str) -> Source:
    import pyarrow.parquet as pq

    splits = {path: _parquet_split(path) for path in paths}
    for path in paths:
        _check_columns(pq.read_schema(path).names, str(path))

    def iterate() -> Iterator[RawUtterance]:
        for path in paths:
            rows = (
                row for batch in pq.ParquetFile(path).iter_batches(batch_size=64) for row in batch.to_pylist()
            )
            yield from _rows_to_utterances(rows, splits[path], path.name)

    count = sum(pq.ParquetFile(path).metadata.num_rows for path in paths)
    return Source("parquet", f"parquet files {description}", iterate(), count=count)


def _read_datasets(source: str | Path, layout: str) -> Source:
    try:
        import datasets
    except ImportError as e:
        raise DataError(f"reading {source} needs the 'datasets' package: pip install 'loralab[hub]'") from e
    try:
        if layout == "hub":
            loaded = datasets.load_dataset(str(source))
        else:
            loaded = datasets.load_from_disk(str(source))
    except Exception as e:  # noqa: BLE001 - any failure (offline, missing, corrupt) is the user's to fix
        where = "the Hugging Face Hub" if layout == "hub" else "disk"
        raise DataError(
            f"cannot load '{source}' from {where} ({type(e).__name__}: {e}). Offline? Pass a local copy "
            "instead: the original release folder, a save_to_disk folder or the parquet files"
        ) from e
    if isinstance(loaded, datasets.Dataset):
        split = str(loaded.split) if loaded.split else None
        if split not in SPLITS:
            raise DataError(
                f"{source}: a single data set without a train/test split name; save a DatasetDict"
            )
        loaded = datasets.DatasetDict({split: loaded})
    unknown = [name for name in loaded if name not in SPLITS]
    if unknown:
        raise DataError(f"{source}: unexpected split(s) {unknown}; SpeechOcean762 has train and test")
    for name, dataset in loaded.items():
        _check_columns(dataset.column_names, f"{source} [{name}]")

    def iterate() -> Iterator[RawUtterance]:
        for name, dataset in loaded.items():
            # Keep audio encoded: datasets 4+ decodes through torchcodec, which we do not use.
            if isinstance(dataset.features.get("audio"), datasets.Audio):
                dataset = dataset.cast_column("audio", datasets.Audio(decode=False))
            rows = (row for batch in dataset.iter(batch_size=64) for row in _unbatch(batch))
            yield from _rows_to_utterances(rows, name, f"{source} [{name}]")

    count = sum(len(dataset) for dataset in loaded.values())
    return Source(layout, f"{layout} data set {source}", iterate(), count=count)


def _unbatch(batch: dict[str, list]) -> Iterator[dict]:
    keys = list(batch)
    for values in zip(*(batch[k] for k in keys)):
        yield dict(zip(keys, values))
