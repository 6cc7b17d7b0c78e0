"""The demo's listening checks, on fake assessors: one that listens passes them; one that copies
the reference sentence, one that answers constants and one whose answers depend only on the
sentence it is given all fail them. The recordings are real (espeak-ng), the model is not."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from loralab.demo import listening
from loralab.speech.data.audio import load_audio, waveform_key
from loralab.speech.data.records import read_manifest
from loralab.speech.inference.recording_answers import Assessment
from loralab.speech.scoring.word_diagnosis import canonical_words, diagnose_words

CLIP_TEXTS = (
    "he was not an ill disposed young man",
    "his son was provided for",
    "the old gentleman died",
    "but the fortune which had been so tardy",
    "she had been no less delighted",
)
CONSTANT = {"accuracy": 7.0, "fluency": 8.0, "prosodic": 9.0, "total": 8.0}


def canonical(text: str) -> str:
    return " ".join(p for _, phones, _ in canonical_words(text) for p in phones)


def long_silences(samples: np.ndarray, seconds: float = 0.5, rate: int = 16000) -> int:
    """Silent runs of at least ``seconds`` between sounds (the listening fake's ear for pauses)."""
    loud = np.flatnonzero(np.abs(samples) > 1e-3)
    if loud.size == 0:
        return 0
    return int(np.sum(np.diff(loud) > seconds * rate))


class FakeAssessor:
    """``assess_samples`` of :class:`~loralab.speech.assessor.Assessor`, answering with
    ``answer(text, samples) -> (scores, phone transcript)``; the diagnosis is the real one."""

    def __init__(self, answer):
        self.answer = answer
        self.requests = []

    def assess_samples(self, requests):
        out = []
        for text, samples, label in requests:
            self.requests.append((text, label))
            scores, phones = self.answer(text, samples)
            out.append(Assessment(audio=label, text=text, scores=scores, word_transcript=text,
                                  phoneme_transcript=phones, words=diagnose_words(text, phones), notes=[],
                                  failures={}, raw={}))  # fmt: skip
        return out


def listener(spoken: dict[str, str]):
    """Hears what was said (``spoken``: waveform key -> sentence; unknown audio says the sentence
    given) and the pauses: accuracy from the words it flags, fluency from the long silences."""

    def answer(text, samples):
        phones = canonical(spoken.get(waveform_key(samples), text))
        words = diagnose_words(text, phones)
        ok = sum(w.ok for w in words) / len(words)
        scores = {"accuracy": round(2 + 8 * ok, 1), "fluency": max(2.0, 10.0 - 2 * long_silences(samples)),
                  "prosodic": 9.0, "total": 8.0}  # fmt: skip
        return scores, phones

    return answer


def copier(text, samples):
    return dict(CONSTANT), canonical(text)


def constant(text, samples):
    return dict(CONSTANT), "DH AH K AE T"


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """Five "real speech" clips (tones: the fakes never look at them) with their sentences."""
    folder = tmp_path_factory.mktemp("librivox")
    out = []
    for n, text in enumerate(CLIP_TEXTS):
        t = np.arange(16000) / 16000
        path = folder / f"clip-{n}.wav"
        sf.write(path, (0.3 * np.sin(2 * np.pi * (200 + 40 * n) * t)).astype(np.float32), 16000)
        out.append((path, text))
    return out


@pytest.fixture(scope="module")
def spoken(synth_manifest_dir, clips):
    """What every recording of the checks really says, by its waveform."""
    heard = {
        waveform_key(load_audio(r.audio_path)): r.text for r in read_manifest(synth_manifest_dir, "test")
    }
    return heard | {waveform_key(load_audio(path)): text for path, text in clips}


def run_checks(answer, synth_manifest_dir, synth_corpus_dir, clips) -> dict:
    fake = FakeAssessor(answer)
    result = listening.listening_checks(None, synth_manifest_dir, clips, assessor=fake,
                                        corpus_dir=synth_corpus_dir, n_wrong=6, n_pauses=4)  # fmt: skip
    return result


def test_a_model_that_listens_passes_every_check(synth_manifest_dir, synth_corpus_dir, clips, spoken):
    result = run_checks(listener(spoken), synth_manifest_dir, synth_corpus_dir, clips)
    checks = result["checks"]
    assert {name: c["passed"] for name, c in checks.items()} == dict.fromkeys(checks, True)
    assert result["passed"] is True
    wrong = checks["wrong_sentence"]
    assert wrong["n"] == 12 and wrong["held"] >= wrong["needed"] == 10  # 6 recordings x 2 other sentences
    assert all(row["text"] != row["other_text"] for row in wrong["items"])
    pauses = checks["pauses"]
    assert pauses["n"] == 4 and pauses["held"] == 4 and pauses["voices_from_corpus"] is True
    assert all(row["fluency_paused"] < row["fluency"] == 10.0 for row in pauses["items"])
    real = checks["librivox"]
    assert (real["n"], real["held"], real["few_flagged"], real["flagged_overall"]) == (10, 10, 5, 0.0)


@pytest.mark.parametrize("answer", [copier, constant], ids=["copies the reference", "answers constants"])
def test_a_model_that_copies_or_answers_constants_fails_every_check(
    answer, synth_manifest_dir, synth_corpus_dir, clips
):
    checks = run_checks(answer, synth_manifest_dir, synth_corpus_dir, clips)["checks"]
    assert [c["passed"] for c in checks.values()] == [False, False, False]
    assert all(c["held"] == 0 for c in (checks["wrong_sentence"], checks["pauses"]))


def test_an_answer_that_only_depends_on_the_sentence_cannot_pass_the_sentence_swaps(
    synth_manifest_dir, synth_corpus_dir, clips
):
    """The best order for a text-only model: its accuracy falls along the sentences' order, so
    that each sentence scores above the next one. Against the next sentence alone it would hold
    for 4 of 5 clips; against the next and the previous one it holds for half the pairs."""
    rank = {text: 10.0 - 1.5 * n for n, text in enumerate(CLIP_TEXTS)}

    def ordered(text, samples):
        return dict(CONSTANT, accuracy=rank.get(text, 5.0)), canonical(text)

    real = run_checks(ordered, synth_manifest_dir, synth_corpus_dir, clips)["checks"]["librivox"]
    assert real["few_flagged"] == 5  # it flags nothing: this part alone a copier passes
    assert (real["held"], real["n"], real["passed"]) == (5, 10, False)


def test_scores_that_listen_with_copied_phones_fail_the_wrong_sentence(
    synth_manifest_dir, synth_corpus_dir, clips, spoken
):
    """Accuracy falls with the wrong sentence, but no word is flagged: the diagnosis copies."""
    hears = listener(spoken)

    def scores_only(text, samples):
        return hears(text, samples)[0], canonical(text)

    checks = run_checks(scores_only, synth_manifest_dir, synth_corpus_dir, clips)["checks"]
    wrong = checks["wrong_sentence"]
    assert all(row["accuracy_other"] <= row["accuracy_own"] - 2 for row in wrong["items"])
    assert all(row["flagged_other"] == 0.0 for row in wrong["items"])
    assert (wrong["held"], wrong["passed"]) == (0, False)
    assert checks["pauses"]["passed"] and checks["librivox"]["passed"]


def test_unreadable_phones_are_no_diagnosis(clips):
    """No phone transcript: the clip cannot count as "few words flagged"."""
    fake = FakeAssessor(lambda text, samples: (dict(CONSTANT), None))
    real = listening.librivox_check(fake, clips)
    assert real["few_flagged"] == 0 and real["flagged_overall"] is None and not real["passed"]
    assert listening.librivox_check(fake, [])["passed"] is False


def test_the_real_speech_line_comes_from_the_clips_own_assessments(clips):
    """Each clip's word transcript with its own sentence, and their WER by hand: the fake drops
    the last word of every sentence it hears."""
    from loralab.demo.real_speech import real_speech_line

    class DropsLastWord(FakeAssessor):
        def assess_samples(self, requests):
            out = super().assess_samples(requests)
            for a in out:
                a.word_transcript = " ".join(a.text.split()[:-1])
            return out

    real = listening.librivox_check(
        DropsLastWord(lambda text, samples: (dict(CONSTANT), canonical(text))), clips
    )
    line = real_speech_line(real, "heard")
    words = sum(len(text.split()) for _, text in clips)
    assert line["clips"] == len(clips) and line["wer"] == pytest.approx(len(clips) / words)
    assert [t["reference"] for t in line["transcripts"]] == [text for _, text in clips]
    assert line["transcripts"][0]["heard"] == " ".join(clips[0][1].split()[:-1])
    assert "skipped" in real_speech_line(listening.librivox_check(DropsLastWord(constant), []), "heard")


def test_partners_are_the_nearest_different_sentences():
    texts = ["a b", "A B", "c d", "e f"]
    assert listening.partners(texts, 1) == [2, 2, 3, 0]
    assert listening.partners(texts, -1) == [3, 3, 1, 2]
    with pytest.raises(ValueError, match="two different sentences"):
        listening.partners(["same", "SAME"])
    assert [listening.needed(n) for n in (5, 10, 12, 4)] == [4, 8, 10, 4]


def test_the_paused_reading_is_the_same_words_with_long_silences():
    fluent = listening.speak_sentence("WE CALL IT BEAR", "en-us")
    paused = listening.speak_sentence("WE CALL IT BEAR", "en-us", pause=0.8)
    assert long_silences(fluent) == 0 and long_silences(paused) == 3
    assert 3 * 0.8 < (len(paused) - len(fluent)) / 16000 < 3 * 0.8 + 1.5
    assert fluent.dtype == np.float32 and np.abs(fluent).max() > 0.05


def test_summary_lines_name_counts_and_verdicts():
    wrong = {"check": "wrong sentence", "unit": "pairs", "n": 16, "held": 13, "needed": 13, "passed": True}
    real = {"check": "LibriVox", "unit": "pairs", "n": 10, "held": 5, "needed": 8, "passed": False,
            "few_flagged": 4, "clips": [{}] * 5, "flagged_overall": 0.125}  # fmt: skip
    assert listening.check_line(wrong) == "listening wrong sentence: 13/16 pairs hold (need 13) [PASS]"
    assert listening.check_line(real) == (
        "listening LibriVox: 5/10 pairs hold (need 8); clips with <= 20% of words flagged 4/5 "
        "(overall 12%) [FAIL]"
    )
    assert "skipped (no clips)" in listening.check_line({"check": "LibriVox", "skipped": "no clips"})
