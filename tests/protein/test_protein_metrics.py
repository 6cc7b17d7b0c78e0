"""Structure metrics against independent references: brute force, scipy, biotite, a TM-score search.

The "prediction" is a real alternative conformation where one exists (adenylate kinase
open vs closed: same sequence, a large hinge motion), else a noisy copy of a real chain.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from loralab.protein import geometry as geo
from loralab.protein import metrics
from loralab.protein.structures import parse_structure


@pytest.fixture(scope="module")
def adk(mdanalysis_data):
    opened = parse_structure(mdanalysis_data / "adk_open.pdb")[0]
    closed = parse_structure(mdanalysis_data / "adk_closed.pdb")[0]
    assert opened.sequence == closed.sequence
    return opened.ca.astype(np.float64), closed.ca.astype(np.float64), opened.sequence


@pytest.fixture(scope="module")
def small_noisy(mdanalysis_data):
    chain = parse_structure(mdanalysis_data / "dssp/2xcjA.pdb.gz")[0]
    X = chain.ca.astype(np.float64)
    return X + np.random.default_rng(1).normal(0, 1.2, X.shape), X, chain.sequence


def _kabsch_fit(P, Q):
    """Plain SVD superposition (reference): P moved onto Q."""
    pc, qc = P.mean(0), Q.mean(0)
    U, _, Vt = np.linalg.svd((P - pc).T @ (Q - qc))
    d = np.sign(np.linalg.det(Vt.T @ U.T))
    R = Vt.T @ np.diag([1, 1, d]) @ U.T
    return lambda X: (X - pc) @ R.T + qc


def _tm_reference(pred, true):
    """TM-score by definition, maximised over superpositions found like the TM-score program:
    fits on fragments of length L, L/2, ..., 4 every half fragment, each refined 6 times on the
    residues within d0 + 1 A (never fewer than 3)."""
    n = len(true)
    d0 = max(0.5, 1.24 * (n - 15) ** (1 / 3) - 1.8)
    best, width = 0.0, n
    while True:
        for start in range(0, n - width + 1, max(1, width // 2)):
            sel = np.arange(start, start + width)
            for _ in range(6):
                d = np.linalg.norm(_kabsch_fit(pred[sel], true[sel])(pred) - true, axis=1)
                best = max(best, float(np.mean(1 / (1 + (d / d0) ** 2))))
                new = np.flatnonzero(d < d0 + 1.0)
                if len(new) < 3 or np.array_equal(new, sel):
                    break
                sel = new
        if width <= 4:
            return best
        width = max(4, width // 2)


def _pearson(p, t) -> float:
    """Pearson r from its definition (the code under test uses np.corrcoef)."""
    dp, dt = p - p.mean(), t - t.mean()
    return float((dp * dt).sum() / np.sqrt((dp**2).sum() * (dt**2).sum()))


def test_distance_metrics_match_brute_force(adk):
    opened, closed, _ = adk
    opened, closed = opened[:120], closed[:120]  # 7,140 pairs keep the loop below quick
    pred_D, true_D = geo.distance_matrix(opened), geo.distance_matrix(closed)
    mask = np.ones(len(closed), bool)
    mask[[0, 50, 51, 100]] = False
    true_D[3, 90] = true_D[90, 3] = np.nan  # an unknown pair is left out too
    got = metrics.distance_metrics(pred_D, true_D, mask)
    pairs = [
        (j - i, pred_D[i, j], true_D[i, j])
        for i, j in itertools.combinations(range(len(mask)), 2)
        if mask[i] and mask[j] and np.isfinite(true_D[i, j])
    ]
    bands = {"": (1, 10**6), "_short": (6, 11), "_medium": (12, 23), "_long": (24, 10**6)}
    for suffix, (lo, hi) in bands.items():
        p = np.array([pd for sep, pd, _ in pairs if lo <= sep <= hi])
        t = np.array([td for sep, _, td in pairs if lo <= sep <= hi])
        assert got["n_pairs" + suffix] == len(p)
        assert got["mae" + suffix] == pytest.approx(np.mean(np.abs(p - t)), rel=1e-10)
        assert got["rmse" + suffix] == pytest.approx(np.sqrt(np.mean((p - t) ** 2)), rel=1e-10)
        assert got["pearson" + suffix] == pytest.approx(_pearson(p, t), rel=1e-8)
    empty = metrics.distance_metrics(pred_D[:5, :5], true_D[:5, :5])
    assert empty["n_pairs_short"] == 0 and np.isnan(empty["mae_short"])


def test_contact_precision_matches_brute_force(adk):
    opened, closed, _ = adk
    rng = np.random.default_rng(0)
    pred_D = geo.distance_matrix(opened) + rng.normal(0, 2.0, (len(opened),) * 2)
    pred_D = (pred_D + pred_D.T) / 2
    true_D = geo.distance_matrix(closed)
    mask = np.ones(len(closed), bool)
    mask[100:110] = False
    got = metrics.contact_precision(pred_D, true_D, mask)
    n = int(mask.sum())
    for min_sep in (6, 12, 24):
        pairs = sorted(
            (pred_D[i, j], i, j)
            for i, j in itertools.combinations(range(len(mask)), 2)
            if mask[i] and mask[j] and j - i >= min_sep
        )
        for name, div in (("L", 1), ("L2", 2), ("L5", 5)):
            top = pairs[: n // div]
            expected = sum(true_D[i, j] < 8.0 for _, i, j in top) / len(top)
            assert got[f"p_at_{name}_sep{min_sep}"] == pytest.approx(expected), (name, min_sep)
    perfect = metrics.contact_precision(true_D, true_D, mask)
    assert perfect["p_at_L5_sep24"] == 1.0


@pytest.mark.parametrize("case", ["adk", "small_noisy"])
def test_tm_score_matches_a_reference_search(case, request):
    pred, true, sequence = request.getfixturevalue(case)
    assert metrics.tm_score(true, true, sequence) == pytest.approx(1.0)
    got = metrics.tm_score(pred, true, sequence)
    reference = _tm_reference(pred, true)
    assert 0.3 < got < 0.95
    assert got == pytest.approx(reference, abs=0.01)
    # Invariant to a rigid motion of the prediction; the mirror image scores far lower.
    from scipy.spatial.transform import Rotation

    moved = Rotation.random(random_state=2).apply(pred) + 7.0
    assert metrics.tm_score(moved, true, sequence) == pytest.approx(got, abs=1e-4)
    assert metrics.tm_score(geo.mirror(pred), true, sequence) < got - 0.1


def test_lddt_matches_biotite(adk):
    import biotite.structure as struc

    opened, closed, sequence = adk

    def ca_atoms(X):
        atoms = struc.AtomArray(len(X))
        atoms.coord = X
        atoms.res_id = np.arange(1, len(X) + 1)
        atoms.atom_name[:] = "CA"
        atoms.element[:] = "C"
        atoms.chain_id[:] = "A"
        return atoms

    assert metrics.lddt_ca(closed, closed) == 1.0
    got = metrics.lddt_ca(opened, closed)
    assert got == pytest.approx(float(struc.lddt(ca_atoms(closed), opened)), abs=1e-6)
    # Missing residues: the same as biotite on the structure without them.
    mask = np.ones(len(closed), bool)
    mask[30:45] = False
    expected = float(struc.lddt(ca_atoms(closed[mask]), opened[mask]))
    assert metrics.lddt_ca(opened, closed, mask) == pytest.approx(expected, abs=1e-6)
    per_residue = metrics.lddt_ca(opened, closed, per_residue=True)
    reference = struc.lddt(ca_atoms(closed), opened, aggregation="residue")
    np.testing.assert_allclose(per_residue, reference, atol=1e-6)


def test_gdt_ts_exact_cases_and_brute_force(adk, small_noisy):
    opened, closed, _ = adk
    assert metrics.gdt_ts(closed, closed) == 1.0
    # A rigid shift of 60 residues by 20 A: the best superposition keeps the other 154 exact.
    shifted = closed.copy()
    shifted[:60] += [20.0, 0.0, 0.0]
    assert metrics.gdt_ts(shifted, closed) == pytest.approx(154 / 214)
    # Small noise (every residue < 0.45 A off): all within 1 A under the identity fit.
    jitter = np.random.default_rng(0).normal(0, 1, closed.shape)
    jitter *= 0.45 / np.linalg.norm(jitter, axis=1, keepdims=True).max()
    assert metrics.gdt_ts(closed + jitter, closed) == 1.0
    # Brute force on a small chain: best count over fits to every triple of residues.
    pred, true, _ = small_noisy
    pred, true = pred[:40], true[:40]
    triples = np.array(list(itertools.combinations(range(40), 3)))
    P, Q = pred[triples], true[triples]  # [T, 3, 3]: a batched SVD fit per triple
    pc, qc = P.mean(1, keepdims=True), Q.mean(1, keepdims=True)
    U, _, Vt = np.linalg.svd(np.transpose(P - pc, (0, 2, 1)) @ (Q - qc))
    V, Ut = np.transpose(Vt, (0, 2, 1)), np.transpose(U, (0, 2, 1))
    fix = np.ones((len(triples), 3))
    fix[:, 2] = np.sign(np.linalg.det(V @ Ut))
    R = V @ (fix[:, :, None] * Ut)
    d = np.linalg.norm((pred[None] - pc) @ np.transpose(R, (0, 2, 1)) + qc - true[None], axis=2)
    best = {c: int((d <= c).sum(axis=1).max()) for c in (1.0, 2.0, 4.0, 8.0)}
    brute = np.mean([best[c] / 40 for c in best])
    got = metrics.gdt_ts(pred, true)
    assert got >= brute - 1 / 40 and got <= 1.0
    # Against the adk hinge motion: at least the fraction within each cutoff after the RMSD fit.
    d = np.linalg.norm(geo.superpose(opened, closed) - closed, axis=1)
    lower = np.mean([(d <= c).mean() for c in (1, 2, 4, 8)])
    assert lower <= metrics.gdt_ts(opened, closed) <= 1.0


def test_compare_structures_scores_the_better_hand(adk):
    opened, closed, sequence = adk
    direct = metrics.compare_structures(opened, closed, sequence)
    flipped = metrics.compare_structures(geo.mirror(opened), closed, sequence)
    assert not direct["mirrored"] and flipped["mirrored"]
    for key in ("rmsd", "tm_score", "lddt", "gdt_ts"):
        assert flipped[key] == pytest.approx(direct[key], abs=1e-6)
    assert direct["rmsd"] == pytest.approx(geo.rmsd_superposed(opened, closed))
    assert geo.rmsd_superposed(geo.mirror(opened), closed) > direct["rmsd"] + 1.0
