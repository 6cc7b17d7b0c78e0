"""Residue names and letters: the one-letter alphabet of loralab sequences and how a
structure file's residue names (standard, modified, force-field) map onto it."""

from __future__ import annotations

# The one-letter alphabet of loralab protein sequences (20 standard residues + X unknown).
ONE_TO_THREE = {
    "A": "ALA", "C": "CYS", "D": "ASP", "E": "GLU", "F": "PHE", "G": "GLY", "H": "HIS",
    "I": "ILE", "K": "LYS", "L": "LEU", "M": "MET", "N": "ASN", "P": "PRO", "Q": "GLN",
    "R": "ARG", "S": "SER", "T": "THR", "V": "VAL", "W": "TRP", "Y": "TYR", "X": "UNK",
}  # fmt: skip
THREE_TO_ONE = {three: one for one, three in ONE_TO_THREE.items()}
# Parents outside the 20-letter alphabet: selenocysteine is a cysteine, pyrrolysine a lysine.
PARENT_OVERRIDE = {"U": "C", "O": "K"}
# Protonation-state names of simulation force fields (CHARMM, AMBER, GROMACS), absent from
# the PDB's chemical component table, mapped to their standard residue.
FORCE_FIELD_NAMES = {
    **dict.fromkeys(["HSD", "HSE", "HSP", "HID", "HIE", "HIP", "HISA", "HISB", "HISD", "HISE", "HISH"], "H"),
    **dict.fromkeys(["CYX", "CYM", "CYS2"], "C"),
    **dict.fromkeys(["ASH", "ASPH"], "D"),
    **dict.fromkeys(["GLH", "GLUH"], "E"),
    **dict.fromkeys(["LYN", "LYSN"], "K"),
}


def is_amino_acid(residue, modres: dict[str, str]) -> bool:
    """Whether a gemmi residue is an amino acid: standard, modified (MODRES), a force field's
    name, or gemmi's table says so; else whether it has the backbone atoms."""
    import gemmi

    if residue.name in THREE_TO_ONE or residue.name in modres or residue.name in FORCE_FIELD_NAMES:
        return True
    info = gemmi.find_tabulated_residue(residue.name)
    if info is not None and info.found():
        return info.is_amino_acid()
    # Not in gemmi's table (a rare modified residue): an amino acid if it has the backbone.
    names = {atom.name for atom in residue}
    return {"N", "CA", "C"} <= names


def residue_letter(name: str, modres: dict[str, str] | None = None) -> str:
    """One letter for a residue name: standard, parent of a modified residue, else X."""
    import gemmi

    if name in THREE_TO_ONE:
        return THREE_TO_ONE[name]
    parent = (modres or {}).get(name)
    if parent in THREE_TO_ONE:
        return THREE_TO_ONE[parent]
    if name in FORCE_FIELD_NAMES:
        return FORCE_FIELD_NAMES[name]
    info = gemmi.find_tabulated_residue(name)
    if info is not None and info.found() and info.is_amino_acid():
        code = PARENT_OVERRIDE.get(info.one_letter_code, info.one_letter_code).upper()
        if code in THREE_TO_ONE.values() and code != "X":
            return code
    return "X"
