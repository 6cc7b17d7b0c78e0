"""Structure files -> a protein data set: manifest, coordinates, summary.

``prepare_structures`` writes to ``out_dir``:

* ``manifest.jsonl``: one :class:`ProteinRecord` per kept chain (without coordinates).
* ``coords/<id>.npy``: float32 ``[L, 3]`` C-alpha coordinates, NaN where missing.
* ``summary.json``: counts, filters, every file / chain left out and why, gap counts,
  warnings, the clustering method, and C-alpha distance statistics.

How missing residues appear (one choice, used everywhere): a record has one position per
residue of the chain from its first to its last observed residue. Residues missing inside
the chain (a gap of kind "missing", see :mod:`loralab.protein.structures`) are positions
with their SEQRES letter (X when the file has no SEQRES), NaN coordinates and
``mask == False``. So sequence separations are true separations and the model sees each
residue once; masked positions are left out of losses and metrics. Residues missing at the
termini are not added; they count in ``missing_fraction``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from loralab.errors import DataError
from loralab.protein.clustering import CLUSTERING_METHOD, assign_splits, identity_clusters
from loralab.protein.records import ProteinRecord, read_dataset, write_records  # noqa: F401  (read_dataset: its old home)
from loralab.protein.sources import Collected, read_files, read_promod3

log = logging.getLogger("loralab.protein")

DEFAULT_SPLITS = {"train": 0.8, "val": 0.1, "test": 0.1}
SEQUENTIAL_CA_DISTANCE = 3.8  # A, for reference in the summary


def mdanalysis_test_data() -> Path:
    """The ``data`` folder of the ``MDAnalysisTests`` package: real PDB/mmCIF files offline.

    Found without importing the package (its ``__init__`` needs MDAnalysis); its ``dssp/``
    subfolder holds ~50 single protein chains.
    """
    import importlib.util

    spec = importlib.util.find_spec("MDAnalysisTests")
    if spec is None or not spec.submodule_search_locations:
        raise DataError(
            "the real test structures are not installed: pip install --no-deps mdanalysistests "
            "(a 60 MB source package of PDB/mmCIF files)"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def _distance_stats(values: np.ndarray) -> dict[str, float]:
    if len(values) == 0:
        return {"n": 0}
    return {
        "n": int(len(values)),
        "mean": round(float(values.mean()), 4),
        "std": round(float(values.std()), 4),
        "min": round(float(values.min()), 4),
        "max": round(float(values.max()), 4),
    }


def distance_statistics(coords_list: list[np.ndarray]) -> dict[str, dict]:
    """C-alpha distance statistics over chains: all pairs i < j, and sequential neighbours."""
    pairs, neighbours = [], []
    for X in coords_list:
        X = X.astype(np.float64)
        known = np.isfinite(X).all(axis=1)
        Y = X[known]
        i, j = np.triu_indices(len(Y), k=1)
        pairs.append(np.linalg.norm(Y[i] - Y[j], axis=1))
        both = known[:-1] & known[1:]
        neighbours.append(np.linalg.norm(X[1:][both] - X[:-1][both], axis=1))
    cat = lambda parts: np.concatenate(parts) if parts else np.zeros(0)  # noqa: E731
    return {
        "all_pairs": _distance_stats(cat(pairs)),
        "sequential_neighbours": _distance_stats(cat(neighbours)),
    }


def prepare_structures(
    structures_dir,
    out_dir,
    *,
    min_length: int = 30,
    max_length: int = 1000,
    max_missing_fraction: float = 0.25,
    max_unknown_fraction: float = 0.1,
    identity_threshold: float = 0.3,
    split_fractions: dict[str, float] | None = None,
    seed: int = 0,
    progress: bool = True,
    promod3: str | Path | None = None,
    promod3_limit: int | None = None,
) -> Path:
    """Parse, filter, deduplicate, cluster and split structures; write the data set.

    ``structures_dir``: a folder (searched recursively), a file, a list of them, or None
    (with ``promod3``). ``promod3``: also read the ProMod3 StructureDB, from an export file
    or ``"auto"`` (exported now, ``promod3_limit`` chains of the length window spread over
    the database; see :mod:`loralab.protein.promod3_source`). Lengths count positions including
    missing residues inside the chain. Returns ``out_dir``.
    """
    fractions = dict(split_fractions or DEFAULT_SPLITS)
    _check_arguments(fractions, min_length, max_length, structures_dir, promod3)
    filters = {
        "min_length": min_length,
        "max_length": max_length,
        "max_missing_fraction": max_missing_fraction,
        "max_unknown_fraction": max_unknown_fraction,
    }
    found = Collected(filters)
    if structures_dir is not None:
        read_files(structures_dir, found, progress)
    if promod3 is not None:
        read_promod3(promod3, promod3_limit, found)
    kept = _drop_duplicates(found.candidates, found.skipped)
    if not kept:
        raise DataError(_nothing_kept(structures_dir, found))
    clusters = _cluster_and_split(kept, identity_threshold, fractions, seed, found.warnings, progress)
    out_dir = Path(out_dir)
    write_records(out_dir, kept)
    summary = {
        "structures": [
            str(p)
            for p in ([structures_dir] if isinstance(structures_dir, str | Path) else structures_dir or [])
        ],
        "promod3": None if promod3 is None else {"source": str(promod3), "limit": promod3_limit},
        "filters": filters,
        **_summary(found, kept, clusters, fractions, seed, identity_threshold),
    }
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=int) + "\n")
    return out_dir


_FILTER_FLAGS = {
    "too_short": "--min-length",
    "too_long": "--max-length",
    "too_incomplete": "--max-missing-fraction",
    "too_unknown": "--max-unknown-fraction",
}


def _nothing_kept(structures_dir, found: Collected) -> str:
    """Why no chain is left, with the reasons themselves; loosening a filter is suggested only
    where a filter left chains out (not for files that hold no protein chain at all)."""
    reasons = [f"{s['file']} chain {s['chain']}: {s['reason']}" for s in found.skipped]
    reasons += [f"{f['file']}: {f['reason']}" for f in found.failed]
    listed = "".join(f"\n  - {r}" for r in reasons[:8]) + (
        f"\n  ... and {len(reasons) - 8} more" if len(reasons) > 8 else ""
    )
    flags = sorted({_FILTER_FLAGS[s["kind"]] for s in found.skipped if s["kind"] in _FILTER_FLAGS})
    hint = (
        f"loosen {', '.join(flags)} if those chains are wanted"
        if flags
        else "none of them is a protein chain with C-alpha atoms (ligands, waters, nucleic acids or "
        "HETATM records only?): give files that hold amino-acid chains"
    )
    return (
        f"no chain passed under {structures_dir} ({len(found.files)} structure files, {len(found.skipped)} "
        f"chains left out):{listed}\n{hint}"
    )


def _check_arguments(fractions: dict, min_length: int, max_length: int, structures_dir, promod3) -> None:
    if any(f < 0 for f in fractions.values()) or abs(sum(fractions.values()) - 1.0) > 1e-6:
        raise DataError(f"split fractions must be non-negative and sum to 1, got {fractions}")
    if min_length < 2 or max_length < min_length:
        raise DataError(f"length filter: need 2 <= min_length <= max_length, got {min_length}, {max_length}")
    if structures_dir is None and promod3 is None:
        raise DataError("give structure files (--structures) or the ProMod3 StructureDB (--promod3), or both")


def _drop_duplicates(candidates: list[ProteinRecord], skipped: list[dict]) -> list[ProteinRecord]:
    """Duplicate sequences: keep the most complete copy (then the first by id); the others go to
    ``skipped``. The kept records are sorted by id."""
    kept, by_sequence = [], {}
    for record in sorted(candidates, key=lambda r: (r.missing_fraction, r.id)):
        first = by_sequence.get(record.sequence)
        if first is not None:
            skipped.append(
                {
                    "id": record.id,
                    "file": record.source,
                    "chain": record.chain,
                    "kind": "duplicate",
                    "reason": f"duplicate of {first}",
                }
            )
            continue
        by_sequence[record.sequence] = record.id
        kept.append(record)
    kept.sort(key=lambda r: r.id)
    return kept


def _cluster_and_split(kept, identity_threshold, fractions, seed, warnings_seen, progress) -> list[int]:
    """Sequence-identity clusters, whole clusters to splits (``record.cluster``/``.split`` set);
    returns each record's cluster."""
    clusters = identity_clusters([r.sequence for r in kept], identity_threshold, progress=progress)
    split_of, split_notes = assign_splits(clusters, fractions, seed)
    for record, cluster in zip(kept, clusters):
        record.cluster = cluster
        record.split = split_of[cluster]
    warnings_seen.extend(split_notes)
    for note in split_notes:
        log.warning(note)
    return clusters


def _summary(found, kept, clusters, fractions, seed, identity_threshold) -> dict:
    """summary.json past its inputs: files, chains, splits, clustering, gaps, distances, warnings."""
    splits = {}
    for name in fractions:
        members = [r for r in kept if r.split == name]
        splits[name] = {
            "chains": len(members),
            "clusters": len({r.cluster for r in members}),
            "residues": int(sum(int(r.mask.sum()) for r in members)),
            "distances": distance_statistics([r.coords for r in members])["all_pairs"],
        }
    return {
        "files": {
            "structure_files": len(found.files),
            "failed": found.failed,
            "other_files_ignored": len(found.other),
            "other_files_examples": [str(p) for p in found.other[:10]],
        },
        "chains": {"kept": len(kept), "left_out": len(found.skipped)},
        "skipped": found.skipped,
        "splits": splits,
        "split_fractions": fractions,
        "seed": seed,
        "clustering": {
            "method": CLUSTERING_METHOD,
            "identity_threshold": identity_threshold,
            "clusters": len(set(clusters)),
            "largest_cluster": max(np.bincount(clusters)) if clusters else 0,
        },
        "gaps": {
            "representation": "missing residues inside a chain are positions with NaN coordinates "
            "(mask False); terminal ones are not added",
            "chains_with_gaps": sum(1 for r in kept if r.gaps),
            **found.gap_counts,
        },
        "distances": {
            **distance_statistics([r.coords for r in kept]),
            "expected_sequential_neighbour": SEQUENTIAL_CA_DISTANCE,
        },
        "warnings": found.warnings,
    }
