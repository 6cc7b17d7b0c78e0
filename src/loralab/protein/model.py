"""Causal LM backbone + LoRA + a symmetric pairwise head: C-alpha distances from sequence.

Design (each choice fixes a flaw of the user's first version, see the protein reference):

* **One input position per residue.** Each residue letter maps to the backbone's own
  single-character token (``tokenizer.encode("A")`` must give exactly one id; checked
  at load), so position k of the hidden states is residue k. No BOS or prompt is
  prepended: positions == residues. A small learned residue embedding (21 x hidden,
  zero-initialised, so training starts from the pretrained embedding) is added to the
  token embedding; it lets the model learn residue features its vocabulary lacks.
* **Pairwise and symmetric head.** From last-layer hidden states h (after the
  backbone's final norm) the head forms, for every pair i < j,
  ``z_ij = p_i * p_j + s_i + s_j + E[bucket(|i - j|)]`` (p, s: linear maps of h; E: a
  learned embedding of the sequence separation, exact to 31 then log-spaced), a function
  symmetric in i and j that can express a Euclidean distance in feature space
  (|a|^2 + |b|^2 - 2 a.b). A two-layer MLP maps z_ij to the distance (and optional
  distogram logits), plus a learned per-separation offset that starts at the training
  set's mean (:func:`separation_prior`). Each unordered pair is computed once and written
  to (i, j) and (j, i): exactly symmetric, half the work.
  With ``protein_head.sequence_conv_blocks``, residual 1D convolutions along the chain refine
  h first (:mod:`loralab.protein.context`): cheap local context for the pair features.
* **One fixed, global normalisation.** The regression target is ``log(1 + d)`` with d in
  Angstrom, for every protein alike; ``d = exp(y) - 1``. No per-protein maximum, so the
  absolute scale survives.
* **Masked loss, real batches.** Right-padded batches; the loss covers pairs of observed
  residues with i != j only. The backbone is causal, so right padding never leaks into
  real positions and no attention mask is needed (SDPA keeps its fast causal kernel).
* **No LM logits.** The backbone is loaded with ``AutoModel`` (the decoder without
  lm_head): only hidden states are computed.
* **Built from a config** by :mod:`loralab.protein.build` (backbone loading, layer cut,
  LoRA, the one assembly recipe).
* **Distogram (optional).** ``protein_head.distogram_bins = N`` adds N-way
  classification over AlphaFold's bins: N - 1 edges evenly from 2.3125 to 21.6875 A, the
  first bin below the first edge and the last one the overflow (N = 64: AlphaFold's).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from loralab.errors import ModelLayoutError
from loralab.protein.context import PairTrunk, SequenceConv, attention_mask_for

AMINO_ACIDS = "ACDEFGHIKLMNPQRSTVWY"
RESIDUE_ALPHABET = AMINO_ACIDS + "X"  # X: unknown residue; index 20
UNKNOWN_RESIDUE = RESIDUE_ALPHABET.index("X")

# Separation buckets: exact up to 31, then 16 log-spaced buckets up to 1024 (and beyond).
EXACT_SEPARATIONS = 32
LOG_SEPARATION_BUCKETS = 16
NUM_SEPARATION_BUCKETS = EXACT_SEPARATIONS + LOG_SEPARATION_BUCKETS
# Initial output bias: log(1 + 22 A), the mean CA-CA distance of the user's data set, so
# training starts near the global mean instead of at 0 A.
INITIAL_LOG_DISTANCE = math.log1p(22.0)
HUBER_DELTA = 1.0  # in log(1 + d) units: errors beyond a factor of e are penalised linearly
DISTOGRAM_FIRST_EDGE, DISTOGRAM_LAST_EDGE = 2.3125, 21.6875
CONTACT_CUTOFF = 8.0  # A, C-alpha contact (as loralab.protein.metrics)
HEAD_FILE = "protein_head.safetensors"
HEAD_META_FILE = "protein_head.json"
ADAPTER_FILE = "adapter_model.safetensors"


def distance_to_target(distances: torch.Tensor) -> torch.Tensor:
    """Angstrom -> the regression target log(1 + d) (one global transform)."""
    return torch.log1p(distances.clamp_min(0))


def target_to_distance(target: torch.Tensor) -> torch.Tensor:
    """The regression output -> Angstrom (never negative)."""
    return torch.expm1(target.clamp_min(0))


def distogram_edges(bins: int) -> torch.Tensor:
    """The bins - 1 inner edges (A) of a ``bins``-way distogram."""
    return torch.linspace(DISTOGRAM_FIRST_EDGE, DISTOGRAM_LAST_EDGE, bins - 1)


def separation_bucket(separation: torch.Tensor) -> torch.Tensor:
    """Bucket index of sequence separations |i - j| (exact below 32, then log-spaced)."""
    log_part = EXACT_SEPARATIONS + (
        torch.log(separation.clamp_min(1).float() / EXACT_SEPARATIONS)
        / math.log(1024 / EXACT_SEPARATIONS)
        * LOG_SEPARATION_BUCKETS
    ).long().clamp(0, LOG_SEPARATION_BUCKETS - 1)
    return torch.where(separation < EXACT_SEPARATIONS, separation, log_part)


def separation_buckets(length: int, device=None) -> torch.Tensor:
    """[L, L] bucket index of |i - j| (symmetric)."""
    pos = torch.arange(length, device=device)
    return separation_bucket((pos[:, None] - pos[None, :]).abs())


class PairDistanceHead(nn.Module):
    """Per-residue hidden states [B, L, H] -> log-distance [B, L, L] (+ distogram logits)."""

    def __init__(
        self,
        hidden_size: int,
        pair_dim: int,
        hidden_dim: int,
        distogram_bins: int = 0,
        trunk_blocks: int = 0,
        trunk_channels: int = 32,
        distance_from: str = "regression",
        sequence_conv_blocks: int = 0,
        sequence_conv_channels: int = 128,
    ):
        super().__init__()
        self.distogram_bins = distogram_bins
        self.distance_from = distance_from
        self.trunk = PairTrunk(pair_dim, trunk_channels, trunk_blocks) if trunk_blocks > 0 else None
        self.norm = nn.LayerNorm(hidden_size)
        self.sequence_conv = None
        if sequence_conv_blocks > 0:
            self.sequence_conv = SequenceConv(hidden_size, sequence_conv_channels, sequence_conv_blocks)
            hidden_size = sequence_conv_channels
        self.product = nn.Linear(hidden_size, pair_dim)
        self.single = nn.Linear(hidden_size, pair_dim)
        self.separation = nn.Embedding(NUM_SEPARATION_BUCKETS, pair_dim)
        # A learned log-distance offset per separation bucket, added to the MLP's output:
        # set to the training set's mean by set_separation_prior, so training starts at the
        # separation-mean baseline and the network learns what the sequence adds to it.
        self.separation_prior = nn.Embedding(NUM_SEPARATION_BUCKETS, 1)
        nn.init.zeros_(self.separation_prior.weight)
        # Likewise the distogram: per-separation log bin frequencies of the training set, so
        # its expected distance starts at the baseline's, not at a uniform distribution.
        self.distogram_prior = nn.Embedding(NUM_SEPARATION_BUCKETS, max(distogram_bins, 1))
        nn.init.zeros_(self.distogram_prior.weight)
        self.mlp = nn.Sequential(
            nn.GELU(), nn.Linear(pair_dim, hidden_dim), nn.GELU(), nn.Linear(hidden_dim, 1 + distogram_bins)
        )
        with torch.no_grad():
            self.mlp[-1].bias.zero_()
            self.mlp[-1].bias[0] = INITIAL_LOG_DISTANCE

    @torch.no_grad()
    def set_separation_prior(self, mean_log_distance: torch.Tensor, distogram_log_freq=None) -> None:
        """Start from the mean log(1 + d) per separation bucket ([NUM_SEPARATION_BUCKETS]) and
        the bins' log frequencies per bucket ([NUM_SEPARATION_BUCKETS, bins], optional)."""
        self.separation_prior.weight.copy_(mean_log_distance.reshape(-1, 1))
        if distogram_log_freq is not None and self.distogram_bins:
            self.distogram_prior.weight.copy_(distogram_log_freq)
        self.mlp[-1].bias[0] = 0.0  # the prior now carries the global scale

    def forward(self, hidden: torch.Tensor, lengths: torch.Tensor | None = None) -> dict:
        h = self.norm(hidden.float())
        if self.sequence_conv is not None:
            h = self.sequence_conv(h, lengths)
        p, s = self.product(h), self.single(h)
        batch, length = h.shape[:2]
        # Each unordered pair i < j is computed once and written to (i, j) and (j, i): the
        # output is exactly symmetric and the pair work is halved. The diagonal stays 0
        # (log(1 + 0 A) = 0), and is masked from the loss anyway.
        i, j = torch.triu_indices(length, length, offset=1, device=h.device)
        buckets = separation_bucket(j - i)
        if self.trunk is None:
            pair = p[:, i] * p[:, j] + (s[:, i] + s[:, j]) + self.separation(buckets)[None]
        else:  # the trunk needs the whole (symmetric) map
            sep = self.separation(separation_buckets(length, h.device))[None]
            full_pair = p[:, :, None] * p[:, None] + s[:, :, None] + s[:, None] + sep
            pair = self.trunk(full_pair, lengths)[:, i, j]
        out = self.mlp(pair)
        prior = self.separation_prior(buckets)
        if self.distogram_bins:
            prior = torch.cat([prior, self.distogram_prior(buckets)], dim=-1)
        out = out.float() + prior[None].float()  # fp32: bf16 would round log-distances by ~1%
        logits = out[..., 1:] if self.distogram_bins else None
        distance, contact = pair_distance_and_contact(out[..., 0], logits, self.distance_from)
        return {
            "log_distance": _square(out[..., 0], i, j, length),  # [B, L, L]
            "distance": _square(distance, i, j, length),  # [B, L, L], A: what MDS and metrics use
            "contact_probability": None if contact is None else _square(contact, i, j, length),
            "pair_index": (i, j),  # the pairs i < j that the pair_* outputs list
            "pair_log_distance": out[..., 0],  # [B, P]
            "pair_distogram_logits": logits,  # [B, P, bins] or None
        }


def _square(values: torch.Tensor, i: torch.Tensor, j: torch.Tensor, length: int) -> torch.Tensor:
    """Pair values [B, P] (pairs i < j) -> a symmetric [B, L, L] matrix with a zero diagonal."""
    full = values.new_zeros(values.shape[0], length, length)
    full[:, i, j] = values
    full[:, j, i] = values
    return full


def distogram_centres(bins: int, regression: torch.Tensor) -> torch.Tensor:
    """[..., bins] representative distance of each bin: the first below the first edge by
    half a bin, inner bins at their middles, the overflow bin at max(regression, last edge)."""
    edges = distogram_edges(bins).to(regression.device)
    step = float(edges[1] - edges[0]) if bins > 2 else 1.0
    inner = torch.cat([edges[:1] - step / 2, (edges[:-1] + edges[1:]) / 2])
    overflow = regression.clamp_min(float(edges[-1]))[..., None]
    return torch.cat([inner.expand(*regression.shape, bins - 1), overflow], dim=-1)


def pair_distance_and_contact(log_distance, logits, distance_from: str = "regression"):
    """(distance in A [B, P], contact probability [B, P] or None) of the head's pair outputs.

    regression: d = exp(y) - 1. distogram: the expected distance over the bins (overflow bin:
    the regression value, at least the last edge). Contact probability (with any distogram):
    the probability mass below 8 A (the bin straddling 8 A counted by its fraction below)."""
    regression = target_to_distance(log_distance.float())
    if logits is None:
        return regression, None
    probs = torch.softmax(logits.float(), dim=-1)
    bins = probs.shape[-1]
    edges = distogram_edges(bins).to(probs.device)
    upper = torch.cat([edges, edges.new_tensor([float("inf")])])  # each bin's upper edge
    lower = torch.cat([edges.new_tensor([0.0]), edges])
    below = ((CONTACT_CUTOFF - lower) / (upper - lower)).clamp(0, 1)
    below = torch.where(torch.isinf(upper), (lower < CONTACT_CUTOFF).float() * 0, below)
    contact = (probs * below).sum(-1)
    if distance_from == "distogram_median":
        return distogram_median(probs, regression), contact
    if distance_from != "distogram":
        return regression, contact
    return (probs * distogram_centres(bins, regression)).sum(-1), contact


def distogram_median(probs: torch.Tensor, regression: torch.Tensor) -> torch.Tensor:
    """The median of each pair's distogram (the distance minimising the expected absolute
    error), linear within its bin; the first bin spans one bin width below the first edge;
    a median in the overflow bin is the regression value, at least the last edge."""
    bins = probs.shape[-1]
    edges = distogram_edges(bins).to(probs.device)
    step = float(edges[1] - edges[0]) if bins > 2 else 1.0
    lower = torch.cat([edges[:1] - step, edges])  # [bins]: lower edge of each bin
    cdf = probs.cumsum(-1)
    k = (cdf < 0.5).sum(-1, keepdim=True).clamp(max=bins - 1)  # the bin holding the median
    below = torch.where(k > 0, cdf.gather(-1, (k - 1).clamp_min(0)), torch.zeros_like(k, dtype=cdf.dtype))
    inside = ((0.5 - below) / probs.gather(-1, k).clamp_min(1e-12)).clamp(0, 1)
    median = (lower[k] + inside * step).squeeze(-1)
    overflow = regression.clamp_min(float(edges[-1]))
    return torch.where(k.squeeze(-1) == bins - 1, overflow, median)


class ProteinDistanceModel(nn.Module):
    """The backbone (PEFT-wrapped, LoRA), residue embedding and pair head as one module.

    ``forward(residue_index)`` takes [B, L] indices into :data:`RESIDUE_ALPHABET`
    (padding: any index, masked by the loss) and returns the head's dict.
    """

    def __init__(self, backbone, residue_token_ids: list[int], head_cfg):
        super().__init__()
        self.backbone = backbone
        self.context = head_cfg.context
        hidden = backbone.config.hidden_size
        self.register_buffer("residue_token_ids", torch.tensor(residue_token_ids), persistent=False)
        self.residue_embedding = nn.Embedding(len(RESIDUE_ALPHABET), hidden)
        nn.init.zeros_(self.residue_embedding.weight)
        self.head = PairDistanceHead(
            hidden,
            head_cfg.pair_dim,
            head_cfg.hidden_dim,
            head_cfg.distogram_bins,
            trunk_blocks=head_cfg.trunk_blocks,
            trunk_channels=head_cfg.trunk_channels,
            distance_from=head_cfg.distance_from,
            sequence_conv_blocks=head_cfg.sequence_conv_blocks,
            sequence_conv_channels=head_cfg.sequence_conv_channels,
        )

    def forward(self, residue_index: torch.Tensor, lengths: torch.Tensor | None = None, **_unused) -> dict:
        """``lengths`` ([B], residues before the right padding; None: no padding) keeps padding
        out of the bidirectional attention and the pair trunk."""
        token_ids = self.residue_token_ids[residue_index]
        embed = self.backbone.get_input_embeddings()
        x = embed(token_ids)
        x = x + self.residue_embedding(residue_index).to(x.dtype)
        batch, width = residue_index.shape
        mask = attention_mask_for(self.context, lengths, batch, width, x.dtype, x.device)
        hidden = self.backbone(inputs_embeds=x, attention_mask=mask, use_cache=False).last_hidden_state
        return self.head(hidden, None if lengths is None else lengths.to(x.device))

    def trainable_state(self) -> dict[str, torch.Tensor]:
        """The non-LoRA trainable weights (residue embedding, head), for safetensors."""
        state = {f"residue_embedding.{k}": v for k, v in self.residue_embedding.state_dict().items()}
        state.update({f"head.{k}": v for k, v in self.head.state_dict().items()})
        return state


def residue_token_ids(tokenizer, source: str = "backbone") -> list[int]:
    """The single token id of each letter of :data:`RESIDUE_ALPHABET` in ``tokenizer``."""
    ids = []
    for letter in RESIDUE_ALPHABET:
        encoded = tokenizer.encode(letter, add_special_tokens=False)
        if len(encoded) != 1:
            raise ModelLayoutError(
                f"{source}: the tokenizer splits the residue letter '{letter}' into {len(encoded)} tokens "
                f"({encoded}); loralab needs one token per residue letter. Use a backbone whose vocabulary "
                "has single uppercase letters (Qwen, Llama, SmolLM2 and most BPE vocabularies do)."
            )
        ids.append(encoded[0])
    if len(set(ids)) != len(ids):
        raise ModelLayoutError(f"{source}: residue letters share token ids ({ids}); letters must be distinct")
    return ids
