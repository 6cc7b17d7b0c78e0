"""The protein model: one position per residue, symmetric pair head, masked loss, padding,
save/load, parameter counts. A tiny random Qwen2 backbone with a character tokenizer."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from loralab.config import load_config
from loralab.engine.runtime import Runtime
from loralab.errors import LoralabError, ModelLayoutError
from loralab.protein.build import build_protein_model
from loralab.protein.checkpoint_io import load_protein_trainable, save_protein_trainable
from loralab.protein.dataset import ProteinExample, collate_proteins
from loralab.protein.model import (
    NUM_SEPARATION_BUCKETS,
    RESIDUE_ALPHABET,
    distance_to_target,
    distogram_edges,
    residue_token_ids,
    separation_buckets,
    target_to_distance,
)
from loralab.protein.tiny import build_tiny_backbone, char_tokenizer
from loralab.protein.training_targets import protein_loss


@pytest.fixture(scope="module")
def backbone_dir(tmp_path_factory):
    return build_tiny_backbone(tmp_path_factory.mktemp("tiny_qwen2") / "model")


def make_cfg(backbone_dir, **head):
    overrides = [f"model.name_or_path={backbone_dir}", "lora.rank=4", "lora.alpha=8", "lora.dropout=0.0"]
    overrides += ["protein_head.pair_dim=16", "protein_head.hidden_dim=32"]
    overrides += [f"protein_head.{k}={v}" for k, v in head.items()]
    return load_config("small", overrides)


@pytest.fixture(scope="module")
def model(backbone_dir):
    torch.manual_seed(0)
    m = build_protein_model(make_cfg(backbone_dir, distogram_bins=8), Runtime.cpu())
    # LoRA B starts at 0; perturb it so the adapter actually changes the output in these tests.
    with torch.no_grad():
        for name, p in m.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)
    return m.eval()


def random_example(rng, length, name="p", missing=()):
    coords = np.cumsum(rng.normal(0, 2.2, size=(length, 3)), axis=0).astype(np.float32)
    mask = np.ones(length, bool)
    mask[list(missing)] = False
    coords[~mask] = np.nan
    return ProteinExample(name, rng.integers(0, 21, length), coords, mask)


def test_one_token_per_residue_letter():
    tok = char_tokenizer()
    ids = residue_token_ids(tok)
    assert len(ids) == len(RESIDUE_ALPHABET) == 21
    assert len(set(ids)) == 21
    for letter, i in zip(RESIDUE_ALPHABET, ids):
        assert tok.convert_ids_to_tokens(i) == letter


def test_tokenizer_without_residue_letters_is_rejected():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    inner = Tokenizer(models.WordLevel(vocab={"<unk>": 0, "A": 1, "C": 2}, unk_token="<unk>"))
    inner.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = PreTrainedTokenizerFast(tokenizer_object=inner, unk_token="<unk>")
    with pytest.raises(ModelLayoutError, match="share token ids"):
        residue_token_ids(tok)


def test_hidden_states_one_per_residue_and_output_exactly_symmetric(model):
    residues = torch.randint(0, 21, (3, 17))
    captured = {}
    handle = model.head.register_forward_pre_hook(lambda mod, args: captured.update(h=args[0]))
    with torch.no_grad():
        out = model(residue_index=residues)
    handle.remove()
    assert captured["h"].shape[:2] == (3, 17)  # no BOS, no prompt: positions == residues
    d = out["log_distance"]
    assert d.shape == (3, 17, 17)
    assert torch.equal(d, d.transpose(1, 2))
    i, j = out["pair_index"]  # each unordered pair once, i < j, in row-major order
    assert len(i) == 17 * 16 // 2 and bool((i < j).all())
    assert (
        torch.equal(d[:, i, j], out["pair_log_distance"]) and (torch.diagonal(d, dim1=1, dim2=2) == 0).all()
    )
    assert out["pair_distogram_logits"].shape == (3, len(i), 8)


def test_padding_does_not_change_predictions(model):
    rng = np.random.default_rng(1)
    short, long = random_example(rng, 9, "short"), random_example(rng, 23, "long")
    with torch.no_grad():
        alone = model(residue_index=collate_proteins([short])["residue_index"])["log_distance"][0]
        batch = collate_proteins([short, long])
        together = model(residue_index=batch["residue_index"])["log_distance"][0, :9, :9]
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=1e-5)


def test_loss_masks_padding_missing_and_diagonal_and_matches_brute_force(model):
    rng = np.random.default_rng(2)
    examples = [random_example(rng, 12, "a", missing=(3, 7)), random_example(rng, 7, "b")]
    batch = collate_proteins(examples)
    cfg_head = make_cfg("unused", distogram_bins=8).protein_head
    cfg_head.distogram_weight = 0.0
    with torch.no_grad():
        out = model(residue_index=batch["residue_index"])
        loss = protein_loss(out, batch, cfg_head).item()
    # Brute force: Huber(delta=1) on log(1 + d) over pairs i != j of observed residues.
    pred = out["log_distance"].numpy()
    terms = []
    for b, e in enumerate(examples):
        for i in range(e.length):
            for j in range(e.length):
                if i != j and e.mask[i] and e.mask[j]:
                    d = float(np.linalg.norm(e.coords[i].astype(np.float64) - e.coords[j]))
                    r = abs(pred[b, i, j] - math.log1p(d))
                    terms.append(0.5 * r * r if r <= 1.0 else r - 0.5)
    assert loss == pytest.approx(np.mean(terms), rel=1e-5)
    assert batch["num_tokens"] == len(terms) // 2
    # Garbage where the mask is False changes nothing.
    noisy = dict(batch)
    noisy["distances"] = torch.where(
        batch["pair_mask"], batch["distances"], torch.full_like(batch["distances"], 99)
    )
    with torch.no_grad():
        assert protein_loss(out, noisy, cfg_head).item() == pytest.approx(loss, rel=1e-6)


def test_distogram_bins_are_alphafolds_and_loss_uses_them():
    edges = distogram_edges(64).numpy()
    assert len(edges) == 63
    assert edges[0] == pytest.approx(2.3125) and edges[-1] == pytest.approx(21.6875)
    d = torch.tensor([1.0, 2.3125, 5.0, 21.6875, 40.0])
    labels = torch.bucketize(d, distogram_edges(64), right=True).numpy()
    np.testing.assert_array_equal(labels, np.digitize(d.numpy(), edges))
    assert labels[0] == 0 and labels[-1] == 63  # below the first edge; overflow


def test_normalisation_is_global_and_invertible():
    d = torch.tensor([0.0, 3.8, 22.0, 108.35])
    torch.testing.assert_close(target_to_distance(distance_to_target(d)), d)
    assert distance_to_target(torch.tensor([22.0])).item() == pytest.approx(math.log(23.0))


def test_separation_buckets_symmetric_exact_then_log():
    b = separation_buckets(600)
    assert torch.equal(b, b.T)
    assert b[0, 31].item() == 31 and b[0, 32].item() == 32
    row = b[0].numpy()
    assert (np.diff(row) >= 0).all() and row.max() < NUM_SEPARATION_BUCKETS


def test_only_lora_and_head_train_and_a_batch_can_be_fitted(backbone_dir):
    torch.manual_seed(0)
    cfg = make_cfg(backbone_dir, distogram_bins=0)
    m = build_protein_model(cfg, Runtime.cpu())
    trainable = {n for n, p in m.named_parameters() if p.requires_grad}
    assert trainable and all(("lora_" in n) or not n.startswith("backbone.") for n in trainable)
    assert all(m.get_parameter(n).dtype == torch.float32 for n in trainable)
    rng = np.random.default_rng(3)
    batch = collate_proteins([random_example(rng, 20), random_example(rng, 14)])
    opt = torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=3e-3)
    m.train()
    losses = []
    for _ in range(25):
        loss = protein_loss(m(residue_index=batch["residue_index"]), batch, cfg.protein_head)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    assert any(
        p.grad is not None and p.grad.abs().sum() > 0 for n, p in m.named_parameters() if "lora_A" in n
    )


def test_save_and_load_trainable_round_trip(model, backbone_dir, tmp_path):
    save_protein_trainable(model, tmp_path / "ckpt")
    assert (tmp_path / "ckpt" / "adapter_model.safetensors").is_file()
    fresh = build_protein_model(make_cfg(backbone_dir, distogram_bins=8), Runtime.cpu()).eval()
    residues = torch.randint(0, 21, (2, 15))
    with torch.no_grad():
        before = fresh(residue_index=residues)["log_distance"]
        load_protein_trainable(fresh, tmp_path / "ckpt")
        after = fresh(residue_index=residues)["log_distance"]
        expected = model(residue_index=residues)["log_distance"]
    assert not torch.allclose(before, expected)
    torch.testing.assert_close(after, expected)
    with pytest.raises(ModelLayoutError, match="missing"):
        load_protein_trainable(fresh, tmp_path)
    head = tmp_path / "ckpt" / "protein_head.safetensors"
    head.write_bytes(head.read_bytes()[:64])  # a checkpoint cut off mid-write
    with pytest.raises(LoralabError, match="protein_head.safetensors.*damaged"):
        load_protein_trainable(fresh, tmp_path / "ckpt")


def test_count_parameters_matches_the_built_model(backbone_dir):
    from loralab.protein.system import count_parameters, parameter_groups

    cfg = make_cfg(backbone_dir, distogram_bins=8)
    built = parameter_groups(build_protein_model(cfg, Runtime.cpu()))
    assert count_parameters(cfg) == built
    assert built["backbone"].trainable == 0 and built["lora"].trainable > 0


def test_qwen_preset_counts_the_users_4_4m_lora_parameters():
    from loralab.protein.system import count_parameters

    counts = count_parameters(load_config("qwen2.5-0.5b"))
    # r * (in + out) per adapted projection, 24 layers, Qwen2.5-0.5B's dims (896 hidden,
    # 128 for k/v with 2 KV heads of 64, 4864 MLP).
    per_layer = 8 * ((896 + 896) * 2 + (896 + 128) * 2 + (896 + 4864) * 3)
    assert counts["lora"].trainable == 24 * per_layer == 4_399_104
    assert 490e6 < counts["backbone"].total < 500e6


def test_unset_lora_targets_are_an_error_naming_the_setting(backbone_dir):
    """Protein has no default targets (its presets name them once, in qwen2.5-0.5b.yaml)."""
    cfg = load_config("small", [f"model.name_or_path={backbone_dir}", "lora.target_modules=null"])
    assert cfg.lora.target_modules is None
    with pytest.raises(ModelLayoutError, match="lora.target_modules is unset"):
        build_protein_model(cfg, Runtime.cpu())
