"""Mispronunciation detection and diagnosis (MDD) scoring, the convention of Qian et al.

Three phone sequences per utterance, stress stripped: canonical C (what should be said),
human H (what the annotators heard) and predicted P (the model's phoneme transcript). H and
P are each aligned to C by minimum edit distance (:func:`~.align.slot_alignment`), giving,
for every canonical phone, the phone H (or P) has there (None = deleted), and for each gap
between canonical phones the phones inserted there.

Per canonical phone c, with h, p the aligned human and predicted phones:

* TA: h == c and p == c (correct, accepted)
* FR: h == c and p != c (correct, but the system flags an error)
* FA: h != c and p == c (an error the system misses)
* TR: h != c and p != c, split into CD (p == h: right diagnosis, a deletion matching a
  deletion included) and DE (p != h)

Insertions have no canonical phone; each gap where H or P inserts something is one more
unit: nothing inserted by H but something by P is FR; inserted by H but not by P is FA; both
insert: CD when the inserted sequences are equal, else DE. Gaps where neither inserts are not
counted (they would only inflate TA, which no reported metric uses).

Precision = TR / (TR + FR), recall = TR / (TR + FA), F1 their harmonic mean, diagnosis
accuracy = CD / (CD + DE). An undefined ratio (0/0) is NaN.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from loralab.speech.evaluation.align import phone_tokens, slot_alignment


def _ratio(num: int, den: int) -> float:
    return num / den if den else math.nan


@dataclass
class MddCounts:
    ta: int = 0
    fr: int = 0
    fa: int = 0
    cd: int = 0
    de: int = 0

    @property
    def tr(self) -> int:
        return self.cd + self.de

    @property
    def precision(self) -> float:
        return _ratio(self.tr, self.tr + self.fr)

    @property
    def recall(self) -> float:
        return _ratio(self.tr, self.tr + self.fa)

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        if math.isnan(p) or math.isnan(r) or p + r == 0:
            return math.nan if (math.isnan(p) or math.isnan(r)) else 0.0
        return 2 * p * r / (p + r)

    @property
    def diagnosis_accuracy(self) -> float:
        return _ratio(self.cd, self.tr)

    def __add__(self, other: MddCounts) -> MddCounts:
        return MddCounts(*(a + b for a, b in zip(asdict(self).values(), asdict(other).values())))

    def summary(self) -> dict[str, float | int]:
        return {
            **asdict(self),
            "tr": self.tr,
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
            "diagnosis_accuracy": self.diagnosis_accuracy,
        }


def mdd_counts(
    canonical: str | Sequence[str], human: str | Sequence[str], predicted: str | Sequence[str]
) -> MddCounts:
    """TA/FR/FA/CD/DE of one utterance (strings are split on spaces; stress is stripped)."""
    c = phone_tokens(canonical)
    h_at, h_gaps = slot_alignment(c, phone_tokens(human))
    p_at, p_gaps = slot_alignment(c, phone_tokens(predicted))
    counts = MddCounts()
    for ci, hi, pi in zip(c, h_at, p_at):
        human_ok = hi == ci
        system_accepts = pi == ci
        if human_ok and system_accepts:
            counts.ta += 1
        elif human_ok:
            counts.fr += 1
        elif system_accepts:
            counts.fa += 1
        elif pi == hi:
            counts.cd += 1
        else:
            counts.de += 1
    for hg, pg in zip(h_gaps, p_gaps):
        if not hg and not pg:
            continue
        if not hg:
            counts.fr += 1
        elif not pg:
            counts.fa += 1
        elif hg == pg:
            counts.cd += 1
        else:
            counts.de += 1
    return counts


def mdd_metrics(
    canonical: Sequence[str], human: Sequence[str], predicted: Sequence[str | None]
) -> dict[str, float | int]:
    """Summed counts and ratios over utterances; a None prediction (unparsed phoneme
    transcript) is left out and counted in ``failed``."""
    total = MddCounts()
    n = 0
    for c, h, p in zip(canonical, human, predicted, strict=True):
        if p is None:
            continue
        total = total + mdd_counts(c, h, p)
        n += 1
    return {**total.summary(), "n": n, "failed": len(canonical) - n, "parse_rate": _ratio(n, len(canonical))}
