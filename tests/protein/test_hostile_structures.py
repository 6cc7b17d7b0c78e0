"""Round 3 on structure files: two different residues sharing a number are both kept (said in a
warning), C-alpha atoms all at one point are a chain left out saying so, and a file of ligands
only is told it holds no protein chain, not to loosen the length filters."""

from __future__ import annotations

import pytest

from loralab.errors import DataError
from loralab.protein.prepare import prepare_structures
from loralab.protein.structures import read_structure


def _pdb(path, residues, record="ATOM  "):
    """A PDB of C-alpha atoms: ``residues`` as (name, number, x, y, z, altloc)."""
    lines = []
    for serial, (name, number, x, y, z, altloc) in enumerate(residues, 1):
        lines.append(
            f"{record}{serial:5d}  CA {altloc or ' '}{name} A{number:4d}    {x:8.3f}{y:8.3f}{z:8.3f}  1.00 20.00           C"
        )
    path.write_text("\n".join(lines) + "\nEND\n")
    return path


def _helix(n, start=1):
    return [("ALA", start + i, 3.8 * i, 0.0, 0.0, "") for i in range(n)]


def test_two_residues_sharing_a_number_are_both_kept_with_a_warning(tmp_path):
    residues = _helix(3) + [("GLY", 3, 11.4, 3.8, 0.0, "")] + _helix(3, start=4)
    residues[4:] = [(n, k, x + 3.8, y, z, a) for n, k, x, y, z, a in residues[4:]]
    parsed = read_structure(_pdb(tmp_path / "dup.pdb", residues))
    [chain] = parsed.chains
    assert chain.sequence == "AAAGAAA"  # the G is not dropped
    assert any("residue number(s) 3 used by two different residues" in w for w in parsed.warnings)


def test_alternate_conformers_of_one_residue_are_still_one(tmp_path):
    residues = (
        _helix(3) + [("SER", 4, 11.4, 0.0, 0.0, "A"), ("SER", 4, 11.6, 0.2, 0.0, "B")] + _helix(2, start=5)
    )
    residues[5:] = [(n, k, x + 3.8, y, z, a) for n, k, x, y, z, a in residues[5:]]
    parsed = read_structure(_pdb(tmp_path / "alt.pdb", residues))
    assert parsed.chains[0].sequence == "AAASAA" and not any("two different" in w for w in parsed.warnings)


def test_c_alphas_all_at_one_point_are_left_out_saying_so(tmp_path):
    flat = [("ALA", i, 0.0, 0.0, 0.0, "") for i in range(1, 41)]
    parsed = read_structure(_pdb(tmp_path / "zeros.pdb", flat))
    assert parsed.chains == []
    assert parsed.skipped == [
        ("A", "all 40 C-alpha atoms at one point (0.0, 0.0, 0.0): no coordinates (a placeholder?)")
    ]


def test_a_ligand_only_file_is_not_told_to_loosen_the_length_filters(tmp_path):
    folder = tmp_path / "s"
    folder.mkdir()
    _pdb(folder / "lig.pdb", [("LIG", 101, 1.0, 2.0, 3.0, "")], record="HETATM")
    with pytest.raises(DataError) as info:
        prepare_structures(folder, tmp_path / "out", progress=False)
    message = str(info.value)
    assert "lig.pdb: no protein chain with C-alpha atoms" in message and "HETATM records only" in message
    assert "--min-length" not in message


def test_chains_left_out_by_a_filter_are_told_which_filter(tmp_path):
    folder = tmp_path / "s"
    folder.mkdir()
    _pdb(folder / "short.pdb", _helix(10))
    with pytest.raises(DataError) as info:
        prepare_structures(folder, tmp_path / "out", progress=False)
    assert "length 10 < min_length 30" in str(info.value) and "loosen --min-length" in str(info.value)
