"""The paper's metrics over parsed answers: per-aspect PCC (+p) and Spearman, WER, PER, and
the Figure-5 correlation between per-utterance PER and accuracy; bootstrap confidence
intervals for a PCC and for MDD F1.

Every metric comes with the counts it was computed on: ``n`` items used, ``failed`` items
whose answer did not parse for that field (they are left out of the metric, never scored as
0), and ``parse_rate``. WER and PER are corpus-level, (S+D+I)/N summed over utterances;
``*_with_failures`` variants also count an unparsed transcript as an empty hypothesis (all
deletions), an upper bound that keeps a model from looking better by failing to answer.

Confidence intervals are percentile bootstrap intervals: the utterances are resampled with
replacement (seeded, :data:`BOOTSTRAP_RESAMPLES` times), the statistic recomputed on each
resample, and the interval is the central ``confidence`` share of those values. Resamples on
which the statistic is undefined (e.g. every drawn prediction equal) are left out; the
interval is None when the point estimate is undefined or fewer than half the resamples are
defined. Each resample is a row of counts (how often each utterance was drawn), so every
statistic is a matrix product: 1000 resamples of 2,500 utterances take milliseconds.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from loralab.speech.scoring.align import EditCounts, edit_counts, phone_tokens, word_tokens
from loralab.speech.scoring.mdd import MddCounts
from loralab.speech.scoring.parse import APA_ASPECTS, ParsedAnswer

BOOTSTRAP_RESAMPLES = 1000
BOOTSTRAP_SEED = 0
BOOTSTRAP_CONFIDENCE = 0.95


def correlation(pred: Sequence[float], human: Sequence[float]) -> dict[str, float]:
    """Pearson r with its two-sided p-value, and Spearman rho; NaN (not an error) when fewer
    than 3 pairs or either side is constant, where a correlation is undefined. Beside them, what
    a correlation cannot see: the mean absolute error (``mae``, in score points) and the spread
    of the predictions against the human labels' (``spread_ratio``, std over std; a near-constant
    answer has a high PCC and a ratio near 0)."""
    from scipy import stats

    x = np.asarray(pred, dtype=float)
    y = np.asarray(human, dtype=float)
    out = {
        "pcc": math.nan,
        "p_value": math.nan,
        "spearman": math.nan,
        "mae": math.nan,
        "spread_ratio": math.nan,
    }
    if len(x):
        out["mae"] = float(np.abs(x - y).mean())
        out["spread_ratio"] = float(x.std() / y.std()) if y.std() > 0 else math.nan
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return out
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r, p = stats.pearsonr(x, y)
        rho = stats.spearmanr(x, y).statistic
    out.update(pcc=float(r), p_value=float(p), spearman=float(rho))
    return out


def bootstrap_weights(
    n: int, n_resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED
) -> np.ndarray:
    """``(n_resamples, n)`` float array: row b counts how often resample b drew each of the
    ``n`` items (uniform draws with replacement, ``n`` per resample; every row sums to ``n``)."""
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n, size=(n_resamples, n))
    draws += np.arange(n_resamples)[:, None] * n
    return np.bincount(draws.ravel(), minlength=n_resamples * n).reshape(n_resamples, n).astype(float)


def percentile_interval(values: np.ndarray, confidence: float = BOOTSTRAP_CONFIDENCE) -> list[float] | None:
    """The central ``confidence`` percentile interval of the defined (finite) ``values``;
    None when fewer than half of them are defined."""
    values = np.asarray(values, dtype=float)
    finite = values[np.isfinite(values)]
    if len(values) == 0 or 2 * len(finite) < len(values):
        return None
    tail = 100 * (1 - confidence) / 2
    lo, hi = np.percentile(finite, [tail, 100 - tail])
    return [float(lo), float(hi)]


def bootstrap_pcc(pred: Sequence[float], human: Sequence[float], weights: np.ndarray) -> np.ndarray:
    """Pearson r of every resample (rows of ``weights``, see :func:`bootstrap_weights`); NaN
    where a resample draws fewer than 3 distinct items or either side drawn is constant."""
    x = np.asarray(pred, dtype=float)
    y = np.asarray(human, dtype=float)
    x = x - x.mean()  # centred: the moments below lose no precision to large means
    y = y - y.mean()
    total = weights.sum(axis=1)
    moments = weights @ np.column_stack([x, y, x * x, y * y, x * y]) / total[:, None]
    mx, my, mxx, myy, mxy = moments.T
    cov, vx, vy = mxy - mx * my, mxx - mx * mx, myy - my * my
    drawn = weights > 0
    bad = drawn.sum(axis=1) < 3
    # A constant side is decided exactly (rounding can leave a tiny variance where there is
    # none), on the few resamples whose variance is small enough to be suspect.
    suspect = np.flatnonzero((vx <= 1e-6 * np.mean(x * x)) | (vy <= 1e-6 * np.mean(y * y)))
    for b in suspect:
        bad[b] |= np.ptp(x[drawn[b]]) == 0 or np.ptp(y[drawn[b]]) == 0
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.clip(cov / np.sqrt(vx * vy), -1.0, 1.0)
    r[bad] = np.nan
    return r


def bootstrap_pcc_ci(
    pred: Sequence[float],
    human: Sequence[float],
    *,
    n_resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
    confidence: float = BOOTSTRAP_CONFIDENCE,
) -> list[float] | None:
    """Percentile bootstrap interval ``[lo, hi]`` of Pearson r over (pred, human) pairs,
    resampling the pairs; None where the PCC itself is undefined (see :func:`correlation`)."""
    if len(pred) != len(human):
        raise ValueError(f"{len(pred)} predictions but {len(human)} reference scores")
    if math.isnan(correlation(pred, human)["pcc"]):
        return None
    r = bootstrap_pcc(pred, human, bootstrap_weights(len(pred), n_resamples, seed))
    return percentile_interval(r, confidence)


def _count_matrix(counts: Sequence[MddCounts] | np.ndarray) -> np.ndarray:
    """``(n, 5)`` float array of TA, FR, FA, CD, DE per utterance."""
    if isinstance(counts, np.ndarray):
        return counts.astype(float).reshape(-1, 5)
    return np.array([[c.ta, c.fr, c.fa, c.cd, c.de] for c in counts], dtype=float).reshape(-1, 5)


def f1_from_counts(summed: np.ndarray) -> np.ndarray:
    """MDD F1 of rows of summed TA, FR, FA, CD, DE, as :attr:`~.mdd.MddCounts.f1` computes
    it: NaN where precision or recall is 0/0, 0 where both are 0."""
    summed = np.asarray(summed, dtype=float)
    fr, fa, tr = summed[..., 1], summed[..., 2], summed[..., 3] + summed[..., 4]
    with np.errstate(divide="ignore", invalid="ignore"):
        f1 = 2 * tr / (2 * tr + fr + fa)
    return np.where((tr + fr == 0) | (tr + fa == 0), np.nan, f1)


def bootstrap_f1(counts: Sequence[MddCounts] | np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Pooled MDD F1 of every resample of the per-utterance counts."""
    return f1_from_counts(weights @ _count_matrix(counts))


def bootstrap_f1_ci(
    counts: Sequence[MddCounts] | np.ndarray,
    *,
    n_resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
    confidence: float = BOOTSTRAP_CONFIDENCE,
) -> list[float] | None:
    """Percentile bootstrap interval ``[lo, hi]`` of the pooled MDD F1 (counts summed over
    utterances, as :func:`~.mdd.mdd_metrics` pools them), resampling the utterances' counts;
    None where the pooled F1 is undefined."""
    matrix = _count_matrix(counts)
    if len(matrix) == 0 or math.isnan(float(f1_from_counts(matrix.sum(axis=0)))):
        return None
    return percentile_interval(
        bootstrap_f1(matrix, bootstrap_weights(len(matrix), n_resamples, seed)), confidence
    )


def apa_metrics(
    answers: Sequence[ParsedAnswer],
    human_scores: Sequence[dict[str, float]],
    *,
    n_resamples: int = 0,
    seed: int = BOOTSTRAP_SEED,
    confidence: float = BOOTSTRAP_CONFIDENCE,
) -> dict:
    """Per aspect: PCC, p-value, Spearman over the utterances whose answer has that aspect;
    plus n, failed, parse_rate, clamped; and ``all_parsed``: answers with all four aspects.
    With ``n_resamples`` > 0 also ``pcc_ci``: the bootstrap interval of the PCC (None where
    undefined), see :func:`bootstrap_pcc_ci`."""
    if len(answers) != len(human_scores):
        raise ValueError(f"{len(answers)} answers but {len(human_scores)} reference score sets")
    total = len(answers)
    out: dict = {"n_items": total}
    for aspect in APA_ASPECTS:
        pred = [a.values[aspect] for a in answers if aspect in a.values]
        human = [float(h[aspect]) for a, h in zip(answers, human_scores) if aspect in a.values]
        stats = correlation(pred, human)
        stats.update(
            n=len(pred),
            failed=total - len(pred),
            parse_rate=len(pred) / total if total else math.nan,
            clamped=sum(aspect in a.clamped for a in answers),
        )
        if n_resamples > 0:
            stats["pcc_ci"] = bootstrap_pcc_ci(
                pred, human, n_resamples=n_resamples, seed=seed, confidence=confidence
            )
        out[aspect] = stats
    out["all_parsed"] = sum(a.ok for a in answers)
    out["parse_rate"] = out["all_parsed"] / total if total else math.nan
    return out


def _rate(counts: EditCounts) -> float:
    return counts.rate if counts.ref_len else math.nan


def error_rate_metrics(
    refs: Sequence[list[str]], hyps: Sequence[list[str] | None], name: str
) -> dict[str, float | int]:
    """Corpus error rate of token lists; a None hypothesis is an unparsed answer."""
    used = EditCounts(0, 0, 0, 0)
    with_failures = EditCounts(0, 0, 0, 0)
    n = 0
    for ref, hyp in zip(refs, hyps, strict=True):
        if hyp is None:
            with_failures = with_failures + EditCounts(0, len(ref), 0, len(ref))
            continue
        counts = edit_counts(ref, hyp)
        used = used + counts
        with_failures = with_failures + counts
        n += 1
    total = len(refs)
    return {
        name: _rate(used),
        f"{name}_with_failures": _rate(with_failures),
        "substitutions": used.substitutions,
        "deletions": used.deletions,
        "insertions": used.insertions,
        "ref_tokens": used.ref_len,
        "n": n,
        "failed": total - n,
        "parse_rate": n / total if total else math.nan,
    }


def wer_metrics(ref_texts: Sequence[str], answers: Sequence[ParsedAnswer]) -> dict:
    hyps = [
        word_tokens(a.values["word_transcript"]) if "word_transcript" in a.values else None for a in answers
    ]
    return error_rate_metrics([word_tokens(t) for t in ref_texts], hyps, "wer")


def per_metrics(ref_phones: Sequence[str], answers: Sequence[ParsedAnswer]) -> dict:
    """PER against the phones as actually pronounced (the annotation), stress stripped."""
    hyps = [
        phone_tokens(a.values["phoneme_transcript"]) if "phoneme_transcript" in a.values else None
        for a in answers
    ]
    return error_rate_metrics([phone_tokens(t) for t in ref_phones], hyps, "per")


def utterance_per(ref_phones: str, answer: ParsedAnswer) -> float | None:
    if "phoneme_transcript" not in answer.values:
        return None
    ref = phone_tokens(ref_phones)
    if not ref:
        return None
    return edit_counts(ref, phone_tokens(answer.values["phoneme_transcript"])).rate


def per_accuracy_correlation(
    per_values: Sequence[float | None],
    human_accuracy: Sequence[float],
    predicted_accuracy: Sequence[float | None],
    plot_path: str | Path | None = None,
) -> dict:
    """The paper's Figure 5: Pearson r (and Spearman rho) between per-utterance PER and the
    accuracy score, with the human score (paper: -0.4463) and with the model's predicted score
    (paper: -0.3543).
    Utterances without a parsed PER (or predicted accuracy) are left out and counted."""
    human_pairs = [(p, h) for p, h in zip(per_values, human_accuracy, strict=True) if p is not None]
    pred_pairs = [
        (p, a) for p, a in zip(per_values, predicted_accuracy, strict=True) if p is not None and a is not None
    ]
    human = correlation([p for p, _ in human_pairs], [h for _, h in human_pairs])
    predicted = correlation([p for p, _ in pred_pairs], [a for _, a in pred_pairs])
    out = {
        "human": {
            "pcc": human["pcc"],
            "p_value": human["p_value"],
            "spearman": human["spearman"],
            "n": len(human_pairs),
        },
        "predicted": {
            "pcc": predicted["pcc"],
            "p_value": predicted["p_value"],
            "spearman": predicted["spearman"],
            "n": len(pred_pairs),
        },
        "n_items": len(per_values),
    }
    if plot_path is not None:
        plot_per_accuracy(human_pairs, pred_pairs, out, plot_path)
        out["plot"] = str(plot_path)
    return out


def plot_per_accuracy(human_pairs, pred_pairs, stats: dict, path: str | Path) -> None:
    """Scatter of per-utterance PER against accuracy, human and predicted side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, pairs, key, title in (
        (axes[0], human_pairs, "human", "human accuracy"),
        (axes[1], pred_pairs, "predicted", "predicted accuracy"),
    ):
        if pairs:
            ax.scatter([a for _, a in pairs], [p for p, _ in pairs], s=8, alpha=0.5)
        r = stats[key]["pcc"]
        ax.set_title(f"PER vs {title} (r = {r:.3f}, n = {stats[key]['n']})")
        ax.set_xlabel(f"{title} (0-10)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("per-utterance PER")
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
