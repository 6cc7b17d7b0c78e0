"""The protein system's plug-in (see :mod:`loralab.engine.system`): training from
:mod:`loralab.protein.system`, and the rest of the contract (config problems, description,
headline metrics, ``loralab evaluate``, ``loralab estimate``) here, a thin adapter over the protein modules."""

from __future__ import annotations

from pathlib import Path

from loralab.engine.system import EvalOutcome, EvalRequest, SystemDescription
from loralab.protein.system import build_parts, count_parameters  # noqa: F401  (the contract)

HEADLINE_METRICS = ("distance_mae", "distance_rmse", "distance_pearson", "tm_score", "lddt", "gdt_ts", "rmsd")
EVALUATION_OPTIONS = frozenset({"checkpoints", "split", "limit", "progress"})
ESTIMATOR = "loralab.estimate.protein:estimate_protein"  # loralab estimate (see loralab.engine.system)


def validate_config(cfg) -> list[str]:
    """The protein sections' ranges and the distogram settings."""
    problems = []
    head = cfg.protein_head
    if cfg.protein.max_length < 8:
        problems.append(f"protein.max_length must be >= 8 (got {cfg.protein.max_length})")
    if head.distogram_bins < 0:
        problems.append("protein_head.distogram_bins must be >= 0")
    if head.distance_from != "regression" and head.distogram_bins < 2:
        problems.append(
            f"protein_head.distance_from: {head.distance_from} needs protein_head.distogram_bins >= 2"
        )
    if head.trunk_blocks < 0 or head.trunk_channels < 1:
        problems.append("protein_head.trunk_blocks must be >= 0 and trunk_channels >= 1")
    if head.sequence_conv_blocks < 0 or head.sequence_conv_channels < 1:
        problems.append("protein_head.sequence_conv_blocks must be >= 0 and sequence_conv_channels >= 1")
    if head.backbone_layers is not None and head.backbone_layers < 0:
        problems.append(
            "protein_head.backbone_layers must be >= 0 (0: token embeddings only, the ablation; null: all layers)"
        )
    return problems


def describe(cfg) -> SystemDescription:
    p = cfg.protein
    start = "fresh LoRA (B = 0)"
    if cfg.lora.init == "pretrained":
        start = f"pretrained adapter, trained further ({cfg.lora.adapter_path or '?'})"
    return SystemDescription(
        data=f"{p.dataset_dir} · max length {p.max_length} ({p.crop} crop)",
        start_point=start,
        other_trainable="the protein head",
    )


def evaluate_run(run_dir: str | Path, request: EvalRequest) -> EvalOutcome:
    """``loralab evaluate`` on a protein run (:func:`loralab.protein.evaluate.evaluate_run`)."""
    from loralab.protein import evaluate

    split = {"split": request.split} if request.split else {}
    out = evaluate.evaluate_run(run_dir, request.checkpoints, limit=request.limit, **split)
    return EvalOutcome(Path(out), [f"evaluation written to {out}"])
