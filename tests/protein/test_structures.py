"""Structure parsing on real PDB/mmCIF files (MDAnalysisTests), checked against biotite's reader."""

from __future__ import annotations

import gzip
import warnings

import numpy as np
import pytest

from loralab.errors import DataError
from loralab.protein.structures import StructureWarning, expand_gaps, parse_structure, read_structure


def _pdb_lines(path) -> list[str]:
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt") as f:
        return f.read().splitlines()


def _write(tmp_path, name, lines) -> str:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def _biotite_ca(path, chain_id):
    """Independent reference: biotite's PDB reader, highest-occupancy altlocs, CA atoms."""
    import biotite.structure as struc
    import biotite.structure.io.pdb as pdb

    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt") as f, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "elements were guessed from atom name"
        atoms = pdb.PDBFile.read(f).get_structure(model=1, altloc="occupancy", extra_fields=["occupancy"])
    ca = atoms[(atoms.atom_name == "CA") & (atoms.chain_id == chain_id) & struc.filter_amino_acids(atoms)]
    return ca


@pytest.mark.parametrize("name", ["dssp/1ahsA.pdb.gz", "dssp/3so6A.pdb.gz", "1a28.pdb.gz", "4E43.pdb"])
def test_coordinates_and_sequence_match_biotite(mdanalysis_data, name):
    import biotite.sequence as bseq

    chains = parse_structure(mdanalysis_data / name)
    for chain in chains:
        reference = _biotite_ca(mdanalysis_data / name, chain.id)
        assert len(chain) == len(reference), chain.id
        np.testing.assert_allclose(chain.ca, reference.coord, atol=1e-3)
        expected = "".join(bseq.ProteinSequence.convert_letter_3to1(r) for r in reference.res_name)
        assert chain.sequence == expected
        assert chain.ca.dtype == np.float32 and chain.mask.all()


def test_mmcif_and_pdb_of_one_entry_agree_and_gaps_use_seqres(mdanalysis_data):
    from_cif = {c.id: c for c in parse_structure(mdanalysis_data / "mmcif/1BD2.cif.gz")}
    from_pdb = {c.id: c for c in parse_structure(mdanalysis_data / "mmcif/1BD2.pdb.gz")}
    assert sorted(from_cif) == sorted(from_pdb) == ["A", "B", "C", "D", "E"]
    for chain_id, chain in from_cif.items():
        assert chain.sequence == from_pdb[chain_id].sequence
        np.testing.assert_allclose(chain.ca, from_pdb[chain_id].ca, atol=1e-3)
    chain = from_cif["D"]
    missing = [g for g in chain.gaps if g.kind == "missing"]
    assert missing, "chain D of 1BD2 has unmodelled loops"
    sequence, coords, numbers = expand_gaps(chain)
    # Inserted letters come from SEQRES (no X), the expanded sequence is a run of SEQRES.
    import gemmi

    st = gemmi.read_structure(str(mdanalysis_data / "mmcif/1BD2.cif.gz"))
    seqres = gemmi.one_letter_code(st.get_entity("4").full_sequence)
    assert "X" not in sequence and sequence in seqres
    assert len(sequence) == len(chain) + sum(g.missing for g in missing)
    assert np.isnan(coords).any(axis=1).sum() == sum(g.missing for g in missing)
    for gap in missing:  # the residues on both sides of a loop are more than bonded apart
        assert gap.ca_distance > 4.2 and len(gap.missing_sequence) == gap.missing


def test_numbering_gap_without_seqres_is_recorded_not_closed(mdanalysis_data, tmp_path):
    lines = [
        ln for ln in _pdb_lines(mdanalysis_data / "dssp/3so6A.pdb.gz") if ln.startswith(("ATOM", "HETATM"))
    ]
    first = int(lines[0][22:26])
    cut = range(first + 40, first + 45)
    kept = [ln for ln in lines if int(ln[22:26]) not in cut]
    chain = parse_structure(_write(tmp_path, "gap.pdb", kept))[0]
    full = parse_structure(mdanalysis_data / "dssp/3so6A.pdb.gz")[0]
    assert len(chain) == len(full) - 5
    (gap,) = [g for g in chain.gaps if g.kind == "missing"]
    assert gap.missing == 5 and gap.missing_sequence == "XXXXX" and gap.after == 39
    sequence, coords, numbers = expand_gaps(chain)
    assert len(sequence) == len(full) and sequence[40:45] == "XXXXX"
    assert np.isnan(coords[40:45]).all() and np.isfinite(np.delete(coords, range(40, 45), 0)).all()
    np.testing.assert_allclose(coords[45:], full.ca[45:])
    assert numbers[40:45] == [""] * 5 and chain.missing_fraction == pytest.approx(5 / len(full))


def test_modified_residues_altlocs_and_unknown_names(mdanalysis_data, tmp_path):
    lines = [ln for ln in _pdb_lines(mdanalysis_data / "dssp/1ahsA.pdb.gz") if ln.startswith("ATOM")]
    numbers = sorted({int(ln[22:26]) for ln in lines})
    mse, unknown, alt = numbers[10], numbers[20], numbers[30]
    edited = []
    for ln in lines:
        num = int(ln[22:26])
        if num == mse:  # selenomethionine as HETATM
            ln = "HETATM" + ln[6:17] + "MSE" + ln[20:]
        elif num == unknown:  # a residue name no table knows, with a backbone
            ln = ln[:17] + "ZZZ" + ln[20:]
        if num == alt and ln[12:16] == " CA ":
            # Two conformers: A at occupancy 0.40, B (shifted 1 A in x) at 0.60.
            x = float(ln[30:38])
            edited.append(ln[:16] + "A" + ln[17:54] + "  0.40" + ln[60:])
            edited.append(ln[:16] + "B" + ln[17:30] + f"{x + 1.0:8.3f}" + ln[38:54] + "  0.60" + ln[60:])
            continue
        edited.append(ln)
    chain = parse_structure(_write(tmp_path, "mod.pdb", edited))[0]
    original = parse_structure(mdanalysis_data / "dssp/1ahsA.pdb.gz")[0]
    i_mse, i_unk, i_alt = (original.residue_numbers.index(str(n)) for n in (mse, unknown, alt))
    assert chain.sequence[i_mse] == "M" and chain.sequence[i_unk] == "X"
    assert chain.sequence[:i_unk] == original.sequence[:i_mse] + "M" + original.sequence[i_mse + 1 : i_unk]
    assert (str(mse), "MSE", "M") in chain.modified and (str(unknown), "ZZZ", "X") in chain.modified
    assert chain.ca[i_alt, 0] == pytest.approx(original.ca[i_alt, 0] + 1.0, abs=1e-3)
    assert not chain.gaps


def test_force_field_residue_names_and_insertion_codes(mdanalysis_data):
    adk = parse_structure(mdanalysis_data / "adk_open.pdb")[0]  # CHARMM names (HSD), chain id from segment
    assert len(adk) == 214 and "X" not in adk.sequence and adk.id == "4AKE"
    assert adk.sequence.count("H") == sum(1 for m in adk.modified if m[1] == "HSD")
    osm = parse_structure(mdanalysis_data / "1osm.pdb.gz")[0]
    assert any(n[-1].isalpha() for n in osm.residue_numbers)  # e.g. 181A
    assert all(g.kind == "numbering" for g in osm.gaps)  # jumps in numbering, nothing missing


def test_multi_model_file_warns_and_uses_first_model(mdanalysis_data):
    path = mdanalysis_data / "nmr_neopetrosiamide.pdb"
    with pytest.warns(StructureWarning, match="24 models"):
        chain = parse_structure(path)[0]
    first_model = []
    for ln in _pdb_lines(path):
        if ln.startswith("ENDMDL"):
            break
        if ln.startswith(("ATOM", "HETATM")) and ln[12:16] == " CA ":
            first_model.append([float(ln[30:38]), float(ln[38:46]), float(ln[46:54])])
    np.testing.assert_allclose(chain.ca, np.array(first_model), atol=1e-3)


def test_bad_inputs_raise_clear_errors(mdanalysis_data, tmp_path):
    text = tmp_path / "notes.pdb"
    text.write_text("these are my notes, not a structure\n")
    with pytest.raises(DataError, match="no atoms"):
        parse_structure(text)
    with pytest.raises(DataError, match="not found"):
        parse_structure(tmp_path / "absent.pdb")
    # Water only: no protein chain.
    water = [
        ln for ln in _pdb_lines(mdanalysis_data / "1a28.pdb.gz") if ln.startswith("HETATM") and "HOH" in ln
    ]
    with pytest.raises(DataError, match="no protein chain"):
        parse_structure(_write(tmp_path, "water.pdb", water))
    # An empty chain: amino acids without any C-alpha (only N atoms), beside a good chain.
    lines = [ln for ln in _pdb_lines(mdanalysis_data / "dssp/2xcjA.pdb.gz") if ln.startswith("ATOM")]
    no_ca = [ln[:21] + "B" + ln[22:] for ln in lines if ln[12:16] == " N  "][:20]
    with (
        pytest.raises(DataError, match="no C-alpha"),
        pytest.warns(StructureWarning, match="chain B left out"),
    ):
        parse_structure(_write(tmp_path, "empty_chain.pdb", no_ca))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        chains = parse_structure(_write(tmp_path, "mixed.pdb", lines + ["TER"] + no_ca))
    assert [c.id for c in chains] == ["A"]
    assert any("chain B left out" in str(w.message) for w in caught)
    parsed = read_structure(_write(tmp_path, "mixed2.pdb", lines + ["TER"] + no_ca))
    assert parsed.skipped == [("B", "20 amino-acid residues but no C-alpha atom")]
