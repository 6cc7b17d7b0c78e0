"""Chain-constrained reconstruction and the geometry check, against brute force and scipy."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import check_grad

from loralab.protein.clustering import candidate_pairs
from loralab.protein.geometry import classical_mds, distance_matrix, mirror, refine_stress, rmsd_superposed
from loralab.protein.reconstruct import _objective, chain_refine, geometry_check, reconstruct


def compact_chain(n: int, seed: int = 0) -> np.ndarray:
    """A compact, self-avoiding-ish C-alpha chain: 3.8 A steps, turning like a helix/coil."""
    rng = np.random.default_rng(seed)
    X = [np.zeros(3)]
    direction = np.array([1.0, 0.0, 0.0])
    while len(X) < n:
        turn = rng.normal(size=3)
        candidate = direction + 0.9 * turn
        candidate /= np.linalg.norm(candidate)
        point = X[-1] + 3.8 * candidate
        if len(X) < 2 or np.linalg.norm(np.array(X[:-1]) - point, axis=1).min() > 4.5:
            if np.linalg.norm(point) < 14:  # stay compact (a globule of radius ~14 A)
                X.append(point)
                direction = candidate
                continue
        direction = -X[-1] / max(np.linalg.norm(X[-1]), 1e-9) + 0.3 * rng.normal(size=3)
        direction /= np.linalg.norm(direction)
    return np.array(X)


def noisy(D: np.ndarray, scale: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = rng.normal(scale=scale, size=D.shape)
    out = D * np.exp(0.5 * (noise + noise.T))
    np.fill_diagonal(out, 0.0)
    return out


def brute_force_check(X):
    n = len(X)
    bonds = [np.linalg.norm(X[i + 1] - X[i]) for i in range(n - 1)]
    clashes = sum(1 for i in range(n) for j in range(i + 2, n) if np.linalg.norm(X[i] - X[j]) < 3.5)
    pairs = sum(1 for i in range(n) for j in range(i + 2, n))
    return float(np.mean(bonds)), clashes, clashes / pairs


def test_geometry_check_matches_brute_force():
    rng = np.random.default_rng(3)
    X = np.cumsum(rng.normal(0, 2.0, size=(30, 3)), axis=0)
    got = geometry_check(X)
    mean_bond, clashes, fraction = brute_force_check(X)
    assert got["mean_ca_ca"] == pytest.approx(mean_bond)
    assert got["clashes"] == clashes > 0 and got["clash_fraction"] == pytest.approx(fraction)
    assert got["sane"] is False  # random 2 A steps: neither 3.8 A bonds nor clash-free
    ok = geometry_check(compact_chain(40))
    assert ok["mean_ca_ca"] == pytest.approx(3.8) and ok["clashes"] == 0 and ok["sane"]


def test_geometry_check_skips_missing_residues():
    X = compact_chain(10)
    X[4] = np.nan
    got = geometry_check(X)
    assert got["mean_ca_ca"] == pytest.approx(3.8)  # the bonds 3-4 and 4-5 are not counted


def test_objective_gradient_matches_finite_differences():
    rng = np.random.default_rng(0)
    n = 14
    D = distance_matrix(compact_chain(n, seed=1))
    sep = np.abs(np.arange(n)[:, None] - np.arange(n)[None, :])
    far = sep >= 2
    W = np.where(far, 1.0 / np.maximum(D, 3.8), 0.0)
    x0 = rng.normal(0, 3, size=3 * n)
    err = check_grad(lambda f: _objective(f, D, W, far)[0], lambda f: _objective(f, D, W, far)[1], x0)
    assert err < 1e-4 * max(1.0, np.linalg.norm(_objective(x0, D, W, far)[1]))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_constrained_reconstruction_beats_plain_mds_on_a_noisy_matrix(seed):
    truth = compact_chain(60, seed)
    D = noisy(distance_matrix(truth), 0.3, seed)

    def rmsd(X):  # the matrix cannot tell mirror images apart
        return min(rmsd_superposed(X, truth), rmsd_superposed(mirror(X), truth))

    plain = refine_stress(D, classical_mds(D), iters=200)
    constrained = reconstruct(D)
    assert rmsd(constrained) < rmsd(plain)
    geo, geo_plain = geometry_check(constrained), geometry_check(plain)
    assert 3.7 < geo["mean_ca_ca"] < 3.9 and geo["max_ca_ca"] < 4.1 and geo["min_ca_ca"] > 3.5
    assert geo["clash_fraction"] < 0.01 and geo["sane"]
    assert abs(geo_plain["mean_ca_ca"] - 3.8) > abs(geo["mean_ca_ca"] - 3.8)


def test_chain_refine_keeps_an_exact_matrix_exact():
    truth = compact_chain(30, seed=4)
    D = distance_matrix(truth)
    X = chain_refine(D, classical_mds(D))
    assert rmsd_superposed(X, truth) < 0.05 or rmsd_superposed(mirror(X), truth) < 0.05


def brute_force_candidates(seqs, k=3, band=16, min_hits=2):
    found = set()
    for a in range(len(seqs)):
        for b in range(a):
            diags = [
                p - q
                for p in range(len(seqs[a]) - k + 1)
                for q in range(len(seqs[b]) - k + 1)
                if seqs[a][p : p + k] == seqs[b][q : q + k]
            ]
            for shift in (0, band // 2):
                bins = [(d + shift) // band for d in diags]
                if any(bins.count(x) >= min_hits for x in set(bins)):
                    found.add((a, b))
    return found


def test_kmer_prefilter_matches_brute_force():
    rng = np.random.default_rng(5)
    letters = list("ACDEFGHIKL")  # a small alphabet: many shared 3-mers
    seqs = ["".join(rng.choice(letters, int(rng.integers(20, 40)))) for _ in range(12)]
    seqs.append(seqs[0][3:] + "WWW")  # a shifted copy: hits on one diagonal
    assert candidate_pairs(seqs) == brute_force_candidates(seqs)
    assert (12, 0) in candidate_pairs(seqs)
