"""What the protein model learns against: the separation priors it starts from and the loss.

* :func:`separation_prior` / :func:`distogram_prior`: the training set's mean log-distance
  and distogram bin frequencies per separation bucket; the head starts there, i.e. at the
  separation-mean baseline, and learns what the sequence adds.
* :func:`protein_loss`: Huber (or MSE) on log(1 + d) over valid pairs, plus the distogram's
  cross-entropy (AlphaFold's bins) weighted by ``protein_head.distogram_weight``.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from loralab.protein.model import (
    HUBER_DELTA,
    INITIAL_LOG_DISTANCE,
    NUM_SEPARATION_BUCKETS,
    distance_to_target,
    distogram_edges,
    separation_buckets,
)


def separation_prior(examples) -> torch.Tensor:
    """Mean log(1 + d) of observed training pairs per separation bucket ([NUM_SEPARATION_BUCKETS]);
    buckets without pairs take the nearest filled bucket below (or the global initial value)."""
    sums = torch.zeros(NUM_SEPARATION_BUCKETS, dtype=torch.float64)
    counts = torch.zeros(NUM_SEPARATION_BUCKETS, dtype=torch.float64)
    for e in examples:
        coords = torch.from_numpy(e.coords).double()
        mask = torch.from_numpy(e.mask)
        pair = (mask[:, None] & mask[None, :]).flatten()
        d = torch.cdist(torch.nan_to_num(coords), torch.nan_to_num(coords)).flatten()
        buckets = separation_buckets(len(coords)).flatten()
        sums.index_add_(0, buckets[pair], distance_to_target(d[pair]))
        counts.index_add_(0, buckets[pair], torch.ones(int(pair.sum()), dtype=torch.float64))
    prior = torch.full((NUM_SEPARATION_BUCKETS,), INITIAL_LOG_DISTANCE, dtype=torch.float64)
    prior[0] = 0.0
    for b in range(1, NUM_SEPARATION_BUCKETS):
        prior[b] = sums[b] / counts[b] if counts[b] > 0 else prior[b - 1] if b > 1 else INITIAL_LOG_DISTANCE
    return prior.float()


def distogram_prior(examples, bins: int) -> torch.Tensor:
    """[NUM_SEPARATION_BUCKETS, bins] log frequency of each distogram bin per separation bucket
    over observed training pairs (add-one smoothed); empty buckets copy the bucket below."""
    counts = torch.zeros(NUM_SEPARATION_BUCKETS, bins, dtype=torch.float64)
    edges = distogram_edges(bins).double()
    for e in examples:
        coords = torch.nan_to_num(torch.from_numpy(e.coords).double())
        mask = torch.from_numpy(e.mask)
        pair = (mask[:, None] & mask[None, :]).flatten()
        labels = torch.bucketize(torch.cdist(coords, coords).flatten()[pair], edges, right=True)
        buckets = separation_buckets(len(coords)).flatten()[pair]
        counts.index_put_((buckets, labels), torch.ones(len(labels), dtype=torch.float64), accumulate=True)
    for b in range(1, NUM_SEPARATION_BUCKETS):
        if counts[b].sum() == 0:
            counts[b] = counts[b - 1]
    return torch.log((counts + 1) / (counts + 1).sum(-1, keepdim=True)).float()


def protein_loss(outputs: dict, batch: dict, head_cfg) -> torch.Tensor:
    """Mean loss over the valid pairs i < j of the batch (observed residues, no padding).

    Computed on the head's pair list, so nothing is gathered from or scattered to full
    [L, L] matrices; (i, j) and (j, i) are the same prediction, so this is also the mean
    over ordered pairs i != j.
    """
    i, j = outputs["pair_index"]
    mask = batch["pair_mask"][:, i, j]
    distances = batch["distances"][:, i, j].float()
    pred = outputs["pair_log_distance"].float()
    target = distance_to_target(distances)
    if head_cfg.loss == "huber":
        per_pair = F.huber_loss(pred, target, reduction="none", delta=HUBER_DELTA)
    else:
        per_pair = (pred - target) ** 2
    count = mask.sum().clamp_min(1)
    loss = torch.where(mask, per_pair, torch.zeros_like(per_pair)).sum() / count
    logits = outputs.get("pair_distogram_logits")
    if logits is not None and head_cfg.distogram_weight > 0 and mask.any():
        edges = distogram_edges(logits.shape[-1]).to(logits.device)
        labels = torch.bucketize(distances[mask], edges, right=True)
        loss = loss + head_cfg.distogram_weight * F.cross_entropy(logits[mask].float(), labels)
    return loss
