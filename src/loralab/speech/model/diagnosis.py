"""Which canonical phones were said otherwise: a per-phone diagnosis from the CTC phone recogniser.

The recogniser (:class:`~loralab.speech.model.gop.GopScorer`'s head on the frozen audio encoder)
hears phones with a phone error rate of ~0.17 on the synthetic corpus, worse than assuming every
phone was said as the dictionary says (~0.06: most phones are). So its free transcript is no
diagnosis. What it does tell reliably is whether, *given the sentence*, one edit of the canonical
phones explains the audio much better than the canonical phones themselves (the classic
likelihood-ratio test of GOP-based mispronunciation detection):

1. the canonical phones are force-aligned to the frames (CTC Viterbi, :func:`ctc_viterbi`);
2. for each canonical phone the candidate edits are its deletion and its substitution by each
   of the :data:`CANDIDATES` phones the recogniser finds most likely over the phone's frames;
3. an edit's score is how much it lowers the CTC loss of the whole sequence (nats; exact, by
   ``ctc_loss`` on the edited sequence, not an approximation from the alignment);
4. a phone is diagnosed as its best edit when that score exceeds the scorer's threshold, fit on
   held-out speakers of the training split for the best F1 (:func:`best_threshold`).

The diagnosed phones (the canonical ones with those edits) are what the model "heard"; the
share of phones changed and the mean edit score are features of the accuracy estimate.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

CANDIDATES = 3  # substitutes tried per phone: the recogniser's most likely ones over its frames
# The threshold keeps at least this share of the most phones corrected, net (best_threshold): on the
# demo's held-out speakers the net-best threshold finds under half the mispronunciations, and the
# F1-best one corrects almost nothing net (docs/experiments/listening.md).
NET_KEPT = 0.75
DELETION = 0  # the edit "deleted" (class 0 is the CTC blank)


@dataclass(frozen=True)
class PhoneEdit:
    """The best edit of canonical phone ``index``: ``to`` (a class index, :data:`DELETION`) and
    by how many nats it lowers the CTC loss (``score``; <= 0: the canonical phone fits best)."""

    index: int
    to: int
    score: float


def ctc_viterbi(log_probs, target: Sequence[int]) -> list[list[int]] | None:
    """The most likely CTC path of ``target`` (class indices, blank 0) through ``log_probs``
    (frames x classes, numpy): the frames of each target phone, or None when the target cannot
    fit the frames (more phones, with their repeats, than frames)."""
    import numpy as np

    lp = np.asarray(log_probs, dtype=np.float64)
    frames, n = lp.shape[0], len(target)
    repeats = sum(1 for a, b in zip(target, target[1:]) if a == b)
    if n == 0 or frames < n + repeats:
        return None
    states = np.zeros(2 * n + 1, dtype=np.int64)
    states[1::2] = target
    s = len(states)
    # a label state may skip the blank before it when it differs from the label two back
    skip = np.zeros(s, dtype=bool)
    skip[3::2] = states[3::2] != states[1:-2:2]
    score = np.full(s, -np.inf)
    score[0], score[1] = lp[0, 0], lp[0, states[1]]
    back = np.zeros((frames, s), dtype=np.int8)  # 0 stay, 1 from s-1, 2 from s-2
    for t in range(1, frames):
        stay = score
        step = np.r_[-np.inf, score[:-1]]
        jump = np.where(skip, np.r_[-np.inf, -np.inf, score[:-2]], -np.inf)
        choices = np.stack([stay, step, jump])
        back[t] = choices.argmax(0)
        score = choices.max(0) + lp[t, states]
    end = s - 1 if score[s - 1] >= score[s - 2] else s - 2
    if not math.isfinite(score[end]):
        return None
    segments: list[list[int]] = [[] for _ in range(n)]
    state = end
    for t in range(frames - 1, -1, -1):
        if state % 2 == 1:
            segments[state // 2].append(t)
        state -= int(back[t, state])
    return [seg[::-1] for seg in segments]


def phone_edits(log_probs, target: Sequence[int], confusions: Mapping[int, Sequence[int]] | None = None
                ) -> list[PhoneEdit] | None:  # fmt: skip
    """For each canonical phone of ``target``, its best edit (see the module doc); None when the
    target cannot be aligned to the frames at all. ``confusions``: per canonical class, the edits
    to try (class indices, :data:`DELETION` included where it may be deleted), as learnt from the
    training annotations; a phone not in it gets deletion and the recogniser's likeliest phones."""
    import torch

    log_probs = torch.as_tensor(log_probs, dtype=torch.float32)
    segments = ctc_viterbi(log_probs.numpy(), target)
    if segments is None:
        return None
    edits: list[tuple[int, int, list[int]]] = []  # (phone index, edit, edited target)
    for i, frames in enumerate(segments):
        for to in _candidates(log_probs, frames, target[i], confusions):
            edited = (
                [*target[:i], *target[i + 1 :]] if to == DELETION else [*target[:i], to, *target[i + 1 :]]
            )
            edits.append((i, to, edited))
    if not edits:
        return [PhoneEdit(i, target[i], -math.inf) for i in range(len(target))]
    nll = _ctc_nll(log_probs, [list(target)] + [e[2] for e in edits])
    base = nll[0]
    best: dict[int, PhoneEdit] = {}
    for (i, to, _), value in zip(edits, nll[1:]):
        gain = base - value
        if i not in best or gain > best[i].score:
            best[i] = PhoneEdit(i, to, gain)
    return [best.get(i, PhoneEdit(i, target[i], -math.inf)) for i in range(len(target))]


def best_pronunciations(log_probs, words: Sequence[Sequence[Sequence[int]]]) -> list[int]:
    """Per word, which of its pronunciations (class-index lists, the canonical one first) the frames
    fit best: each other pronunciation is tried in the sentence with every other word canonical,
    and kept when it lowers the CTC loss (exact, :func:`_ctc_nll`). The diagnosis then judges the
    phones against the pronunciation the reader chose, not against a dictionary's first entry."""
    import torch

    log_probs = torch.as_tensor(log_probs, dtype=torch.float32)
    canonical = [p for variants in words for p in variants[0]]
    tried = [
        (w, k, [p for j, variants in enumerate(words) for p in (variants[k] if j == w else variants[0])])
        for w, variants in enumerate(words)
        for k in range(1, len(variants))
    ]
    chosen = [0] * len(words)
    if not tried or not canonical:
        return chosen
    nll = _ctc_nll(log_probs, [canonical] + [target for *_, target in tried])
    best = [nll[0]] * len(words)
    for (w, k, _), value in zip(tried, nll[1:]):
        if value < best[w]:
            best[w], chosen[w] = value, k
    return chosen


def _candidates(log_probs, frames: list[int], phone: int, confusions) -> list[int]:
    if confusions is not None and phone in confusions:
        return [c for c in confusions[phone] if c != phone]
    mean = log_probs[frames].mean(0).clone()
    mean[0] = -math.inf
    mean[phone] = -math.inf
    return [DELETION, *mean.topk(min(CANDIDATES, mean.numel() - 2)).indices.tolist()]


def _ctc_nll(log_probs, targets: list[list[int]]) -> list[float]:
    """CTC negative log-likelihood of each target sequence over the same frames (inf: cannot fit)."""
    import torch

    n = len(targets)
    lengths = torch.tensor([len(t) for t in targets])
    flat = torch.tensor([p for t in targets for p in t], dtype=torch.long)
    with torch.no_grad():
        nll = torch.nn.functional.ctc_loss(
            log_probs[:, None].expand(-1, n, -1), flat, torch.full((n,), len(log_probs)), lengths,
            reduction="none", zero_infinity=False,
        )  # fmt: skip
    return nll.tolist()


def diagnosed_phones(canonical: Sequence[str], edits: Sequence[PhoneEdit] | None, phones: Sequence[str],
                     threshold: float) -> list[str]:  # fmt: skip
    """The canonical phones with every edit scoring above ``threshold`` applied (deleted phones
    left out); the canonical phones themselves when there is no diagnosis."""
    if edits is None:
        return list(canonical)
    out = []
    for phone, edit in zip(canonical, edits):
        if edit.score <= threshold:
            out.append(phone)
        elif edit.to != DELETION:
            out.append(phones[edit.to - 1])
    return out


def edit_labels(canonical: Sequence[str], pronounced: Sequence[str]) -> list[str | None]:
    """Per canonical phone, what was said instead (a phone, or ``"<DEL>"``), None where it was said
    as is: the reference for :func:`best_threshold`, from the aligned pronounced phones."""
    from loralab.speech.scoring.align import align

    out: list[str | None] = []
    for ref, hyp in align(list(canonical), list(pronounced)):
        if ref is None:
            continue  # an insertion: not a canonical phone's edit
        out.append(None if hyp == ref else (hyp or "<DEL>"))
    return out


def best_threshold(scored: Sequence[tuple[float, bool, bool]]) -> tuple[float, dict]:
    """The threshold for ``scored`` = (edit score, the phone was mispronounced, the edit says what
    was said) per canonical phone: the best detection F1 among the thresholds that keep at least
    :data:`NET_KEPT` of the most phones corrected, net. An edit that says what was said removes a phone error
    from the transcript, an edit of a phone said as is adds one (an edit of a wrong phone to
    another wrong one changes nothing): so the diagnosed phones beat the canonical ones' PER, and
    of the thresholds that do so clearly, the one that finds mispronunciations best is taken.
    Returns (threshold, detection figures there); inf when no threshold corrects anything.
    """
    ranked = sorted(scored, key=lambda x: -x[0])
    errors = sum(1 for _, wrong, _ in scored if wrong)
    rows, true_flags, right = [], 0, 0
    for k, (score, wrong, says) in enumerate(ranked):
        true_flags += wrong
        right += wrong and says
        if k + 1 < len(ranked) and ranked[k + 1][0] == score:
            continue  # ties: all or none
        flagged = k + 1
        precision, recall = true_flags / flagged, (true_flags / errors if errors else 0.0)
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        next_score = ranked[k + 1][0] if k + 1 < len(ranked) else score - 1.0
        rows.append(
            ((score + next_score) / 2, right - (flagged - true_flags), f1, precision, recall, flagged)
        )
    most = max((r[1] for r in rows), default=0)
    if most <= 0:
        return math.inf, {"net_corrections": 0, "f1": 0.0, "precision": 0.0, "recall": 0.0, "flagged": 0}
    threshold, net, f1, precision, recall, flagged = max(
        (r for r in rows if r[1] >= NET_KEPT * most), key=lambda r: r[2]
    )
    return threshold, {"net_corrections": net, "f1": round(f1, 4), "precision": round(precision, 4),
                       "recall": round(recall, 4), "flagged": flagged}  # fmt: skip


def detection_at(scored: Sequence[tuple[float, bool, bool]], threshold: float) -> dict:
    """The figures of :func:`best_threshold` for ``scored`` at a given ``threshold`` (one raised above
    the best one by a real-voice floor, :mod:`loralab.speech.model.real_voices`)."""
    flagged = [(wrong, says) for score, wrong, says in scored if score > threshold]
    errors = sum(1 for _, wrong, _ in scored if wrong)
    true_flags = sum(wrong for wrong, _ in flagged)
    right = sum(wrong and says for wrong, says in flagged)
    precision = true_flags / len(flagged) if flagged else 0.0
    recall = true_flags / errors if errors else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"net_corrections": right - (len(flagged) - true_flags), "f1": round(f1, 4),
            "precision": round(precision, 4), "recall": round(recall, 4), "flagged": len(flagged)}  # fmt: skip
