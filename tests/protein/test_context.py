"""Whole-sequence context (bidirectional backbone, pair trunk), backbone truncation, and the
distogram's expected distance / contact probability. A tiny random Qwen2 backbone."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from loralab.config import load_config
from loralab.engine.runtime import Runtime
from loralab.protein.build import build_protein_model
from loralab.protein.context import PairTrunk, bidirectional_mask
from loralab.protein.dataset import ProteinExample, collate_proteins
from loralab.protein.model import distogram_edges, pair_distance_and_contact
from loralab.protein.tiny import build_tiny_backbone


@pytest.fixture(scope="module")
def backbone_dir(tmp_path_factory):
    return build_tiny_backbone(tmp_path_factory.mktemp("tiny_ctx") / "model", num_layers=3)


def make_model(backbone_dir, **head):
    overrides = [f"model.name_or_path={backbone_dir}", "lora.rank=4", "lora.dropout=0.0"]
    overrides += ["protein_head.pair_dim=16", "protein_head.hidden_dim=32", "protein_head.distogram_bins=8"]
    overrides += [f"protein_head.{k}={v}" for k, v in head.items()]
    torch.manual_seed(0)
    model = build_protein_model(load_config("small", overrides), Runtime.cpu())
    with torch.no_grad():  # LoRA B and the trunk's last layers start at 0: make them act
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)
            elif name.startswith("head.trunk"):
                p.normal_(0, 0.3)
    return model.eval()


def first_row(model, residues: torch.Tensor) -> torch.Tensor:
    """Predicted log-distances of residue 0 to residues 1..3 (pairs far from the last one)."""
    with torch.no_grad():
        return model(residue_index=residues[None])["log_distance"][0, 0, 1:4]


@pytest.mark.parametrize(
    "head, position, sees_later",
    [
        ({"context": "causal"}, 19, False),
        ({"context": "bidirectional"}, 19, True),  # the whole chain
        ({"context": "causal"}, 6, False),
        # The trunk's 3x3 convolutions (dilations 1, 2) reach 6 pairs away: pair (0, 3) sees
        # pairs (., 9) but not (., 19) through a causal backbone.
        ({"context": "causal", "trunk_blocks": 2}, 6, True),
        ({"context": "causal", "trunk_blocks": 2}, 19, False),
        # The sequence convolutions (kernel 5, dilations 1, 2) reach 6 residues along the chain:
        # residue 3 sees residue 9 through a causal backbone, nobody among 0..3 sees residue 19.
        ({"context": "causal", "sequence_conv_blocks": 2}, 9, True),
        ({"context": "causal", "sequence_conv_blocks": 2}, 10, False),
    ],
)
def test_a_later_residue_changes_an_earlier_residues_output(backbone_dir, head, position, sees_later):
    model = make_model(backbone_dir, **head)
    residues = torch.tensor([0, 5, 9, 2, 7, 3, 11, 4, 8, 1, 6, 10, 12, 13, 14, 15, 16, 17, 18, 19])
    changed = residues.clone()
    changed[position] = 19 - int(changed[position])  # only this later residue differs
    before, after = first_row(model, residues), first_row(model, changed)
    if sees_later:
        assert (before - after).abs().max() > 1e-5
    else:
        torch.testing.assert_close(before, after, rtol=0, atol=1e-6)


def test_a_later_residue_changes_an_earlier_hidden_state(backbone_dir):
    """The backbone's own representation of residue 0, not only the head's output."""
    model = make_model(backbone_dir, context="bidirectional")
    captured = []
    model.head.register_forward_pre_hook(lambda m, args: captured.append(args[0][0, 0].clone()))
    residues = torch.arange(12) % 20
    changed = residues.clone()
    changed[-1] = 19 - int(changed[-1])
    with torch.no_grad():
        model(residue_index=residues[None])
        model(residue_index=changed[None])
    assert (captured[0] - captured[1]).abs().max() > 1e-5


@pytest.mark.parametrize(
    "head",
    [
        {"context": "bidirectional"},
        {"context": "bidirectional", "trunk_blocks": 2},
        {"context": "bidirectional", "sequence_conv_blocks": 2},
    ],
)
def test_padding_does_not_leak_into_a_chain(backbone_dir, head):
    """Right padding is masked out of the attention and the trunk: alone == in a batch."""
    model = make_model(backbone_dir, **head)
    rng = np.random.default_rng(0)

    def example(n):
        return ProteinExample(f"p{n}", rng.integers(0, 20, n), np.zeros((n, 3), np.float32), np.ones(n, bool))

    short, long = example(7), example(15)
    with torch.no_grad():
        alone = collate_proteins([short])
        out_alone = model(residue_index=alone["residue_index"], lengths=alone["lengths"])["distance"][0]
        both = collate_proteins([short, long])
        out_both = model(residue_index=both["residue_index"], lengths=both["lengths"])["distance"][0, :7, :7]
    torch.testing.assert_close(out_alone, out_both, rtol=1e-4, atol=1e-4)


def test_bidirectional_mask_blocks_padding_keys_only():
    mask = bidirectional_mask(torch.tensor([2, 3]), 3, torch.float32)
    assert mask.shape == (2, 1, 3, 3)
    blocked = mask < -1e30
    expected = torch.tensor([[False, False, True], [False, False, False]])
    assert torch.equal(blocked[:, 0, 0, :], expected) and torch.equal(blocked[:, 0, 2, :], expected)


def test_pair_trunk_is_symmetric_and_starts_as_identity():
    torch.manual_seed(0)
    trunk = PairTrunk(pair_dim=6, channels=4, blocks=3)
    x = torch.randn(2, 9, 9, 6)
    x = x + x.transpose(1, 2)
    torch.testing.assert_close(trunk(x), x)  # zero-initialised output layer: no change at first
    with torch.no_grad():
        for p in trunk.parameters():
            p.normal_(0, 0.2)
    y = trunk(x)
    torch.testing.assert_close(y, y.transpose(1, 2), rtol=1e-5, atol=1e-5)


def test_backbone_layers_keeps_the_first_layers(backbone_dir):
    model = make_model(backbone_dir, backbone_layers=2)
    layers = model.backbone.base_model.model.layers
    assert len(layers) == 2 and model.backbone.config.num_hidden_layers == 2


def test_backbone_layers_zero_is_the_token_embedding_ablation(backbone_dir, tmp_path):
    from loralab.protein.checkpoint_io import load_protein_trainable, save_protein_trainable

    model = make_model(backbone_dir, backbone_layers=0, context="bidirectional", trunk_blocks=1)
    inner = model.backbone.base_model.model
    assert len(inner.layers) == 0 and model.backbone.config.num_hidden_layers == 0
    lora = [n for n, p in model.named_parameters() if p.requires_grad and "lora_" in n]
    assert lora and all("embed_tokens" in n for n in lora)  # LoRA adapts the embedding instead
    residues = torch.tensor([[1, 5, 7, 2, 9, 3]])
    out = model(residue_index=residues)
    assert out["distance"].shape == (1, 6, 6)
    # No transformer layer: a residue's features depend on its own letter only, so two chains
    # that share residue 0's letter give residue 0 the same features (not so with layers).
    embed = model.backbone.get_input_embeddings()
    other = torch.tensor([[1, 8, 8, 8, 8, 8]])
    first = [model.backbone(inputs_embeds=embed(r)).last_hidden_state[0, 0] for r in (residues, other)]
    torch.testing.assert_close(first[0], first[1])
    out["log_distance"].sum().backward()
    assert model.residue_embedding.weight.grad.abs().sum() > 0
    save_protein_trainable(model, tmp_path)
    again = make_model(backbone_dir, backbone_layers=0, context="bidirectional", trunk_blocks=1)
    load_protein_trainable(again, tmp_path)
    torch.testing.assert_close(again(residue_index=residues)["distance"], out["distance"].detach())


def test_distogram_expected_distance_and_contact_probability_match_numpy():
    torch.manual_seed(1)
    bins = 8
    logits = torch.randn(2, 5, bins) * 2
    log_distance = torch.rand(2, 5) * 4  # regression: exp(y) - 1 in 0..54 A
    distance, contact = pair_distance_and_contact(log_distance, logits, "distogram")
    edges = distogram_edges(bins).numpy().astype(np.float64)
    p = torch.softmax(logits, -1).numpy().astype(np.float64)
    reg = np.expm1(log_distance.numpy().astype(np.float64))
    step = edges[1] - edges[0]
    for b in range(2):
        for k in range(5):
            centres = [edges[0] - step / 2] + [(edges[t] + edges[t + 1]) / 2 for t in range(bins - 2)]
            centres.append(max(reg[b, k], edges[-1]))
            assert distance[b, k].item() == pytest.approx(float(np.dot(p[b, k], centres)), rel=1e-5)
            # P(d < 8 A): whole bins below 8, the straddling bin by its fraction below 8.
            lower = [0.0, *edges]
            upper = [*edges, np.inf]
            frac = [min(max((8.0 - lo) / (hi - lo), 0.0), 1.0) if np.isfinite(hi) else 0.0
                    for lo, hi in zip(lower, upper)]  # fmt: skip
            assert contact[b, k].item() == pytest.approx(float(np.dot(p[b, k], frac)), rel=1e-5)
    regression, contact_r = pair_distance_and_contact(log_distance, logits, "regression")
    np.testing.assert_allclose(regression.numpy(), reg, rtol=1e-5)
    torch.testing.assert_close(contact_r, contact)


def test_distogram_prior_counts_bins_per_separation_like_numpy():
    from loralab.protein.model import NUM_SEPARATION_BUCKETS, separation_bucket
    from loralab.protein.training_targets import distogram_prior

    rng = np.random.default_rng(2)
    examples = []
    for n in (12, 20):
        coords = np.cumsum(rng.normal(0, 2.5, size=(n, 3)), axis=0).astype(np.float32)
        mask = np.ones(n, bool)
        mask[3] = False
        examples.append(ProteinExample(f"c{n}", rng.integers(0, 20, n), coords, mask))
    bins = 8
    got = distogram_prior(examples, bins).numpy()
    counts = np.zeros((NUM_SEPARATION_BUCKETS, bins))
    edges = distogram_edges(bins).numpy()
    for e in examples:
        for i in range(e.length):
            for j in range(e.length):
                if e.mask[i] and e.mask[j]:
                    d = np.linalg.norm(e.coords[i].astype(np.float64) - e.coords[j])
                    b = int(separation_bucket(torch.tensor(abs(i - j))))
                    counts[b, int(np.searchsorted(edges, d, side="right"))] += 1
    for b in range(1, NUM_SEPARATION_BUCKETS):
        if counts[b].sum() == 0:
            counts[b] = counts[b - 1]
    expected = np.log((counts + 1) / (counts + 1).sum(-1, keepdims=True))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_distogram_median_is_the_half_mass_point():
    from loralab.protein.model import distogram_median

    torch.manual_seed(3)
    bins = 8
    probs = torch.softmax(torch.randn(50, bins) * 2, -1).double()
    regression = torch.rand(50).double() * 40
    got = distogram_median(probs, regression).numpy()
    edges = distogram_edges(bins).numpy().astype(np.float64)
    step = edges[1] - edges[0]
    lower = np.r_[edges[0] - step, edges]
    for p, r, g in zip(probs.numpy(), regression.numpy(), got):
        k = int(np.searchsorted(np.cumsum(p), 0.5))  # first bin whose cumulative mass reaches 1/2
        if k == bins - 1:
            assert g == pytest.approx(max(r, edges[-1]))
        else:
            below = np.cumsum(p)[k - 1] if k else 0.0
            assert g == pytest.approx(lower[k] + (0.5 - below) / p[k] * step)
            # Half the mass below: the bins under it plus the linear share of its own bin.
            assert below + p[k] * (g - lower[k]) / step == pytest.approx(0.5)
