"""Round 3 on ``speech prepare``'s output: an utterance id is a file name only when it is a plain
name (no ``../``, no ``/``), and a failed prepare leaves the manifest already in ``--out`` as it
was (the new one is built aside and swapped in when complete)."""

from __future__ import annotations

import json

import pytest
from hostile_fixtures import make_corpus, truncate, wav_path

from loralab.speech.data.records import read_manifest

UTT = "000010001"


def _rename(corpus, old: str, new: str) -> None:
    """Give utterance ``old`` the id ``new`` in wav.scp and scores.json (its audio stays put)."""
    scp = corpus / "train" / "wav.scp"
    scp.write_text(scp.read_text().replace(f"{old}\t", f"{new}\t"))
    scores_path = corpus / "resource/scores.json"
    scores = json.loads(scores_path.read_text())
    scores[new] = scores.pop(old)
    scores_path.write_text(json.dumps(scores))


@pytest.mark.parametrize("bad_id", ["../../escaped", "deeper/escaped", ".hidden", "a\\escaped"])
def test_an_id_that_is_not_a_plain_name_is_a_bad_item_naming_it(cli, tmp_path, bad_id):
    corpus = make_corpus(tmp_path / "so")
    _rename(corpus, UTT, bad_id)
    out = tmp_path / "data" / "m"
    code, err = cli("speech", "prepare", "--source", corpus, "--out", out)
    assert code == 2 and repr(bad_id) in err and "cannot be a file name" in err
    assert not [p for p in tmp_path.rglob("*escaped*")], "audio written under the hostile id"
    assert not (out / "train.jsonl").exists()


def test_with_skip_bad_the_unsafe_id_is_left_out_and_nothing_escapes(cli, tmp_path):
    corpus = make_corpus(tmp_path / "so")
    _rename(corpus, UTT, "../../escaped")
    out = tmp_path / "data" / "m"
    code, err = cli("speech", "prepare", "--source", corpus, "--out", out, "--skip-bad")
    assert code == 0, err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["skipped"]["count"] == 1
    assert not [p for p in tmp_path.rglob("*escaped*")]
    assert [p.name for p in (out / "audio").iterdir()] == ["000020001.wav"]


def test_a_failed_prepare_keeps_the_good_manifest_in_out(cli, tmp_path):
    corpus = make_corpus(tmp_path / "so")
    out = tmp_path / "m"
    code, err = cli("speech", "prepare", "--source", corpus, "--out", out)
    assert code == 0, err
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert len(before) == 5  # train.jsonl, test.jsonl, summary.json, two WAVs
    truncate(wav_path(corpus, UTT), 100)  # the next prepare fails on this recording
    code, err = cli("speech", "prepare", "--source", corpus, "--out", out)
    assert code == 2 and UTT in err and "left as it was" in err
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before
    assert [r.id for r in read_manifest(out, "train")] == [UTT]


def test_a_successful_prepare_replaces_the_manifest_and_leaves_no_staging(cli, tmp_path):
    corpus = make_corpus(tmp_path / "so")
    out = tmp_path / "m"
    assert cli("speech", "prepare", "--source", corpus, "--out", out)[0] == 0
    _rename(corpus, UTT, "000010002")
    code, err = cli("speech", "prepare", "--source", corpus, "--out", out)
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == ["audio", "summary.json", "test.jsonl", "train.jsonl"]
    assert sorted(p.name for p in (out / "audio").iterdir()) == ["000010002.wav", "000020001.wav"]
    [record] = read_manifest(out, "train")
    assert record.id == "000010002" and (out / "audio" / "000010002.wav").samefile(record.audio_path)
