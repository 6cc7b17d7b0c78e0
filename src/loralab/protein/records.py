"""A prepared protein data set on disk: its records (one chain each), reading and writing them.

``<dataset>/manifest.jsonl`` holds one :class:`ProteinRecord` per chain (without
coordinates), ``<dataset>/coords/<id>.npy`` its float32 ``[L, 3]`` C-alpha coordinates (NaN
where missing); :mod:`loralab.protein.prepare` writes them, :func:`read_dataset` and
:func:`load_split` read them back.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from loralab.errors import DataError
from loralab.protein.structures import is_structure_file
from loralab.safe_files import load_npy


@dataclass
class ProteinRecord:
    """One chain of a prepared data set; ``coords`` is loaded by :func:`read_dataset`."""

    id: str
    source: str
    chain: str
    sequence: str
    length: int
    split: str
    cluster: int
    missing_fraction: float
    gaps: list[dict] = field(default_factory=list)
    residue_numbers: list[str] = field(default_factory=list)
    modified: list[list[str]] = field(default_factory=list)
    coords: np.ndarray | None = field(default=None, repr=False)

    @property
    def mask(self) -> np.ndarray:
        """True where the C-alpha is known."""
        if self.coords is None:
            raise DataError(f"protein {self.id}: coordinates not loaded (use read_dataset)")
        return np.isfinite(self.coords).all(axis=1)

    def to_json(self) -> str:
        data = asdict(self)
        data.pop("coords")
        return json.dumps(data)


def safe_id(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", text)


def file_stem(path: Path) -> str:
    name = path.name
    if name.lower().endswith(".gz"):
        name = name[:-3]
    return name.rsplit(".", 1)[0]


def find_structure_files(paths: Path | str | Iterable[Path | str]) -> tuple[list[Path], list[Path]]:
    """(structure files, other files) under the given files or folders (recursively), sorted."""
    if isinstance(paths, str | Path):
        paths = [paths]
    found, other = [], []
    for root in map(Path, paths):
        if root.is_file():
            (found if is_structure_file(root) else other).append(root)
        elif root.is_dir():
            for p in sorted(root.rglob("*")):
                if p.is_file() and not p.name.startswith("."):
                    (found if is_structure_file(p) else other).append(p)
        else:
            raise DataError(
                f"structures: {root} does not exist; give a folder of PDB/mmCIF files or the files"
            )
    return sorted(set(found)), sorted(set(other))


def read_dataset(dataset_dir, split: str | None) -> list[ProteinRecord]:
    """Records of one split (``None``: all) with ``coords`` loaded, in manifest order."""
    dataset_dir = Path(dataset_dir)
    manifest = dataset_dir / "manifest.jsonl"
    if not manifest.is_file():
        raise DataError(
            f"{manifest} not found: prepare the data set first with "
            f"'loralab protein prepare --structures DIR --out {dataset_dir}'"
        )
    records = []
    for line_no, line in enumerate(manifest.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = ProteinRecord(**json.loads(line))
        except (json.JSONDecodeError, TypeError) as e:
            raise DataError(
                f"{manifest}:{line_no}: not a protein record ({e}); re-run 'loralab protein prepare'"
            ) from e
        records.append(record)
    available = sorted({r.split for r in records})
    if split is not None:
        records = [r for r in records if r.split == split]
        if not records:
            raise DataError(
                f"{manifest}: no records in split '{split}' (splits present: {', '.join(available)})"
            )
    for record in records:
        path = dataset_dir / "coords" / f"{record.id}.npy"
        if not path.is_file():
            raise DataError(f"{path} missing for protein {record.id}; re-run 'loralab protein prepare'")
        coords = load_npy(path, hint="re-run 'loralab protein prepare'")
        if coords.shape != (len(record.sequence), 3):
            raise DataError(
                f"{path}: shape {coords.shape} does not match the sequence of {record.id} "
                f"({len(record.sequence)} residues); re-run 'loralab protein prepare'"
            )
        record.coords = coords.astype(np.float32)
    return records


def write_records(out_dir: Path, records: list[ProteinRecord]) -> None:
    """``coords/<id>.npy`` and ``manifest.jsonl`` of the given records, in their order."""
    out_dir = Path(out_dir)
    (out_dir / "coords").mkdir(parents=True, exist_ok=True)
    for record in records:
        np.save(out_dir / "coords" / f"{record.id}.npy", record.coords.astype(np.float32))
    with open(out_dir / "manifest.jsonl", "w") as f:
        for record in records:
            f.write(record.to_json() + "\n")


def load_split(cfg, split: str, required: bool = True):
    """Examples (:class:`~loralab.protein.dataset.ProteinExample`) of one split of the run's
    prepared data set (``protein.limit`` applied)."""
    from loralab.protein.dataset import usable_examples

    try:
        records = read_dataset(cfg.protein.dataset_dir, split)
    except DataError:
        if required:
            raise
        return []  # an optional split (validation) the data set does not have
    if cfg.protein.limit is not None:
        records = records[: cfg.protein.limit]
    examples = usable_examples(records, split)
    if required and not examples:
        raise DataError(
            f"{cfg.protein.dataset_dir}: split '{split}' has no usable chains; prepare a data set with "
            "'loralab protein prepare --structures DIR --out DIR' and check its summary.json"
        )
    return examples
