"""The demo's real-speech line reads the LibriVox transcripts of pocketsphinx-testdata."""

from __future__ import annotations

from loralab.demo.real_speech import librivox_clips


def test_librivox_transcription_lines_pair_with_their_wavs(tmp_path):
    (tmp_path / "a-0001.wav").write_bytes(b"RIFF")
    (tmp_path / "transcription").write_text(
        "<s> he was not an ill disposed young man </s> (a-0001)\n"
        "<s> a clip whose wav is missing </s> (a-0002)\n"
        "not a transcript line\n"
    )
    assert librivox_clips(tmp_path) == [(tmp_path / "a-0001.wav", "he was not an ill disposed young man")]
    assert librivox_clips(tmp_path / "absent") == []
