"""The ProMod3 StructureDB source: the export format on a tiny fixture, breaks masked (never
closed), the same filters / duplicate collapse / clustered split as structure files, the
error without ProMod3, and (when Debian's python3-promod3 is installed) the real database."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from loralab.errors import DataError
from loralab.protein.prepare import prepare_structures, read_dataset
from loralab.protein.promod3_export import EXPORT_FORMAT, select
from loralab.protein.promod3_source import (
    SYSTEM_PYTHON,
    export_structuredb,
    promod3_missing_reason,
    read_promod3_npz,
)

RESIDUES = "ACDEFGHIKLMNPQRSTVWY"


def helix(n: int, shift: float = 0.0) -> np.ndarray:
    """An ideal alpha-helix C-alpha trace (3.8 A steps)."""
    t = np.arange(n) * np.radians(100.0)
    return np.stack([2.3 * np.cos(t) + shift, 2.3 * np.sin(t), 1.5 * np.arange(n)], axis=1).astype(np.float32)


def write_fixture(path, chains) -> None:
    """chains: (pdb id, chain name, start resnum, sequence, ca [L, 3]) in the export format."""
    offsets = np.cumsum([0] + [len(c[3]) for c in chains])
    np.savez_compressed(
        path,
        format=np.array(EXPORT_FORMAT),
        ids=np.array([c[0] for c in chains]),
        chains=np.array([c[1] for c in chains]),
        start_resnums=np.array([c[2] for c in chains], dtype=np.int32),
        sequences=np.array([c[3] for c in chains]),
        dssp=np.array(["H" * len(c[3]) for c in chains]),
        offsets=offsets.astype(np.int64),
        ca=np.concatenate([c[4] for c in chains]),
    )


@pytest.fixture
def fixture_npz(tmp_path):
    rng = np.random.default_rng(0)
    seqs = ["".join(rng.choice(list(RESIDUES), 50)) for _ in range(12)]
    chains = [(f"{k + 1}ABC", "A", 1, s, helix(50, k)) for k, s in enumerate(seqs)]
    broken = helix(50).copy()
    broken[25:] += np.array([0.0, 0.0, 9.0], np.float32)  # a 10.5 A jump after residue 25
    chains.append(("9BRK", "B", 10, "".join(rng.choice(list(RESIDUES), 50)), broken))
    chains.append(("9DUP", "A", 1, seqs[0], helix(50)))  # same sequence as 1ABC: collapsed
    chains.append(("9SHR", "A", 1, "ACDEFGHIK", helix(9)))  # too short
    path = tmp_path / "structuredb.npz"
    write_fixture(path, chains)
    return path


def test_reader_keeps_chains_and_masks_breaks(fixture_npz):
    chains = {c.id: c for c in read_promod3_npz(fixture_npz)}
    assert len(chains) == 15
    first = chains["1ABC_A"]
    assert first.chain == "A" and len(first.sequence) == 50 and first.residue_numbers[:2] == ["1", "2"]
    np.testing.assert_allclose(first.coords, helix(50, 0))
    broken = chains["9BRK_B"]
    jump = float(np.linalg.norm(helix(50)[25] + [0, 0, 9.0] - helix(50)[24]))
    # Lower bound on the residues missing: a chain spans at most 3.81 A per step.
    missing = int(np.ceil(jump / 3.81)) - 1
    assert missing >= 1 and len(broken.sequence) == 50 + missing
    assert broken.sequence[25 : 25 + missing] == "X" * missing
    assert np.isnan(broken.coords[25 : 25 + missing]).all()
    assert np.isfinite(broken.coords[:25]).all() and np.isfinite(broken.coords[25 + missing :]).all()
    (gap,) = broken.gaps
    assert gap["after"] == 24 and gap["missing"] == missing and gap["estimated"]
    assert broken.residue_numbers[24] == "34" and broken.residue_numbers[25] == ""  # start 10


def test_prepare_reads_promod3_with_the_same_rules(fixture_npz, tmp_path):
    out = prepare_structures(
        None, tmp_path / "ds", promod3=fixture_npz, min_length=30, seed=0, progress=False,
        split_fractions={"train": 0.6, "val": 0.2, "test": 0.2},
    )  # fmt: skip
    summary = json.loads((out / "summary.json").read_text())
    kinds = {s["id"]: s["kind"] for s in summary["skipped"]}
    assert kinds == {"9SHR_A": "too_short", "9DUP_A": "duplicate"}
    records = read_dataset(out, None)
    assert len(records) == 13 and summary["promod3"]["source"] == str(fixture_npz)
    broken = next(r for r in records if r.id == "9BRK_B")
    assert (~broken.mask).sum() == len(broken.sequence) - 50  # the break stays masked
    assert {r.split for r in records} == {"train", "val", "test"}
    # Clustered split: identical sequences were collapsed, so every cluster sits in one split.
    by_cluster: dict[int, set] = {}
    for r in records:
        by_cluster.setdefault(r.cluster, set()).add(r.split)
    assert all(len(s) == 1 for s in by_cluster.values())


def test_not_an_export_is_a_clear_error(tmp_path):
    bad = tmp_path / "x.npz"
    np.savez(bad, ids=np.array(["A"]))
    with pytest.raises(DataError, match="not a loralab ProMod3 export"):
        read_promod3_npz(bad)


def test_missing_promod3_names_the_install_command(tmp_path):
    """The venv's own Python never has ProMod3 (Debian builds it for /usr/bin/python3 only)."""
    assert promod3_missing_reason(sys.executable) is not None
    with pytest.raises(DataError, match=r"apt-get install -y python3-promod3") as err:
        export_structuredb(tmp_path / "x.npz", limit=3, python=sys.executable)
    assert "--structures" in str(err.value) and "--promod3 FILE.npz" in str(err.value)


def test_export_selection_spreads_over_the_length_window():
    sizes = [10, 50, 60, 300, 70, 80, 90, 20]
    assert select(sizes, None, 40, 100) == [1, 2, 4, 5, 6]
    assert select(sizes, 3, 40, 100) == [1, 4, 6]  # first, middle and last of the fitting ones
    assert select(sizes, 10, 40, 100) == [1, 2, 4, 5, 6]


@pytest.mark.skipif(promod3_missing_reason() is not None, reason="Debian python3-promod3 not installed")
def test_real_structuredb_export(tmp_path):
    path = export_structuredb(
        tmp_path / "db.npz", limit=5, min_length=40, max_length=128, python=SYSTEM_PYTHON
    )
    chains = read_promod3_npz(path)
    assert len(chains) == 5 and all(40 <= len(c.sequence) for c in chains)
    for c in chains:
        ok = np.isfinite(c.coords).all(axis=1)
        steps = np.linalg.norm(np.diff(c.coords[ok], axis=0), axis=1)
        assert 3.6 < np.median(steps) < 4.0  # real C-alpha traces


def test_asking_for_more_chains_than_the_database_holds_gives_the_count(fixture_npz, monkeypatch):
    from loralab.protein import promod3_source

    # The export (Debian's Python) stands in as the fixture: 15 chains in the window asked for.
    monkeypatch.setattr(promod3_source, "export_structuredb", lambda out, limit, lo, hi: fixture_npz)
    assert len(promod3_source.promod3_chains("auto", 15, 1, 200)) == 15
    with pytest.raises(DataError, match=r"asked for 16 ProMod3 chains .* holds 15 in that length window"):
        promod3_source.promod3_chains("auto", 16, 1, 200)
