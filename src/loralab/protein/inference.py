"""A trained protein model, ready to predict: finding a run's checkpoint and config, loading it,
predicting distance matrices in length-sorted batches, and coordinates from a matrix (MDS).

Used by :mod:`loralab.protein.predict` (sequences -> files) and :mod:`loralab.protein.evaluate`
(a run's checkpoints scored on a split). A run directory is read through
:class:`loralab.engine.run_dir.RunDir`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from loralab.errors import ModelLayoutError


def inference_runtime(device: str | None = None):
    """CUDA with bf16 weights and autocast where available, else fp32 on the CPU."""
    import torch

    from loralab.engine.runtime import Runtime

    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if dev.type == "cuda" and torch.cuda.is_bf16_supported():
        return Runtime(device=dev, weight_dtype=torch.bfloat16, autocast_dtype=torch.bfloat16)
    return Runtime(device=dev, weight_dtype=torch.float32)


def _checkpoint_config(checkpoint: Path):
    """The typed config a model folder was trained with: its model card's (any layout, see
    :mod:`loralab.engine.model_card`), else its run's; None when neither says."""
    from loralab.config.loader import build_dataclass
    from loralab.config.schema import ExperimentConfig
    from loralab.engine.model_card import model_config

    found = model_config(checkpoint)
    if found is None:
        return None
    config, where = found
    return build_dataclass(ExperimentConfig, config, str(where))


def find_checkpoint(model_ref: str | Path):
    """(model folder, ExperimentConfig) for a run dir, a checkpoint dir or a final_model dir.

    A run dir stands for its ``final_model/``, else its newest ``checkpoint-epoch-N/``
    (:func:`loralab.engine.model_card.model_folder`), each only with the head's weights.
    """
    from loralab.engine.model_card import model_folder
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
        folder = model_folder(ref, holds_model=lambda p: (p / HEAD_FILE).is_file())
        if folder is None:
            raise ModelLayoutError(
                f"{ref}: run has no final_model/ or checkpoint-epoch-N/ with {HEAD_FILE} yet"
            )
        return folder, cfg
    if (ref / HEAD_FILE).is_file():
        cfg = _checkpoint_config(ref)
        if cfg is None:
            raise ModelLayoutError(
                f"{ref}: a model folder without a model card or a run's {run.config_file.name}"
            )
        return ref, cfg
    raise ModelLayoutError(
        f"{ref}: neither a protein run (with {run.config_file.name}) nor a checkpoint (with {HEAD_FILE})"
    )


def load_trained_model(model_ref: str | Path, runtime=None):
    """(model in eval mode, ExperimentConfig, checkpoint dir) ready for inference."""
    from loralab.engine.checkpoint import verify_checkpoint
    from loralab.protein.build import build_protein_model
    from loralab.protein.checkpoint_io import load_protein_trainable

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
