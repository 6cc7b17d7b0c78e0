"""Words said as another of their CMUdict pronunciations, and the real-voice floor on the threshold."""

from __future__ import annotations

import gzip
import math
import wave

import pytest
import torch

from loralab.errors import LoralabError
from loralab.speech.model import real_voices
from loralab.speech.model.diagnosis import _ctc_nll, best_pronunciations, best_threshold, detection_at
from loralab.speech.model.gop import GopScorer
from loralab.speech.scoring.word_diagnosis import diagnose_words


def test_a_word_said_as_another_dictionary_pronunciation_is_not_wrong():
    # CMUdict: RATHER R AE1 DH ER0 and R AH1 DH ER0; no entry with AA
    rather, cold = diagnose_words("rather cold", "R AH DH ER K OW L D")
    assert rather.ok and rather.canonical == ["R", "AH", "DH", "ER"] and cold.ok
    rather, _ = diagnose_words("rather cold", "R AA DH ER K OW L D")
    assert not rather.ok and [e.describe() for e in rather.errors] == ["AE->AA"]
    assert rather.canonical == ["R", "AE", "DH", "ER"]


def _peaked(classes: list[int], n_classes: int) -> torch.Tensor:
    return torch.log_softmax(torch.eye(n_classes)[classes] * 6.0, -1)


def test_each_word_gets_the_pronunciation_its_frames_fit_best():
    # classes: 1 R, 2 AE, 3 AH, 4 DH, 5 ER, 6 K; the frames say R AH DH ER K
    lp = _peaked([1, 1, 3, 3, 4, 5, 5, 6, 6], 7)
    rather, k = [[1, 2, 4, 5], [1, 3, 4, 5]], [[6]]
    assert best_pronunciations(lp, [rather, k]) == [1, 0]
    # independently: the chosen sentence is the likelier of the two
    assert _ctc_nll(lp, [[1, 3, 4, 5, 6]])[0] < _ctc_nll(lp, [[1, 2, 4, 5, 6]])[0]
    said_canonically = _peaked([1, 1, 2, 2, 4, 5, 5, 6, 6], 7)
    assert best_pronunciations(said_canonically, [rather, k]) == [0, 0]
    assert best_pronunciations(lp, [[[1, 2, 4, 5]], [[6]]]) == [0, 0]  # nothing to choose


def test_the_scorer_judges_the_chosen_pronunciation_only_for_the_texts_own_phones():
    phones = ["AE", "AH", "DH", "ER", "R"]  # classes 1..5
    scorer = GopScorer(phones, [], [])
    lp = _peaked([5, 5, 2, 2, 3, 4, 4], 6)  # R AH DH ER
    assert scorer.word_phones(lp, ["R", "AE", "DH", "ER"], "rather") == [["R", "AH", "DH", "ER"]]
    # a corpus's own canonical phones (not CMUdict's first entry): judged as given
    assert scorer.word_phones(lp, ["R", "AA", "DH", "ER"], "rather") is None
    assert scorer.word_phones(lp, ["R", "AE", "DH", "ER"], None) is None


def test_detection_at_a_raised_threshold_counts_by_hand():
    scored = [(9, True, True), (8, True, True), (7, False, False), (6, True, True), (5, True, False),
              (4, False, False), (3, False, False), (-1, True, False)]  # fmt: skip
    figures = detection_at(scored, 6.5)  # flags 9, 8, 7: two mispronounced (both said right), one not
    assert figures["flagged"] == 3 and figures["net_corrections"] == 2 - 1
    assert figures["precision"] == pytest.approx(2 / 3, abs=1e-4)
    assert figures["recall"] == pytest.approx(2 / 5)
    assert figures["f1"] == pytest.approx(2 * (2 / 3) * 0.4 / (2 / 3 + 0.4), abs=1e-4)
    # at the best threshold itself it agrees with best_threshold's own figures
    threshold, best = best_threshold(scored)
    assert detection_at(scored, threshold) == best


def test_the_real_voice_floor_flags_at_most_the_asked_share_of_words(monkeypatch):
    scores = {"a": [1.0, 2.0, 3.0, 4.0], "b": [5.0, 6.0, -math.inf, 8.0], "c": [9.0, 10.0]}
    monkeypatch.setattr(real_voices, "word_edit_scores", lambda scorer, frames, text: scores[text])
    recordings = [(None, "a"), (None, "b"), (None, "c")]
    for share in (0.1, 0.2, 0.3, 0.5):
        threshold, report = real_voices.real_voice_threshold(None, recordings, share)
        flagged = sum(s > threshold for words in scores.values() for s in words)
        assert flagged / 10 <= share + 1e-9 and report["words"] == 10
        # and it is the lowest such threshold: one word more would be flagged just below it
        below = sum(s > threshold - 1e-6 for words in scores.values() for s in words)
        assert below / 10 > share or below == flagged
    with pytest.raises(LoralabError, match="real_voice_max_flagged"):
        real_voices.real_voice_threshold(None, recordings, 1.5)


def _silent_wav(path):
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(8000), w.writeframes(b"\0\0" * 800)


def test_asterisk_prompts_keep_plain_dictionary_sentences_spread_evenly(tmp_path):
    sounds = tmp_path / "sounds"
    sounds.mkdir()
    lines = ["; Core Asterisk Sounds in English", "", "goodbye: Goodbye.", "digits/1: One.",
             "xyz-odd: Please call the zorblax office now.", "no-wav: Please enter your number now."]  # fmt: skip
    for k in range(6):
        lines.append(f"p{k}: Please enter your number now, {k} times.".replace(f"{k} times", "then wait"))
        _silent_wav(sounds / f"p{k}.wav")
    _silent_wav(sounds / "goodbye.wav")
    _silent_wav(sounds / "xyz-odd.wav")
    transcripts = tmp_path / "core-sounds-en.txt.gz"
    with gzip.open(transcripts, "wt") as f:
        f.write("\n".join(lines) + "\n")
    found = real_voices.asterisk_prompts(10, sounds, transcripts)
    assert [p.name for p, _ in found] == [f"p{k}.wav" for k in range(6)]  # short, unknown word, no wav: out
    assert [p.name for p, _ in real_voices.asterisk_prompts(3, sounds, transcripts)] == [
        "p0.wav",
        "p2.wav",
        "p4.wav",
    ]
    with pytest.raises(LoralabError, match="apt-get install asterisk-core-sounds-en-wav"):
        real_voices.asterisk_prompts(3, tmp_path / "absent", transcripts)


@pytest.mark.parametrize(
    ("override", "message"),
    [("speech.real_voice_max_flagged=0", r"real_voice_max_flagged must be in \(0, 1\)"),
     ("speech.real_voice_max_flagged=1.5", r"real_voice_max_flagged must be in \(0, 1\)"),
     ("speech.real_voice_prompts=0", "real_voice_prompts must be >= 1")],
)  # fmt: skip
def test_a_bad_real_voice_setting_is_refused_when_the_config_loads(override, message):
    from loralab.config import ConfigError, load_config

    with pytest.raises(ConfigError, match=message):
        load_config("demo_qwen2audio", [override])
    load_config("demo_qwen2audio", ["speech.real_voice_max_flagged=0.2", "speech.real_voice_prompts=5"])
