"""Audio decoding, downmix, resampling (against scipy's resample_poly) and the checks."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import resample_poly

from loralab.errors import DataError
from loralab.speech.data.audio import load_audio, resample, write_wav


@pytest.mark.parametrize("rate", [8000, 11025, 22050, 44100, 48000])
@pytest.mark.parametrize("length", [1, 7, 999, 20011])
def test_resample_equals_scipy_resample_poly(rate, length):
    x = np.random.default_rng(rate + length).standard_normal(length).astype(np.float32)
    g = np.gcd(rate, 16000)
    expected = resample_poly(x.astype(np.float64), 16000 // g, rate // g)
    got = resample(x, rate, 16000)
    assert got.dtype == np.float32 and got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=2e-5 * max(1.0, np.abs(expected).max()))


def test_load_audio_downmixes_and_resamples(tmp_path):
    t = np.arange(44100) / 44100
    left, right = 0.5 * np.sin(2 * np.pi * 440 * t), 0.2 * np.sin(2 * np.pi * 1000 * t)
    path = tmp_path / "stereo.wav"
    sf.write(str(path), np.stack([left, right], axis=1), 44100, subtype="FLOAT")
    got = load_audio(path)
    expected = resample_poly((left + right) / 2, 160, 441)
    assert got.dtype == np.float32 and len(got) == 16000
    np.testing.assert_allclose(got, expected, atol=1e-5)
    # already 16 kHz: untouched samples
    sf.write(str(tmp_path / "mono.wav"), left[:16000], 16000, subtype="FLOAT")
    np.testing.assert_allclose(load_audio(tmp_path / "mono.wav"), left[:16000], atol=1e-7)


def test_write_wav_is_16_bit_pcm_and_clips(tmp_path):
    samples = np.array([0.0, 0.5, -0.5, 1.7, -3.0], np.float32)
    write_wav(tmp_path / "x.wav", samples)
    info = sf.info(str(tmp_path / "x.wav"))
    assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
    back, _ = sf.read(str(tmp_path / "x.wav"), dtype="int16")
    assert back.tolist() == [0, 16384, -16384, 32767, -32767]


def test_bad_audio_files(tmp_path):
    with pytest.raises(DataError, match="not found"):
        load_audio(tmp_path / "missing.wav")
    (tmp_path / "junk.wav").write_bytes(b"not audio at all")
    with pytest.raises(DataError, match="cannot decode"):
        load_audio(tmp_path / "junk.wav")
    sf.write(str(tmp_path / "empty.wav"), np.zeros(0), 16000)
    with pytest.raises(DataError, match="empty"):
        load_audio(tmp_path / "empty.wav")
    sf.write(str(tmp_path / "silent.wav"), np.zeros(1600), 16000)
    with pytest.raises(DataError, match="silent"):
        load_audio(tmp_path / "silent.wav")
    sf.write(str(tmp_path / "low.wav"), 0.3 * np.ones(1600), 6000)
    with pytest.raises(DataError, match="below 8000"):
        load_audio(tmp_path / "low.wav")
