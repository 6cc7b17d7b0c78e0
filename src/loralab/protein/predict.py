"""Sequence -> distance matrix -> C-alpha coordinates -> PDB, with a trained protein run.

For each sequence :func:`predict_sequences` writes ``<name>.distances.npy`` (float32
``[L, L]``, Angstrom), ``<name>.distances.png`` (heatmap), ``<name>.pdb`` (C-alpha trace)
and one ``predictions.json`` for all of them.

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

from loralab.errors import DataError, ModelLayoutError
from loralab.safe_files import read_json

CHECKPOINT_CONFIG_FILE = "experiment_config.json"


def inference_runtime(device: str | None = None):
    """CUDA with bf16 weights and autocast where available, else fp32 on the CPU."""
    import torch

    from loralab.engine.runtime import Runtime

    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if dev.type == "cuda" and torch.cuda.is_bf16_supported():
        return Runtime(device=dev, weight_dtype=torch.bfloat16, autocast_dtype=torch.bfloat16)
    return Runtime(device=dev, weight_dtype=torch.float32)


def _config_from_json(path: Path):
    """The ExperimentConfig in a final_model's ``experiment_config.json``."""
    from loralab.config.loader import build_dataclass
    from loralab.config.schema import ExperimentConfig

    data = read_json(path, "run config", "point --model at a loralab protein run")
    return build_dataclass(ExperimentConfig, data, str(path))


def _config_from_dict(data: dict, where: Path):
    from loralab.config.loader import build_dataclass
    from loralab.config.schema import ExperimentConfig

    return build_dataclass(ExperimentConfig, data, str(where))


def _checkpoint_config(checkpoint: Path):
    """A checkpoint's config: final_model's ``experiment_config.json``, else the checkpoint's own
    ``run.json``, else its run's config (:class:`~loralab.engine.run_dir.RunDir`); None when none says."""
    from loralab.engine.run_dir import RunDir, read_checkpoint_card

    if (checkpoint / CHECKPOINT_CONFIG_FILE).is_file():
        return _config_from_json(checkpoint / CHECKPOINT_CONFIG_FILE)
    card = read_checkpoint_card(checkpoint)
    if card is not None and isinstance(card.get("config"), dict):
        return _config_from_dict(card["config"], checkpoint)
    run = RunDir(checkpoint.parent)
    if run.config_file.is_file():
        return run.config()
    return None


def find_checkpoint(model_ref: str | Path):
    """(checkpoint dir, ExperimentConfig) for a run dir, a checkpoint dir or a final_model dir.

    A run dir resolves to its ``final_model/``, else its last ``checkpoint-epoch-N/``.
    """
    from loralab.engine.run_dir import RunDir
    from loralab.protein.model import HEAD_FILE

    ref = Path(model_ref)
    if not ref.is_dir():
        raise ModelLayoutError(f"{ref}: not a folder; pass a protein run dir or a checkpoint/final_model dir")
    run = RunDir(ref)
    if run.config_file.is_file() and not (ref / HEAD_FILE).is_file():
        cfg = run.config()
        if cfg.system != "protein":
            raise ModelLayoutError(
                f"{ref}: a '{cfg.system}' run, not a protein run; pass a run trained with a protein "
                "config (e.g. 'loralab train small')"
            )
        candidates = [run.final_model] + sorted(run.checkpoints().values(), reverse=True)
        for c in candidates:
            if (c / HEAD_FILE).is_file():
                return c, cfg
        raise ModelLayoutError(f"{ref}: run has no final_model/ or checkpoint-epoch-N/ with {HEAD_FILE} yet")
    if (ref / HEAD_FILE).is_file():
        cfg = _checkpoint_config(ref)
        if cfg is None:
            raise ModelLayoutError(
                f"{ref}: checkpoint without {CHECKPOINT_CONFIG_FILE}, run.json or a run's {run.config_file.name}"
            )
        return ref, cfg
    raise ModelLayoutError(
        f"{ref}: neither a protein run (with {run.config_file.name}) nor a checkpoint (with {HEAD_FILE})"
    )


def load_trained_model(model_ref: str | Path, runtime=None):
    """(model in eval mode, ExperimentConfig, checkpoint dir) ready for inference."""
    from loralab.engine.checkpoint import verify_checkpoint
    from loralab.protein.checkpoint_io import load_protein_trainable
    from loralab.protein.model import build_protein_model

    checkpoint, cfg = find_checkpoint(model_ref)
    if cfg.system != "protein":
        raise ModelLayoutError(f"{model_ref}: a '{cfg.system}' run, not a protein run")
    verify_checkpoint(checkpoint)  # a truncated head/adapter file is named, before the backbone loads
    runtime = runtime or inference_runtime()
    cfg.model.gradient_checkpointing = False  # inference: nothing to recompute
    model = build_protein_model(cfg, runtime)
    load_protein_trainable(model, checkpoint)
    model.eval()
    return model, cfg, checkpoint


def predict_distance_matrices(
    model, examples, batch_size: int, runtime, progress: bool = False, contacts: list | None = None
) -> list:
    """Predicted distances (float32 ``[L, L]``, A, symmetric, zero diagonal) per example.

    Batches are formed from length-sorted examples (little padding); the order of the
    result is the order of ``examples``. A ``contacts`` list is filled with each example's
    contact probabilities ``[L, L]`` (None without a distogram head).
    """
    import torch
    from tqdm import tqdm

    from loralab.protein.dataset import collate_proteins

    order = sorted(range(len(examples)), key=lambda i: examples[i].length)
    results: list = [None] * len(examples)
    contact_rows: list = [None] * len(examples)
    autocast = (
        torch.autocast(runtime.device.type, dtype=runtime.autocast_dtype)
        if runtime.autocast_dtype is not None
        else torch.autocast(runtime.device.type, enabled=False)
    )
    was_training = model.training
    model.eval()
    starts = range(0, len(order), batch_size)
    with torch.no_grad(), autocast:
        for start in tqdm(starts, desc="predicting distances", unit="batch", disable=not progress):
            idx = order[start : start + batch_size]
            batch = collate_proteins([examples[i] for i in idx])
            lengths = batch["lengths"].to(runtime.device)
            out = model(residue_index=batch["residue_index"].to(runtime.device), lengths=lengths)
            dist = out["distance"].float().cpu().numpy()
            prob = out.get("contact_probability")
            prob = None if prob is None else prob.float().cpu().numpy()
            for row, i in enumerate(idx):
                n = examples[i].length
                d = dist[row, :n, :n].copy()
                np.fill_diagonal(d, 0.0)
                results[i] = d
                contact_rows[i] = None if prob is None else prob[row, :n, :n].copy()
    model.train(was_training)
    if contacts is not None:
        contacts.extend(contact_rows)
    return results


def mds_coordinates(D: np.ndarray, refine: bool = True, chain: bool = True) -> tuple[np.ndarray, float]:
    """(coords [L, 3], normalised stress) from a distance matrix: classical MDS, then SMACOF
    refinement unless ``refine`` is False, then the chain-constrained refinement (3.8 A
    neighbours, no clashes; :mod:`loralab.protein.reconstruct`) unless ``chain`` is False.
    The hand is not chosen here (see :func:`loralab.protein.geometry.decide_handedness`)."""
    from loralab.protein.geometry import stress
    from loralab.protein.reconstruct import reconstruct

    X = reconstruct(D, refine=refine, chain=chain)
    return X, stress(D, X)


def save_heatmaps(path: Path, panels: list[tuple[str, np.ndarray]], vmax: float | None = None) -> Path:
    """Side-by-side distance heatmaps (A) sharing one colour scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    vmax = vmax or max(float(np.nanmax(D)) for _, D in panels if D.size) or 1.0
    # A fixed layout (constrained_layout doubles the drawing time; evaluation draws many).
    width = 3.4 * len(panels) + 1.6  # inches; the last 1.1 hold the colour bar and its label
    fig, axes = plt.subplots(1, len(panels), figsize=(width, 3.6), squeeze=False)
    fig.subplots_adjust(left=0.6 / width, right=1 - 1.3 / width, bottom=0.14, top=0.9, wspace=0.18)
    for k, (ax, (title, D)) in enumerate(zip(axes[0], panels)):
        im = ax.imshow(D, cmap="viridis_r", vmin=0, vmax=vmax, interpolation="nearest")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("residue j")
        if k == 0:
            ax.set_ylabel("residue i")
    colorbar_axes = fig.add_axes((1 - 1.1 / width, 0.14, 0.18 / width, 0.76))
    fig.colorbar(im, cax=colorbar_axes, label="C-alpha distance (A)")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


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
    from loralab.protein.dataset import ProteinExample, decode_residues, encode_sequence
    from loralab.protein.geometry import decide_handedness, distance_matrix, write_ca_pdb
    from loralab.protein.reconstruct import geometry_check

    checkpoint, cfg = find_checkpoint(model_ref)  # the run's max_length, before any weights load
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    names = safe_names([n for n, _ in sequences])
    examples, summaries = [], []
    for name, (given_name, seq) in zip(names, sequences):
        residues, notes = encode_sequence(seq, where=f"sequence '{given_name}'")
        if len(residues) < 4:
            raise DataError(f"sequence '{given_name}': {len(residues)} residues; a 3D trace needs at least 4")
        full = len(residues)
        if crop and full > cfg.protein.max_length:
            residues = residues[: cfg.protein.max_length]
            notes.append(
                f"sequence '{given_name}': {full} residues, longer than the model's protein.max_length="
                f"{cfg.protein.max_length}; predicted residues 1-{cfg.protein.max_length} only "
                "(pass --no-crop to predict all)"
            )
        n = len(residues)
        examples.append(ProteinExample(name, residues, np.zeros((n, 3), np.float32), np.ones(n, bool)))
        summaries.append({"name": name, "given_name": given_name, "length": full, "predicted_length": n,
                          "cropped": n < full, "notes": notes})  # fmt: skip
    runtime = inference_runtime(device)
    check_fits_in_memory(summaries, cfg, runtime)  # before the model loads or a huge tensor is made
    model, cfg, checkpoint = load_trained_model(checkpoint, runtime)
    matrices = predict_distance_matrices(model, examples, batch_size, runtime, progress=len(examples) > 4)
    for ex, summary, D in zip(examples, summaries, matrices):
        name = ex.id
        X, fit_stress = mds_coordinates(D, refine=refine)
        decision = decide_handedness(X)  # no reference: the C-alpha torsion rule
        X = decision.apply(X)
        fit_error = np.abs(distance_matrix(X) - D).sum(1) / max(len(D) - 1, 1)
        geometry = geometry_check(X)
        sequence = decode_residues(ex.residue_index)
        np.save(out_dir / f"{name}.distances.npy", D.astype(np.float32))
        save_heatmaps(out_dir / f"{name}.distances.png", [(f"{name}: predicted distances", D)])
        remarks = [
            f"loralab protein predict, model {checkpoint}",
            "C-alpha trace: classical MDS"
            + (" + SMACOF stress refinement" if refine else "")
            + " + chain-constrained refinement (3.8 A neighbours, no clashes)",
            "geometry: mean CA-CA {mean_ca_ca:.2f} A, {clashes} non-adjacent pairs < 3.5 A".format(
                **geometry
            ),
            f"handedness: CA torsion rule, score {decision.score:+.3f}, mirrored={decision.mirrored}",
            "B-factor column: mean |d(X) - D_predicted| of the residue (A)",
        ]
        write_ca_pdb(out_dir / f"{name}.pdb", X, sequence, bfactors=fit_error, remarks=remarks)
        neighbours = np.diagonal(D, 1)
        summary.update(
            {
                "sequence": sequence,
                "files": {k: f"{name}.{k}" for k in ("distances.npy", "distances.png", "pdb")},
                "handedness": {
                    "method": decision.method,
                    "score": decision.score,
                    "mirrored": decision.mirrored,
                },
                "mds_stress": fit_stress,
                "geometry": geometry,  # consecutive CA-CA and clashes of the written trace
                "mean_fit_error_A": float(fit_error.mean()),
                "mean_neighbour_distance_A": float(neighbours.mean()) if len(neighbours) else None,
                "refined": refine,
            }
        )
    for summary in summaries:
        summary["model"] = str(checkpoint)
    listed = _earlier_predictions(out_dir / "predictions.json", {s["name"] for s in summaries}) + summaries
    report = {"model": str(checkpoint), "base_model": cfg.model.name_or_path, "predictions": listed}
    (out_dir / "predictions.json").write_text(json.dumps(report, indent=2) + "\n")
    return summaries


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


def pair_bytes(cfg, runtime) -> int:
    """Bytes per residue pair at the peak of a forward pass, roughly: the [L, L, channels] pair
    features and MLP activations (in the weight dtype), plus the float32/float64 copies of the
    distance map that MDS works on."""
    import torch

    head = cfg.protein_head
    channels = head.pair_dim + head.hidden_dim + max(head.distogram_bins, 0)
    channels += 2 * getattr(head, "trunk_channels", 0) if getattr(head, "trunk_blocks", 0) else 0
    element = torch.finfo(runtime.weight_dtype).bits // 8
    return element * channels + 4 + 8 + 8


def available_memory(device) -> int | None:
    """Free bytes on ``device`` (a CUDA GPU's free memory, else the host's MemAvailable)."""
    import torch

    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        import os

        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_fits_in_memory(summaries: list[dict], cfg, runtime, available: int | None = None) -> None:
    """A DataError, before anything is allocated, when the longest sequence's [L, L] pair tensors
    would not fit in the memory there is; says how long a sequence fits."""
    if not summaries:
        return
    longest = max(summaries, key=lambda s: s["predicted_length"])
    n = longest["predicted_length"]
    per_pair = pair_bytes(cfg, runtime)
    available = available_memory(runtime.device) if available is None else available
    if available is None or n * n * per_pair <= 0.8 * available:
        return
    fits = int((0.8 * available / per_pair) ** 0.5)
    gib = 1024**3
    raise DataError(
        f"sequence '{longest['given_name']}': {n} residues need about {n * n * per_pair / gib:,.1f} GiB "
        f"for the [L, L] pair features ({per_pair} bytes per residue pair), but {runtime.device.type} has "
        f"{available / gib:,.1f} GiB available: up to about {fits:,} residues fit. Crop it (leave out "
        f"--no-crop: the model's protein.max_length is {cfg.protein.max_length}), split it into domains, "
        "or use a machine with more memory"
    )
