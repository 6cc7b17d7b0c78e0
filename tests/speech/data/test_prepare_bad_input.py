"""Bad input: each problem is a DataError naming the utterance and the problem, or, with
skip_bad=True, a skip counted and listed in summary.json while the good utterances go through."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from loralab.cli.main import main
from loralab.errors import DataError
from loralab.speech.data.prepare import prepare_speechocean762
from loralab.speech.data.records import read_manifest


def _scores(root: Path) -> dict:
    return json.loads((root / "resource/scores.json").read_text())


def _save_scores(root: Path, scores: dict) -> None:
    (root / "resource/scores.json").write_text(json.dumps(scores))


def _wav(root: Path, utt: str) -> Path:
    return next(root.glob(f"WAVE/*/{utt}.WAV"))


def _edit_entry(root: Path, utt: str, change) -> None:
    scores = _scores(root)
    change(scores[utt])
    _save_scores(root, scores)


def _first_word_with_error(entry: dict) -> dict:
    return next((w for w in entry["words"] if w["mispronunciations"]), entry["words"][0])


def missing_wav(root, utt):
    _wav(root, utt).unlink()


def corrupt_wav(root, utt):
    _wav(root, utt).write_bytes(b"RIFF\x00\x00\x00\x00WAVEgarbage" * 10)


def empty_wav(root, utt):
    sf.write(str(_wav(root, utt)), np.zeros(0, np.int16), 16000, format="WAV", subtype="PCM_16")


def silent_wav(root, utt):
    sf.write(str(_wav(root, utt)), np.zeros(16000, np.int16), 16000, format="WAV", subtype="PCM_16")


def low_rate_wav(root, utt):
    tone = 0.3 * np.sin(np.arange(4000) * 0.3)
    sf.write(str(_wav(root, utt)), tone, 4000, format="WAV", subtype="PCM_16")


def entry_missing_field(root, utt):
    _edit_entry(root, utt, lambda e: e.pop("fluency"))


def word_missing_field(root, utt):
    _edit_entry(root, utt, lambda e: e["words"][0].pop("phones-accuracy"))


def id_without_audio(root, utt):
    _wav(root, utt).unlink()
    scp = root / "train/wav.scp"
    scp.write_text("".join(line + "\n" for line in scp.read_text().splitlines() if not line.startswith(utt)))


def audio_without_entry(root, utt):
    scores = _scores(root)
    del scores[utt]
    _save_scores(root, scores)


def length_mismatch(root, utt):
    _edit_entry(root, utt, lambda e: e["words"][0]["phones-accuracy"].append(2.0))


def canonical_outside_inventory(root, utt):
    _edit_entry(root, utt, lambda e: e["words"][0]["phones"].__setitem__(0, "QX"))


def pronounced_outside_inventory(root, utt):
    def change(entry):
        word = entry["words"][0]
        word["mispronunciations"] = [
            {"canonical-phone": word["phones"][0], "index": 0, "pronounced-phone": "Q"}
        ]

    _edit_entry(root, utt, change)


def index_out_of_range(root, utt):
    def change(entry):
        word = entry["words"][0]
        word["mispronunciations"] = [
            {"canonical-phone": "T", "index": len(word["phones"]), "pronounced-phone": "D"},
        ]

    _edit_entry(root, utt, change)


CASES = {
    missing_wav: "audio file not found",
    corrupt_wav: "cannot decode audio",
    empty_wav: "audio is empty",
    silent_wav: "audio is silent",
    low_rate_wav: "sample rate 4000 Hz is below 8000",
    entry_missing_field: "lacks field.*fluency",
    word_missing_field: "word 0.*lacks field.*phones-accuracy",
    id_without_audio: "without audio",
    audio_without_entry: "audio without an entry",
    length_mismatch: "phones but .* phones-accuracy values",
    canonical_outside_inventory: "'QX' is not in the phone inventory",
    pronounced_outside_inventory: "'Q' is not in the phone inventory",
    index_out_of_range: "index .* out of range",
}


@pytest.mark.parametrize("breaker", list(CASES), ids=[f.__name__ for f in CASES])
def test_bad_item_is_an_error_or_a_counted_skip(mini_corpus, tmp_path, breaker):
    root, ids = mini_corpus
    bad = ids["train"][0]
    breaker(root, bad)
    with pytest.raises(DataError, match=CASES[breaker]) as error:
        prepare_speechocean762(root, tmp_path / "strict", progress=False)
    assert bad in str(error.value)
    assert not (tmp_path / "strict/train.jsonl").exists()

    manifest = prepare_speechocean762(root, tmp_path / "lenient", skip_bad=True, progress=False)
    summary = json.loads((tmp_path / "lenient/summary.json").read_text())
    assert summary["skipped"]["count"] == 1
    assert summary["skipped"]["items"][0]["id"] == bad
    kept = [r.id for r in read_manifest(tmp_path / "lenient", "train")]
    assert kept == [ids["train"][1]]
    assert [r.id for r in manifest.records("test")] == ids["test"]


def test_unlisted_wav_is_audio_without_an_entry(mini_corpus, tmp_path):
    root, _ = mini_corpus
    stray = root / "WAVE/SPEAKER0099/000990001.WAV"
    stray.parent.mkdir()
    sf.write(str(stray), 0.3 * np.sin(np.arange(8000) * 0.2), 16000)
    with pytest.raises(DataError, match="000990001.*audio without an entry"):
        prepare_speechocean762(root, tmp_path / "out", progress=False)


def test_unlisted_wav_of_a_scored_utterance_is_one_problem(mini_corpus, tmp_path):
    root, ids = mini_corpus
    scp = root / "train/wav.scp"
    scp.write_text(
        "".join(line + "\n" for line in scp.read_text().splitlines() if not line.startswith(ids["train"][0]))
    )
    manifest = prepare_speechocean762(root, tmp_path / "out", skip_bad=True, progress=False)
    [item] = manifest.summary["skipped"]["items"]
    assert item["id"] == ids["train"][0] and "in no wav.scp, so its split is unknown" in item["reason"]


def test_all_problems_are_listed_at_once(mini_corpus, tmp_path):
    root, ids = mini_corpus
    silent_wav(root, ids["train"][0])
    entry_missing_field(root, ids["test"][0])
    with pytest.raises(DataError, match="2 bad item") as error:
        prepare_speechocean762(root, tmp_path / "out", progress=False)
    assert ids["train"][0] in str(error.value) and ids["test"][0] in str(error.value)
    assert "--skip-bad" in str(error.value)


def test_old_copy_without_mispronunciations_is_refused_unless_allowed(mini_corpus, tmp_path):
    root, ids = mini_corpus
    scores = _scores(root)
    for entry in scores.values():
        for word in entry["words"]:
            word.pop("mispronunciations")
        entry["words"][0]["phones-accuracy"][0] = 0.2  # at least one phone the annotators marked wrong
    _save_scores(root, scores)
    with pytest.raises(DataError, match="no 'mispronunciations' annotations"):
        prepare_speechocean762(root, tmp_path / "strict", progress=False)
    manifest = prepare_speechocean762(
        root, tmp_path / "ok", allow_missing_mispronunciations=True, progress=False
    )
    record = manifest.records("train")[0]
    assert record.pronounced_phones == record.canonical_phones
    assert manifest.summary["warnings"]["by_kind"]["unannotated_low_accuracy_phone"] >= 1


def test_cli_prints_the_error_without_a_traceback(mini_corpus, tmp_path, capsys):
    root, ids = mini_corpus
    silent_wav(root, ids["train"][0])
    code = main(["speech", "prepare", "--source", str(root), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2
    assert "\nloralab: error: 1 bad item" in err and "Traceback" not in err
    assert ids["train"][0] in err and "silent" in err
    assert (
        main(["speech", "prepare", "--source", str(root), "--out", str(tmp_path / "out"), "--skip-bad"]) == 0
    )
    assert "skipped 1 bad item" in capsys.readouterr().out
