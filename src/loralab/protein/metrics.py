"""How close a predicted distance map or structure is to the true one.

Inputs: distance matrices ``[L, L]`` and coordinates ``[L, 3]`` over the same residue
positions (the true structure's), and ``mask`` (bool ``[L]``): residues whose true C-alpha
is known. NaN in the true coordinates / distances also marks a residue or pair as unknown.

* Distance errors (:func:`distance_metrics`): MAE, RMSE and Pearson r over the pairs
  ``i < j``, overall and by sequence separation ``j - i``: short 6-11, medium 12-23,
  long >= 24 (the CASP bands).
* Contacts (:func:`contact_precision`): a contact is a true C-alpha distance < 8 A. Pairs
  with separation >= 6, >= 12, >= 24 are ranked by predicted distance (closest first) and
  the top ``L``, ``L/2``, ``L/5`` are scored; ``L`` is the number of residues with a known
  C-alpha, and the counts are at least 1.
* Structures: RMSD after optimal superposition (:func:`rmsd_superposed`), TM-score with the
  residue correspondence fixed (:func:`tm_score`, TM-align from ``tmtools`` given the
  identity alignment, normalised by the true structure's length), C-alpha lDDT
  (:func:`lddt_ca`, as ``biotite.structure.lddt``), GDT-TS (:func:`gdt_ts`).
  Scores are fractions in [0, 1] (GDT-TS too; multiply by 100 for the usual scale).
"""

from __future__ import annotations

import numpy as np

from loralab.protein.geometry import _as_coords, decide_handedness, distance_matrix, rmsd_superposed

SEPARATION_BANDS = {"short": (6, 11), "medium": (12, 23), "long": (24, None)}
CONTACT_SEPARATIONS = (6, 12, 24)
CONTACT_FRACTIONS = {"L": 1, "L2": 2, "L5": 5}
CONTACT_CUTOFF = 8.0
GDT_TS_CUTOFFS = (1.0, 2.0, 4.0, 8.0)
GDT_HA_CUTOFFS = (0.5, 1.0, 2.0, 4.0)

__all__ = [
    "compare_structures",
    "contact_precision",
    "distance_metrics",
    "gdt",
    "gdt_ts",
    "lddt_ca",
    "rmsd_superposed",
    "tm_score",
]


def _residue_mask(n: int, mask) -> np.ndarray:
    if mask is None:
        return np.ones(n, dtype=bool)
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != (n,):
        raise ValueError(f"mask must have shape ({n},), got {mask.shape}")
    return mask


def _upper_pairs(pred_D, true_D, mask):
    """(i, j, pred, true) over pairs i < j with both residues known and both distances finite."""
    pred_D = np.asarray(pred_D, dtype=np.float64)
    true_D = np.asarray(true_D, dtype=np.float64)
    if pred_D.shape != true_D.shape or pred_D.ndim != 2 or pred_D.shape[0] != pred_D.shape[1]:
        raise ValueError(
            f"pred_D and true_D must be the same square shape, got {pred_D.shape}, {true_D.shape}"
        )
    m = _residue_mask(len(true_D), mask)
    i, j = np.triu_indices(len(true_D), k=1)
    keep = m[i] & m[j] & np.isfinite(true_D[i, j]) & np.isfinite(pred_D[i, j])
    i, j = i[keep], j[keep]
    return i, j, pred_D[i, j], true_D[i, j]


def _errors(pred: np.ndarray, true: np.ndarray) -> dict[str, float]:
    n = len(pred)
    if n == 0:
        return {"mae": float("nan"), "rmse": float("nan"), "pearson": float("nan"), "n_pairs": 0}
    err = pred - true
    pearson = float("nan")
    if n >= 2 and pred.std() > 0 and true.std() > 0:
        pearson = float(np.corrcoef(pred, true)[0, 1])
    return {
        "mae": float(np.abs(err).mean()),
        "rmse": float(np.sqrt((err**2).mean())),
        "pearson": pearson,
        "n_pairs": int(n),
    }


def distance_metrics(pred_D, true_D, mask=None) -> dict[str, float]:
    """MAE, RMSE, Pearson r and pair counts, overall and per separation band.

    Keys: ``mae, rmse, pearson, n_pairs`` and the same with suffixes ``_short``, ``_medium``,
    ``_long``. A band without pairs gives NaN (and ``n_pairs_<band> = 0``).
    """
    i, j, pred, true = _upper_pairs(pred_D, true_D, mask)
    out = _errors(pred, true)
    sep = j - i
    for band, (lo, hi) in SEPARATION_BANDS.items():
        sel = (sep >= lo) & (sep <= hi if hi is not None else True)
        out.update({f"{k}_{band}": v for k, v in _errors(pred[sel], true[sel]).items()})
    return out


def contact_precision(
    pred_D, true_D, mask=None, cutoff: float = CONTACT_CUTOFF, scores=None
) -> dict[str, float]:
    """Precision of the top-L, L/2, L/5 predicted contacts at separations >= 6, 12, 24.

    Keys ``p_at_L_sep6, p_at_L2_sep6, p_at_L5_sep6, ..._sep12, ..._sep24`` (NaN when no pair
    has that separation). Pairs are ranked by predicted distance (closest first) or, given
    ``scores`` ([L, L], e.g. a distogram's contact probability), by score (highest first).
    Ties are broken by position (i, then j).
    """
    i, j, pred, true = _upper_pairs(pred_D, true_D, mask)
    if scores is not None:
        pred = -np.asarray(scores, dtype=np.float64)[i, j]  # rank key: lower first
    n_residues = int(_residue_mask(np.shape(true_D)[0], mask).sum())
    out = {}
    for min_sep in CONTACT_SEPARATIONS:
        sel = (j - i) >= min_sep
        ranked = np.argsort(pred[sel], kind="stable")  # pairs come in (i, j) order
        is_contact = true[sel][ranked] < cutoff
        for name, divisor in CONTACT_FRACTIONS.items():
            k = min(max(1, n_residues // divisor), len(ranked))
            out[f"p_at_{name}_sep{min_sep}"] = float(is_contact[:k].mean()) if k else float("nan")
    return out


def tm_score(pred_X, true_X, sequence: str | None = None, mask=None) -> float:
    """TM-score of ``pred_X`` against ``true_X`` with residue i matched to residue i.

    tmtools' TM-align runs with the identity alignment (its ``-I`` mode), searching the
    superposition that maximises the score; normalised by the number of residues with a
    known true C-alpha (d0 from that length). Residues without a predicted position count
    as unaligned.
    """
    import tmtools

    pred_X, true_X = _as_coords(pred_X, "pred_X"), _as_coords(true_X, "true_X")
    n = len(true_X)
    known = _residue_mask(n, mask) & np.isfinite(true_X).all(axis=1)
    predicted = known & np.isfinite(pred_X).all(axis=1)
    if predicted.sum() < 3:
        return float("nan")
    seq = (sequence or "A" * n).upper()
    if len(seq) != n:
        raise ValueError(f"sequence has {len(seq)} letters but the structures {n} residues")
    seq = "".join(c if c.isalpha() else "X" for c in seq)
    true_seq = "".join(seq[k] for k in np.flatnonzero(known))
    pred_seq = "".join(seq[k] for k in np.flatnonzero(predicted))
    pred_aligned = "".join(seq[k] if predicted[k] else "-" for k in np.flatnonzero(known))
    result = tmtools.tm_align(
        np.ascontiguousarray(pred_X[predicted]),
        np.ascontiguousarray(true_X[known]),
        pred_seq,
        true_seq,
        [pred_aligned, true_seq],
    )
    return float(result.tm_norm_chain2)


def lddt_ca(
    pred_X,
    true_X,
    mask=None,
    inclusion_radius: float = 15.0,
    thresholds=(0.5, 1.0, 2.0, 4.0),
    per_residue: bool = False,
):
    """C-alpha lDDT: how well local distances (< ``inclusion_radius`` in the truth) are kept.

    For every ordered pair i != j of known residues with true distance <= 15 A, the
    fraction of ``thresholds`` that |d_pred - d_true| stays within (<=); the global score is
    the mean over pairs (biotite's ``aggregation="all"``). A pair whose predicted residue is
    missing scores 0. ``per_residue=True`` returns the mean per residue ``[L]`` (NaN where
    a residue has no pair).
    """
    pred_X, true_X = _as_coords(pred_X, "pred_X"), _as_coords(true_X, "true_X")
    known = _residue_mask(len(true_X), mask) & np.isfinite(true_X).all(axis=1)
    true_D = distance_matrix(true_X)
    pred_D = distance_matrix(pred_X)
    pairs = known[:, None] & known[None, :] & (true_D <= inclusion_radius)
    np.fill_diagonal(pairs, False)
    deviation = np.abs(np.nan_to_num(pred_D, nan=np.inf) - np.nan_to_num(true_D))
    score = np.mean([deviation <= t for t in thresholds], axis=0)
    if per_residue:
        counts = pairs.sum(axis=1)
        with np.errstate(invalid="ignore"):
            return np.where(counts > 0, (score * pairs).sum(axis=1) / np.maximum(counts, 1), np.nan)
    n_pairs = pairs.sum()
    return float((score * pairs).sum() / n_pairs) if n_pairs else float("nan")


def _batched_kabsch(P: np.ndarray, Q: np.ndarray, W: np.ndarray):
    """Rotations [S,3,3] and translations [S,3] fitting P onto Q with per-seed weights W [S,L]."""
    w = W / W.sum(axis=1, keepdims=True)
    p_mean, q_mean = w @ P, w @ Q
    Pc = P[None] - p_mean[:, None, :]
    Qc = Q[None] - q_mean[:, None, :]
    H = np.transpose(Pc * w[..., None], (0, 2, 1)) @ Qc
    U, _, Vt = np.linalg.svd(H)
    d = np.sign(np.linalg.det(np.transpose(Vt, (0, 2, 1)) @ np.transpose(U, (0, 2, 1))))
    d[d == 0] = 1.0
    D = np.zeros_like(H)
    D[:, 0, 0] = D[:, 1, 1] = 1.0
    D[:, 2, 2] = d
    R = np.transpose(Vt, (0, 2, 1)) @ D @ np.transpose(U, (0, 2, 1))
    t = q_mean - np.einsum("sij,sj->si", R, p_mean)
    return R, t


def _unique_rows(rows: np.ndarray) -> np.ndarray:
    """Distinct boolean rows (first occurrences), faster than np.unique(axis=0) for this."""
    first: dict[bytes, int] = {}
    for k, packed in enumerate(np.packbits(rows, axis=1)):
        first.setdefault(packed.tobytes(), k)
    return rows[sorted(first.values())]


def _seed_windows(n: int) -> np.ndarray:
    """Contiguous windows of n, n/2, n/4, ... (>= 4) residues, starting every half window."""
    widths, width = [], n
    while True:
        widths.append(width)
        if width <= 4:
            break
        width = max(4, width // 2)
    seeds = []
    for width in widths:
        for start in range(0, n - width + 1, max(1, width // 2)):
            row = np.zeros(n, dtype=bool)
            row[start : start + width] = True
            seeds.append(row)
    return np.array(seeds)


def gdt(pred_X, true_X, cutoffs=GDT_TS_CUTOFFS, mask=None, max_iter: int = 20) -> float:
    """Global distance test: the mean over ``cutoffs`` of the largest fraction of residues
    within the cutoff under one superposition (fraction of the known true residues).

    The best superposition per cutoff is searched as LGA and TM-score do: start from fits on
    windows of several lengths, then refit on the residues within the cutoff until the set
    stops changing, keeping the best count seen. It is a lower bound on the exact optimum
    and the usual way GDT is computed.
    """
    pred_X, true_X = _as_coords(pred_X, "pred_X"), _as_coords(true_X, "true_X")
    known = _residue_mask(len(true_X), mask) & np.isfinite(true_X).all(axis=1)
    usable = known & np.isfinite(pred_X).all(axis=1)
    n_known = int(known.sum())
    if usable.sum() < 3:
        return float("nan")
    P, Q = pred_X[usable], true_X[usable]
    seeds = _seed_windows(len(P))
    fractions = []
    for cutoff in cutoffs:
        active, best = seeds, 0
        for _ in range(max_iter):
            R, t = _batched_kabsch(P, Q, active.astype(np.float64))
            moved = P[None] @ np.transpose(R, (0, 2, 1)) + t[:, None, :]
            within = np.linalg.norm(moved - Q[None], axis=2) <= cutoff
            best = max(best, int(within.sum(axis=1).max()))
            # Refit on the residues within the cutoff; seeds whose set did not change (or
            # fell under 3 residues) have converged, and seeds that meet share one refit.
            moving = (within.sum(axis=1) >= 3) & (within != active).any(axis=1)
            if not moving.any():
                break
            active = _unique_rows(within[moving])
        fractions.append(best / n_known)
    return float(np.mean(fractions))


def gdt_ts(pred_X, true_X, mask=None) -> float:
    """GDT-TS (cutoffs 1, 2, 4, 8 A) as a fraction in [0, 1]."""
    return gdt(pred_X, true_X, GDT_TS_CUTOFFS, mask)


def gdt_ha(pred_X, true_X, mask=None) -> float:
    """GDT-HA (cutoffs 0.5, 1, 2, 4 A) as a fraction in [0, 1]."""
    return gdt(pred_X, true_X, GDT_HA_CUTOFFS, mask)


def compare_structures(pred_X, true_X, sequence: str | None = None, mask=None, allow_mirror: bool = True):
    """RMSD, TM-score, lDDT, GDT-TS of a prediction, taking its mirror image when that fits better.

    ``allow_mirror``: a structure rebuilt from distances is only known up to reflection, so
    the mirror image is scored when it superposes with a lower RMSD (reported as
    ``mirrored``). lDDT depends on distances only and is the same either way.
    """
    pred_X, true_X = _as_coords(pred_X, "pred_X"), _as_coords(true_X, "true_X")
    mirrored = False
    if allow_mirror:
        decision = decide_handedness(pred_X, reference=true_X, mask=mask)
        pred_X, mirrored = decision.apply(pred_X), decision.mirrored
    return {
        "rmsd": rmsd_superposed(pred_X, true_X, mask),
        "tm_score": tm_score(pred_X, true_X, sequence, mask),
        "lddt": lddt_ca(pred_X, true_X, mask),
        "gdt_ts": gdt_ts(pred_X, true_X, mask),
        "mirrored": mirrored,
    }
