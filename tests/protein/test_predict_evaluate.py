"""`protein predict` (distances -> MDS -> PDB) and `evaluate_run` (metrics beside the
separation-mean baseline) on a small run built with the protein plug-in."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from loralab.config.schema import config_to_dict
from loralab.errors import DataError, LoralabError, ModelLayoutError

TEST_CHAINS = ["1ahsA", "1bvyF", "1dx5I", "1eteA", "1h4aX", "1i8nA", "1lpbA", "1mr1D", "1or4A", "1pdoA",
               "2cayA", "2xdgA"]  # fmt: skip


@pytest.fixture(scope="module")
def dataset_dir(mdanalysis_data, tmp_path_factory):
    from loralab.protein.prepare import prepare_structures

    files = [mdanalysis_data / "dssp" / f"{name}.pdb.gz" for name in TEST_CHAINS]
    out = tmp_path_factory.mktemp("protein_small") / "ds"
    fractions = {"train": 0.5, "val": 0.25, "test": 0.25}
    return prepare_structures(files, out, max_length=400, split_fractions=fractions, seed=1, progress=False)


@pytest.fixture(scope="module")
def run_dir(dataset_dir, tmp_path_factory):
    """A protein run as the trainer lays it out: two checkpoints, final_model, training_config.json."""
    from loralab.config import load_config
    from loralab.engine.runtime import Runtime
    from loralab.protein.system import build_parts
    from loralab.protein.tiny import build_tiny_backbone

    root = tmp_path_factory.mktemp("protein_run")
    backbone = build_tiny_backbone(root / "tiny")
    run = root / "run"
    cfg = load_config("small", [f"model.name_or_path={backbone}", f"protein.dataset_dir={dataset_dir}",
                                f"output_dir={run}", "training.epochs=2", "protein.max_length=48", "protein_head.pair_dim=16",
                                "protein_head.hidden_dim=32"])  # fmt: skip
    torch.manual_seed(0)
    parts = build_parts(cfg, Runtime.cpu())
    opt = torch.optim.AdamW([p for p in parts.model.parameters() if p.requires_grad], lr=3e-3)
    for epoch in (1, 2):
        for start in range(0, len(parts.train_dataset), 4):
            batch = parts.collate(
                [parts.train_dataset[i] for i in range(start, min(start + 4, len(parts.train_dataset)))]
            )
            loss = parts.loss_fn(parts.model, batch)
            opt.zero_grad()
            loss.backward()
            opt.step()
        parts.save_trainable(parts.model, run / f"checkpoint-epoch-{epoch}")
        (run / f"checkpoint-epoch-{epoch}" / "trainer_state.json").write_text(
            json.dumps({"global_step": 3 * epoch})
        )
    parts.save_final(parts.model, run / "final_model")
    (run / "training_config.json").write_text(json.dumps({"config": config_to_dict(cfg)}))
    return run


def test_predict_writes_distances_heatmap_and_a_pdb_that_reads_back(run_dir, tmp_path, capsys):
    from loralab.cli.main import main
    from loralab.protein.geometry import chirality_score, distance_matrix
    from loralab.protein.structures import parse_structure

    seq_short = "MKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQ"
    seq_long = "ACDEFGHIKLMNPQRSTVWY" * 3
    fasta = tmp_path / "in.fasta"
    fasta.write_text(f">short protein one\n{seq_short}\n>long|2\n{seq_long[:30]}\n{seq_long[30:]}*\n")
    out = tmp_path / "pred"
    assert (
        main(["protein", "predict", "--model", str(run_dir), "--fasta", str(fasta), "--out", str(out)]) == 0
    )
    printed = capsys.readouterr().out
    assert "longer than the model's protein.max_length=48" in printed and "trailing '*'" in printed
    report = json.loads((out / "predictions.json").read_text())
    short, long = report["predictions"]
    assert (short["name"], long["name"]) == ("short", "long_2")
    assert long["cropped"] and long["predicted_length"] == 48 and long["length"] == 60
    D = np.load(out / "short.distances.npy")
    assert D.shape == (len(seq_short),) * 2
    assert np.array_equal(D, D.T) and (np.diag(D) == 0).all() and (D[~np.eye(len(D), dtype=bool)] > 0).all()
    assert (out / "short.distances.png").stat().st_size > 1000
    (chain,) = parse_structure(out / "short.pdb")
    assert chain.sequence == seq_short
    # The PDB's trace reproduces the predicted distances as well as the reported MDS fit says.
    fit = np.abs(distance_matrix(chain.ca) - D)
    assert fit.sum() / (len(D) * (len(D) - 1)) == pytest.approx(short["mean_fit_error_A"], abs=0.01)
    hand = short["handedness"]
    assert hand["method"] == "torsion" and "handedness: CA torsion rule" in (out / "short.pdb").read_text()
    assert chirality_score(chain.ca) >= 0  # the hand kept is the natural one by the documented rule

    main(["protein", "predict", "--model", str(run_dir / "final_model"), "--sequence", seq_long,
          "--name", "whole", "--no-crop", "--no-refine", "--out", str(out)])  # fmt: skip
    assert np.load(out / "whole.distances.npy").shape == (60, 60)


def test_predict_rejects_bad_input_clearly(run_dir, tmp_path, capsys):
    from loralab.cli.main import main
    from loralab.protein.inference import find_checkpoint
    from loralab.protein.predict import read_fasta

    assert (
        main(["protein", "predict", "--model", str(run_dir), "--sequence", "MKT1A", "--out", str(tmp_path)])
        == 2
    )
    assert "'1' at 4" in capsys.readouterr().err
    (tmp_path / "bad.fasta").write_text("MKTAYIAK\n")
    with pytest.raises(DataError, match="before the first '>'"):
        read_fasta(tmp_path / "bad.fasta")
    (tmp_path / "empty.fasta").write_text(">a\n>b\nMKT\n")
    with pytest.raises(DataError, match="'a' has an empty sequence"):
        read_fasta(tmp_path / "empty.fasta")
    with pytest.raises(ModelLayoutError, match="neither a protein run"):
        find_checkpoint(tmp_path)


def test_scoring_true_distances_recovers_the_structure(dataset_dir):
    from loralab.config.schema import ExperimentConfig
    from loralab.protein.records import load_split
    from loralab.protein.scoring import score_distances, score_structure, true_distances

    cfg = ExperimentConfig(system="protein")
    cfg.protein.dataset_dir = str(dataset_dir)
    example = load_split(cfg, "test")[0]
    D = np.nan_to_num(true_distances(example))
    dist = score_distances(D, example)
    assert dist["distance_mae"] == pytest.approx(0, abs=1e-4) and dist["distance_pearson"] == pytest.approx(1)
    structure, X = score_structure(D, example)
    # The right mirror image was chosen, or RMSD would be several A; not exactly 0: the chain
    # refinement pulls real neighbours (3.8 +- 0.05 A, cis-prolines 2.9 A) to 3.8 A.
    assert structure["rmsd"] < 0.1
    assert structure["tm_score"] > 0.99 and structure["lddt"] > 0.99 and structure["gdt_ts"] == 1
    assert 3.75 < structure["mean_ca_ca"] < 3.85 and structure["clashes"] == 0
    m = example.mask
    np.testing.assert_allclose(X[m], example.coords[m], atol=0.3)  # superposed on the true frame


def test_evaluate_run_scores_checkpoints_beside_an_independently_checked_baseline(run_dir, dataset_dir):
    from loralab.engine.events import read_events
    from loralab.protein.evaluate import evaluate_run
    from loralab.protein.prepare import read_dataset

    eval_dir = evaluate_run(run_dir, checkpoints="all", split="test")
    assert eval_dir == run_dir / "eval"
    test_records = read_dataset(dataset_dir, "test")
    for epoch in (1, 2):
        out = eval_dir / f"epoch-{epoch}"
        metrics = json.loads((out / "metrics.json").read_text())
        assert metrics["num_proteins"] == len(test_records) and metrics["epoch"] == epoch
        assert {"distance_mae", "tm_score", "lddt", "gdt_ts", "rmsd", "contact_p_at_L_sep24"} <= set(
            metrics["model"]
        )
        assert set(metrics["baseline"]) == set(metrics["model"])
    rows = list(csv.DictReader((eval_dir / "epoch-2" / "per_protein.csv").open()))
    assert len(rows) == len(test_records)
    assert len(list((eval_dir / "epoch-2" / "heatmaps").glob("*.png"))) == len(test_records)
    assert len(list((eval_dir / "epoch-2" / "structures").glob("*.pred.pdb"))) == len(test_records)
    npz = np.load(eval_dir / "epoch-2" / "predicted_distances.npz")
    first = npz[rows[0]["id"]]
    assert np.array_equal(first, first.T)

    # Baseline MAE of the first chain, from scratch: mean training distance per separation,
    # scored over observed pairs i < j of the chain's first 48 residues.
    train = read_dataset(dataset_dir, "train")
    sums, counts = {}, {}
    for r in train:
        for i in range(len(r.sequence)):
            for j in range(i + 1, len(r.sequence)):
                if r.mask[i] and r.mask[j]:
                    d = float(np.linalg.norm(r.coords[i].astype(np.float64) - r.coords[j]))
                    sums[j - i] = sums.get(j - i, 0.0) + d
                    counts[j - i] = counts.get(j - i, 0) + 1
    record = next(r for r in test_records if r.id == rows[0]["id"])
    n = min(len(record.sequence), 48)
    errors = [
        abs(
            sums[j - i] / counts[j - i]
            - float(np.linalg.norm(record.coords[i].astype(np.float64) - record.coords[j]))
        )
        for i in range(n)
        for j in range(i + 1, n)
        if record.mask[i] and record.mask[j]
    ]
    assert float(rows[0]["baseline_distance_mae"]) == pytest.approx(np.mean(errors), abs=1e-3)

    # MDS reconstruction quality of the first chain, from scratch: Pearson r of the distances
    # between the predicted PDB's C-alphas and the true distances, observed pairs i < j.
    pdb = (eval_dir / "epoch-2" / "structures" / f"{rows[0]['id']}.pred.pdb").read_text().splitlines()
    X = np.array([[float(a[30:38]), float(a[38:46]), float(a[46:54])] for a in pdb if a.startswith("ATOM")])
    T = record.coords[:n].astype(np.float64)
    iu = [(i, j) for i in range(n) for j in range(i + 1, n) if record.mask[i] and record.mask[j]]
    pred_d = [np.linalg.norm(X[i] - X[j]) for i, j in iu]
    true_d = [np.linalg.norm(T[i] - T[j]) for i, j in iu]
    assert float(rows[0]["mds_quality"]) == pytest.approx(np.corrcoef(pred_d, true_d)[0, 1], abs=2e-3)

    summary = (eval_dir / "summary.md").read_text()
    assert "| epoch-1 |" in summary and "| epoch-2 |" in summary and "baseline: separation mean" in summary
    final = json.loads((eval_dir / "epoch-2" / "metrics.json").read_text())["model"]
    target_rows = [line for line in summary.splitlines() if line.startswith("| MDS reconstruction quality |")]
    met = "yes" if final["mds_quality"] > 0.7 else "no"
    assert target_rows == [
        f"| MDS reconstruction quality | > 0.7 | {final['mds_quality']:.4f} | "
        f"{json.loads((eval_dir / 'epoch-2' / 'metrics.json').read_text())['baseline']['mds_quality']:.4f} | {met} |"
    ]
    evals = [e for e in read_events(run_dir) if e["event"] == "eval"]
    assert [e["epoch"] for e in evals] == [1, 2] and evals[1]["step"] == 6
    assert "baseline_distance_mae" in evals[0]["metrics"]


def test_checkpoint_choice_and_other_splits(run_dir):
    from loralab.protein.evaluate import evaluate_run

    with pytest.raises(LoralabError, match="no epoch 0"):
        evaluate_run(run_dir, checkpoints=0)
    with pytest.raises(LoralabError, match="no epoch 0"):
        evaluate_run(run_dir, checkpoints="0,2")
    with pytest.raises(LoralabError, match="a list like 0,2,3"):
        evaluate_run(run_dir, checkpoints="best")
    with pytest.raises(LoralabError, match=r"epoch\(s\) \[3\]"):
        evaluate_run(run_dir, checkpoints="1,3")
    out = evaluate_run(run_dir, checkpoints="last", split="val", limit=1)
    assert out == run_dir / "eval-val"  # the run directory's layout, as for speech
    assert [p.name for p in out.iterdir() if p.is_dir()] == ["epoch-2"]
    assert json.loads((out / "epoch-2" / "metrics.json").read_text())["num_proteins"] == 1
    out = evaluate_run(run_dir, checkpoints="1,2", split="val", limit=1)
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["epoch-1", "epoch-2"]
