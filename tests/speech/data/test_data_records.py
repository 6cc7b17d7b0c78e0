"""Records: JSON round trip, versioning, path resolution; targets built from a hand-made entry."""

from __future__ import annotations

import json

import pytest

from loralab.errors import DataError
from loralab.speech.data import records as rec
from loralab.speech.data.targets import apa_answer, parse_entry, pronounced_transcript

ENTRY = {
    "text": "THREE BIRDS SING",
    "accuracy": 6,
    "completeness": 10.0,
    "fluency": 7.5,
    "prosodic": 8,
    "total": 6.5,
    "words": [
        {
            "text": "THREE",
            "accuracy": 3,
            "stress": 10,
            "total": 4,
            "phones": ["TH", "R", "IY0"],
            "phones-accuracy": [0.2, 0.4, 1.6],
            "mispronunciations": [
                {"canonical-phone": "TH", "index": 0, "pronounced-phone": "S"},
                {"canonical-phone": "R", "index": 1, "pronounced-phone": "R*"},
            ],
        },
        {
            "text": "BIRDS",
            "accuracy": 5,
            "stress": 10,
            "total": 5,
            "phones": "B ER1 D Z",  # the README's string form
            "phones-accuracy": [2, 0.0, 0.4, 0.2],
            "mispronunciations": [
                {"canonical-phone": "ER", "index": 1, "pronounced-phone": "<unk>"},
                {"canonical-phone": "D", "index": 2, "pronounced-phone": "<DEL>"},
                {"canonical-phone": "Z", "index": 3, "pronounced-phone": "DZ"},
            ],
        },
        {
            "text": "SING",
            "accuracy": 8,
            "stress": 10,
            "total": 8,
            "phones": ["S", "IH1", "NG"],
            "phones-accuracy": [2.0, 2.0, 0.2],  # low, but not annotated: stays canonical, warned
        },
    ],
}


def test_targets_follow_the_policy():
    parsed = parse_entry("u1", ENTRY)
    assert [w.pronounced_phones for w in parsed.words] == [
        ["S", "R", "IY"],
        ["B", "<unk>", "D", "Z"],
        ["S", "IH", "NG"],
    ]
    assert pronounced_transcript(parsed.words) == "S R IY B <unk> D Z S IH NG"
    assert parsed.unannotated_low_phones == [(2, 2)]
    unk = parse_entry("u1", ENTRY, distortion="unk")
    assert unk.words[0].pronounced_phones == ["S", "<unk>", "IY"]
    # strict JSON, integers, half-up rounding (7.5 -> 8, 6.5 -> 7), no completeness
    assert apa_answer(parsed.scores) == '{"accuracy": 6, "fluency": 8, "prosodic": 8, "total": 7}'


def _record(audio_path: str) -> rec.UtteranceRecord:
    parsed = parse_entry("000010011", ENTRY)
    return rec.UtteranceRecord(
        id="000010011",
        speaker="0001",
        split="train",
        audio_path=audio_path,
        sample_rate=16000,
        duration=1.5,
        text=parsed.text,
        scores=parsed.scores,
        words=parsed.words,
        apa_answer=apa_answer(parsed.scores),
        mdd_answer='{"word_transcript": "THREE BIRDS SING", "phoneme_transcript": "S R IY B <unk> D Z S IH NG"}',
        canonical_phones="TH R IY B ER D Z S IH NG",
        pronounced_phones="S R IY B <unk> D Z S IH NG",
        word_transcript=parsed.text,
        gender="m",
        age=31,
    )


def test_round_trip_with_relative_audio_path(tmp_path):
    record = _record(str(tmp_path / "audio/000010011.wav"))
    rec.write_manifest([record], tmp_path, "train")
    line = json.loads((tmp_path / "train.jsonl").read_text())
    assert line["audio_path"] == "audio/000010011.wav"
    assert line["manifest_version"] == rec.MANIFEST_VERSION
    # the folder can move: paths resolve against where it is now
    moved = tmp_path / "moved"
    moved.mkdir()
    (tmp_path / "train.jsonl").rename(moved / "train.jsonl")
    [back] = rec.read_manifest(moved, "train")
    assert back.audio_path == str(moved / "audio/000010011.wav")
    back.audio_path = record.audio_path
    assert back == record
    assert back.scores["fluency"] == back.scores.fluency == 7.5
    assert isinstance(back.words[0].mispronunciations[0], rec.Mispronunciation)


def test_other_version_and_bad_lines_are_clear_errors(tmp_path):
    data = _record(str(tmp_path / "a.wav")).to_json_dict(tmp_path)
    (tmp_path / "train.jsonl").write_text(json.dumps({**data, "manifest_version": 0}) + "\n")
    with pytest.raises(
        DataError, match="train.jsonl:1: manifest version 0 .* re-run 'loralab speech prepare'"
    ):
        rec.read_manifest(tmp_path, "train")
    (tmp_path / "train.jsonl").write_text(json.dumps({**data, "colour": "red"}) + "\n")
    with pytest.raises(DataError, match="unknown keys \\['colour'\\]"):
        rec.read_manifest(tmp_path, "train")
    (tmp_path / "train.jsonl").write_text("{not json\n")
    with pytest.raises(DataError, match="not valid JSON"):
        rec.read_manifest(tmp_path, "train")
    with pytest.raises(DataError, match="no 'dev' split.*splits there: train"):
        rec.read_manifest(tmp_path, "dev")
