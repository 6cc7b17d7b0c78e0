"""MDD counts on a hand-worked example hitting TA, FR, FA, CD, DE, with insertions and
deletions on both sides, and stress stripped."""

from __future__ import annotations

import math

import pytest

from loralab.speech.evaluation.mdd import MddCounts, mdd_counts, mdd_metrics

# Canonical (with stress digits, as annotated), then what the annotators heard, then the model:
#  pos  canonical  human        predicted   category
#   0   B          B            B           TA
#   1   AA1        AE  (sub)    AE          CD
#   2   K          K            K           TA
#   3   S          -   (del)    -           CD  (deletion diagnosed)
#   4   T          T            T           TA
#   5   IH0        IY  (sub)    IH          FA
#   6   L          L            L           TA
#  gap             +AH (ins)    +AH         CD  (insertion diagnosed)
#   7   Z          Z            Z           TA
#   8   M          M            M           TA
#  gap             +N  (ins)    (none)      FA  (insertion missed)
#   9   OW0        OW           OW          TA
#  10   P          P            B           FR
#  11   EH1        AE  (sub)    IH          DE
#  12   R          R            R           TA
#  end             (none)       +D          FR  (spurious insertion)
CANONICAL = "B AA1 K S T IH0 L Z M OW0 P EH1 R"
HUMAN = "B AE K T IY L AH Z M N OW P AE R"
PREDICTED = "b ae1 k t ih l ah z m ow b ih r d"


def test_hand_worked_example_every_category():
    c = mdd_counts(CANONICAL, HUMAN, PREDICTED)
    assert (c.ta, c.fr, c.fa, c.cd, c.de) == (8, 2, 2, 3, 1)
    assert c.tr == 4
    assert c.precision == pytest.approx(4 / 6)
    assert c.recall == pytest.approx(4 / 6)
    assert c.f1 == pytest.approx(4 / 6)
    assert c.diagnosis_accuracy == pytest.approx(3 / 4)


def test_perfect_and_silent_systems():
    perfect = mdd_counts(CANONICAL, HUMAN, HUMAN)
    assert (perfect.fr, perfect.fa, perfect.de) == (0, 0, 0)
    assert perfect.cd == 6 and perfect.ta == 9
    assert perfect.precision == perfect.recall == perfect.diagnosis_accuracy == 1.0
    # A system that always says the canonical phones accepts everything: every error is FA.
    accept_all = mdd_counts(CANONICAL, HUMAN, CANONICAL)
    assert (accept_all.ta, accept_all.fr, accept_all.fa, accept_all.tr) == (9, 0, 6, 0)
    assert math.isnan(accept_all.precision) and accept_all.recall == 0.0


def test_metrics_sum_counts_and_skip_failures():
    out = mdd_metrics([CANONICAL, CANONICAL, "AH"], [HUMAN, HUMAN, "AH"], [PREDICTED, HUMAN, None])
    total = MddCounts(8, 2, 2, 3, 1) + MddCounts(9, 0, 0, 6, 0)
    assert (out["ta"], out["fr"], out["fa"], out["cd"], out["de"]) == (17, 2, 2, 9, 1)
    assert out["precision"] == pytest.approx(total.tr / (total.tr + total.fr))
    assert out["recall"] == pytest.approx(10 / 12)
    assert out["n"] == 2 and out["failed"] == 1 and out["parse_rate"] == pytest.approx(2 / 3)
