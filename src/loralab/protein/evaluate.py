"""Evaluate a protein run against true structures, beside a separation-mean baseline.

``evaluate_run(run_dir, checkpoints, split, limit)`` (what ``loralab evaluate`` calls for a
protein run) predicts the distance matrix of every chain of the split with each chosen
checkpoint and scores it against the true C-alpha structure:

* distances: MAE, RMSE, Pearson over pairs i < j of observed residues, overall and by
  sequence separation (short 6-11, medium 12-23, long >= 24);
* contacts (C-alpha < 8 A): precision of the top L, L/2, L/5 predictions at separation
  >= 6, >= 12, >= 24;
* structure: coordinates by classical MDS + SMACOF refinement, then RMSD after optimal
  superposition taken as the minimum over the two mirror images (``mirror_chosen`` says
  which; ``handedness_rule_agrees`` says whether the reference-free torsion rule that
  ``protein predict`` uses would have chosen the same), TM-score (tmtools), C-alpha lDDT,
  GDT-TS, all on the observed residues of the chosen image.

The **baseline** predicts, for every pair, the mean training distance at that sequence
separation (:class:`SeparationMeanBaseline`, fit on the run's training split); it is
scored with the same functions in the same run, so every figure has its reference.

Chains longer than the run's ``protein.max_length`` are scored on their first window of
that length (``cropped`` in the CSV). ``checkpoints`` follows
:meth:`loralab.engine.run_dir.RunDir.select`: "all" (every trained epoch), "last", an epoch
number or a list like "1,3"; ``final_model/`` stands for the last epoch when its checkpoint
folder is gone. There is no epoch 0: the head is random before training, and the baseline
row is the "no learning" reference.

Writes, in the run directory's evaluation folder (:meth:`RunDir.eval_epoch_dir`:
``eval/epoch-N/`` for the test split, ``eval-<split>/epoch-N/`` for any other):
``metrics.json`` (means over chains, model and baseline), ``per_protein.csv``,
``predicted_distances.npz``, ``heatmaps/<id>.png`` (true | predicted | baseline, first
:data:`HEATMAP_LIMIT` chains), ``structures/<id>.pred.pdb`` (superposed on the true
frame) and ``<id>.true.pdb``; and ``summary.md`` / ``summary.csv`` over all evaluated
checkpoints plus the baseline. Each checkpoint's means go into ``events.jsonl`` as an
``eval`` event.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from loralab.errors import LoralabError

HEATMAP_LIMIT = 8
MIN_PAIRS_PER_SEPARATION = 20
# Columns of the summary table: metric key -> heading.
SUMMARY_COLUMNS = {
    "distance_mae": "MAE (A)",
    "distance_rmse": "RMSE (A)",
    "distance_pearson": "Pearson",
    "distance_mae_long": "MAE long (A)",
    "contact_p_at_L_sep24": "P@L long",
    "contact_p_at_L5_sep24": "P@L/5 long",
    "rmsd": "RMSD (A)",
    "tm_score": "TM",
    "lddt": "lDDT",
    "gdt_ts": "GDT-TS",
    "mean_ca_ca": "CA-CA (A)",
    "clashes": "clashes",
}


@dataclass
class SeparationMeanBaseline:
    """Predicts the mean training C-alpha distance for each sequence separation |i - j|.

    Separations seen in fewer than :data:`MIN_PAIRS_PER_SEPARATION` training pairs (the
    far tail) take the mean of the last separation that has enough.
    """

    means: np.ndarray  # [max_separation + 1], means[0] = 0
    counts: np.ndarray

    @classmethod
    def fit(cls, examples) -> SeparationMeanBaseline:
        from loralab.protein.dataset import pairwise_distances

        longest = max((e.length for e in examples), default=2)
        sums, counts = np.zeros(longest), np.zeros(longest, dtype=np.int64)
        for e in examples:
            D = pairwise_distances(e.coords)
            i, j = np.triu_indices(e.length, 1)
            ok = e.mask[i] & e.mask[j]
            sep = (j - i)[ok]
            np.add.at(sums, sep, D[i[ok], j[ok]].astype(np.float64))
            np.add.at(counts, sep, 1)
        means = np.zeros(longest)
        last = 3.8  # bonded neighbours, if even separation 1 were unseen
        for s in range(1, longest):
            if counts[s] >= MIN_PAIRS_PER_SEPARATION:
                last = sums[s] / counts[s]
            means[s] = last
        return cls(means=means, counts=counts)

    def predict(self, length: int) -> np.ndarray:
        idx = np.arange(length)
        sep = np.minimum(np.abs(idx[:, None] - idx[None, :]), len(self.means) - 1)
        return self.means[sep].astype(np.float32)


def true_distances(example) -> np.ndarray:
    """True C-alpha distances [L, L]; NaN for pairs with a missing residue."""
    from loralab.protein.geometry import distance_matrix

    coords = np.where(example.mask[:, None], example.coords, np.nan)
    return distance_matrix(coords)


def _prefixed(metrics: dict, prefix: str) -> dict:
    return {k if k.startswith(prefix) else prefix + k: v for k, v in metrics.items()}


def score_distances(pred_D, example, contact_scores=None) -> dict[str, float]:
    """Distance errors and contact precision (ranked by ``contact_scores`` when given)."""
    from loralab.protein.metrics import contact_precision, distance_metrics

    true_D = true_distances(example)
    out = _prefixed(distance_metrics(pred_D, true_D, example.mask), "distance_")
    contacts = contact_precision(pred_D, true_D, example.mask, scores=contact_scores)
    out.update(_prefixed(contacts, "contact_"))
    return out


def score_structure(pred_D, example, refine: bool = True) -> tuple[dict, np.ndarray]:
    """Structure metrics of the MDS reconstruction (min over mirror images) and the chosen
    coordinates superposed on the true frame."""
    from loralab.protein.dataset import decode_residues
    from loralab.protein.geometry import decide_handedness, rmsd_superposed, superpose
    from loralab.protein.metrics import gdt_ts, lddt_ca, tm_score
    from loralab.protein.predict import mds_coordinates
    from loralab.protein.reconstruct import geometry_check

    X, fit_stress = mds_coordinates(pred_D, refine=refine)
    m = example.mask
    true_X = np.where(m[:, None], example.coords, np.nan).astype(np.float64)
    by_reference = decide_handedness(X, reference=true_X, mask=m)
    by_rule = decide_handedness(X)
    chosen = superpose(by_reference.apply(X), true_X, m)
    seq = decode_residues(example.residue_index)
    metrics = {
        "rmsd": rmsd_superposed(chosen, true_X, m),
        "tm_score": float(tm_score(chosen, true_X, seq, m)),
        "lddt": float(lddt_ca(chosen, true_X, m)),
        "gdt_ts": float(gdt_ts(chosen, true_X, m)),
        "mirror_chosen": float(by_reference.mirrored),
        "handedness_rule_agrees": float(by_rule.mirrored == by_reference.mirrored),
        "mds_stress": fit_stress,
    }
    geometry = geometry_check(chosen)
    metrics.update({k: float(geometry[k]) for k in ("mean_ca_ca", "clashes", "clash_fraction", "sane")})
    return metrics, chosen


def validation_metrics(model, dataset, baseline, batch_size: int, runtime) -> dict[str, float]:
    """Distance metrics on the validation set, model and baseline (the trainer's per-epoch hook)."""
    from loralab.protein.predict import predict_distance_matrices
    from loralab.protein.report import mean_metrics

    examples = [dataset[i] for i in range(len(dataset))]
    contacts: list = []
    preds = predict_distance_matrices(model, examples, batch_size, runtime, contacts=contacts)
    model_rows = [score_distances(p, e, c) for p, e, c in zip(preds, examples, contacts)]
    base_rows = [score_distances(baseline.predict(e.length), e) for e in examples]
    keys = ("distance_mae", "distance_rmse", "distance_pearson", "contact_p_at_L5_sep24")
    ours, base = mean_metrics(model_rows), mean_metrics(base_rows)
    out = {k: ours[k] for k in keys}
    out.update({f"baseline_{k}": base[k] for k in keys})
    out["mae_ratio_to_baseline"] = ours["distance_mae"] / base["distance_mae"]
    out["num_proteins"] = float(len(examples))
    return out


def _select_checkpoints(run, checkpoints, final_epoch: int) -> list:
    """The trained models a ``--checkpoints`` value names (:meth:`RunDir.select`'s grammar).
    A protein run has no epoch 0: ``all`` skips it, and naming it is an error."""
    chosen = run.select(checkpoints, final_epoch)
    if str(checkpoints).strip().lower() == "all":
        chosen = [c for c in chosen if c.path is not None]
    if any(c.path is None for c in chosen):
        available = ", ".join(str(e) for e in run.trained_models(final_epoch)) or "none"
        raise LoralabError(
            f"{run.path}: a protein run has no epoch 0 (the head is untrained; see the baseline row); "
            f"available: {available}"
        )
    return chosen


def evaluate_run(run_dir, checkpoints="all", split: str = "test", limit: int | None = None) -> Path:
    """Score each chosen checkpoint of a protein run on ``split`` (module doc); returns the eval dir."""
    from loralab.engine.events import EventLog
    from loralab.engine.run_dir import RunDir
    from loralab.protein.checkpoint_io import load_protein_trainable
    from loralab.protein.dataset import ProteinDataset
    from loralab.protein.predict import (
        find_checkpoint,
        inference_runtime,
        load_trained_model,
        predict_distance_matrices,
    )
    from loralab.protein.report import write_checkpoint_outputs, write_summary
    from loralab.protein.system import load_split

    run = RunDir(run_dir).require()
    run_dir = run.path
    _, cfg = find_checkpoint(run_dir)
    chosen = _select_checkpoints(run, checkpoints, cfg.training.epochs)
    examples = load_split(cfg, split)
    if limit is not None:
        examples = examples[:limit]
    full_lengths = [e.length for e in examples]
    windows = ProteinDataset(examples, cfg.protein.max_length, "first", name=split)
    examples = [windows[i] for i in range(len(windows))]
    baseline = SeparationMeanBaseline.fit(load_split(cfg, cfg.protein.train_split))
    eval_root = run.eval_dir(split)
    runtime = inference_runtime()
    model, cfg, _ = load_trained_model(chosen[0].path, runtime)
    events = EventLog(run_dir)
    base_D = [baseline.predict(e.length) for e in examples]
    base_rows = None
    for target in chosen:
        epoch, checkpoint, step = target.epoch, target.path, target.step
        tag = f"epoch-{epoch}"
        load_protein_trainable(model, checkpoint)
        events.write("heartbeat", step, stage=f"eval {tag}: predicting {len(examples)} chains")
        contacts: list = []
        preds = predict_distance_matrices(
            model, examples, cfg.evaluation.batch_size, runtime, progress=True, contacts=contacts
        )
        rows, coords, last_beat = [], [], time.time()
        for e, full, pred, scores in zip(examples, full_lengths, preds, contacts):
            row = {"id": e.id, "length": full, "evaluated_length": e.length, "cropped": int(e.length < full)}
            row["observed"] = int(e.mask.sum())
            row.update(score_distances(pred, e, scores))
            structure, X = score_structure(pred, e)
            row.update(structure)
            rows.append(row)
            coords.append(X)
            if time.time() - last_beat > 60:
                events.write("heartbeat", step, stage=f"eval {tag}: scoring")
                last_beat = time.time()
        if base_rows is None:
            base_rows = [
                {**score_distances(D, e), **score_structure(D, e)[0]} for D, e in zip(base_D, examples)
            ]
        out_dir = run.eval_epoch_dir(split, epoch)
        summary = write_checkpoint_outputs(
            out_dir, rows, base_rows, examples, preds, base_D, coords,
            info={"split": split, "checkpoint": str(checkpoint), "epoch": epoch, "heatmaps": HEATMAP_LIMIT},
        )  # fmt: skip
        flat = {**summary["model"], **{f"baseline_{k}": v for k, v in summary["baseline"].items()}}
        events.write("eval", step, epoch=epoch, split=split, metrics=flat)
        print(f"{tag}: distance MAE {flat['distance_mae']:.2f} A (baseline {flat['baseline_distance_mae']:.2f} A), "
              f"TM {flat['tm_score']:.3f} ({flat['baseline_tm_score']:.3f}), long-range P@L/5 "
              f"{flat['contact_p_at_L5_sep24']:.3f} ({flat['baseline_contact_p_at_L5_sep24']:.3f}), "
              f"lDDT {flat['lddt']:.3f}; geometry: mean CA-CA {flat['mean_ca_ca']:.2f} A, "
              f"{flat['clashes']:.1f} clashes per chain -> {out_dir}")  # fmt: skip
    write_summary(eval_root, SUMMARY_COLUMNS)
    return eval_root
