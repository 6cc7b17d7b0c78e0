"""The ProMod3 StructureDB as a source of real chains for ``loralab protein prepare``.

Debian's ``promod3-data`` holds ProMod3's StructureDB: 21,119 real PDB chains (C-alpha
traces, median length 189, largely non-redundant). ProMod3 is importable only by Debian's
own ``/usr/bin/python3`` (``apt-get install -y python3-promod3``), never by a virtual
environment, so :func:`export_structuredb` runs :mod:`loralab.protein.promod3_export` in
that interpreter as a subprocess, which writes one npz file (format in that module);
:func:`read_promod3_npz` reads it here. ``--promod3 auto`` exports, ``--promod3 FILE.npz``
reads an export made before (e.g. on another machine).

Chains are kept exactly as stored, except one rule: **a chain with an internal break is
never closed up.** The database's traces are gap-free by construction, but 15 chains hold
a consecutive C-alpha pair further apart than :data:`BREAK_DISTANCE` (4.2 A; bonded
neighbours are 3.8 A, cis-prolines ~2.9 A). There the number of missing residues is not
recorded, so its lower bound ``ceil(d / 3.81) - 1`` (at least 1) is inserted as unknown
residues (X, NaN coordinates, masked from losses and metrics), and the gap is listed with
``"estimated": true``.
"""

from __future__ import annotations

import math
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from loralab.errors import DataError

SYSTEM_PYTHON = "/usr/bin/python3"
EXPORT_FORMAT = "loralab-promod3-structuredb-v1"
EXPORT_KEYS = ("ids", "chains", "start_resnums", "sequences", "offsets", "ca")
BREAK_DISTANCE = 4.2  # A: a longer consecutive C-alpha step is a chain break
MAX_STEP = 3.81  # A: the longest bonded C-alpha step, for the lower bound on missing residues
INSTALL_HINT = (
    "ProMod3 is not installed. Install it (Debian/Ubuntu, as root; pulls promod3-data, 371 MB "
    "download, ~2 min): apt-get install -y python3-promod3. Alternatives: pass an export made "
    "elsewhere with --promod3 FILE.npz (made there by: /usr/bin/python3 "
    "src/loralab/protein/promod3_export.py FILE.npz), or use PDB/mmCIF files with --structures DIR "
    "(e.g. pip install --no-deps mdanalysistests for ~75 real chains)."
)


@dataclass
class SourceChain:
    """One chain of a non-file source, in the layout of prepared records (NaN = missing)."""

    id: str
    source: str
    chain: str
    sequence: str
    coords: np.ndarray  # float32 [L, 3]
    residue_numbers: list[str]
    gaps: list[dict] = field(default_factory=list)

    @property
    def missing_fraction(self) -> float:
        return float((~np.isfinite(self.coords).all(axis=1)).mean()) if len(self.coords) else 0.0


def promod3_missing_reason(python: str = SYSTEM_PYTHON) -> str | None:
    """None when ``python`` can import ProMod3, else why not."""
    if not Path(python).is_file():
        return f"{python} does not exist"
    probe = subprocess.run([python, "-c", "import promod3.loop"], capture_output=True, text=True)
    return None if probe.returncode == 0 else probe.stderr.strip().splitlines()[-1:] or ["import failed"]


def export_structuredb(
    out_npz: str | Path,
    limit: int | None = None,
    min_length: int = 1,
    max_length: int = 10**9,
    python: str = SYSTEM_PYTHON,
) -> Path:
    """Run the exporter in Debian's Python (module doc); a clear error when ProMod3 is missing."""
    if promod3_missing_reason(python) is not None:
        raise DataError(INSTALL_HINT)
    script = Path(__file__).with_name("promod3_export.py")
    out_npz = Path(out_npz)
    out_npz.parent.mkdir(parents=True, exist_ok=True)
    cmd = [
        python,
        str(script),
        str(out_npz),
        "--min-length",
        str(min_length),
        "--max-length",
        str(max_length),
    ]
    if limit is not None:
        cmd += ["--limit", str(limit)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        if "PROMOD3_MISSING" in done.stderr:
            raise DataError(INSTALL_HINT)
        raise DataError(f"ProMod3 export failed ({' '.join(cmd)}): {done.stderr.strip()[-500:]}")
    return out_npz


def _with_breaks_masked(sequence: str, ca: np.ndarray, start: int) -> tuple[str, np.ndarray, list[str], list]:
    """(sequence, coords, residue numbers, gaps) with unknown residues inserted at breaks."""
    steps = np.linalg.norm(np.diff(ca.astype(np.float64), axis=0), axis=1)
    breaks = {int(i): float(d) for i, d in enumerate(steps) if d > BREAK_DISTANCE}
    letters, rows, numbers, gaps = [], [], [], []
    nan_row = np.full(3, np.nan, dtype=np.float32)
    for i, letter in enumerate(sequence):
        letters.append(letter)
        rows.append(ca[i])
        numbers.append(str(start + i))
        if i in breaks:
            missing = max(1, math.ceil(breaks[i] / MAX_STEP) - 1)
            gaps.append({"after": len(letters) - 1, "kind": "missing", "missing": missing,
                         "missing_sequence": "X" * missing, "number_before": str(start + i),
                         "number_after": str(start + i + 1), "ca_distance": round(breaks[i], 3),
                         "estimated": True})  # fmt: skip
            letters.extend("X" * missing)
            rows.extend([nan_row] * missing)
            numbers.extend([""] * missing)
    return "".join(letters), np.array(rows, dtype=np.float32).reshape(-1, 3), numbers, gaps


def read_promod3_npz(path: str | Path) -> list[SourceChain]:
    """The chains of an export (format: :mod:`loralab.protein.promod3_export`)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: ProMod3 export not found. {INSTALL_HINT}")
    with np.load(path, allow_pickle=False) as data:
        missing = [k for k in EXPORT_KEYS if k not in data.files]
        fmt = str(data["format"]) if "format" in data.files else None
        if missing or fmt != EXPORT_FORMAT:
            raise DataError(
                f"{path}: not a loralab ProMod3 export (format {fmt!r}, missing keys {missing}); "
                "make one with: /usr/bin/python3 src/loralab/protein/promod3_export.py OUT.npz"
            )
        arrays = {k: data[k] for k in EXPORT_KEYS}
    offsets, ca = arrays["offsets"], arrays["ca"]
    out = []
    for k, (pdb, chain, seq) in enumerate(zip(arrays["ids"], arrays["chains"], arrays["sequences"])):
        coords = ca[offsets[k] : offsets[k + 1]]
        if len(coords) != len(seq):
            raise DataError(f"{path}: chain {pdb}.{chain} has {len(seq)} letters but {len(coords)} C-alphas")
        sequence, coords, numbers, gaps = _with_breaks_masked(
            str(seq), coords, int(arrays["start_resnums"][k])
        )
        out.append(
            SourceChain(f"{pdb}_{chain}", f"promod3:{path.name}", str(chain), sequence, coords, numbers, gaps)
        )
    return out


def promod3_chains(
    spec: str | Path, limit: int | None, min_length: int, max_length: int
) -> list[SourceChain]:
    """Chains from ``spec``: an export file, or ``auto`` (export now via Debian's Python)."""
    if str(spec) != "auto":
        return read_promod3_npz(spec)
    tmp = Path(tempfile.mkdtemp(prefix="loralab_promod3_"))
    try:
        chains = read_promod3_npz(export_structuredb(tmp / "structuredb.npz", limit, min_length, max_length))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if limit is not None and len(chains) < limit:
        raise DataError(
            f"asked for {limit} ProMod3 chains (--promod3-limit) of {min_length}-{max_length} residues, but the "
            f"StructureDB holds {len(chains)} in that length window. Ask for at most {len(chains)}, or widen "
            "the window (--min-length/--max-length; longer chains are cropped in training)."
        )
    return chains
