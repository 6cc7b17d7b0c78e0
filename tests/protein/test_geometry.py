"""Geometry on real structures: PDB round trip, MDS recovery, handedness, superposition, SMACOF."""

from __future__ import annotations

import numpy as np
import pytest

from loralab.errors import DataError
from loralab.protein import geometry as geo
from loralab.protein.pdb_file import write_ca_pdb
from loralab.protein.structures import parse_structure

# Chains of at least 40 residues from the MDAnalysisTests files: all-alpha, all-beta, mixed.
HANDEDNESS_FILES = [
    "1a28.pdb.gz",
    "1hvr.pdb",
    "4E43.pdb",
    "cobrotoxin.pdb",
    "adk_open.pdb",
    "19hc.pdb.gz",
    "1osm.pdb.gz",
    "mmcif/1BD2.cif.gz",
    "mmcif/5PTI.cif.gz",
    "mmcif/custom.cif.gz",
    "merge/2zmm/protein.pdb",
]


@pytest.fixture(scope="module")
def real_chains(mdanalysis_data):
    paths = sorted((mdanalysis_data / "dssp").glob("*.pdb.gz")) + [
        mdanalysis_data / name for name in HANDEDNESS_FILES
    ]
    chains = [c for p in paths for c in parse_structure(p)]
    return [c for c in chains if int(c.mask.sum()) >= 40]


def _rmsd_scipy(P, Q) -> float:
    """Reference RMSD after superposition: scipy's Rotation.align_vectors on centred points."""
    from scipy.spatial.transform import Rotation

    Pc, Qc = P - P.mean(0), Q - Q.mean(0)
    rotation, _ = Rotation.align_vectors(Qc, Pc)
    return float(np.sqrt(np.mean(np.sum((rotation.apply(Pc) - Qc) ** 2, axis=1))))


def test_pdb_writer_round_trips_through_the_parser(mdanalysis_data, tmp_path):
    for name in ["dssp/3so6A.pdb.gz", "1osm.pdb.gz", "adk_open.pdb"]:
        chain = parse_structure(mdanalysis_data / name)[0]
        path = write_ca_pdb(
            tmp_path / "ca.pdb", chain.ca, chain.sequence, "A", chain.residue_numbers, remarks=["round trip"]
        )
        (back,) = parse_structure(path)
        assert back.sequence == chain.sequence and back.id == "A"
        assert back.residue_numbers == chain.residue_numbers  # insertion codes too (1osm)
        np.testing.assert_allclose(back.ca, chain.ca, atol=5e-4)  # PDB keeps 3 decimals
    lines = path.read_text().splitlines()
    atoms = [ln for ln in lines if ln.startswith("ATOM")]
    assert all(len(ln) == 80 and ln[12:16] == " CA " and ln[76:78] == " C" for ln in atoms)
    assert lines[-1] == "END" and lines[-2].startswith("TER")


def test_pdb_writer_leaves_out_missing_residues_and_rejects_bad_input(tmp_path):
    # An ideal alpha helix (C-alphas 3.8 A apart) with residue 5 missing.
    X = np.stack([[2.3 * np.cos(1.745 * k), 2.3 * np.sin(1.745 * k), 1.5 * k] for k in range(10)])
    X[4] = np.nan
    path = write_ca_pdb(tmp_path / "gap.pdb", X, "ACDEFGHIKX", bfactors=np.arange(10))
    (chain,) = parse_structure(path)
    assert chain.sequence == "ACDEGHIKX" and chain.residue_numbers[4] == "6"
    assert [g.kind for g in chain.gaps] == ["missing"]  # the writer keeps the numbering gap
    with pytest.raises(DataError, match="not amino acids"):
        write_ca_pdb(tmp_path / "bad.pdb", X, "ACDEFGHIK1")
    with pytest.raises(DataError, match="letters but coords"):
        write_ca_pdb(tmp_path / "bad.pdb", X, "ACD")


def test_classical_mds_recovers_real_structures_with_the_right_hand(real_chains):
    for chain in real_chains[::8]:
        X = chain.ca[chain.mask].astype(np.float64)
        D = geo.distance_matrix(X)
        recovered = geo.resolve_handedness(geo.classical_mds(D))
        assert _rmsd_scipy(recovered, X) < 0.01, chain.source
        # The mirror image has the same distances; the torsion rule turns it back.
        mirrored = geo.mirror(X)
        np.testing.assert_allclose(geo.distance_matrix(mirrored), D, atol=1e-9)
        assert geo.rmsd_superposed(geo.resolve_handedness(mirrored), X) < 0.01
        assert geo.rmsd_superposed(mirrored, X) > 1.0  # a mirror is not a rotation


def test_torsion_rule_picks_the_natural_hand_of_every_real_chain(real_chains):
    assert len(real_chains) >= 60
    for chain in real_chains:
        assert geo.chirality_score(chain.ca) > 0, f"{chain.source} {chain.id}"
        assert geo.decide_handedness(geo.mirror(chain.ca)).mirrored


def test_reference_handedness_and_ca_torsions_match_biotite(real_chains):
    import biotite.structure as struc

    X = real_chains[0].ca.astype(np.float64)
    decision = geo.decide_handedness(geo.mirror(X) + 5.0, reference=X)
    assert decision.mirrored and decision.method == "reference" and decision.score < -1.0
    reference = [np.degrees(struc.dihedral(X[i], X[i + 1], X[i + 2], X[i + 3])) for i in range(len(X) - 3)]
    np.testing.assert_allclose(geo.ca_torsions(X), reference, atol=1e-3)  # biotite: float32
    helix = np.stack([[2.3 * np.cos(1.745 * k), 2.3 * np.sin(1.745 * k), 1.5 * k] for k in range(12)])
    assert np.allclose(geo.ca_torsions(helix), 50.0, atol=1.0)  # ideal right-handed alpha helix


def test_kabsch_and_rmsd_against_scipy(real_chains):
    from scipy.spatial.transform import Rotation

    rng = np.random.default_rng(3)
    Q = real_chains[1].ca.astype(np.float64)
    rotation = Rotation.random(random_state=4)
    P = rotation.apply(Q + rng.normal(0, 0.7, Q.shape)) + [10.0, -4.0, 2.0]
    R, t = geo.kabsch(P, Q)
    assert np.allclose(R @ R.T, np.eye(3)) and np.linalg.det(R) == pytest.approx(1.0)
    np.testing.assert_allclose(geo.superpose(P, Q), P @ R.T + t)
    assert geo.rmsd_superposed(P, Q) == pytest.approx(_rmsd_scipy(P, Q), rel=1e-9)
    # Rows missing in either structure are left out of the fit and of the RMSD.
    P_gap, Q_gap = P.copy(), Q.copy()
    P_gap[3], Q_gap[7] = np.nan, np.nan
    keep = np.ones(len(P), bool)
    keep[[3, 7]] = False
    assert geo.rmsd_superposed(P_gap, Q_gap) == pytest.approx(_rmsd_scipy(P[keep], Q[keep]), rel=1e-9)


def test_stress_refinement_improves_noisy_maps_and_fills_masked_pairs(mdanalysis_data):
    rng = np.random.default_rng(0)
    X = parse_structure(mdanalysis_data / "dssp/2xcjA.pdb.gz")[0].ca.astype(np.float64)  # 84 residues
    D = geo.distance_matrix(X)
    noise = rng.normal(0, 1.5, D.shape)
    noisy = np.clip(D + (noise + noise.T) / 2, 0, None)
    np.fill_diagonal(noisy, 0)
    X0 = geo.classical_mds(noisy)
    X1 = geo.refine_stress(noisy, X0, iters=100)
    assert geo.stress(noisy, X1) < geo.stress(noisy, X0)
    # 40% of pairs unknown: shortest-path completion for MDS, then SMACOF on known pairs only.
    known = rng.random(D.shape) > 0.4
    known = known & known.T
    holes = np.where(known, D, np.nan)
    start = geo.classical_mds(holes)
    refined = geo.refine_stress(holes, start, iters=400, tol=0.0)
    assert geo.stress(holes, refined) < 0.01 * geo.stress(holes, start)
    assert geo.rmsd_superposed(geo.resolve_handedness(refined, reference=X), X) < 0.05
    # A residue mask leaves residues out of MDS: their rows come back NaN.
    mask = np.ones(len(X), bool)
    mask[10:15] = False
    Y = geo.classical_mds(D, mask=mask)
    assert np.isnan(Y[10:15]).all() and geo.rmsd_superposed(geo.resolve_handedness(Y), X, mask) < 0.01
