"""The per-phone diagnosis: the CTC alignment and the edit scores against brute-force computations,
the diagnosed phones, and the threshold's rule on hand-made cases."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from loralab.speech.model.diagnosis import (
    DELETION,
    PhoneEdit,
    best_threshold,
    ctc_viterbi,
    diagnosed_phones,
    edit_labels,
    phone_edits,
)


def _paths(frames: int, classes: int):
    return itertools.product(range(classes), repeat=frames)


def _collapse(path) -> list[int]:
    return [c for k, c in enumerate(path) if c != 0 and (k == 0 or c != path[k - 1])]


def _brute_force_best_path(log_probs: np.ndarray, target: list[int]):
    """The most likely frame path that collapses to ``target`` (every path enumerated)."""
    best, best_path = -math.inf, None
    for path in _paths(*log_probs.shape):
        if _collapse(path) == target:
            score = sum(log_probs[t, c] for t, c in enumerate(path))
            if score > best:
                best, best_path = score, path
    return best_path


def _brute_force_nll(log_probs: np.ndarray, target: list[int]) -> float:
    total = sum(math.exp(sum(log_probs[t, c] for t, c in enumerate(path)))
                for path in _paths(*log_probs.shape) if _collapse(path) == target)  # fmt: skip
    return -math.log(total) if total > 0 else math.inf


def _random_log_probs(frames: int, classes: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return torch.log_softmax(torch.tensor(rng.normal(0, 2, (frames, classes))), -1).numpy()


@pytest.mark.parametrize("target", [[1, 2], [2, 2], [1, 2, 1]])
def test_viterbi_segments_are_those_of_the_most_likely_path(target):
    for seed in range(4):
        lp = _random_log_probs(6, 3, seed)
        path = _brute_force_best_path(lp, target)
        segments = ctc_viterbi(lp, target)
        # each target phone's frames in the best path: the runs of its label, in order
        runs, previous = [], None
        for t, c in enumerate(path):
            if c != 0 and (c != previous or not runs or runs[-1][1] != t - 1):
                runs.append([c, t, [t]])
            elif c != 0:
                runs[-1][1], runs[-1][2] = t, runs[-1][2] + [t]
            previous = c
        assert segments == [r[2] for r in runs], (seed, path)


def test_viterbi_refuses_what_cannot_fit():
    lp = _random_log_probs(3, 3, 0)
    assert ctc_viterbi(lp, [1, 1, 2]) is None  # a repeat needs a blank between: 4 frames
    assert ctc_viterbi(lp, []) is None


def test_edit_scores_are_exact_likelihood_gains():
    lp = _random_log_probs(5, 4, 7)
    target = [1, 2]
    edits = phone_edits(lp, target, confusions={1: [DELETION, 3], 2: [1]})
    base = _brute_force_nll(lp, target)
    candidates = {0: {DELETION: [2], 3: [3, 2]}, 1: {1: [1, 1]}}
    for edit in edits:
        gains = {to: base - _brute_force_nll(lp, seq) for to, seq in candidates[edit.index].items()}
        best = max(gains, key=gains.get)
        assert edit.to == best and edit.score == pytest.approx(gains[best], abs=1e-4)


def test_a_substituted_phone_is_diagnosed_and_a_clean_one_is_not():
    # frames: K K AE AE T T, but the speaker said EH for AE (class 3 for 2)
    phones = ["K", "AE", "EH", "T"]
    said = [1, 1, 3, 3, 4, 4]
    lp = torch.log_softmax(torch.eye(5)[said] * 6.0, -1)
    edits = phone_edits(lp, [1, 2, 4])
    assert edits[1].to == 3 and edits[1].score > 5
    assert edits[0].score < 0 and edits[2].score < 0
    assert diagnosed_phones(["K", "AE", "T"], edits, phones, threshold=1.0) == ["K", "EH", "T"]
    assert diagnosed_phones(["K", "AE", "T"], edits, phones, threshold=math.inf) == ["K", "AE", "T"]
    deleted = [PhoneEdit(0, 1, -1.0), PhoneEdit(1, DELETION, 3.0), PhoneEdit(2, 4, -2.0)]
    assert diagnosed_phones(["K", "AE", "T"], deleted, phones, threshold=1.0) == ["K", "T"]


def test_edit_labels_follow_the_alignment():
    assert edit_labels(["K", "AE", "T"], ["K", "EH", "T"]) == [None, "EH", None]
    assert edit_labels(["K", "AE", "T"], ["K", "AE"]) == [None, None, "<DEL>"]
    assert edit_labels(["K", "AE", "T"], ["K", "AE", "T", "S"]) == [None, None, None]


def test_threshold_keeps_most_of_the_best_net_gain_and_then_the_best_f1():
    # scores high to low: right, right, said-as-is, right, wrong-to-wrong, said-as-is, said-as-is, missed
    scored = [(9, True, True), (8, True, True), (7, False, False), (6, True, True), (5, True, False),
              (4, False, False), (3, False, False), (-1, True, False)]  # fmt: skip
    threshold, figures = best_threshold(scored)
    # nets by cut: 1, 2, 1, 2, 2, 1, 0, 0 -> best 2 (cuts 2, 4, 5 keep 3/4 of it); F1 best at 5 flagged
    assert 4.0 < threshold < 5.0
    assert figures["flagged"] == 5 and figures["net_corrections"] == 2
    assert figures["precision"] == pytest.approx(0.8) and figures["recall"] == pytest.approx(0.8)
    nothing, figures = best_threshold([(3, False, False), (1, True, False)])
    assert nothing == math.inf and figures["flagged"] == 0


def test_a_recording_with_little_speech_gets_no_diagnosis_and_a_note():
    from loralab.speech.model.gop import GopScorer, heard_phone_count, little_speech_note

    phones = ["K", "AE", "EH", "T"]
    # a linear head that reads class k from frame feature k: frames spelling K EH T, then silence
    weight, bias = torch.eye(5) * 8.0, torch.zeros(5)
    scorer = GopScorer(phones, [weight], [bias], threshold=1.0)
    spoken = torch.eye(5)[[1, 1, 3, 3, 4, 4]]
    evidence = scorer.evidence(spoken, "K AE T")
    assert evidence["heard_phones"] == "K EH T" and evidence["heard_count"] == 3
    assert little_speech_note(evidence, "K AE T") is None
    silence = torch.eye(5)[[0] * 6]
    quiet = scorer.evidence(silence, "K AE T")
    assert quiet["heard_count"] == heard_phone_count(scorer.log_probs(silence)) == 0
    assert quiet["heard_phones"] == "K AE T"  # no sound diagnosed as wrong
    assert "heard little speech (0 phones for a sentence of 3)" in little_speech_note(quiet, "K AE T")
