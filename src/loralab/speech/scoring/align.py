"""Levenshtein alignment of token sequences (words or phones) and token normalisation.

One alignment serves WER/PER counts, MDD scoring and the per-word diagnosis of ``assess``.
Costs are 1 for substitution, deletion and insertion; among equally cheap alignments the
backtrace prefers a match/substitution, then a deletion, then an insertion, so results are
deterministic.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

UNK = "<unk>"
_STRESS = re.compile(r"(?<=[A-Z])[0-2]$")
_WORD_JUNK = re.compile(r"[^\w' ]+")


def normalize_phone(phone: str) -> str:
    """'ah0' -> 'AH', '<UNK>' -> '<unk>'. Stress digits are stripped for every comparison."""
    p = phone.strip()
    if p.lower() == UNK:
        return UNK
    return _STRESS.sub("", p.upper())


def phone_tokens(text: str | Sequence[str]) -> list[str]:
    """A phone transcript as normalised phones (commas and extra spaces tolerated)."""
    items = text.replace(",", " ").split() if isinstance(text, str) else list(text)
    return [normalize_phone(p) for p in items if p.strip()]


def word_tokens(text: str) -> list[str]:
    """Words for WER: upper case, punctuation other than apostrophes removed (SpeechOcean762's
    reference text is upper case without punctuation; the model may add some)."""
    cleaned = _WORD_JUNK.sub(" ", text.replace("_", " ")).upper()
    return [w.strip("'") for w in cleaned.split() if w.strip("'")]


@dataclass(frozen=True)
class EditCounts:
    """Substitutions, deletions, insertions against a reference of ``ref_len`` tokens."""

    substitutions: int
    deletions: int
    insertions: int
    ref_len: int

    @property
    def errors(self) -> int:
        return self.substitutions + self.deletions + self.insertions

    @property
    def rate(self) -> float:
        """(S + D + I) / N; an empty reference gives 0 when nothing was inserted, else inf."""
        if self.ref_len == 0:
            return 0.0 if self.errors == 0 else float("inf")
        return self.errors / self.ref_len

    def __add__(self, other: EditCounts) -> EditCounts:
        return EditCounts(
            self.substitutions + other.substitutions,
            self.deletions + other.deletions,
            self.insertions + other.insertions,
            self.ref_len + other.ref_len,
        )


def align(ref: Sequence[str], hyp: Sequence[str]) -> list[tuple[str | None, str | None]]:
    """Minimum-edit alignment as pairs (ref token or None, hyp token or None): (r, h) match or
    substitution, (r, None) deletion, (None, h) insertion."""
    n, m = len(ref), len(hyp)
    # Full DP table: sequences here are sentences (tens of tokens), so O(n*m) is cheap.
    dist = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(1, n + 1):
        dist[i][0] = i
    for j in range(1, m + 1):
        dist[0][j] = j
    for i in range(1, n + 1):
        row, prev = dist[i], dist[i - 1]
        r = ref[i - 1]
        for j in range(1, m + 1):
            sub = prev[j - 1] + (r != hyp[j - 1])
            dele = prev[j] + 1
            ins = row[j - 1] + 1
            row[j] = min(sub, dele, ins)
    pairs: list[tuple[str | None, str | None]] = []
    i, j = n, m
    while i > 0 or j > 0:
        if i > 0 and j > 0 and dist[i][j] == dist[i - 1][j - 1] + (ref[i - 1] != hyp[j - 1]):
            pairs.append((ref[i - 1], hyp[j - 1]))
            i, j = i - 1, j - 1
        elif i > 0 and dist[i][j] == dist[i - 1][j] + 1:
            pairs.append((ref[i - 1], None))
            i -= 1
        else:
            pairs.append((None, hyp[j - 1]))
            j -= 1
    pairs.reverse()
    return pairs


def edit_counts(ref: Sequence[str], hyp: Sequence[str]) -> EditCounts:
    s = d = ins = 0
    for r, h in align(ref, hyp):
        if r is None:
            ins += 1
        elif h is None:
            d += 1
        elif r != h:
            s += 1
    return EditCounts(s, d, ins, len(ref))


def slot_alignment(ref: Sequence[str], hyp: Sequence[str]) -> tuple[list[str | None], list[list[str]]]:
    """``hyp`` seen from ``ref``'s positions: for each ref token the hyp token aligned to it
    (None if deleted), and for each of the len(ref)+1 gaps (before token 0 .. after the last)
    the hyp tokens inserted there."""
    at: list[str | None] = []
    gaps: list[list[str]] = [[] for _ in range(len(ref) + 1)]
    for r, h in align(ref, hyp):
        if r is None:
            gaps[len(at)].append(h)
        else:
            at.append(h)
    return at, gaps


def restore_skips(evidence: Sequence[str], answer: Sequence[str], min_run: int) -> tuple[list[str], int]:
    """``answer`` with every run of at least ``min_run`` consecutive ``evidence`` tokens that it
    leaves out put back in place, and how many tokens were put back. A decoder copying a long
    sequence can jump from one occurrence of a repeated stretch to a later one and drop what lies
    between; a short deletion is the answer's own and is kept."""
    if min_run < 1:
        raise ValueError(f"min_run must be >= 1 (got {min_run})")
    out: list[str] = []
    run: list[str] = []
    restored = 0
    for r, h in [*align(evidence, answer), (None, None)]:
        if r is not None and h is None:
            run.append(r)
            continue
        if len(run) >= min_run:
            out += run
            restored += len(run)
        run = []
        out += [h] if h is not None else []
    return out, restored
