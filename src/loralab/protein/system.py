"""The protein system's plug-in for the shared trainer (``loralab train``, system: protein).

:func:`build_parts` loads the backbone with LoRA and the pair head
(:mod:`loralab.protein.model`), reads the prepared data set's training and validation
splits (``protein.train_split`` / ``protein.val_split``), and hands the trainer:

* a training set that crops chains longer than ``protein.max_length`` to a random window
  each time they are drawn (the validation set uses the first window), logged once;
* ``collate_proteins`` batches (right-padded, pair masks; ``num_tokens`` = valid pairs);
* the masked pair loss; the save/load of adapter + head as safetensors;
* an ``evaluate`` hook that, after each epoch (``evaluation.every_epoch``), reports the
  validation distance MAE/RMSE/Pearson and, beside them, the same for the baseline that
  predicts the mean training distance for each sequence separation.

:func:`count_parameters` gives the same parameter groups from the backbone's config alone,
on the meta device (``loralab compare`` on presets).
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

from loralab.engine.system import ParamCount, SystemParts

log = logging.getLogger("loralab.protein")

PARAM_GROUPS = ("lora", "protein_head", "backbone")


def parameter_groups(model) -> dict[str, ParamCount]:
    """lora (adapter), protein_head (residue embedding + pair head), backbone (frozen)."""
    counts = {g: [0, 0] for g in PARAM_GROUPS}
    for name, p in model.named_parameters():
        group = "lora" if "lora_" in name else "backbone" if name.startswith("backbone.") else "protein_head"
        counts[group][1] += p.numel()
        if p.requires_grad:
            counts[group][0] += p.numel()
    return {g: ParamCount(trainable=t, total=n) for g, (t, n) in counts.items()}


def _datasets(cfg, train_examples, val_examples):
    """(training examples, training set, validation set or None): the config's splits unless
    examples are given."""
    from loralab.protein.dataset import ProteinDataset
    from loralab.protein.records import load_split

    if train_examples is None:
        train_examples = load_split(cfg, cfg.protein.train_split)
        val_examples = load_split(cfg, cfg.protein.val_split, required=False)
    val_examples = val_examples or []
    if not val_examples:
        log.warning("split '%s' is empty: no validation metrics during training", cfg.protein.val_split)
    train_set = ProteinDataset(train_examples, cfg.protein.max_length, cfg.protein.crop, name="train")
    val_set = (
        ProteinDataset(val_examples, cfg.protein.max_length, "first", name=cfg.protein.val_split)
        if val_examples
        else None
    )
    return train_examples, train_set, val_set


def build_parts(cfg, runtime, *, train_examples=None, val_examples=None) -> SystemParts:
    """Everything the shared trainer needs to train the protein model (see module doc).

    ``train_examples`` / ``val_examples`` (lists of ProteinExample) replace the data set's
    splits when given (benchmarks feed synthetic chains through the same path)."""
    from loralab.protein.build import build_protein_model
    from loralab.protein.checkpoint_io import load_protein_trainable, save_protein_trainable
    from loralab.protein.dataset import collate_proteins
    from loralab.protein.scoring import SeparationMeanBaseline, validation_metrics
    from loralab.protein.training_targets import distogram_prior, protein_loss, separation_prior

    train_examples, train_set, val_set = _datasets(cfg, train_examples, val_examples)
    baseline = SeparationMeanBaseline.fit(train_examples)
    model = build_protein_model(cfg, runtime)
    # Fresh head: start at the separation-mean prior (a resumed run loads its own weights).
    bins = cfg.protein_head.distogram_bins
    model.head.set_separation_prior(
        separation_prior(train_examples).to(runtime.device),
        distogram_prior(train_examples, bins).to(runtime.device) if bins else None,
    )
    head_cfg = cfg.protein_head

    def loss_fn(model, batch):
        device = next(model.parameters()).device
        out = model(residue_index=batch["residue_index"].to(device), lengths=batch["lengths"].to(device))
        tensors = {k: batch[k].to(device) for k in ("distances", "pair_mask")}
        return protein_loss(out, tensors, head_cfg)

    def evaluate(model, run_dir, epoch):
        return validation_metrics(model, val_set, baseline, cfg.evaluation.batch_size, runtime)

    def save_final(model, out_dir):
        save_protein_trainable(model, out_dir)
        (Path(out_dir) / "README.md").write_text(model_card(cfg))  # the engine adds its card

    return SystemParts(
        model=model,
        train_dataset=train_set,
        collate=collate_proteins,
        lengths=train_set.lengths,
        loss_fn=loss_fn,
        param_groups=parameter_groups(model),
        save_trainable=save_protein_trainable,
        load_trainable=load_protein_trainable,
        save_final=save_final,
        evaluate=evaluate if val_set is not None else None,
    )


def model_card(cfg) -> str:
    return (
        f"# {cfg.name}: protein C-alpha distance model (loralab)\n\n"
        f"- base model: `{cfg.model.name_or_path}` (revision {cfg.model.revision}); load it, then this folder's "
        "LoRA adapter (`adapter_model.safetensors`) and pair head (`protein_head.safetensors`).\n"
        f"- LoRA r={cfg.lora.rank}, alpha={cfg.lora.alpha}, targets `{cfg.lora.target_modules}`\n"
        f"- one input position per residue; distances predicted as log(1 + d/A); chains up to "
        f"{cfg.protein.max_length} residues\n"
        f"- predict: `loralab protein predict --model {cfg.run_dir} --sequence SEQ --out DIR`\n"
    )


def count_parameters(cfg) -> dict[str, ParamCount]:
    """Parameter groups of :func:`build_parts`'s model, built on the meta device from the
    backbone's config (no weights read). Known preset backbones work offline."""
    import torch
    from transformers import AutoModel

    from loralab.engine.known_models import offline_config
    from loralab.errors import ModelLayoutError
    from loralab.protein.build import assemble_protein_model
    from loralab.protein.model import RESIDUE_ALPHABET

    name = cfg.model.name_or_path
    try:
        config, _ = offline_config(name, cfg.model.revision, cfg.model.trust_remote_code)
    except (LookupError, OSError, ValueError) as e:
        raise ModelLayoutError(f"cannot read the config of backbone '{name}': {e}") from None
    with torch.device("meta"):
        backbone = AutoModel.from_config(config)
        # Checkpointing changes no parameter; off, it needs no training-mode hooks on meta.
        counted = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, gradient_checkpointing=False))
        model = assemble_protein_model(backbone, list(range(len(RESIDUE_ALPHABET))), counted)
    return parameter_groups(model)
