"""The protein system's config sections (``protein:``, ``protein_head:``), registered with the
system (:func:`loralab.engine.system.register_system`); light on purpose: reading a config imports it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from loralab.config.schema import doc


@dataclass
class ProteinDataConfig:
    """Protein structure data set (from 'loralab protein prepare')."""

    dataset_dir: str = doc("Folder written by 'loralab protein prepare'.", "data/proteins")
    max_length: int = doc("Longest chain fed whole; longer ones are cropped to a window (said in logs).", 256)
    crop: Literal["random", "first"] = doc("How a training window is chosen for long chains.", "random")
    train_split: str = doc("Data set split used for training.", "train")
    val_split: str = doc("Split scored after each epoch (validation MAE beside the baseline).", "val")
    limit: int | None = doc("Use only the first N proteins of each split (smoke tests).", None)


@dataclass
class ProteinHeadConfig:
    """The pairwise distance head."""

    pair_dim: int = doc("Width of the pairwise features.", 128)
    hidden_dim: int = doc("Hidden width of the pair MLP.", 256)
    distogram_bins: int = doc("Bins of the optional distogram head (0 disables).", 0)
    distogram_weight: float = doc("Weight of the distogram cross-entropy in the loss.", 0.5)
    loss: Literal["mse", "huber"] = doc("Regression loss on normalised distances.", "huber")
    context: Literal["causal", "bidirectional"] = doc(
        "What each residue sees in the backbone. causal: the residues before it (the LM's own mask); "
        "bidirectional: the whole chain (a full attention mask, padding excluded; LoRA adapts the "
        "backbone to it).",
        "causal",
    )
    trunk_blocks: int = doc(
        "Residual 2D-convolution blocks refining the pair features over the whole [L, L] map "
        "(dilations 1, 2, 4, 8 in turn; 0: none).",
        0,
    )
    trunk_channels: int = doc("Channels of the pair trunk's convolutions.", 32)
    sequence_conv_blocks: int = doc(
        "Residual 1D-convolution blocks over the residues between the backbone and the pair "
        "features (kernel 5, dilations 1, 2, 4, 8 in turn; 0: none): each residue sees its "
        "neighbours along the chain at a small fraction of a backbone layer's cost.",
        0,
    )
    sequence_conv_channels: int = doc("Channels of the sequence convolutions.", 128)
    backbone_layers: int | None = doc(
        "Use only the backbone's first N decoder layers (its final norm kept); null: all. A CPU "
        "budget knob: compute per residue scales with N.",
        None,
    )
    distance_from: Literal["regression", "distogram", "distogram_median"] = doc(
        "Distances used for MDS and metrics. distogram: the distogram's expected distance (the "
        "overflow bin takes the regression value, at least the last edge); distogram_median: its "
        "median (minimises the expected absolute error). With a distogram, contacts are ranked by "
        "the bins' probability below 8 A. distogram*: needs distogram_bins > 0.",
        "regression",
    )


CONFIG_SECTIONS = {"protein": ProteinDataConfig, "protein_head": ProteinHeadConfig}
