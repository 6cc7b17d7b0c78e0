"""The Hugging Face layouts (parquet, save_to_disk, hub id) give the same records as the original release."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from so762_helpers import kaldi_lines

from loralab.errors import DataError
from loralab.speech.data.prepare import prepare_speechocean762
from loralab.speech.data.records import read_manifest

HF_SCORE_COLUMNS = ("accuracy", "completeness", "fluency", "prosodic", "text", "total")


def hf_rows(corpus: Path, split: str) -> list[dict]:
    """Rows in the schema of mispeech/speechocean762: no utterance id, audio as {bytes, path}."""
    scores = json.loads((corpus / "resource/scores.json").read_text())
    speaker_of = dict(kaldi_lines(corpus / split / "utt2spk"))
    gender = dict(kaldi_lines(corpus / split / "spk2gender"))
    age = dict(kaldi_lines(corpus / split / "spk2age"))
    rows = []
    for utt, relative in kaldi_lines(corpus / split / "wav.scp"):
        entry, speaker = scores[utt], speaker_of[utt]
        rows.append(
            {
                **{column: entry[column] for column in HF_SCORE_COLUMNS},
                "words": entry["words"],
                "speaker": speaker,
                "gender": gender[speaker],
                "age": int(age[speaker]),
                "audio": {"bytes": (corpus / relative).read_bytes(), "path": Path(relative).name.lower()},
            }
        )
    return rows


def as_dicts(manifest_dir: Path) -> dict[str, list[dict]]:
    return {
        split: [r.to_json_dict(manifest_dir) for r in read_manifest(manifest_dir, split)]
        for split in ("train", "test")
    }


@pytest.fixture(scope="module")
def parquet_copy(synth_corpus_dir, tmp_path_factory):
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = tmp_path_factory.mktemp("hf_parquet") / "data"
    folder.mkdir()
    for split in ("train", "test"):
        pq.write_table(
            pa.Table.from_pylist(hf_rows(synth_corpus_dir, split)), folder / f"{split}-00000-of-00001.parquet"
        )
    return folder


def test_parquet_copy_gives_identical_records(parquet_copy, synth_manifest_dir, tmp_path):
    out = tmp_path / "from_parquet"
    manifest = prepare_speechocean762(parquet_copy, out, progress=False)
    assert manifest.summary["layout"] == "parquet"
    assert as_dicts(out) == as_dicts(synth_manifest_dir)
    # a glob of the same files
    out_glob = tmp_path / "from_glob"
    prepare_speechocean762(str(parquet_copy / "*.parquet"), out_glob, progress=False)
    assert as_dicts(out_glob) == as_dicts(synth_manifest_dir)


def test_save_to_disk_copy_gives_identical_records(synth_corpus_dir, synth_manifest_dir, tmp_path):
    datasets = pytest.importorskip("datasets")
    splits = {
        split: datasets.Dataset.from_list(hf_rows(synth_corpus_dir, split)).cast_column(
            "audio", datasets.Audio()
        )
        for split in ("train", "test")
    }
    datasets.DatasetDict(splits).save_to_disk(str(tmp_path / "disk"))
    out = tmp_path / "from_disk"
    manifest = prepare_speechocean762(tmp_path / "disk", out, progress=False)
    assert manifest.summary["layout"] == "save_to_disk"
    assert as_dicts(out) == as_dicts(synth_manifest_dir)


def test_parquet_without_a_split_name_or_a_column_is_refused(parquet_copy, tmp_path):
    import pyarrow.parquet as pq

    table = pq.read_table(parquet_copy / "test-00000-of-00001.parquet")
    pq.write_table(table, tmp_path / "shard.parquet")
    with pytest.raises(DataError, match="cannot tell the split"):
        prepare_speechocean762(tmp_path / "shard.parquet", tmp_path / "out", progress=False)
    pq.write_table(table.drop(["fluency"]), tmp_path / "test-1.parquet")
    with pytest.raises(DataError, match="missing column.*fluency"):
        prepare_speechocean762(tmp_path / "test-1.parquet", tmp_path / "out", progress=False)


def test_hub_id_offline_is_a_clear_error(monkeypatch, tmp_path):
    datasets = pytest.importorskip("datasets")

    def offline(*args, **kwargs):
        raise ConnectionError("no network")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(DataError, match="Offline\\? Pass a local copy"):
        prepare_speechocean762("mispeech/speechocean762", tmp_path / "out", progress=False)


def test_unknown_source_is_a_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="not a SpeechOcean762 copy"):
        prepare_speechocean762(tmp_path / "empty", tmp_path / "out", progress=False)
    with pytest.raises(DataError, match="no such file or folder"):
        prepare_speechocean762(tmp_path / "nowhere/at/all", tmp_path / "out", progress=False)
