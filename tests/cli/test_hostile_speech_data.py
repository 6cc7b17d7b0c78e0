"""Families 2 and 4 on speech data: a cut-off WAV, float WAVs beyond full scale, scores out of
range or not numbers, a duplicated utterance id. Each is an error naming the utterance (exit
status 2, no traceback) or a warning naming it, never a quiet wrong result."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
from hostile_fixtures import RATE, edit_scores, make_corpus, make_run, speech_config, tone, truncate, wav_path

from loralab.errors import DataError
from loralab.speech.data.audio import check_wav_length, decode_audio, load_audio

UTT = "000010001"


@pytest.fixture
def corpus(tmp_path):
    return make_corpus(tmp_path / "so")


def test_wav_promising_more_than_it_holds_is_an_error(cli, corpus, tmp_path):
    wav = wav_path(corpus, UTT)
    sf.write(wav, tone(seconds=7.29), RATE, subtype="PCM_16", format="WAV")
    truncate(wav, 44 + 2 * int(3.6 * RATE))
    code, err = cli("speech", "prepare", "--source", corpus, "--out", tmp_path / "m")
    assert code == 2
    assert UTT in err and "truncated WAV" in err and "7.29 s" in err and "3.60 s" in err
    assert not (tmp_path / "m" / "train.jsonl").exists()  # nothing written half-way


def test_short_cut_off_wav_is_truncated_not_silent(tmp_path):
    wav = tmp_path / "x.wav"
    sf.write(wav, np.concatenate([np.zeros(RATE), tone(2.0)]), RATE, subtype="PCM_16", format="WAV")
    truncate(wav, 2000)
    with pytest.raises(DataError, match="truncated WAV") as info:
        load_audio(wav)
    assert "silent" not in str(info.value) and str(wav) in str(info.value)
    with pytest.raises(DataError, match="truncated WAV"):
        decode_audio(wav.read_bytes(), name="utterance 7")


def test_complete_and_non_wav_files_pass_the_length_check(tmp_path):
    wav = tmp_path / "ok.wav"
    sf.write(wav, tone(), RATE, subtype="FLOAT", format="WAV")
    check_wav_length(wav, "ok")
    flac = tmp_path / "ok.flac"
    sf.write(flac, tone(), RATE, format="FLAC")
    check_wav_length(flac, "ok")


def test_float_wav_beyond_full_scale_is_prepared_with_a_warning_naming_it(cli, corpus, tmp_path, capsys):
    loud = tone(amplitude=3.0)
    sf.write(wav_path(corpus, UTT), loud, RATE, subtype="FLOAT", format="WAV")
    code, err = cli("speech", "prepare", "--source", corpus, "--out", tmp_path / "m")
    assert code == 0, err
    summary = json.loads((tmp_path / "m" / "summary.json").read_text())
    [warning] = [w for w in summary["warnings"]["items"] if w["kind"] == "clipped_audio"]
    clipped = int(np.count_nonzero(np.abs(loud) > 1))
    assert warning["id"] == UTT and f"{clipped} of {loud.size} samples" in warning["message"]


@pytest.mark.parametrize("field, value", [("fluency", 42), ("accuracy", -3), ("total", "ten")])
def test_sentence_score_out_of_range_is_refused_naming_utterance_and_field(
    cli, corpus, tmp_path, field, value
):
    edit_scores(corpus, UTT, **{field: value})
    code, err = cli("speech", "prepare", "--source", corpus, "--out", tmp_path / "m")
    assert code == 2 and UTT in err and field in err and str(value) in err


def test_bad_score_is_a_counted_skip_with_skip_bad(cli, corpus, tmp_path):
    edit_scores(corpus, UTT, fluency=42)
    code, err = cli("speech", "prepare", "--source", corpus, "--out", tmp_path / "m", "--skip-bad")
    assert code == 0, err
    summary = json.loads((tmp_path / "m" / "summary.json").read_text())
    assert summary["skipped"]["count"] == 1


def test_duplicate_utterance_id_with_two_paths_is_named_as_such(cli, corpus, tmp_path):
    other = corpus / "WAVE/SPEAKER0001/copy.WAV"
    sf.write(other, tone(), RATE, subtype="PCM_16", format="WAV")
    with (corpus / "train/wav.scp").open("a") as f:
        f.write(f"{UTT}\tWAVE/SPEAKER0001/copy.WAV\n")
    code, err = cli("speech", "prepare", "--source", corpus, "--out", tmp_path / "m")
    assert code == 2
    assert f"{UTT}" in err and "listed 2 times in train/wav.scp" in err
    assert "in no wav.scp" not in err


def _prepared(cli, corpus, tmp_path):
    code, err = cli("speech", "prepare", "--source", corpus, "--out", tmp_path / "m")
    assert code == 0, err
    return tmp_path / "m"


def test_score_of_ten_in_words_in_the_test_manifest_stops_evaluate_before_generating(cli, corpus, tmp_path):
    manifest = _prepared(cli, corpus, tmp_path)
    test = manifest / "test.jsonl"
    record = json.loads(test.read_text())
    record["scores"]["accuracy"] = "ten"
    test.write_text(json.dumps(record) + "\n")
    run = make_run(tmp_path / "run", speech_config(manifest))
    code, err = cli("evaluate", run, "--checkpoints", "0")
    assert code == 2
    assert "000020001" in err and "scores.accuracy" in err and "'ten'" in err
    assert not (run / "eval").exists()  # refused before any model or output


def test_manifest_with_binary_bytes_names_the_file(cli, corpus, tmp_path):
    manifest = _prepared(cli, corpus, tmp_path)
    (manifest / "test.jsonl").write_bytes(b"\xff\xfe\x00garbage\n")
    run = make_run(tmp_path / "run", speech_config(manifest))
    code, err = cli("evaluate", run, "--checkpoints", "0")
    assert code == 2 and "test.jsonl" in err and "UTF-8" in err
