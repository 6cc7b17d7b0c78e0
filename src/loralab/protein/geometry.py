"""Coordinates from distances and back: MDS, stress refinement, superposition, handedness.

Writing coordinates as a PDB file is :mod:`loralab.protein.pdb_file`.

Conventions used throughout:

* Coordinates are arrays ``[L, 3]`` in Angstrom; a missing residue is a row of NaN.
  Functions that compare two structures use only rows finite in both (and in ``mask``).
* Distance matrices are ``[L, L]`` float64; a pair that is unknown is NaN (or excluded by a
  mask).
* ``kabsch(P, Q)`` returns ``(R, t)`` with ``P @ R.T + t`` as close as possible to ``Q``.

Handedness. A distance matrix is the same for a structure and its mirror image, so MDS
returns either with equal right. Two documented ways to choose:

* without a reference (prediction): C-alpha virtual torsions ``(i, i+1, i+2, i+3)`` of
  right-handed alpha helices are near +50 degrees and their mirror images near -50; beta
  strands sit near -170 (+170 in the mirror). :func:`chirality_score` counts the torsions
  in the helix window (+20..+90) minus those in its mirror (-90..-20), plus the strands'
  signature (-180..-120 minus +120..+180), and the structure is mirrored when the score is
  negative. It picks the natural hand of all 69 chains of >= 40 residues from the
  MDAnalysisTests structures (``tests/protein/test_geometry.py``; the smallest margin is a
  beta-rich chain) but not of a 28-residue cyclic peptide (neopetrosiamide); a chain with
  neither helices nor strands has no preferred hand and is left as is (score 0).
* with a reference (evaluation): the mirror image is chosen when it superposes with a
  lower RMSD; this is the "minimum over mirror images" and is reported as such.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from loralab.errors import DataError

HELIX_WINDOW = (20.0, 90.0)
STRAND_WINDOW = (-180.0, -120.0)


def _as_coords(X, name: str = "X") -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[1] != 3:
        raise ValueError(f"{name} must have shape [L, 3], got {X.shape}")
    return X


def distance_matrix(X) -> np.ndarray:
    """Pairwise Euclidean distances ``[L, L]`` (float64); rows of NaN give NaN distances."""
    X = _as_coords(X)
    diff = X[:, None, :] - X[None, :, :]
    return np.sqrt(np.einsum("ijk,ijk->ij", diff, diff))


def _pair_weights(D: np.ndarray, mask=None, weights=None) -> np.ndarray:
    """Pair weights: 0 on the diagonal, on unknown distances and on masked residues/pairs."""
    n = len(D)
    W = np.ones((n, n)) if weights is None else np.array(weights, dtype=np.float64)
    if W.shape != (n, n):
        raise ValueError(f"weights must have shape {(n, n)}, got {W.shape}")
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        pair = mask[:, None] & mask[None, :] if mask.ndim == 1 else mask
        W = np.where(pair, W, 0.0)
    W = np.where(np.isfinite(D), W, 0.0)
    W = np.minimum(W, W.T)  # a pair is known in both directions or not at all
    np.fill_diagonal(W, 0.0)
    return W


def _check_square(D) -> np.ndarray:
    D = np.asarray(D, dtype=np.float64)
    if D.ndim != 2 or D.shape[0] != D.shape[1]:
        raise ValueError(f"a distance matrix must be square, got shape {D.shape}")
    return D


def classical_mds(D, dim: int = 3, mask=None) -> np.ndarray:
    """Coordinates ``[L, dim]`` whose distances best match ``D`` (Torgerson's classical MDS).

    ``D`` is symmetrised first. A residue ``mask`` (``[L]``) leaves residues out: their
    rows come back NaN. Unknown pairs (NaN, or False in a pair mask ``[L, L]``) are filled
    with the shortest path through known pairs, an upper bound that keeps the triangle
    inequality. Negative eigenvalues (a ``D`` that is not exactly Euclidean, as predictions
    are) are clipped to zero.
    """
    D = _check_square(D)
    n = len(D)
    if mask is not None and np.ndim(mask) == 1:
        keep = np.asarray(mask, dtype=bool)
        X = np.full((n, dim), np.nan)
        X[keep] = classical_mds(D[np.ix_(keep, keep)], dim)
        return X
    if n == 0:
        return np.zeros((0, dim))
    D = 0.5 * (D + D.T)
    W = _pair_weights(D, mask)
    known = W > 0
    np.fill_diagonal(known, True)
    if not known.all():
        from scipy.sparse.csgraph import shortest_path

        graph = np.where(known, np.nan_to_num(D, nan=0.0), 0.0)
        np.fill_diagonal(graph, 0.0)
        filled = shortest_path(graph, method="D", directed=False)
        if not np.isfinite(filled).all():
            raise DataError(
                "classical MDS: the known distances do not connect all residues; "
                "pass a mask that keeps every residue linked to the others"
            )
        D = np.where(known, D, filled)
        np.fill_diagonal(D, 0.0)
    from scipy.linalg import eigh

    D2 = np.square(D)
    # Double centring -1/2 J D^2 J, written out (O(n^2) instead of two matrix products).
    B = -0.5 * (D2 - D2.mean(axis=0)[None, :] - D2.mean(axis=1)[:, None] + D2.mean())
    top = min(dim, n)
    eigenvalues, eigenvectors = eigh(B, subset_by_index=[n - top, n - 1])
    order = np.argsort(eigenvalues)[::-1]
    lam = np.clip(eigenvalues[order], 0.0, None)
    X = eigenvectors[:, order] * np.sqrt(lam)[None, :]
    if X.shape[1] < dim:  # fewer points than dimensions
        X = np.pad(X, ((0, 0), (0, dim - X.shape[1])))
    return X


def stress(D, X, mask=None, weights=None) -> float:
    """Normalised stress ``sqrt(sum w (D - d(X))^2 / sum w D^2)`` over known pairs (0 = exact)."""
    D = _check_square(D)
    W = _pair_weights(D, mask, weights)
    d = distance_matrix(X)
    Dz = np.nan_to_num(D)
    denom = float((W * Dz**2).sum())
    return float(np.sqrt((W * (Dz - d) ** 2).sum() / denom)) if denom > 0 else 0.0


def refine_stress(D, X0, mask=None, weights=None, iters: int = 300, tol: float = 1e-7) -> np.ndarray:
    """Refine coordinates ``X0`` to lower the weighted stress against ``D`` (SMACOF).

    Each iteration is a Guttman transform, which never increases the stress (de Leeuw's
    majorisation), so starting from :func:`classical_mds` can only improve the fit. Pairs
    with weight 0 (unknown, masked) do not pull. Stops after ``iters`` iterations or when
    the relative stress decrease falls below ``tol``.
    """
    D = _check_square(D)
    X = np.array(X0, dtype=np.float64)
    if X.ndim != 2 or len(X) != len(D):
        raise ValueError(f"X0 must have shape [{len(D)}, dim], got {X.shape}")
    n = len(D)
    if n < 2:
        return X
    W = _pair_weights(D, mask, weights)
    Dz = np.nan_to_num(D)
    V = np.diag(W.sum(axis=1)) - W
    V_pinv = np.linalg.pinv(V)
    previous = np.inf
    for _ in range(iters + 1):
        d = _generic_distances(X)
        current = float((W * (Dz - d) ** 2).sum())
        if previous - current <= tol * current:  # converged (the stress never rises)
            break
        previous = current
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(d > 1e-12, W * Dz / d, 0.0)
        Bx = -ratio
        np.fill_diagonal(Bx, ratio.sum(axis=1))
        X = V_pinv @ (Bx @ X)
    return X


def _generic_distances(X: np.ndarray) -> np.ndarray:
    from scipy.spatial.distance import cdist

    return cdist(X, X)


def _fit_rows(P: np.ndarray, Q: np.ndarray, mask=None) -> np.ndarray:
    rows = np.isfinite(P).all(1) & np.isfinite(Q).all(1)
    if mask is not None:
        rows &= np.asarray(mask, dtype=bool)
    return rows


def kabsch(P, Q, weights=None) -> tuple[np.ndarray, np.ndarray]:
    """The proper rotation ``R`` (det +1) and translation ``t`` minimising ``|P @ R.T + t - Q|``.

    ``weights`` (``[L]``, non-negative) weight the rows; rows with NaN must be excluded by
    the caller (see :func:`superpose`).
    """
    P, Q = _as_coords(P, "P"), _as_coords(Q, "Q")
    if P.shape != Q.shape:
        raise ValueError(f"P and Q must have the same shape, got {P.shape} and {Q.shape}")
    w = np.ones(len(P)) if weights is None else np.asarray(weights, dtype=np.float64)
    if len(P) == 0 or w.sum() <= 0:
        raise ValueError("kabsch needs at least one weighted point")
    w = w / w.sum()
    p_mean, q_mean = w @ P, w @ Q
    H = (P - p_mean).T @ ((Q - q_mean) * w[:, None])
    U, _, Vt = np.linalg.svd(H)
    d = np.sign(np.linalg.det(Vt.T @ U.T)) or 1.0  # no reflections: a mirror is not a rotation
    R = Vt.T @ np.diag([1.0, 1.0, d]) @ U.T
    return R, q_mean - p_mean @ R.T


def superpose(P, Q, mask=None) -> np.ndarray:
    """``P`` rotated and translated onto ``Q`` (fit on rows finite in both and in ``mask``)."""
    P, Q = _as_coords(P, "P"), _as_coords(Q, "Q")
    rows = _fit_rows(P, Q, mask)
    if rows.sum() < 3:
        raise DataError(
            f"superposition needs at least 3 residues present in both structures, got {rows.sum()}"
        )
    R, t = kabsch(P[rows], Q[rows])
    return P @ R.T + t


def rmsd_superposed(P, Q, mask=None) -> float:
    """RMSD between ``P`` and ``Q`` after optimal superposition, over rows present in both."""
    P, Q = _as_coords(P, "P"), _as_coords(Q, "Q")
    rows = _fit_rows(P, Q, mask)
    moved = superpose(P, Q, mask)
    return float(np.sqrt(np.mean(np.sum((moved[rows] - Q[rows]) ** 2, axis=1))))


def mirror(X) -> np.ndarray:
    """The mirror image of ``X`` (z negated); any reflection is this one up to a rotation."""
    return _as_coords(X) * np.array([1.0, 1.0, -1.0])


def ca_torsions(X) -> np.ndarray:
    """Virtual C-alpha torsions (degrees, -180..180) of every window ``i..i+3``; NaN where missing."""
    X = _as_coords(X)
    if len(X) < 4:
        return np.zeros(0)
    b0 = X[1:-2] - X[:-3]
    b1 = X[2:-1] - X[1:-2]
    b2 = X[3:] - X[2:-1]
    # Blondel & Karplus (1996): atan2(|b1| b0 . (b1 x b2), (b0 x b1) . (b1 x b2)); IUPAC sign,
    # so an ideal right-handed alpha helix gives +50 degrees.
    n2 = np.cross(b1, b2)
    y = np.linalg.norm(b1, axis=1) * np.einsum("ij,ij->i", b0, n2)
    x = np.einsum("ij,ij->i", np.cross(b0, b1), n2)
    return np.degrees(np.arctan2(y, x))


def chirality_score(X) -> float:
    """Evidence that ``X`` has natural (L-protein) handedness: > 0 yes, < 0 mirrored, 0 none.

    Counts torsions in the right-handed helix window minus its mirror window, plus the
    strand signature (see the module docstring), divided by the number of torsions.
    """
    tau = ca_torsions(X)
    tau = tau[np.isfinite(tau)]
    if len(tau) == 0:
        return 0.0
    lo, hi = HELIX_WINDOW
    helix = np.count_nonzero((tau > lo) & (tau < hi)) - np.count_nonzero((tau > -hi) & (tau < -lo))
    slo, shi = STRAND_WINDOW
    strand = np.count_nonzero((tau >= slo) & (tau < shi)) - np.count_nonzero((tau > -shi) & (tau <= -slo))
    return float((helix + strand) / len(tau))


@dataclass
class HandednessDecision:
    """Whether to mirror a structure, how that was decided, and the evidence."""

    mirrored: bool
    method: str  # "torsion" (no reference) or "reference" (lower RMSD to the reference)
    score: float  # chirality score (torsion) or RMSD(kept) - RMSD(other) in Angstrom (reference)

    def apply(self, X) -> np.ndarray:
        return mirror(X) if self.mirrored else _as_coords(X).copy()


def decide_handedness(X, reference=None, mask=None) -> HandednessDecision:
    """Choose between ``X`` and its mirror image (see the module docstring for the rules)."""
    X = _as_coords(X)
    if reference is None:
        score = chirality_score(X)
        return HandednessDecision(mirrored=score < 0, method="torsion", score=score)
    as_is = rmsd_superposed(X, reference, mask)
    flipped = rmsd_superposed(mirror(X), reference, mask)
    mirrored = flipped < as_is
    return HandednessDecision(
        mirrored=mirrored, method="reference", score=min(as_is, flipped) - max(as_is, flipped)
    )


def resolve_handedness(X, reference=None, mask=None) -> np.ndarray:
    """``X`` or its mirror image, whichever :func:`decide_handedness` chooses."""
    return decide_handedness(X, reference, mask).apply(X)
