"""Round 3's weak items that end in a clear message: a stereo file whose channels cancel is
called that (not "silent"), a word annotated with no phones is a bad item naming it, a protein
sequence mostly of X says its prediction rests on the length."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf
from hostile_fixtures import RATE, edit_scores, make_corpus, scores_entry, tone, wav_path

from loralab.errors import DataError
from loralab.protein.dataset import encode_sequence
from loralab.serve.inputs import ApiError, decode_recording
from loralab.serve.limits import ServeLimits
from loralab.speech.data.audio import decode_audio


def _cancelling_stereo() -> bytes:
    left = tone(1.0)
    buffer = io.BytesIO()
    sf.write(buffer, np.stack([left, -left], axis=1), RATE, format="WAV", subtype="FLOAT")
    return buffer.getvalue()


def test_stereo_channels_that_cancel_are_named_not_called_silent():
    with pytest.raises(DataError) as info:
        decode_audio(_cancelling_stereo(), "take.wav")
    message = str(info.value)
    assert "take.wav" in message and "2 channels cancel out" in message and "silent" not in message
    with pytest.raises(ApiError) as served:
        decode_recording(_cancelling_stereo(), "take.wav", ServeLimits())
    assert served.value.code == "bad_audio" and "cancel out" in served.value.message
    quiet = io.BytesIO()  # truly silent stereo is still "silent" (checked later, on the mix)
    sf.write(quiet, np.zeros((RATE, 2), np.float32), RATE, format="WAV")
    samples, _ = decode_audio(quiet.getvalue(), "quiet.wav")
    assert not samples.any()


def test_a_word_with_an_empty_phone_list_is_a_bad_item_naming_it(cli, tmp_path):
    corpus = make_corpus(tmp_path / "so")
    entry = scores_entry()
    empty = {**entry["words"][0], "text": "UM", "phones": [], "phones-accuracy": []}
    edit_scores(corpus, "000010001", text="A UM", words=[entry["words"][0], empty])
    assert wav_path(corpus, "000010001").is_file()
    code, err = cli("speech", "prepare", "--source", corpus, "--out", tmp_path / "m")
    assert code == 2 and "000010001 word 1 ('UM'): an empty phone list" in err


def test_a_sequence_mostly_of_x_says_the_prediction_rests_on_its_length():
    _, notes = encode_sequence("X" * 40, where="sequence 'unknown'")
    assert notes == [
        "sequence 'unknown': 40 of 40 residues are X (unknown): the prediction rests on the chain's "
        "length, not its sequence"
    ]
    assert encode_sequence("MKTAYIAKQRX", where="s")[1] == []


def test_a_manifest_word_without_mispronunciations_names_the_file_and_word(cli, tmp_path):
    import json

    from loralab.speech.data.records import read_manifest

    corpus = make_corpus(tmp_path / "so")
    out = tmp_path / "m"
    assert cli("speech", "prepare", "--source", corpus, "--out", out)[0] == 0
    path = out / "train.jsonl"
    record = json.loads(path.read_text())
    del record["words"][0]["mispronunciations"]
    path.write_text(json.dumps(record) + "\n")
    with pytest.raises(DataError) as info:
        read_manifest(out, "train")
    assert f"{path}:1: utterance 000010001 word 0 ('A'): 'mispronunciations' is 'missing'" in str(info.value)


def test_a_dc_offset_alone_is_silent_saying_so(tmp_path):
    from loralab.speech.data.audio import check_audio

    with pytest.raises(DataError, match=r"take: the audio is silent: a constant level of \+0\.200"):
        check_audio(np.full(RATE, 0.2, np.float32), RATE, "take")
    check_audio(0.2 + tone(), RATE, "take")  # an offset under a real signal is fine


def test_line_wrapped_base64_is_read():
    import base64
    import textwrap

    from loralab.serve.inputs import json_item
    from loralab.serve.schema import AssessJson

    wav = io.BytesIO()
    sf.write(wav, tone(), RATE, format="WAV")
    wrapped = "\n".join(textwrap.wrap(base64.b64encode(wav.getvalue()).decode(), 76)) + "\n"
    data, _, text, _ = json_item(AssessJson(audio_base64=wrapped, text="a"), 0, ServeLimits())
    assert data == wav.getvalue() and text == "a"


def test_text_that_disagrees_with_its_words_is_a_warning_naming_it(cli, tmp_path):
    import json

    corpus = make_corpus(tmp_path / "so")
    edit_scores(corpus, "000010001", text="THE")
    code, err = cli("speech", "prepare", "--source", corpus, "--out", tmp_path / "m")
    assert code == 0, err
    items = json.loads((tmp_path / "m" / "summary.json").read_text())["warnings"]["items"]
    [item] = [w for w in items if w["kind"] == "text_words_mismatch"]
    assert item["id"] == "000010001" and "'THE' differs from its annotated words 'A'" in item["message"]


def test_accented_spellings_are_found_in_cmudict_and_digits_are_named():
    from loralab.serve.inputs import check_text
    from loralab.speech.inference.recording_answers import AssessItem, _assessment
    from loralab.speech.scoring.word_diagnosis import canonical_words

    assert canonical_words("CAFÉ naïve") == [
        ("CAFÉ", ["K", "AH", "F", "EY"], "cmudict"),
        ("NAÏVE", ["N", "AY", "IY", "V"], "cmudict"),
    ]
    result = _assessment(AssessItem("1", "a.wav", "I have 3 cats"), "{}", "{}")
    assert "'3' has no letters to pronounce, so it was not assessed (write numbers as words)" in result.notes
    assert not any("letter-to-sound" in note for note in result.notes)
    with pytest.raises(ApiError) as info:
        check_text("I have 3 cats", ServeLimits(), allow_guessed=True)
    assert info.value.code == "unpronounceable_words" and "3 -> three" in info.value.message
