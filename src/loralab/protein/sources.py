"""Where ``prepare_structures`` gets chains: PDB/mmCIF files and the ProMod3 StructureDB.

Both go through :class:`Collected`, which applies the same filters (length, missing and
unknown fractions) to every chain and records why one was left out; duplicate collapse,
clustering and the split follow in :func:`loralab.protein.prepare.prepare_structures`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from loralab.errors import DataError
from loralab.protein.records import ProteinRecord, file_stem, find_structure_files, safe_id
from loralab.protein.structures import expand_gaps, read_structure


@dataclass
class Collected:
    """Chains read so far, and what was left out, across sources."""

    filters: dict
    candidates: list = field(default_factory=list)
    skipped: list = field(default_factory=list)
    failed: list = field(default_factory=list)
    warnings: list = field(default_factory=list)
    gap_counts: dict = field(default_factory=lambda: {"missing": 0, "numbering": 0, "break": 0})
    used_ids: set = field(default_factory=set)
    files: list = field(default_factory=list)
    other: list = field(default_factory=list)

    def unique_id(self, text: str) -> str:
        record_id = safe_id(text)
        while record_id in self.used_ids:
            record_id += "_"
        self.used_ids.add(record_id)
        return record_id

    def add(self, record: ProteinRecord, gap_kinds: list[str]) -> None:
        """Keep ``record`` when it passes the filters, else note why it was left out."""
        f, sequence = self.filters, record.sequence
        n_unknown = sequence.count("X")
        kind = reason = None
        if len(sequence) < f["min_length"]:
            kind, reason = "too_short", f"length {len(sequence)} < min_length {f['min_length']}"
        elif len(sequence) > f["max_length"]:
            kind, reason = "too_long", f"length {len(sequence)} > max_length {f['max_length']}"
        elif record.missing_fraction > f["max_missing_fraction"]:
            kind = "too_incomplete"
            reason = f"missing fraction {record.missing_fraction:.3f} > {f['max_missing_fraction']}"
        elif n_unknown > f["max_unknown_fraction"] * len(sequence):
            kind = "too_unknown"
            reason = f"{n_unknown} unknown residues (X) > {f['max_unknown_fraction']:.0%} of {len(sequence)}"
        if reason:
            self.skipped.append(
                {
                    "id": record.id,
                    "file": record.source,
                    "chain": record.chain,
                    "kind": kind,
                    "reason": reason,
                }
            )
            return
        for gap_kind in gap_kinds:
            self.gap_counts[gap_kind] += 1
        self.candidates.append(record)


def read_files(structures_dir, found: Collected, progress: bool) -> None:
    """Chains of the PDB/mmCIF files under ``structures_dir`` into ``found``."""
    from tqdm.auto import tqdm

    files, other = find_structure_files(structures_dir)
    if not files:
        raise DataError(
            f"no structure files (.pdb, .ent, .cif, .mmcif, .pdbx, optionally .gz) under {structures_dir}"
        )
    found.files.extend(files)
    found.other.extend(other)
    for path in tqdm(files, desc="parsing structures", unit="file", disable=not progress):
        try:
            parsed = read_structure(path)
        except DataError as e:
            found.failed.append({"file": str(path), "reason": str(e)})
            continue
        found.warnings.extend(parsed.warnings)
        for chain_id, reason in parsed.skipped:
            found.skipped.append(
                {"id": None, "file": str(path), "chain": chain_id, "kind": "unusable", "reason": reason}
            )
        if not parsed.chains:
            found.failed.append({"file": str(path), "reason": "no protein chain with C-alpha atoms"})
        for chain in parsed.chains:
            sequence, coords, numbers = expand_gaps(chain)
            record = ProteinRecord(
                id=found.unique_id(f"{file_stem(path)}_{chain.id}"),
                source=str(path),
                chain=chain.id,
                sequence=sequence,
                length=len(sequence),
                split="",
                cluster=-1,
                missing_fraction=round(chain.missing_fraction, 4),
                gaps=[g.to_dict() for g in chain.gaps],
                residue_numbers=numbers,
                modified=[list(m) for m in chain.modified],
                coords=coords,
            )
            found.add(record, [g.kind for g in chain.gaps])


def read_promod3(spec, limit: int | None, found: Collected) -> None:
    """Chains of the ProMod3 StructureDB (an export file, or ``auto``) into ``found``."""
    from loralab.protein.promod3_source import promod3_chains

    f = found.filters
    for chain in promod3_chains(spec, limit, f["min_length"], f["max_length"]):
        record = ProteinRecord(
            id=found.unique_id(chain.id),
            source=chain.source,
            chain=chain.chain,
            sequence=chain.sequence,
            length=len(chain.sequence),
            split="",
            cluster=-1,
            missing_fraction=round(chain.missing_fraction, 4),
            gaps=chain.gaps,
            residue_numbers=chain.residue_numbers,
            coords=chain.coords,
        )
        found.add(record, [g["kind"] for g in chain.gaps])
