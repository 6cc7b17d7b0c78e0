"""Saving and loading a protein model's trainable parts: LoRA adapter, residue embedding, head."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from loralab.errors import ModelLayoutError
from loralab.protein.model import (
    ADAPTER_FILE,
    HEAD_FILE,
    HEAD_META_FILE,
    RESIDUE_ALPHABET,
    ProteinDistanceModel,
    distogram_edges,
)


def unwrap(model):
    """The ProteinDistanceModel inside a DDP/accelerate wrapper."""
    while not isinstance(model, ProteinDistanceModel) and hasattr(model, "module"):
        model = model.module
    return model


def save_protein_trainable(model, out_dir: str | Path) -> None:
    """LoRA adapter (PEFT, safetensors) + residue embedding and head (safetensors) + metadata."""
    from safetensors.torch import save_file

    model = unwrap(model)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    # save_embedding_layers=False: with LoRA on the token embedding (the backbone ablation) PEFT
    # would otherwise copy the whole frozen embedding (vocabulary x hidden) into every checkpoint.
    model.backbone.save_pretrained(out_dir, safe_serialization=True, save_embedding_layers=False)
    state = {k: v.detach().float().cpu().contiguous() for k, v in model.trainable_state().items()}
    save_file(state, str(out_dir / HEAD_FILE))
    meta = {
        "residue_alphabet": RESIDUE_ALPHABET,
        "residue_token_ids": model.residue_token_ids.tolist(),
        "target": "log(1 + d / Angstrom)",
        "distogram_bins": model.head.distogram_bins,
        "distogram_edges": distogram_edges(model.head.distogram_bins).tolist()
        if model.head.distogram_bins
        else [],
    }
    (out_dir / HEAD_META_FILE).write_text(json.dumps(meta, indent=2) + "\n")


def load_protein_trainable(model, in_dir: str | Path) -> None:
    """Load what :func:`save_protein_trainable` wrote; mismatches are errors, not warnings."""
    from peft import set_peft_model_state_dict

    from loralab.safe_files import load_safetensors

    model = unwrap(model)
    in_dir = Path(in_dir)
    for name in (ADAPTER_FILE, HEAD_FILE):
        if not (in_dir / name).is_file():
            raise ModelLayoutError(
                f"{in_dir}: missing {name}; a protein checkpoint holds {ADAPTER_FILE} (LoRA) and {HEAD_FILE} "
                "(head), written by 'loralab train' with system: protein"
            )
    device = model.residue_token_ids.device
    result = set_peft_model_state_dict(
        model.backbone,
        load_safetensors(
            in_dir / ADAPTER_FILE,
            device=str(device),
            hint="the checkpoint is damaged: re-run training or pick another checkpoint",
        ),
    )
    unexpected = getattr(result, "unexpected_keys", [])
    if unexpected:
        raise ModelLayoutError(
            f"{in_dir / ADAPTER_FILE}: adapter weights do not fit this model: {unexpected[:5]}"
        )
    state = load_safetensors(
        in_dir / HEAD_FILE,
        device=str(device),
        hint="the checkpoint is damaged: re-run training or pick another checkpoint",
    )
    for prefix, module in (("residue_embedding.", model.residue_embedding), ("head.", model.head)):
        part = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
        if prefix == "head." and "distogram_prior.weight" not in part:  # saved before it existed
            part["distogram_prior.weight"] = torch.zeros_like(module.distogram_prior.weight)
        try:
            module.load_state_dict(part, strict=True)
        except RuntimeError as e:
            raise ModelLayoutError(
                f"{in_dir / HEAD_FILE}: the saved head does not match the config (protein_head.*): {e}"
            ) from None
