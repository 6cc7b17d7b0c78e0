"""Mispronunciation detection and diagnosis (MDD) scoring: TA/FR/FA/CD/DE per utterance.

Three phone sequences per utterance, stress stripped: canonical C (what should be said),
human H (what the annotators heard) and predicted P (the model's phoneme transcript). All
alignments are minimum edit distance (:func:`~.align.align`), with Kaldi's tie-breaking:
match or substitution, then deletion, then insertion.

Every scoring unit has a canonical phone c (None for a human insertion), a human phone h
(None for a human deletion) and the predicted phone p compared with them (None: nothing
there). One rule classifies a unit, in both conventions:

* TA: h == c and p == h (correct, accepted)
* FR: h == c and p != h (correct, but the system flags an error)
* FA: h != c and p == c (an error the system misses)
* TR: h != c and p != c, split into CD (p == h: right diagnosis, a deletion matching a
  deletion included) and DE (p != h)

The conventions differ in what the units are and where p comes from.

``reference`` (the default): the public convention of the MDD literature on L2-ARCTIC and
SpeechOcean762, as scored by ``mdd_result.sh`` and ``utils/scoring/ins_del_sub_cor_analysis.py``
of https://github.com/cageyoko/CTC-Attention-Mispronunciation (Fu et al., "A Full
Text-Dependent End to End Mispronunciation Detection and Diagnosis with Easy Data Augment
Techniques", arXiv 2104.08428). That script runs Kaldi ``align-text`` on canonical↔human,
human↔predicted and canonical↔predicted. The units are the pairs of the canonical↔human
alignment: every canonical phone and every phone the human inserted, one unit each. For a
phone the human said (kept, substituted or inserted), p is what the human↔predicted
alignment pairs with it; for a canonical phone the human deleted, p is what the
canonical↔predicted alignment pairs with it. Predicted phones the human↔predicted alignment
calls insertions are never scored. Where the human and the prediction are both empty, the
reference script crashes; here every canonical phone is then a diagnosed deletion (CD).

``strict`` (our earlier scoring, which penalises spurious insertions): H and P are each
aligned to C; per canonical phone, h and p are what those alignments put there. Each gap
between canonical phones where H or P inserts something is one more unit: nothing inserted
by H but something by P is FR; inserted by H but not by P is FA; both insert: CD when the
inserted sequences are equal, else DE. Gaps where neither inserts are not counted.

Precision = TR / (TR + FR), recall = TR / (TR + FA), F1 their harmonic mean, diagnosis
accuracy = CD / (CD + DE). An undefined ratio (0/0) is NaN.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from loralab.speech.scoring.align import align, phone_tokens, slot_alignment

MDD_CONVENTIONS = ("reference", "strict")


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

    def add_unit(self, c: str | None, h: str | None, p: str | None) -> None:
        """Count one unit: canonical c, human h, predicted p (None: absent)."""
        if h == c:
            if p == h:
                self.ta += 1
            else:
                self.fr += 1
        elif p == c:
            self.fa += 1
        elif p == h:
            self.cd += 1
        else:
            self.de += 1

    def summary(self) -> dict[str, float | int]:
        return {
            **asdict(self),
            "tr": self.tr,
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
            "diagnosis_accuracy": self.diagnosis_accuracy,
        }


def _check_convention(convention: str) -> None:
    if convention not in MDD_CONVENTIONS:
        raise ValueError(f"unknown MDD convention {convention!r} (known: {', '.join(MDD_CONVENTIONS)})")


def _reference_counts(c: list[str], h: list[str], p: list[str]) -> MddCounts:
    p_at_human, _ = slot_alignment(h, p)
    p_at_canonical, _ = slot_alignment(c, p)
    counts = MddCounts()
    ci = hi = 0  # positions in c and h of the next canonical↔human pair
    for canon, heard in align(c, h):
        said = p_at_canonical[ci] if heard is None else p_at_human[hi]
        counts.add_unit(canon, heard, said)
        ci += canon is not None
        hi += heard is not None
    return counts


def _strict_counts(c: list[str], h: list[str], p: list[str]) -> MddCounts:
    h_at, h_gaps = slot_alignment(c, h)
    p_at, p_gaps = slot_alignment(c, p)
    counts = MddCounts()
    for canon, heard, said in zip(c, h_at, p_at):
        counts.add_unit(canon, heard, said)
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


def mdd_counts(
    canonical: str | Sequence[str],
    human: str | Sequence[str],
    predicted: str | Sequence[str],
    *,
    convention: str = "reference",
) -> MddCounts:
    """TA/FR/FA/CD/DE of one utterance (strings are split on spaces; stress is stripped).

    ``convention``: ``"reference"`` (default) reproduces the public scoring of
    cageyoko/CTC-Attention-Mispronunciation (``mdd_result.sh`` + Kaldi ``align-text`` +
    ``utils/scoring/ins_del_sub_cor_analysis.py``), so precision/recall/F1 compare with
    published numbers; ``"strict"`` also counts predicted insertions the human did not make
    as false rejections and scores each insertion gap as one unit. See the module docstring.
    """
    _check_convention(convention)
    c, h, p = phone_tokens(canonical), phone_tokens(human), phone_tokens(predicted)
    return _reference_counts(c, h, p) if convention == "reference" else _strict_counts(c, h, p)


def mdd_metrics(
    canonical: Sequence[str],
    human: Sequence[str],
    predicted: Sequence[str | None],
    *,
    convention: str = "reference",
) -> dict[str, float | int | str]:
    """Summed counts and ratios over utterances under ``convention`` (named in the result);
    a None prediction (unparsed phoneme transcript) is left out and counted in ``failed``."""
    _check_convention(convention)
    total = MddCounts()
    n = 0
    for c, h, p in zip(canonical, human, predicted, strict=True):
        if p is None:
            continue
        total = total + mdd_counts(c, h, p, convention=convention)
        n += 1
    return {
        **total.summary(),
        "n": n,
        "failed": len(canonical) - n,
        "parse_rate": _ratio(n, len(canonical)),
        "convention": convention,
    }
