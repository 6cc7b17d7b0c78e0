"""Metrics against independent computations: jiwer for WER, a brute-force Levenshtein for
PER and alignment, numpy/hand formulas for the correlations and their parse-failure handling."""

from __future__ import annotations

import functools
import json
import math
import random

import jiwer
import numpy as np
import pytest
from scipy import stats

from loralab.speech.scoring.align import align, edit_counts, phone_tokens, word_tokens
from loralab.speech.scoring.metrics import (
    apa_metrics,
    correlation,
    per_accuracy_correlation,
    per_metrics,
    wer_metrics,
)
from loralab.speech.scoring.parse import parse_answer


def brute_levenshtein(a: tuple, b: tuple) -> int:
    @functools.cache
    def d(i: int, j: int) -> int:
        if i == 0 or j == 0:
            return i + j
        return min(d(i - 1, j) + 1, d(i, j - 1) + 1, d(i - 1, j - 1) + (a[i - 1] != b[j - 1]))

    return d(len(a), len(b))


def _random_phones(rng: random.Random, n: int) -> list[str]:
    return [rng.choice(["AH", "B", "K", "S", "IY", "T", "N", "<unk>"]) for _ in range(n)]


def test_alignment_cost_matches_brute_force():
    rng = random.Random(0)
    for _ in range(200):
        ref, hyp = _random_phones(rng, rng.randint(0, 9)), _random_phones(rng, rng.randint(0, 9))
        pairs = align(ref, hyp)
        assert [r for r, _ in pairs if r is not None] == ref
        assert [h for _, h in pairs if h is not None] == hyp
        assert edit_counts(ref, hyp).errors == brute_levenshtein(tuple(ref), tuple(hyp))


def mdd(phones: str) -> object:
    return parse_answer("mdd", f'{{"word_transcript": "x", "phoneme_transcript": "{phones}"}}')


def test_per_corpus_level_vs_brute_force_and_failures():
    rng = random.Random(1)
    refs = [" ".join(_random_phones(rng, rng.randint(3, 12))) for _ in range(30)]
    hyps = [" ".join(_random_phones(rng, rng.randint(0, 12))) for _ in range(30)]
    answers = [mdd(h) for h in hyps]
    answers[3] = parse_answer("mdd", "garbage")  # unparsed: left out, counted
    out = per_metrics(refs, answers)
    used = [i for i in range(30) if i != 3]
    dist = sum(brute_levenshtein(tuple(refs[i].split()), tuple(hyps[i].split())) for i in used)
    n_ref = sum(len(refs[i].split()) for i in used)
    assert out["per"] == pytest.approx(dist / n_ref)
    assert out["n"] == 29 and out["failed"] == 1
    # With failures as empty hypotheses: the failed utterance adds all its phones as deletions.
    ref3 = len(refs[3].split())
    assert out["per_with_failures"] == pytest.approx((dist + ref3) / (n_ref + ref3))


def test_per_strips_stress():
    out = per_metrics(["AH0 B IY1"], [mdd("ah b iy2")])
    assert out["per"] == 0.0


def test_wer_matches_jiwer():
    rng = random.Random(2)
    vocab = ["the", "cat", "sat", "on", "mat", "it's", "a", "dog"]
    refs = [" ".join(rng.choice(vocab) for _ in range(rng.randint(2, 9))) for _ in range(25)]
    hyps = [" ".join(rng.choice(vocab) for _ in range(rng.randint(1, 9))) for _ in range(25)]
    answers = [
        parse_answer("mdd", json.dumps({"word_transcript": h.capitalize() + ".", "phoneme_transcript": ""}))
        for h in hyps
    ]
    out = wer_metrics([r.upper() for r in refs], answers)
    assert out["wer"] == pytest.approx(jiwer.wer(refs, hyps))
    # Equal-cost alignments may split S/D/I differently (tie-breaking); the total may not differ.
    counts = jiwer.process_words(refs, hyps)
    ours = out["substitutions"] + out["deletions"] + out["insertions"]
    assert ours == counts.substitutions + counts.deletions + counts.insertions


def test_word_and_phone_tokens():
    assert word_tokens("That's an interesting, observation!") == [
        "THAT'S",
        "AN",
        "INTERESTING",
        "OBSERVATION",
    ]
    assert phone_tokens("DH, ah0 <UNK>  T") == ["DH", "AH", "<unk>", "T"]


def apa(acc, flu, pros, tot) -> object:
    fields = {"accuracy": acc, "fluency": flu, "prosodic": pros, "total": tot}
    body = ", ".join(f'"{k}": {v}' for k, v in fields.items() if v is not None)
    return parse_answer("apa", "{" + body + "}")


def pearson_by_hand(x, y) -> tuple[float, float]:
    x, y = np.asarray(x, float), np.asarray(y, float)
    xd, yd = x - x.mean(), y - y.mean()
    r = float((xd * yd).sum() / math.sqrt((xd**2).sum() * (yd**2).sum()))
    n = len(x)
    t = r * math.sqrt((n - 2) / (1 - r * r))
    return r, float(2 * stats.t.sf(abs(t), n - 2))


def test_apa_metrics_leave_out_failures_per_aspect():
    human = [
        {"accuracy": a, "fluency": f, "prosodic": p, "total": t}
        for a, f, p, t in [(8, 9, 8, 8), (5, 6, 5, 5), (7, 7, 6, 7), (3, 4, 4, 3), (9, 9, 9, 9), (6, 5, 6, 6)]
    ]
    answers = [
        apa(7, 8, 8, 7),
        apa(6, None, 5, 5),  # fluency missing: out of fluency only
        apa(7, 6, 7, 7),
        parse_answer("apa", "no idea"),  # out of every aspect
        apa(8, 9, 8, 9),
        apa(5, 6, 4, 5),
    ]
    out = apa_metrics(answers, human)
    acc_idx = [0, 1, 2, 4, 5]
    r, p = pearson_by_hand([[7, 6, 7, 8, 5][i] for i in range(5)], [human[i]["accuracy"] for i in acc_idx])
    assert out["accuracy"]["pcc"] == pytest.approx(r)
    assert out["accuracy"]["p_value"] == pytest.approx(p)
    assert out["accuracy"]["n"] == 5 and out["accuracy"]["failed"] == 1
    flu_idx = [0, 2, 4, 5]
    r, _ = pearson_by_hand([8, 6, 9, 6], [human[i]["fluency"] for i in flu_idx])
    assert out["fluency"]["pcc"] == pytest.approx(r)
    assert out["fluency"]["n"] == 4 and out["fluency"]["parse_rate"] == pytest.approx(4 / 6)
    rho = np.corrcoef(stats.rankdata([8, 6, 9, 6]), stats.rankdata([human[i]["fluency"] for i in flu_idx]))[
        0, 1
    ]
    assert out["fluency"]["spearman"] == pytest.approx(rho)
    assert out["all_parsed"] == 4


def test_correlation_undefined_is_nan():
    assert math.isnan(correlation([5, 5, 5], [1, 2, 3])["pcc"])
    assert math.isnan(correlation([1, 2], [1, 2])["pcc"])


def test_per_accuracy_correlation_and_plot(tmp_path):
    per = [0.1, 0.4, None, 0.2, 0.7, 0.05]
    human = [9, 5, 6, 8, 3, 9]
    pred = [8, 6, 7, None, 4, 9]
    out = per_accuracy_correlation(per, human, pred, plot_path=tmp_path / "fig5.png")
    r_h, _ = pearson_by_hand([0.1, 0.4, 0.2, 0.7, 0.05], [9, 5, 8, 3, 9])
    r_p, _ = pearson_by_hand([0.1, 0.4, 0.7, 0.05], [8, 6, 4, 9])
    assert out["human"]["pcc"] == pytest.approx(r_h) and out["human"]["n"] == 5
    assert out["predicted"]["pcc"] == pytest.approx(r_p) and out["predicted"]["n"] == 4
    assert (tmp_path / "fig5.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
