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
