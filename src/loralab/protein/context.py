"""Context for the protein model: a bidirectional backbone, sequence convolutions, a pair trunk.

A causal LM lets residue i see only residues 0..i, so for a pair (i, j) with i < j the
representation of i knows nothing of j. Three mechanisms give residues and pairs their
surroundings (``protein_head.context``, ``sequence_conv_blocks``, ``trunk_blocks``; measured
in the README):

* **bidirectional** attention: the backbone runs with a full attention mask (every real
  residue attends to every real residue; right padding is masked out as keys, so a chain's
  output does not depend on what it is batched with). The pretrained weights were trained
  causally; LoRA adapts them. Passed to the backbone as a 4D additive mask, which
  transformers uses as given (SDPA and eager kernels; flash-attention takes no 4D mask, so
  this mode uses SDPA).
* a **sequence convolution** (``protein_head.sequence_conv_blocks``): residual blocks of 1D
  convolutions (kernel 5, dilations 1, 2, 4, 8 in turn) over the residues, between the
  backbone and the pair features: each residue's features see its neighbours along the chain
  (the window that sets secondary structure), at a cost that is small beside any backbone
  layer. Padding positions are zeroed before every convolution, as in the trunk.
* a **pair trunk**: residual blocks of 3x3 2D convolutions (dilations 1, 2, 4, 8 in turn)
  over the [L, L] pair features, so each pair's features depend on its neighbourhood in
  the map (secondary-structure patterns, contact lines). Padding rows and columns are
  zeroed before every convolution, which is the convolution's own zero padding: a chain's
  output is the same alone or in a batch. The output is symmetrised.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

CONTEXTS = ("causal", "bidirectional")
TRUNK_DILATIONS = (1, 2, 4, 8)


def bidirectional_mask(lengths: torch.Tensor, width: int, dtype: torch.dtype) -> torch.Tensor:
    """[B, 1, L, L] additive mask: 0 where the key is a real residue, the dtype's minimum
    where it is padding. Padding queries see the real residues (their outputs are unused)."""
    keys = torch.arange(width, device=lengths.device)[None, :] < lengths[:, None]  # [B, L]
    mask = torch.zeros(len(lengths), 1, width, width, dtype=dtype, device=lengths.device)
    return mask.masked_fill(~keys[:, None, None, :], torch.finfo(dtype).min)


def attention_mask_for(context: str, lengths: torch.Tensor | None, batch: int, width: int, dtype, device):
    """The ``attention_mask`` to pass to the backbone: None (its causal default) or the
    bidirectional 4D mask (all positions real when ``lengths`` is None)."""
    if context == "causal":
        return None
    if context != "bidirectional":
        raise ValueError(f"protein_head.context must be one of {CONTEXTS}, got {context!r}")
    if lengths is None:
        lengths = torch.full((batch,), width, device=device)
    return bidirectional_mask(lengths.to(device), width, dtype)


def residue_mask(lengths: torch.Tensor | None, batch: int, width: int, device) -> torch.Tensor:
    """[B, L] bool: True for real residues (all when ``lengths`` is None)."""
    if lengths is None:
        return torch.ones(batch, width, dtype=torch.bool, device=device)
    return torch.arange(width, device=device)[None, :] < lengths.to(device)[:, None]


class SequenceConvBlock(nn.Module):
    """x + conv(act(norm(x))) over the residues; x: [B, C, L], mask: [B, 1, L]."""

    def __init__(self, channels: int, dilation: int, kernel: int = 5):
        super().__init__()
        self.norm = nn.LayerNorm(channels)
        self.conv = nn.Conv1d(channels, channels, kernel, padding=dilation * (kernel // 2), dilation=dilation)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        y = self.norm(x.transpose(1, 2)).transpose(1, 2)
        return (x + self.conv(F.gelu(y) * mask)) * mask


class SequenceConv(nn.Module):
    """Per-residue features [B, L, H] -> [B, L, C]: a linear map, then residual 1D conv blocks."""

    def __init__(self, hidden_size: int, channels: int, blocks: int):
        super().__init__()
        self.inp = nn.Linear(hidden_size, channels)
        self.blocks = nn.ModuleList(
            SequenceConvBlock(channels, TRUNK_DILATIONS[k % 4]) for k in range(blocks)
        )

    def forward(self, hidden: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        real = residue_mask(lengths, hidden.shape[0], hidden.shape[1], hidden.device)
        mask = real.to(hidden.dtype)[:, None]  # [B, 1, L]
        x = self.inp(hidden).transpose(1, 2) * mask
        for block in self.blocks:
            x = block(x, mask)
        return x.transpose(1, 2)


class TrunkBlock(nn.Module):
    """x + conv(act(norm(x))) twice; norm over channels (per pair, so padding-independent)."""

    def __init__(self, channels: int, dilation: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(channels)
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=dilation, dilation=dilation)
        self.norm2 = nn.LayerNorm(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=dilation, dilation=dilation)
        nn.init.zeros_(self.conv2.weight)  # starts as the identity: the head as without a trunk
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x: [B, C, L, L]; mask: [B, 1, L, L] (1 for pairs of real residues)."""
        y = self.norm1(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        y = self.conv1(F.gelu(y) * mask)
        y = self.norm2(y.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        y = self.conv2(F.gelu(y) * mask)
        return (x + y) * mask


class PairTrunk(nn.Module):
    """Pair features [B, L, L, D] -> refined pair features [B, L, L, D] (residual, symmetric)."""

    def __init__(self, pair_dim: int, channels: int, blocks: int):
        super().__init__()
        self.inp = nn.Linear(pair_dim, channels)
        self.blocks = nn.ModuleList(TrunkBlock(channels, TRUNK_DILATIONS[k % 4]) for k in range(blocks))
        self.out = nn.Linear(channels, pair_dim)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, pair: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        batch, width = pair.shape[:2]
        real = residue_mask(lengths, batch, width, pair.device)
        mask = (real[:, :, None] & real[:, None, :]).to(pair.dtype)[:, None]  # [B, 1, L, L]
        x = self.inp(pair).permute(0, 3, 1, 2) * mask
        for block in self.blocks:
            x = block(x, mask)
        x = 0.5 * (x + x.transpose(2, 3))
        return pair + self.out(x.permute(0, 2, 3, 1))
