"""Protein chains from PDB / mmCIF files (plain or gzipped), read with gemmi.

What a :class:`Chain` holds, and why:

* Only the first model (NMR ensembles and trajectories carry several; a warning says so).
* Residues of the chain's polymer that are amino acids, in file order. Where a residue has
  alternate conformations (altlocs, or two residue names at one number), the one whose
  C-alpha has the highest occupancy is kept (ties: the first).
* ``sequence``: one letter per residue from the alphabet ``ACDEFGHIKLMNPQRSTVWYX``.
  Standard residues by name; modified ones by their parent (the file's MODRES records
  first, then gemmi's residue table, e.g. MSE -> M, SEP -> S); anything else X. Each
  non-standard residue is listed in ``modified`` (number, name, letter).
* ``ca``: float32 ``[L, 3]``; a residue present without a CA atom gets a row of NaN.
* ``gaps``: every place where consecutive residues are not consecutive in the protein.
  ``kind="missing"``: residues are missing (counted from SEQRES when the file has it,
  else from the residue numbering); ``kind="numbering"``: the numbering jumps but the two
  C-alphas are bonded (<= 4.2 A), so nothing is missing; ``kind="break"``: the chain is
  broken (C-alphas > 4.2 A apart) with no count of what is missing. Gaps are recorded, never
  closed: :func:`expand_gaps` gives the positional view that the data set uses.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from loralab.errors import DataError
from loralab.protein.residues import THREE_TO_ONE, is_amino_acid, residue_letter

STRUCTURE_SUFFIXES = (".pdb", ".ent", ".cif", ".mmcif", ".pdbx")
BONDED_CA_MAX = 4.2  # A; trans peptides put C-alphas 3.8 A apart, cis ones ~2.9 A


class StructureWarning(UserWarning):
    """Something in a structure file that loralab worked around (multi-model, dropped chain)."""


@dataclass
class Gap:
    """A discontinuity after residue index ``after`` (0-based, in the chain's residues)."""

    after: int
    kind: str  # "missing" | "numbering" | "break"
    missing: int  # residues missing between the two (0 unless kind == "missing")
    missing_sequence: str  # their letters (from SEQRES, else X)
    number_before: str
    number_after: str
    ca_distance: float  # NaN when either C-alpha is absent

    def to_dict(self) -> dict:
        d = dict(self.__dict__)
        d["ca_distance"] = None if not np.isfinite(self.ca_distance) else round(float(self.ca_distance), 3)
        return d


@dataclass
class Chain:
    """One protein chain as read from a structure file (see the module docstring)."""

    id: str
    sequence: str
    ca: np.ndarray
    residue_numbers: list[str]
    gaps: list[Gap]
    source: str
    modified: list[tuple[str, str, str]] = field(default_factory=list)
    seqres_length: int | None = None  # length of the SEQRES sequence when the file has one
    terminal_missing: int = 0  # SEQRES residues before the first / after the last residue

    def __len__(self) -> int:
        return len(self.sequence)

    @property
    def mask(self) -> np.ndarray:
        """True where the residue's C-alpha is present."""
        return np.isfinite(self.ca).all(axis=1)

    @property
    def missing_fraction(self) -> float:
        """Residues without a C-alpha (absent, in gaps or at SEQRES termini) over all residues."""
        inserted = sum(g.missing for g in self.gaps)
        absent = int((~self.mask).sum()) + inserted + self.terminal_missing
        total = len(self) + inserted + self.terminal_missing
        return absent / total if total else 1.0


@dataclass
class ParsedStructure:
    """Everything :func:`read_structure` found: chains, chains left out (with why), warnings."""

    path: str
    chains: list[Chain]
    skipped: list[tuple[str, str]]  # (chain id, reason)
    warnings: list[str]
    n_models: int


def expand_gaps(chain: Chain) -> tuple[str, np.ndarray, list[str]]:
    """Sequence, coordinates and residue numbers with missing residues inserted.

    Residues known to be missing inside the chain (gaps of kind "missing") become
    positions with their SEQRES letter (or X), NaN coordinates and residue number "".
    Terminal residues missing from the model are not added (nothing anchors them).
    """
    letters, rows, numbers = [], [], []
    gaps_after = {g.after: g for g in chain.gaps if g.kind == "missing"}
    nan_row = np.full(3, np.nan, dtype=np.float32)
    for i, letter in enumerate(chain.sequence):
        letters.append(letter)
        rows.append(chain.ca[i])
        numbers.append(chain.residue_numbers[i])
        gap = gaps_after.get(i)
        if gap is not None:
            letters.extend(gap.missing_sequence)
            rows.extend([nan_row] * gap.missing)
            numbers.extend([""] * gap.missing)
    coords = np.stack(rows).astype(np.float32) if rows else np.zeros((0, 3), np.float32)
    return "".join(letters), coords, numbers


def is_structure_file(path: Path) -> bool:
    name = path.name.lower()
    if name.endswith(".gz"):
        name = name[:-3]
    return name.endswith(STRUCTURE_SUFFIXES)


def parse_structure(path) -> list[Chain]:
    """The protein chains of a PDB/mmCIF file (gz too); warnings for what was worked around.

    Raises :class:`DataError` when the file is not a structure or has no protein chain with
    C-alpha atoms.
    """
    parsed = read_structure(path)
    for message in parsed.warnings:
        warnings.warn(message, StructureWarning, stacklevel=2)
    for chain_id, reason in parsed.skipped:
        warnings.warn(f"{path}: chain {chain_id} left out: {reason}", StructureWarning, stacklevel=2)
    if not parsed.chains:
        reasons = "; ".join(f"chain {c}: {r}" for c, r in parsed.skipped) or "no amino-acid residues"
        raise DataError(f"{path}: no protein chain with C-alpha atoms ({reasons})")
    return parsed.chains


def read_structure(path) -> ParsedStructure:
    """Parse ``path`` without raising for empty chains: they are listed in ``skipped``."""
    import gemmi

    path = Path(path)
    if not path.is_file():
        raise DataError(f"structure file not found: {path}")
    try:
        st = gemmi.read_structure(str(path), merge_chain_parts=True)
    except (RuntimeError, ValueError) as e:
        raise DataError(f"{path}: not a readable PDB/mmCIF structure ({e})") from e
    n_models = len(st)
    if n_models == 0 or sum(len(ch) for ch in st[0]) == 0:
        raise DataError(
            f"{path}: no atoms found; is this a PDB or mmCIF file? (gemmi read format {st.input_format.name})"
        )
    messages = []
    if n_models > 1:
        messages.append(f"{path}: {n_models} models; using the first only")
    has_seqres = {ent.name for ent in st.entities if ent.full_sequence}
    st.setup_entities()
    if has_seqres:
        st.assign_label_seq_id(force=False)
    modres = {m.res_id.name: m.parent_comp_id for m in st.mod_residues if m.parent_comp_id}
    chains, skipped, used_ids = [], [], set()
    for gchain in st[0]:
        chain_id = gchain.name or _segment_of(gchain) or "_"
        polymer = gchain.get_polymer()
        residues = list(polymer) if len(polymer) else list(gchain)
        residues = [r for r in residues if is_amino_acid(r, modres)]
        if not residues:
            # Waters and ions alone are not worth a word; a nucleic acid or ligands are.
            names = sorted({r.name for r in gchain if not r.is_water() and len(r) > 1})
            if names:
                shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
                skipped.append((chain_id, f"no amino-acid residues ({shown})"))
            continue
        residues, repeated = _highest_occupancy_conformers(residues)
        if repeated:
            shown = ", ".join(repeated[:5]) + (", ..." if len(repeated) > 5 else "")
            messages.append(
                f"{path} chain {chain_id}: residue number(s) {shown} used by two different residues (not "
                "alternate conformers): both kept, in file order; renumber the file if that is wrong"
            )
        if not any(_best_ca(r) is not None for r in residues):
            skipped.append((chain_id, f"{len(residues)} amino-acid residues but no C-alpha atom"))
            continue
        collapsed = _collapsed_coordinates(residues)
        if collapsed:
            skipped.append((chain_id, collapsed))
            continue
        entity = st.get_entity_of(polymer) if len(polymer) else None
        seqres = list(entity.full_sequence) if entity is not None and entity.name in has_seqres else []
        unique_id = chain_id
        while unique_id in used_ids:
            unique_id += "'"
        used_ids.add(unique_id)
        chains.append(_build_chain(unique_id, residues, seqres, modres, str(path)))
    return ParsedStructure(str(path), chains, skipped, messages, n_models)


def _segment_of(gchain) -> str:
    for residue in gchain:
        if residue.segment.strip():
            return residue.segment.strip()
    return ""


def _best_ca(residue):
    """The C-alpha atom with the highest occupancy (first one on ties), or None."""
    best = None
    for atom in residue:
        if atom.name == "CA" and (best is None or atom.occ > best.occ):
            best = atom
    return best


def _collapsed_coordinates(residues: list) -> str | None:
    """Why the C-alpha atoms cannot be a structure (all at one point: zeros or a placeholder), or None."""
    cas = [a.pos for a in map(_best_ca, residues) if a is not None]
    if len(cas) < 2:
        return None
    xyz = np.array([[p.x, p.y, p.z] for p in cas])
    if float(np.ptp(xyz, axis=0).max()) >= 0.5:  # A; bonded C-alphas are 3.8 A apart
        return None
    x, y, z = xyz[0]
    return f"all {len(cas)} C-alpha atoms at one point ({x:.1f}, {y:.1f}, {z:.1f}): no coordinates (a placeholder?)"


def _is_alternate(a, b) -> bool:
    """Two residues of one number are alternate conformers (atoms with altloc labels)."""
    return any(atom.altloc != "\0" for residue in (a, b) for atom in residue)


def _highest_occupancy_conformers(residues: list) -> tuple[list, list[str]]:
    """One residue per (number, insertion code): the one with the best-occupied C-alpha; and the
    numbers two different residues share (no altloc: a numbering error, both kept)."""
    kept: list = []
    repeated: list[str] = []
    for residue in residues:
        if kept and kept[-1].seqid == residue.seqid and not _is_alternate(kept[-1], residue):
            repeated.append(_number(residue))  # kept below: dropping it would lose a residue
        elif kept and kept[-1].seqid == residue.seqid:
            ca_new, ca_old = _best_ca(residue), _best_ca(kept[-1])
            if ca_new is not None and (ca_old is None or ca_new.occ > ca_old.occ):
                kept[-1] = residue
            continue
        kept.append(residue)
    return kept, repeated


def _number(residue) -> str:
    icode = residue.seqid.icode.strip()
    return f"{residue.seqid.num}{icode}"


def _build_chain(chain_id, residues, seqres, modres, source) -> Chain:
    import gemmi

    letters, rows, numbers, modified = [], [], [], []
    for residue in residues:
        letter = residue_letter(residue.name, modres)
        letters.append(letter)
        if residue.name not in THREE_TO_ONE or residue.name == "UNK":  # worth knowing about
            modified.append((_number(residue), residue.name, letter))
        atom = _best_ca(residue)
        rows.append([atom.pos.x, atom.pos.y, atom.pos.z] if atom is not None else [np.nan] * 3)
        numbers.append(_number(residue))
    ca = np.asarray(rows, dtype=np.float32).reshape(-1, 3)
    labels = [r.label_seq for r in residues]
    use_seqres = bool(seqres) and _labels_consistent(labels, residues, seqres)
    gaps = []
    for i in range(len(residues) - 1):
        distance = float(np.linalg.norm(ca[i + 1] - ca[i]))
        bonded = np.isfinite(distance) and distance <= BONDED_CA_MAX
        if use_seqres:
            missing = labels[i + 1] - labels[i] - 1
            missing_sequence = "".join(
                residue_letter(gemmi.Entity.first_mon(seqres[k]), modres)
                for k in range(labels[i], labels[i + 1] - 1)
            )
            numbering_jump = missing == 0 and not _consecutive(residues[i], residues[i + 1])
        else:
            jump = residues[i + 1].seqid.num - residues[i].seqid.num - 1
            missing = jump if jump > 0 and not bonded else 0
            missing_sequence = "X" * missing
            numbering_jump = missing == 0 and not _consecutive(residues[i], residues[i + 1])
        if missing > 0:
            kind = "missing"
        elif not bonded and np.isfinite(distance):
            kind = "break"
        elif numbering_jump:
            kind = "numbering"
        else:
            continue
        gaps.append(
            Gap(i, kind, missing, missing_sequence, numbers[i], numbers[i + 1], distance),
        )
    terminal = (labels[0] - 1) + (len(seqres) - labels[-1]) if use_seqres else 0
    return Chain(
        id=chain_id,
        sequence="".join(letters),
        ca=ca,
        residue_numbers=numbers,
        gaps=gaps,
        source=source,
        modified=modified,
        seqres_length=len(seqres) if use_seqres else None,
        terminal_missing=terminal,
    )


def _consecutive(a, b) -> bool:
    """Numbering continues: n -> n+1, or n -> n with a new insertion code (52, 52A, 52B, 53)."""
    step = b.seqid.num - a.seqid.num
    return step == 1 or (step == 0 and b.seqid.icode != a.seqid.icode)


def _labels_consistent(labels, residues, seqres) -> bool:
    """SEQRES positions are usable: all assigned, strictly increasing, names mostly agreeing."""
    import gemmi

    if any(label is None for label in labels):
        return False
    if any(b <= a for a, b in zip(labels, labels[1:])) or labels[-1] > len(seqres) or labels[0] < 1:
        return False
    agree = sum(
        residue.name in seqres[label - 1].split(",")
        or gemmi.Entity.first_mon(seqres[label - 1]) == residue.name
        for residue, label in zip(residues, labels)
    )
    return agree >= 0.9 * len(residues)
