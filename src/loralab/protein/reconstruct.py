"""Physically sane C-alpha traces from a predicted distance matrix, and the check for them.

Classical MDS (and SMACOF) fit a noisy matrix as a whole and ignore that the points are a
chain: neighbours come out anywhere from 1.5 to 6 A apart, and distant residues overlap.
:func:`chain_refine` starts from the MDS coordinates and minimises, with scipy's L-BFGS-B
and an exact gradient,

    sum_{|i-j|>=2} w_ij (|x_i - x_j| - D_ij)^2 / sum w          (fit the prediction)
  + BOND_WEIGHT  * mean_i (|x_i - x_{i+1}| - 3.8)^2               (chain bonds)
  + CLASH_WEIGHT * sum_{|i-j|>=2} max(0, CLASH_FLOOR - |x_i - x_j|)^2 / L   (no overlaps)

with ``w_ij = 1 / D_ij`` (short predicted distances, the reliable ones, weigh more). So the
trace keeps what the prediction says about the fold while neighbours sit 3.8 A apart and no
two non-adjacent C-alphas come closer than the floor. :func:`geometry_check` reports what
``predict`` and ``evaluate`` print for every structure: mean / min / max consecutive CA-CA
and the count of non-adjacent pairs (|i - j| >= 2) closer than :data:`CLASH_DISTANCE`.
"""

from __future__ import annotations

import numpy as np

BOND_LENGTH = 3.8  # A, consecutive C-alpha (trans peptide)
CLASH_DISTANCE = 3.5  # A: non-adjacent C-alphas closer than this are a clash (the check)
CLASH_FLOOR = 4.0  # A: the refinement pushes non-adjacent pairs at least this far apart
BOND_WEIGHT = 10.0
CLASH_WEIGHT = 10.0
SANE_BOND_RANGE = (3.6, 4.0)  # mean consecutive CA-CA of an acceptable trace
MAX_CLASH_FRACTION = 0.01


def geometry_check(X, mask=None) -> dict:
    """Mean/min/max consecutive CA-CA (A) over neighbours present in both, clash count and
    fraction over non-adjacent pairs (|i - j| >= 2) of present residues, and ``sane``."""
    X = np.asarray(X, dtype=np.float64)
    present = np.isfinite(X).all(axis=1)
    if mask is not None:
        present &= np.asarray(mask, dtype=bool)
    both = present[:-1] & present[1:]
    bonds = np.linalg.norm(X[1:] - X[:-1], axis=1)[both]
    i, j = np.triu_indices(len(X), k=2)
    keep = present[i] & present[j]
    d = np.linalg.norm(X[i[keep]] - X[j[keep]], axis=1)
    clashes = int((d < CLASH_DISTANCE).sum())
    out = {
        "mean_ca_ca": float(bonds.mean()) if len(bonds) else float("nan"),
        "min_ca_ca": float(bonds.min()) if len(bonds) else float("nan"),
        "max_ca_ca": float(bonds.max()) if len(bonds) else float("nan"),
        "clashes": clashes,
        "clash_fraction": clashes / len(d) if len(d) else 0.0,
    }
    lo, hi = SANE_BOND_RANGE
    out["sane"] = bool(lo <= out["mean_ca_ca"] <= hi and out["clash_fraction"] < MAX_CLASH_FRACTION)
    return out


def _objective(flat: np.ndarray, D: np.ndarray, W: np.ndarray, far: np.ndarray) -> tuple[float, np.ndarray]:
    """Value and gradient of the module doc's objective at coordinates ``flat`` ([3L])."""
    X = flat.reshape(-1, 3)
    n = len(X)
    diff = X[:, None, :] - X[None, :, :]
    dist = np.sqrt((diff**2).sum(-1) + 1e-12)
    # Fit: W is symmetric, zero on |i-j| < 2; each unordered pair counted once (the 0.5).
    resid = dist - D
    fit = 0.5 * (W * resid**2).sum()
    coef = 2 * W * resid / dist
    # Clashes between non-adjacent residues.
    short = np.where(far, np.maximum(CLASH_FLOOR - dist, 0.0), 0.0)
    clash = 0.5 * CLASH_WEIGHT * (short**2).sum() / n
    coef -= 2 * CLASH_WEIGHT / n * short / dist
    grad = (coef[:, :, None] * diff).sum(1)
    # Bonds.
    step = X[1:] - X[:-1]
    length = np.sqrt((step**2).sum(-1) + 1e-12)
    bond_resid = length - BOND_LENGTH
    bond = BOND_WEIGHT * (bond_resid**2).mean() if n > 1 else 0.0
    g = (2 * BOND_WEIGHT / max(n - 1, 1) * bond_resid / length)[:, None] * step
    grad[1:] += g
    grad[:-1] -= g
    return float(fit + clash + bond), grad.ravel()


def chain_refine(D, X0, iters: int = 500) -> np.ndarray:
    """Coordinates near ``X0`` that fit ``D`` under chain constraints (module doc)."""
    from scipy.optimize import minimize

    D = np.asarray(D, dtype=np.float64)
    X0 = np.asarray(X0, dtype=np.float64)
    n = len(D)
    if n < 3:
        return X0.copy()
    sep = np.abs(np.arange(n)[:, None] - np.arange(n)[None, :])
    far = sep >= 2
    Dc = np.nan_to_num(0.5 * (D + D.T), nan=0.0)
    W = np.where(far & (Dc > 0), 1.0 / np.maximum(Dc, BOND_LENGTH), 0.0)
    W /= max(W.sum() / 2, 1e-12)
    result = minimize(
        _objective, X0.ravel(), args=(Dc, W, far), jac=True, method="L-BFGS-B", options={"maxiter": iters}
    )
    return result.x.reshape(n, 3)


def reconstruct(D, refine: bool = True, chain: bool = True) -> np.ndarray:
    """C-alpha coordinates [L, 3] from distances: classical MDS, SMACOF (``refine``), then
    :func:`chain_refine` (``chain``). The hand is not chosen here."""
    from loralab.protein.geometry import classical_mds, refine_stress

    X = classical_mds(D)
    if refine and len(D) > 3:
        X = refine_stress(D, X, iters=200)
    if chain and len(D) > 3:
        X = chain_refine(D, X)
    return X
