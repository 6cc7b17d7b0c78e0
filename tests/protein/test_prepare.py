"""`loralab protein prepare` on real structures: filters, duplicates, gaps, identity-cluster splits."""

from __future__ import annotations

import gzip
import json
import shutil

import numpy as np
import pytest

from loralab.errors import DataError
from loralab.protein.clustering import assign_splits, sequence_identity
from loralab.protein.prepare import prepare_structures, read_dataset
from loralab.protein.structures import parse_structure

DSSP_CHAINS = ["2xcjA", "1lpbA", "2cviA", "1i8nA", "2xdgA", "2va0A", "1mr1D", "3ny7A"]
FRACTIONS = {"train": 0.6, "val": 0.2, "test": 0.2}


def _atom_lines(path) -> list[str]:
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt") as f:
        return [ln for ln in f.read().splitlines() if ln.startswith(("ATOM", "HETATM"))]


@pytest.fixture(scope="module")
def structures(mdanalysis_data, tmp_path_factory):
    data = mdanalysis_data
    root = tmp_path_factory.mktemp("structures")
    for name in DSSP_CHAINS:
        shutil.copy(data / "dssp" / f"{name}.pdb.gz", root)
    nested = root / "more"
    nested.mkdir()
    for name in ["1hvr.pdb", "5a7u.pdb", "nmr_neopetrosiamide.pdb", "mmcif/5PTI.cif.gz"]:
        shutil.copy(data / name, nested)
    # A chain without its residues 30-34 (0-based; numbering jumps, no SEQRES): a gap of 5.
    lines = _atom_lines(data / "dssp/3a4rA.pdb.gz")
    cut = set(sorted({int(ln[22:26]) for ln in lines})[30:35])
    (root / "gapped.pdb").write_text("\n".join(ln for ln in lines if int(ln[22:26]) not in cut) + "\nEND\n")
    # A homolog of 2xcjA: every third residue mutated (to GLY, or ALA where it was GLY).
    lines = _atom_lines(data / "dssp/2xcjA.pdb.gz")
    numbers = sorted({int(ln[22:26]) for ln in lines})
    mutated = set(numbers[::3])
    (root / "homolog.pdb").write_text(
        "\n".join(
            ln[:17] + ("ALA" if ln[17:20] == "GLY" else "GLY") + ln[20:] if int(ln[22:26]) in mutated else ln
            for ln in lines
        )
        + "\nEND\n"
    )
    (root / "notes.pdb").write_text("not a structure at all\n")
    (root / "README.txt").write_text("a file that is not a structure\n")
    return {"root": root, "homolog_identity": 1 - len(mutated) / len(numbers)}


@pytest.fixture(scope="module")
def dataset(structures, tmp_path_factory):
    out = tmp_path_factory.mktemp("dataset")
    return prepare_structures(structures["root"], out, split_fractions=FRACTIONS, seed=3, progress=False)


def test_manifest_coordinates_and_gaps(dataset, structures):
    records = read_dataset(dataset, None)
    ids = [r.id for r in records]
    assert len(ids) == len(set(ids)) == 12
    assert set(ids) >= {f"{n}_{n[-1]}" for n in DSSP_CHAINS} | {"gapped_A", "homolog_A", "5PTI_A"}
    assert {"1hvr_A", "1hvr_B"} & set(ids) and not {"1hvr_A", "1hvr_B"} <= set(ids)  # duplicates
    for record in records:
        assert record.coords.dtype == np.float32 and record.coords.shape == (record.length, 3)
        assert len(record.sequence) == record.length == len(record.residue_numbers)
        assert set(record.sequence) <= set("ACDEFGHIKLMNPQRSTVWYX")
        original = parse_structure(record.source)
        chain = next(c for c in original if c.id == record.chain)
        np.testing.assert_array_equal(record.coords[record.mask], chain.ca[chain.mask])
    gapped = next(r for r in records if r.id == "gapped_A")
    assert (~gapped.mask).sum() == 5 and not gapped.mask[30:35].any() and gapped.mask[:30].all()
    assert gapped.sequence[30:35] == "XXXXX" and gapped.missing_fraction == pytest.approx(
        5 / gapped.length, abs=1e-4
    )
    (gap,) = [g for g in gapped.gaps if g["kind"] == "missing"]  # 3a4rA also jumps from 0 to 339
    assert gap["missing"] == 5 and gap["after"] == 29 and gap["ca_distance"] > 4.2


def test_splits_follow_identity_clusters(dataset, structures):
    records = read_dataset(dataset, None)
    by_split = {name: read_dataset(dataset, name) for name in FRACTIONS}
    assert sum(len(v) for v in by_split.values()) == len(records)
    assert all(by_split.values()), "every split gets chains"
    cluster_splits = {}
    for r in records:
        cluster_splits.setdefault(r.cluster, set()).add(r.split)
    assert all(len(s) == 1 for s in cluster_splits.values())
    original = next(r for r in records if r.id == "2xcjA_A")
    homolog = next(r for r in records if r.id == "homolog_A")
    assert homolog.cluster == original.cluster and homolog.split == original.split
    # The identity of a gapless mutant is known exactly: 1 - mutated / length.
    assert sequence_identity(original.sequence, homolog.sequence) == pytest.approx(
        structures["homolog_identity"]
    )
    # No pair of chains in different splits reaches the threshold (brute force over pairs).
    for a in records:
        for b in records:
            if a.id < b.id and a.split != b.split:
                assert sequence_identity(a.sequence, b.sequence) < 0.3, (a.id, b.id)


def test_summary_reports_everything_left_out_and_distance_statistics(dataset, structures):
    from scipy.spatial.distance import pdist

    summary = json.loads((dataset / "summary.json").read_text())
    assert summary["chains"]["kept"] == 12
    kinds = {(s["file"].rsplit("/", 1)[-1], s["kind"]) for s in summary["skipped"]}
    assert ("5a7u.pdb", "too_short") in kinds and ("nmr_neopetrosiamide.pdb", "too_short") in kinds
    assert ("1hvr.pdb", "duplicate") in kinds
    assert [f["file"].rsplit("/", 1)[-1] for f in summary["files"]["failed"]] == ["notes.pdb"]
    assert summary["files"]["other_files_ignored"] == 1
    assert any("24 models" in w for w in summary["warnings"])
    assert summary["gaps"]["missing"] == 1 and summary["clustering"]["clusters"] == 11
    records = read_dataset(dataset, None)
    distances = np.concatenate([pdist(r.coords[r.mask].astype(np.float64)) for r in records])
    stats = summary["distances"]["all_pairs"]
    assert stats["n"] == len(distances)
    assert stats["mean"] == pytest.approx(distances.mean(), abs=1e-3)
    assert stats["std"] == pytest.approx(distances.std(), abs=1e-3)
    assert stats["min"] == pytest.approx(distances.min(), abs=1e-3)
    assert stats["max"] == pytest.approx(distances.max(), abs=1e-3)
    neighbours = summary["distances"]["sequential_neighbours"]
    assert neighbours["mean"] == pytest.approx(3.8, abs=0.05) and neighbours["max"] < 4.3
    assert sum(s["chains"] for s in summary["splits"].values()) == 12


def test_same_seed_same_data_set_and_cli(structures, dataset, tmp_path, capsys):
    from loralab.cli.main import main

    out = tmp_path / "again"
    code = main(
        ["protein", "prepare", "--structures", str(structures["root"]), "--out", str(out)]
        + ["--split", "0.6,0.2,0.2", "--seed", "3"]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "12 chains kept" in printed and "duplicate x1" in printed
    assert (out / "manifest.jsonl").read_text() == (dataset / "manifest.jsonl").read_text()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["protein", "prepare", "--structures", str(empty), "--out", str(tmp_path / "x")]) == 2
    assert "no structure files" in capsys.readouterr().err


def test_read_dataset_errors(dataset, tmp_path):
    with pytest.raises(DataError, match="loralab protein prepare"):
        read_dataset(tmp_path, "train")
    with pytest.raises(DataError, match="splits present: test, train, val"):
        read_dataset(dataset, "validation")


def test_read_dataset_names_a_truncated_coordinates_file(dataset, tmp_path):
    from loralab.errors import LoralabError

    copy = tmp_path / "copy"
    shutil.copytree(dataset, copy)
    first = json.loads((copy / "manifest.jsonl").read_text().splitlines()[0])["id"]
    coords = copy / "coords" / f"{first}.npy"
    coords.write_bytes(coords.read_bytes()[:100])
    with pytest.raises(LoralabError, match=f"{first}.npy.*re-run 'loralab protein prepare'"):
        read_dataset(copy, None)


def test_assign_splits_keeps_clusters_whole_and_close_to_fractions():
    clusters = [0] * 10 + [1] * 4 + list(range(2, 40))  # 52 chains, 40 clusters
    split_of, notes = assign_splits(clusters, {"train": 0.8, "val": 0.1, "test": 0.1}, seed=0)
    counts = {name: sum(1 for c in clusters if split_of[c] == name) for name in ("train", "val", "test")}
    assert counts["train"] >= 40 and 4 <= counts["val"] <= 6 and 4 <= counts["test"] <= 6 and not notes
    _, notes = assign_splits([0, 0, 1], {"train": 0.8, "val": 0.1, "test": 0.1}, seed=0)
    assert any("split 'test' is empty" in n for n in notes)
