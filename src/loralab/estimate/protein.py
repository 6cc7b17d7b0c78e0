"""The protein system without weights: the backbone with LoRA and the pair head, as
:func:`loralab.protein.build.build_protein_model` assembles them, on chains of typical lengths.

Chain lengths: log-normal (median 200 residues, sigma 0.6, 30-1000: the bulk of PDB chains),
cropped to ``protein.max_length`` as the training set does. An epoch is stated per
:data:`EPOCH_CHAINS` chains (the data set is the user's own).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from loralab.errors import LoralabError
from loralab.estimate.fake import AllocationTracker, OracleFakeMode, fakeify

EPOCH_CHAINS = 1000
ASSUMPTIONS = {
    "chain_lengths": "log-normal, median 200 residues, sigma 0.6, clipped to 30-1000, cropped to protein.max_length",
    "epoch_chains": EPOCH_CHAINS,
}


@dataclass(frozen=True)
class Chain:
    length: int
    task: str = "protein"


def chains(max_length: int, n: int = EPOCH_CHAINS, seed: int = 0) -> list[Chain]:
    rng = np.random.default_rng(seed)
    raw = np.clip(rng.lognormal(math.log(200), 0.6, n), 30, 1000)
    return [Chain(int(min(x, max_length))) for x in raw]


def _backbone_config(cfg):
    from loralab.engine.known_models import offline_config

    name = cfg.model.name_or_path
    try:
        return offline_config(name, cfg.model.revision)[0]
    except (LookupError, OSError, ValueError) as e:
        raise LoralabError(f"{cfg.name}: cannot read the config of backbone '{name}' offline: {e}") from None


def build_fake_model(cfg, mode: OracleFakeMode, weight_dtype):
    """ProteinDistanceModel with fake weights: frozen backbone in ``weight_dtype``, LoRA, residue
    embedding and head in fp32 (as build_protein_model leaves them)."""
    from transformers import AutoModel

    from loralab.protein.build import assemble_protein_model
    from loralab.protein.model import RESIDUE_ALPHABET

    with torch.device("meta"):
        backbone = AutoModel.from_config(_backbone_config(cfg), attn_implementation="sdpa")
        backbone.to(weight_dtype)
        model = assemble_protein_model(backbone, list(range(len(RESIDUE_ALPHABET))), cfg)
    fakeify(model, mode)
    return model


def fake_batch(length: int, batch_size: int, mode: OracleFakeMode) -> dict:
    """``collate_proteins``'s layout for ``batch_size`` chains of ``length`` residues."""
    pair_mask = torch.ones(batch_size, length, length, dtype=torch.bool)
    pair_mask &= ~torch.eye(length, dtype=torch.bool)[None]
    batch = {
        "residue_index": torch.randint(0, 20, (batch_size, length)),
        "residue_mask": torch.ones(batch_size, length, dtype=torch.bool),
        "pair_mask": pair_mask,
        "lengths": torch.full((batch_size,), length),
    }
    batch = {k: mode.constant(v) for k, v in batch.items()}
    with mode:
        batch["distances"] = torch.empty(batch_size, length, length)
    return batch


def make_loss_fn(head_cfg):
    """The protein system's loss_fn (see loralab.protein.system.build_parts)."""
    from loralab.protein.training_targets import protein_loss

    def loss_fn(model, batch):
        out = model(residue_index=batch["residue_index"], lengths=batch["lengths"])
        return protein_loss(out, batch, head_cfg)

    return loss_fn


def estimate_protein(cfg, batch_size: int, mfu: float, weight_dtype, autocast_dtype) -> dict:
    from loralab.estimate import core, hardware
    from loralab.estimate.measure import measure_forward, measure_training

    mode = OracleFakeMode()
    model = build_fake_model(cfg, mode, weight_dtype)
    train = chains(cfg.protein.max_length)
    longest, median = max(c.length for c in train), sorted(c.length for c in train)[len(train) // 2]
    batches = [fake_batch(n, batch_size, mode) for n in (longest, median)]
    loss_fn = make_loss_fn(cfg.protein_head)
    with mode:
        costs, optimizer_bytes = measure_training(
            model, loss_fn, batches, cfg.training, autocast_dtype, AllocationTracker(), 1
        )
    points = {"protein": [(longest, costs[0].flops), (median, costs[1].flops)]}
    flops, micro_batches = core.epoch_flops(train, batch_size, cfg.training, points)
    size = cfg.evaluation.batch_size
    with mode:
        val = measure_forward(
            model, lambda m, b: m(residue_index=b["residue_index"], lengths=b["lengths"]),
            fake_batch(longest, size, mode), autocast_dtype, AllocationTracker(),
        )  # fmt: skip
    val_flops = val.flops * math.ceil(
        EPOCH_CHAINS / size
    )  # every chain at the longest length: an upper bound
    result = {
        "preset": cfg.name,
        "model": cfg.model.name_or_path,
        "batch_size": batch_size,
        "gradient_accumulation": cfg.training.gradient_accumulation,
        "precision": core.precision_names(weight_dtype, autocast_dtype),
        "activation_checkpointing": bool(cfg.model.gradient_checkpointing),
        **core.memory_breakdown(model, optimizer_bytes, costs[0].peak_bytes),
        "peak_batch": {"protein": {"residues": longest}},
        **core.timing(flops, micro_batches, mfu),
        "evaluation": {
            "batch_size": size,
            "peak_gb": core.gb(val.peak_bytes),
            "tflops_per_epoch": round(val_flops / 1e12, 1),
            "epoch_seconds": {
                g.key: round(hardware.compute_seconds(val_flops, g, mfu), 1) for g in hardware.GPUS
            },
            "note": f"validation forward pass over {EPOCH_CHAINS} chains at the longest length",
        },
        "assumptions": {**core.assumptions(mfu), "epoch": f"{EPOCH_CHAINS} chains", "lengths": ASSUMPTIONS},
    }
    result["fits_24gb"] = result["peak_gb"] <= 24.0
    return result
