"""Sequence -> distance matrix -> C-alpha coordinates -> PDB, with a trained protein run.

For each sequence :func:`predict_sequences` writes ``<name>.distances.npy`` (float32
``[L, L]``, Angstrom), ``<name>.distances.png`` (heatmap), ``<name>.pdb`` (C-alpha trace)
and one ``predictions.json`` for all of them (the model: :mod:`loralab.protein.inference`).

* Coordinates: classical MDS of the predicted matrix, then SMACOF stress refinement
  (``refine=False`` skips it). The PDB's B-factor column holds each residue's mean
  |d(X) - D| (A): how far the 3D trace is from the predicted distances there.
* Handedness: a distance matrix cannot tell a structure from its mirror image. The mirror
  is chosen by C-alpha torsions (right-handed helices near +50 degrees; see
  :mod:`loralab.protein.geometry`); the score and the choice go into the PDB's REMARKs and
  ``predictions.json``. A chain with neither helices nor strands has no preferred hand.
* Longer than the run's ``protein.max_length``: the model was trained on windows of that
  length, so by default the first ``max_length`` residues are predicted and the output
  says so; ``crop=False`` predicts the whole chain anyway.
* Letters: the 20 standard residues and X; U/O are read as C/K, B/Z/J as X, a trailing
  '*' dropped, each with a warning; anything else is an error (see
  :func:`loralab.protein.dataset.encode_sequence`).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from loralab.errors import DataError
from loralab.protein.inference import (
    find_checkpoint,
    inference_runtime,
    load_trained_model,
    mds_coordinates,
    predict_distance_matrices,
)
from loralab.protein.memory import available_memory, check_fits_in_memory, pair_bytes  # noqa: F401 (exported)
from loralab.protein.plots import save_heatmaps

LONG_CHAIN = 1000  # residues: from here the 3D reconstruction takes long enough to announce


def _say(text: str) -> None:
    import sys

    print(text, file=sys.stderr, flush=True)


def read_fasta(path: str | Path) -> list[tuple[str, str]]:
    """(name, sequence) records; the name is the header's first word."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: FASTA file not found")
    records: list[tuple[str, list[str]]] = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith(";"):
            continue
        if line.startswith(">"):
            name = line[1:].split()[0] if line[1:].split() else f"seq{len(records) + 1}"
            records.append((name, []))
        elif not records:
            raise DataError(f"{path}:{number}: sequence before the first '>' header; is this a FASTA file?")
        else:
            records[-1][1].append(line)
    if not records:
        raise DataError(f"{path}: no FASTA records ('>name' lines followed by sequence lines)")
    out = [(name, "".join(parts)) for name, parts in records]
    for name, seq in out:
        if not seq:
            raise DataError(f"{path}: record '{name}' has an empty sequence")
    return out


def safe_names(names: list[str]) -> list[str]:
    """File-system-safe, unique names."""
    seen: dict[str, int] = {}
    out = []
    for name in names:
        base = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "seq"
        seen[base] = seen.get(base, 0) + 1
        out.append(base if seen[base] == 1 else f"{base}_{seen[base]}")
    return out


def predict_sequences(
    model_ref: str | Path,
    sequences: list[tuple[str, str]],
    out_dir: str | Path,
    *,
    refine: bool = True,
    crop: bool = True,
    batch_size: int = 8,
    device: str | None = None,
) -> list[dict]:
    """Predict every (name, sequence); write the files (module doc); return one summary each."""
    checkpoint, cfg = find_checkpoint(model_ref)  # the run's max_length, before any weights load
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    examples, summaries = _read_sequences(sequences, cfg.protein.max_length if crop else None)
    runtime = inference_runtime(device)
    # before the model loads or a huge tensor is made
    fitting = check_fits_in_memory(summaries, cfg, runtime, batch_size=batch_size)
    if fitting < batch_size:
        _say(f"note: predicting {fitting} sequence(s) at a time, not {batch_size}: a batch of the longest "
             f"ones would not fit in the {runtime.device.type} memory there is")  # fmt: skip
    model, cfg, checkpoint = load_trained_model(checkpoint, runtime)
    matrices = predict_distance_matrices(model, examples, fitting, runtime, progress=len(examples) > 4)
    for ex, summary, D in zip(examples, summaries, matrices):
        if len(D) >= LONG_CHAIN:
            _say(f"{ex.id}: {len(D)} residues: reconstructing the 3D trace (MDS and chain refinement on "
                 f"[L, L] arrays) takes minutes at this length; --no-refine makes it faster")  # fmt: skip
        summary.update(_write_prediction(out_dir, ex.id, ex.residue_index, D, checkpoint, refine))
    for summary in summaries:
        summary["model"] = str(checkpoint)
    listed = _earlier_predictions(out_dir / "predictions.json", {s["name"] for s in summaries}) + summaries
    report = {"model": str(checkpoint), "base_model": cfg.model.name_or_path, "predictions": listed}
    (out_dir / "predictions.json").write_text(json.dumps(report, indent=2) + "\n")
    return summaries


def _read_sequences(sequences: list[tuple[str, str]], max_length: int | None) -> tuple[list, list[dict]]:
    """(ProteinExample per sequence, its summary so far): letters checked, names made file-safe,
    cropped to ``max_length`` (None: never)."""
    from loralab.protein.dataset import ProteinExample, encode_sequence

    names = safe_names([n for n, _ in sequences])
    examples, summaries = [], []
    for name, (given_name, seq) in zip(names, sequences):
        residues, notes = encode_sequence(seq, where=f"sequence '{given_name}'")
        if len(residues) < 4:
            raise DataError(f"sequence '{given_name}': {len(residues)} residues; a 3D trace needs at least 4")
        full = len(residues)
        if max_length is not None and full > max_length:
            residues = residues[:max_length]
            notes.append(
                f"sequence '{given_name}': {full} residues, longer than the model's protein.max_length="
                f"{max_length}; predicted residues 1-{max_length} only "
                "(pass --no-crop to predict all)"
            )
        n = len(residues)
        examples.append(ProteinExample(name, residues, np.zeros((n, 3), np.float32), np.ones(n, bool)))
        summaries.append({"name": name, "given_name": given_name, "length": full, "predicted_length": n,
                          "cropped": n < full, "notes": notes})  # fmt: skip
    return examples, summaries


def _write_prediction(
    out_dir: Path, name: str, residue_index, D: np.ndarray, checkpoint, refine: bool
) -> dict:
    """One sequence's files (distances, heatmap, C-alpha PDB); returns what its summary adds."""
    from loralab.protein.dataset import decode_residues
    from loralab.protein.geometry import decide_handedness, distance_matrix
    from loralab.protein.pdb_file import write_ca_pdb
    from loralab.protein.reconstruct import geometry_check

    X, fit_stress = mds_coordinates(D, refine=refine)
    decision = decide_handedness(X)  # no reference: the C-alpha torsion rule
    X = decision.apply(X)
    fit_error = np.abs(distance_matrix(X) - D).sum(1) / max(len(D) - 1, 1)
    geometry = geometry_check(X)
    sequence = decode_residues(residue_index)
    np.save(out_dir / f"{name}.distances.npy", D.astype(np.float32))
    save_heatmaps(out_dir / f"{name}.distances.png", [(f"{name}: predicted distances", D)])
    remarks = [
        f"loralab protein predict, model {checkpoint}",
        "C-alpha trace: classical MDS"
        + (" + SMACOF stress refinement" if refine else "")
        + " + chain-constrained refinement (3.8 A neighbours, no clashes)",
        "geometry: mean CA-CA {mean_ca_ca:.2f} A, {clashes} non-adjacent pairs < 3.5 A".format(**geometry),
        f"handedness: CA torsion rule, score {decision.score:+.3f}, mirrored={decision.mirrored}",
        "B-factor column: mean |d(X) - D_predicted| of the residue (A)",
    ]
    write_ca_pdb(out_dir / f"{name}.pdb", X, sequence, bfactors=fit_error, remarks=remarks)
    neighbours = np.diagonal(D, 1)
    return {
        "sequence": sequence,
        "files": {k: f"{name}.{k}" for k in ("distances.npy", "distances.png", "pdb")},
        "handedness": {"method": decision.method, "score": decision.score, "mirrored": decision.mirrored},
        "mds_stress": fit_stress,
        "geometry": geometry,  # consecutive CA-CA and clashes of the written trace
        "mean_fit_error_A": float(fit_error.mean()),
        "mean_neighbour_distance_A": float(neighbours.mean()) if len(neighbours) else None,
        "refined": refine,
    }


def _earlier_predictions(path: Path, replaced: set[str]) -> list[dict]:
    """The entries of an earlier predictions.json in the same --out whose files this run does not
    overwrite (a second predict into one folder adds to the list rather than dropping it)."""
    if not path.is_file():
        return []
    try:
        report = json.loads(path.read_text())
        kept = [dict(p) for p in report["predictions"] if p["name"] not in replaced]
    except (ValueError, KeyError, TypeError):
        return []  # not ours or damaged: rewritten with this run's entries
    for entry in kept:
        entry.setdefault("model", report.get("model"))
    return kept
