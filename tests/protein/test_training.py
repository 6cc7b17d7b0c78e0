"""Protein data into batches, and training on real structures through the shared trainer,
with the validation MAE reported beside the separation-mean baseline."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from loralab.errors import DataError
from loralab.protein.dataset import (
    ProteinDataset,
    collate_proteins,
    decode_residues,
    encode_sequence,
    usable_examples,
)


@pytest.fixture(scope="module")
def dataset_dir(mdanalysis_data, tmp_path_factory):
    """~50 real single chains (MDAnalysisTests dssp/) prepared by 'protein prepare': 40/5/5."""
    from loralab.protein.prepare import prepare_structures

    out = tmp_path_factory.mktemp("protein_data") / "ds"
    return prepare_structures(mdanalysis_data / "dssp", out, max_length=400, seed=0, progress=False)


@pytest.fixture(scope="module")
def train_examples(dataset_dir):
    from loralab.protein.prepare import read_dataset

    return usable_examples(read_dataset(dataset_dir, "train"), "train")


def test_sequence_letters_standard_parent_ambiguous_and_errors():
    idx, notes = encode_sequence("acdX*")
    assert decode_residues(idx) == "ACDX" and "trailing '*'" in notes[0]
    idx, notes = encode_sequence("MUOBZJK", where="seq1")
    assert decode_residues(idx) == "MCKXXXK"
    assert any("'U' read as its parent residue 'C'" in n for n in notes)
    assert any("B/Z/J" in n for n in notes)
    with pytest.raises(DataError, match=r"seq2: 2 character\(s\).*'1' at 3"):
        encode_sequence("MK1A-", where="seq2")
    with pytest.raises(DataError, match="empty"):
        encode_sequence(" * ")


def test_collate_pads_and_masks_against_scipy(train_examples):
    a, b = train_examples[0], train_examples[1]
    a.mask[5] = False  # a missing residue
    batch = collate_proteins([a, b])
    width = max(a.length, b.length)
    assert batch["residue_index"].shape == (2, width)
    for row, e in enumerate((a, b)):
        n = e.length
        ref = cdist(e.coords.astype(np.float64), e.coords.astype(np.float64))
        valid = e.mask[:, None] & e.mask[None, :] & ~np.eye(n, dtype=bool)
        mask = batch["pair_mask"][row].numpy()
        np.testing.assert_array_equal(mask[:n, :n], valid)
        assert not mask[n:].any() and not mask[:, n:].any()  # padding
        np.testing.assert_allclose(batch["distances"][row].numpy()[:n, :n][valid], ref[valid], rtol=1e-5)
    assert batch["num_tokens"] == int(batch["pair_mask"].sum()) // 2
    assert batch["ids"] == [a.id, b.id]
    a.mask[5] = np.isfinite(a.coords[5]).all()


def test_long_chains_are_cropped_to_windows_and_said(train_examples, caplog):
    with caplog.at_level(logging.WARNING, logger="loralab.protein"):
        train = ProteinDataset(train_examples, max_length=64, crop="random", name="train")
    assert "cropped to a random window" in caplog.text
    longest = max(range(len(train_examples)), key=lambda i: train_examples[i].length)
    full = train_examples[longest]
    starts = set()
    for _ in range(10):
        w = train[longest]
        assert w.length == 64
        text = decode_residues(full.residue_index)
        start = text.find(decode_residues(w.residue_index))
        np.testing.assert_array_equal(w.coords, full.coords[start : start + 64])
        starts.add(start)
    assert len(starts) > 1
    first = ProteinDataset(train_examples, max_length=64, crop="first", name="val")
    np.testing.assert_array_equal(first[longest].residue_index, full.residue_index[:64])
    assert max(train.lengths) == 64


def test_separation_mean_baseline_against_brute_force(train_examples):
    from loralab.protein.scoring import MIN_PAIRS_PER_SEPARATION, SeparationMeanBaseline

    subset = train_examples[:6]
    baseline = SeparationMeanBaseline.fit(subset)
    for s in (1, 2, 7, 30):
        values = [
            float(np.linalg.norm(e.coords[i].astype(np.float64) - e.coords[i + s]))
            for e in subset
            for i in range(e.length - s)
            if e.mask[i] and e.mask[i + s]
        ]
        assert len(values) >= MIN_PAIRS_PER_SEPARATION
        assert baseline.means[s] == pytest.approx(np.mean(values), rel=1e-6)
    pred = baseline.predict(40)
    assert pred[0, 0] == 0 and pred[3, 10] == pytest.approx(baseline.means[7])
    assert 3.7 < baseline.means[1] < 3.9  # bonded neighbours


def test_trains_on_real_structures_with_the_shared_trainer(dataset_dir, tmp_path):
    from loralab.config import load_config
    from loralab.engine.events import read_events
    from loralab.engine.trainer import train
    from loralab.protein.evaluate import evaluate_run
    from loralab.protein.tiny import build_tiny_backbone

    backbone = build_tiny_backbone(tmp_path / "tiny")
    cfg = load_config(
        "small",
        [
            f"model.name_or_path={backbone}",
            f"protein.dataset_dir={dataset_dir}",
            f"output_dir={tmp_path / 'run'}",
            "protein.max_length=64",
            "training.epochs=3",
            "training.batch_size=8",
            "training.learning_rate=3e-3",
            "training.log_every=1",
            "protein_head.pair_dim=32",
            "protein_head.hidden_dim=64",
        ],
    )
    run = train(cfg)
    events = read_events(run)
    kinds = [e["event"] for e in events]
    assert kinds[0] == "start" and kinds[-1] == "end"
    assert events[0]["params"]["lora"]["trainable"] > 0 and events[0]["params"]["backbone"]["trainable"] == 0
    losses = [e["loss"] for e in events if e["event"] == "step"]
    assert len(losses) == 15 and np.mean(losses[-3:]) < np.mean(losses[:3])
    evals = [e for e in events if e["event"] == "eval"]
    assert [e["epoch"] for e in evals] == [1, 2, 3]
    for e in evals:  # validation MAE and the separation-mean baseline, side by side, every epoch
        m = e["metrics"]
        assert np.isfinite(m["distance_mae"]) and np.isfinite(m["baseline_distance_mae"])
        assert m["num_proteins"] == 5
    last = evals[-1]["metrics"]
    print(f"val MAE {last['distance_mae']:.2f} A vs baseline {last['baseline_distance_mae']:.2f} A")
    assert last["distance_mae"] < 1.2 * last["baseline_distance_mae"]
    final = run / "final_model"
    for name in (
        "adapter_model.safetensors",
        "protein_head.safetensors",
        "run.json",  # the engine's model card (loralab.engine.model_card)
        "README.md",
    ):
        assert (final / name).is_file()

    eval_dir = evaluate_run(run, checkpoints="last", split="test")
    summary = (eval_dir / "summary.md").read_text()
    assert "| epoch-3 |" in summary and "baseline: separation mean" in summary
    eval_events = [e for e in read_events(run) if e["event"] == "eval" and e.get("split") == "test"]
    assert eval_events and "baseline_distance_mae" in eval_events[-1]["metrics"]
