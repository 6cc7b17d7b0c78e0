"""C-alpha coordinates written as a PDB file (predictions, and the true structures beside them)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from loralab.errors import DataError
from loralab.protein.geometry import _as_coords
from loralab.protein.residues import ONE_TO_THREE


def write_ca_pdb(
    path,
    coords,
    sequence: str,
    chain: str = "A",
    residue_numbers=None,
    bfactors=None,
    remarks: list[str] | None = None,
) -> Path:
    """Write a C-alpha-only PDB file; rows of NaN (missing residues) are left out.

    Residue names come from the one-letter ``sequence`` (X -> UNK); ``residue_numbers``
    default to 1..L (ints, or strings such as ``"52A"`` with an insertion code);
    ``bfactors`` (``[L]``) go in the B-factor column, e.g. a per-residue error estimate.
    """
    X = _as_coords(coords, "coords")
    if len(sequence) != len(X):
        raise DataError(f"write_ca_pdb: sequence has {len(sequence)} letters but coords {len(X)} rows")
    if len(chain) != 1:
        raise DataError(f"write_ca_pdb: a PDB chain id is one character, got {chain!r}")
    unknown = sorted(set(sequence) - set(ONE_TO_THREE))
    if unknown:
        raise DataError(
            f"write_ca_pdb: letters {unknown} are not amino acids (allowed: {''.join(ONE_TO_THREE)})"
        )
    present = np.isfinite(X).all(axis=1)
    if present.any() and (X[present].max() > 9999.999 or X[present].min() < -999.999):
        raise DataError("write_ca_pdb: coordinates do not fit the PDB format (-999.999..9999.999 A)")
    numbers = list(range(1, len(X) + 1)) if residue_numbers is None else list(residue_numbers)
    if len(numbers) != len(X):
        raise DataError(f"write_ca_pdb: {len(numbers)} residue numbers for {len(X)} residues")
    b = np.zeros(len(X)) if bfactors is None else np.asarray(bfactors, dtype=np.float64)
    b = np.clip(np.nan_to_num(b, nan=0.0, posinf=999.99, neginf=-99.99), -99.99, 999.99)  # 6 columns
    lines = [f"REMARK 250 {text}"[:80] for text in remarks or []]
    serial = 0
    for i in np.flatnonzero(present):
        serial += 1
        num, icode = _split_residue_number(numbers[i])
        if not -999 <= num <= 9999:
            raise DataError(f"write_ca_pdb: residue number {num} does not fit the PDB format (-999..9999)")
        x, y, z = X[i]
        lines.append(
            f"ATOM  {serial:5d}  CA  {ONE_TO_THREE[sequence[i]]} {chain}{num:4d}{icode}   "
            f"{x:8.3f}{y:8.3f}{z:8.3f}{1.0:6.2f}{b[i]:6.2f}           C  "
        )
    if serial:
        last = np.flatnonzero(present)[-1]
        num, icode = _split_residue_number(numbers[last])
        lines.append(f"TER   {serial + 1:5d}      {ONE_TO_THREE[sequence[last]]} {chain}{num:4d}{icode}")
    lines.append("END")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def _split_residue_number(value) -> tuple[int, str]:
    """``12`` or ``"12"`` -> (12, " "); ``"52A"`` -> (52, "A")."""
    text = str(value).strip()
    icode = " "
    if text and text[-1].isalpha():
        text, icode = text[:-1], text[-1]
    return int(text), icode
