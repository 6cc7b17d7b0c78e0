"""Listening checks: does the trained model's assessment follow the audio?

Three held-out checks through the public assess path (:class:`~loralab.speech.assessor.Assessor`),
each built so that a model which copies the reference sentence, or answers a constant, fails it:

- **wrong sentence**: test-split recordings, each assessed with its own sentence and with two
  other recordings' (different) sentences (see :func:`against_others`). A wrong sentence must
  cost at least :data:`ACCURACY_DROP` accuracy points and get at least half of its words
  flagged, for at least :data:`PASS_SHARE` of the (recording, sentence) pairs.
- **pauses**: test-split sentences spoken by espeak-ng twice, in one go and word by word with
  :data:`PAUSE_SECONDS` of silence between the words, each with the voice of the test
  speaker who read it. The paused reading must get a lower fluency for :data:`PASS_SHARE` of them.
- **LibriVox** (real read speech): at most :data:`LIBRIVOX_MAX_FLAGGED` of the words of each
  correctly read sentence flagged, and accuracy lower with another clip's sentence for
  :data:`PASS_SHARE` of the (clip, sentence) pairs (8 of 10 with five clips).

These recordings are checks only: nothing here is ever used to fit, calibrate or select anything.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

ACCURACY_DROP = 2.0  # points a wrong sentence must cost (0-10 scale)
WRONG_FLAGGED_SHARE = 0.5  # share of the wrong sentence's words that must be flagged
PASS_SHARE = 0.8  # share of recordings (or sentences, clips) on which a check must hold
PAUSE_SECONDS = 0.8  # silence between the words of the paused reading
LIBRIVOX_MAX_FLAGGED = 0.2  # at most this share of a correctly read sentence's words flagged
WRONG_SENTENCE_N = 8  # recordings: 3 assessments each (own sentence and two others)
PAUSES_N = 6  # sentences: 2 assessments each
PAUSE_VOICE_FALLBACK = "en-us"  # when the corpus's record of its voices is not there
SPEECH_RATE = 160  # words per minute, the corpus's typical rate (130-195)


def needed(n: int) -> int:
    """How many of ``n`` must hold: :data:`PASS_SHARE` of them, rounded up (4 of 5, 8 of 10)."""
    return math.ceil(PASS_SHARE * n - 1e-9)


def _accuracy(assessment) -> float | None:
    value = assessment.scores.get("accuracy")
    return None if value is None or value != value else float(value)


def flagged_share(assessment) -> float | None:
    """Share of the sentence's words flagged; None when no phone transcript could be read (no
    diagnosis: neither "all fine" nor "all wrong" is known)."""
    if assessment.phoneme_transcript is None or not assessment.words:
        return None
    return sum(not w.ok for w in assessment.words) / len(assessment.words)


def _lower(worse: float | None, better: float | None, by: float = 0.0) -> bool:
    """``worse`` at least ``by`` below ``better`` (strictly below when ``by`` is 0); unknown fails."""
    if worse is None or better is None:
        return False
    return better - worse >= by if by > 0 else worse < better


def partners(texts: Sequence[str], step: int = 1) -> list[int]:
    """For each item, the nearest item in direction ``step`` (+1 next, -1 previous, cyclically)
    whose sentence differs from its own."""
    n = len(texts)
    out = []
    for i, text in enumerate(texts):
        found = (k % n for k in range(i + step, i + step * n, step))
        k = next((k for k in found if texts[k].lower() != text.lower()), None)
        if k is None:
            raise ValueError("the listening checks need at least two different sentences")
        out.append(k)
    return out


def against_others(assessor, texts: Sequence[str], audios: Sequence, labels: Sequence[str]):
    """Every recording assessed with its own sentence and with the next and the previous
    different sentence: (own assessments, [(recording index, other sentence index, assessment)]).

    Two other sentences, not one: a model whose answer depends only on the sentence it is given
    (a function f of the text) is "lower with the other sentence" on at most one direction of each
    neighbouring pair, so on at most half of the pairs; one other sentence per recording would let
    such a model pass up to n-1 of n by the order of the sentences alone."""
    pairs = [(i, k) for step in (1, -1) for i, k in enumerate(partners(texts, step))]
    requests = [(t, a, label) for t, a, label in zip(texts, audios, labels)]
    requests += [(texts[k], audios[i], labels[i]) for i, k in pairs]
    results = assessor.assess_samples(requests)
    n = len(texts)
    return results[:n], [(i, k, result) for (i, k), result in zip(pairs, results[n:])]


def _spread(items: Sequence, n: int) -> list:
    """``n`` items spread evenly over ``items`` (deterministic; all of them when fewer)."""
    if len(items) <= n:
        return list(items)
    return [items[int(i * len(items) / n)] for i in range(n)]


def _summary(name: str, unit: str, rows: list[dict], held: int, target: str, extra: bool = True) -> dict:
    """A check's result: ``held`` of its ``rows`` (``unit``s) hold, :func:`needed` of them must."""
    need = needed(len(rows))
    return {
        "check": name,
        "unit": unit,
        "n": len(rows),
        "held": held,
        "needed": need,
        "share": round(held / len(rows), 3) if rows else None,
        "target": target,
        "passed": bool(rows) and held >= need and extra,
        "items": rows,
    }


def wrong_sentence_check(assessor, records: Sequence) -> dict:
    """Each recording with its own sentence and with two other recordings' sentences."""
    from loralab.speech.data.audio import load_audio

    texts = [r.text for r in records]
    audios = [load_audio(r.audio_path) for r in records]
    own, others = against_others(assessor, texts, audios, [r.id for r in records])
    rows = []
    for i, k, theirs in others:
        acc_own, acc_wrong, share = _accuracy(own[i]), _accuracy(theirs), flagged_share(theirs)
        ok = _lower(acc_wrong, acc_own, ACCURACY_DROP) and share is not None and share >= WRONG_FLAGGED_SHARE
        rows.append({"id": records[i].id, "text": texts[i], "other_text": texts[k], "accuracy_own": acc_own,
                     "accuracy_other": acc_wrong, "flagged_other": _round(share), "passed": ok})  # fmt: skip
    held = sum(row["passed"] for row in rows)
    target = (f"accuracy >= {ACCURACY_DROP:g} lower and >= {WRONG_FLAGGED_SHARE:.0%} of words flagged with "
              f"another recording's sentence, for >= {PASS_SHARE:.0%} of (recording, sentence) pairs")  # fmt: skip
    return _summary("wrong sentence", "pairs", rows, held, target)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def corpus_voices(corpus_dir: str | Path | None) -> dict[str, str]:
    """utterance id -> the espeak-ng voice that read it (the synthetic corpus's ``injected.json``);
    {} when the corpus or its record is not there."""
    path = Path(corpus_dir) / "resource" / "injected.json" if corpus_dir is not None else None
    if path is None or not path.is_file():
        return {}
    return {utt: row["voice"] for utt, row in json.loads(path.read_text()).items() if "voice" in row}


def speak_sentence(text: str, voice: str, pause: float = 0.0) -> np.ndarray:
    """``text`` read by espeak-ng from its CMUdict phones, 16 kHz float32: in one go
    (``pause`` 0), or word by word with ``pause`` seconds of silence between the words."""
    from loralab.speech.data.audio import resample
    from loralab.speech.data.espeak import ESPEAK_SAMPLE_RATE, espeak_word, speak_phonemes
    from loralab.speech.data.phones import pronunciation, strip_stress

    words = []
    for word in text.split():
        phones, _ = pronunciation(word)
        words.append(espeak_word([(strip_stress(p), p[len(strip_stress(p)) :]) for p in phones]))
    if pause <= 0:
        samples = speak_phonemes(" ".join(words), voice, SPEECH_RATE)
    else:
        gap = np.zeros(int(round(pause * ESPEAK_SAMPLE_RATE)), np.float32)
        pieces = [speak_phonemes(w, voice, SPEECH_RATE) for w in words]
        samples = np.concatenate([x for piece in pieces for x in (piece, gap)][:-1])
    return resample(samples, ESPEAK_SAMPLE_RATE).astype(np.float32)


def pause_check(assessor, records: Sequence, voices: dict[str, str]) -> dict:
    """Each sentence read in one go and with long pauses between its words, same voice."""
    requests, used = [], []
    for r in records:
        voice = voices.get(r.id, PAUSE_VOICE_FALLBACK)
        used.append(voice)
        requests.append((r.text, speak_sentence(r.text, voice), f"{r.id} in one go"))
        requests.append((r.text, speak_sentence(r.text, voice, PAUSE_SECONDS), f"{r.id} with pauses"))
    results = assessor.assess_samples(requests)
    rows = []
    for r, voice, fluent, paused in zip(records, used, results[::2], results[1::2]):
        flu, flu_paused = fluent.scores.get("fluency"), paused.scores.get("fluency")
        rows.append({"id": r.id, "text": r.text, "voice": voice, "fluency": _num(flu),
                     "fluency_paused": _num(flu_paused), "passed": _lower(_num(flu_paused), _num(flu))})  # fmt: skip
    held = sum(row["passed"] for row in rows)
    target = (
        f"fluency lower with {PAUSE_SECONDS:g} s pauses between words, for >= {PASS_SHARE:.0%} of sentences"
    )
    result = _summary("pauses", "sentences", rows, held, target)
    result["voices_from_corpus"] = all(r.id in voices for r in records)
    return result


def _num(value) -> float | None:
    return None if value is None or value != value else float(value)


def librivox_check(assessor, clips: Sequence[tuple[Path, str]]) -> dict:
    """Real read speech: few words flagged with the sentence read, lower accuracy with others'."""
    from loralab.speech.data.audio import load_audio

    if not clips:
        from loralab.demo.real_speech import INSTALL_HINT, LIBRIVOX

        return {
            "check": "LibriVox",
            "skipped": f"no LibriVox clips in {LIBRIVOX} ({INSTALL_HINT})",
            "passed": False,
        }
    texts, names = [text for _, text in clips], [Path(path).name for path, _ in clips]
    own, others = against_others(assessor, texts, [load_audio(path) for path, _ in clips], names)
    rows = [{"clip": names[i], "text": texts[i], "other_text": texts[k], "accuracy_own": _accuracy(own[i]),
             "accuracy_other": _accuracy(theirs), "passed": _lower(_accuracy(theirs), _accuracy(own[i]))}
            for i, k, theirs in others]  # fmt: skip
    clip_rows = [{"clip": name, "text": text, "flagged_own": _round(flagged_share(a)), "accuracy_own": _accuracy(a)}
                 for name, text, a in zip(names, texts, own)]  # fmt: skip
    few = [r["flagged_own"] is not None and r["flagged_own"] <= LIBRIVOX_MAX_FLAGGED for r in clip_rows]
    read = [a for a in own if a.phoneme_transcript is not None]
    words = sum(len(a.words) for a in read)
    held = sum(row["passed"] for row in rows)
    target = (f"<= {LIBRIVOX_MAX_FLAGGED:.0%} of words flagged on every clip with its own sentence, and accuracy "
              f"lower with another clip's sentence for >= {PASS_SHARE:.0%} of (clip, sentence) pairs")  # fmt: skip
    result = _summary("LibriVox", "pairs", rows, held, target, all(few))
    result["clips"] = clip_rows
    result["transcripts"] = [{"reference": t, "heard": a.word_transcript} for t, a in zip(texts, own)]
    result["wer"] = _word_error_rate(texts, own)
    result["few_flagged"] = sum(few)
    result["flagged_overall"] = (
        _round(sum(not w.ok for a in read for w in a.words) / words) if words else None
    )
    return result


def _word_error_rate(texts: Sequence[str], assessments: Sequence) -> float | None:
    """The WER of the word transcripts the model wrote for ``texts`` (read aloud)."""
    from loralab.speech.scoring.align import word_tokens
    from loralab.speech.scoring.metrics import error_rate_metrics

    heard = [None if a.word_transcript is None else word_tokens(a.word_transcript) for a in assessments]
    return error_rate_metrics([word_tokens(text) for text in texts], heard, "wer").get("wer")


def listening_checks(model_dir, manifest_dir, librivox_clips: Sequence[tuple[Path, str]], *, assessor=None,
                     corpus_dir: str | Path | None = None, n_wrong: int = WRONG_SENTENCE_N,
                     n_pauses: int = PAUSES_N) -> dict:  # fmt: skip
    """The three checks on the model in ``model_dir`` (loaded through the public assess path
    unless ``assessor`` is given), on the test split of ``manifest_dir`` (voices for the paused
    readings from ``corpus_dir``'s record, by default the ``corpus`` folder beside the manifest)
    and on ``librivox_clips`` ((wav, transcript) pairs; none: that check is skipped)."""
    import time

    from loralab.speech.data.records import read_manifest

    started = time.perf_counter()
    test = read_manifest(manifest_dir, "test")
    corpus_dir = Path(manifest_dir).parent / "corpus" if corpus_dir is None else corpus_dir
    if assessor is None:
        from loralab.speech.assessor import Assessor

        assessor = Assessor.load(model_dir, device="cpu")
    checks = {
        "wrong_sentence": wrong_sentence_check(assessor, _spread(test, n_wrong)),
        "pauses": pause_check(assessor, _spread(test, n_pauses), corpus_voices(corpus_dir)),
        "librivox": librivox_check(assessor, list(librivox_clips)),
    }
    return {
        "model": str(model_dir),
        "checks": checks,
        "passed": all(c["passed"] for c in checks.values()),
        "seconds": round(time.perf_counter() - started, 1),
    }


def check_line(check: dict) -> str:
    """One summary line: the check's counts and PASS/FAIL (or why it was skipped)."""
    name = check["check"]
    if "skipped" in check:
        return f"listening {name}: skipped ({check['skipped']})"
    mark = "PASS" if check["passed"] else "FAIL"
    line = f"listening {name}: {check['held']}/{check['n']} {check['unit']} hold (need {check['needed']})"
    if "few_flagged" in check:
        line += (f"; clips with <= {LIBRIVOX_MAX_FLAGGED:.0%} of words flagged {check['few_flagged']}/{len(check['clips'])} "
                 f"(overall {_pct(check.get('flagged_overall'))})")  # fmt: skip
    return f"{line} [{mark}]"


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0%}"
