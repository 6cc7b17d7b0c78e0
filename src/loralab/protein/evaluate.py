"""Evaluate a protein run against true structures, beside a separation-mean baseline.

Orchestration only: the run directory is :class:`loralab.engine.run_dir.RunDir`'s, the data set
:mod:`loralab.protein.records`, the model :mod:`loralab.protein.inference`, the scores and the
baseline :mod:`loralab.protein.scoring`, the files :mod:`loralab.protein.report`.

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
from pathlib import Path

from loralab.errors import LoralabError
from loralab.protein.report import write_checkpoint_outputs
from loralab.protein.scoring import (
    SeparationMeanBaseline,
    map_chains,
    score_chain,
    score_distances,
    score_structure,
)

HEATMAP_LIMIT = 8
# Columns of the summary table: metric key -> heading.
SUMMARY_COLUMNS = {
    "distance_mae": "MAE (A)",
    "distance_rmse": "RMSE (A)",
    "distance_pearson": "Pearson",
    "mds_quality": "MDS quality",
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
    from loralab.protein.inference import find_checkpoint, inference_runtime, load_trained_model
    from loralab.protein.records import load_split
    from loralab.protein.report import write_summary

    run = RunDir(run_dir).require()
    _, cfg = find_checkpoint(run.path)
    chosen = _select_checkpoints(run, checkpoints, cfg.training.epochs)
    examples, full_lengths = _split_windows(cfg, split, limit)
    baseline = SeparationMeanBaseline.fit(load_split(cfg, cfg.protein.train_split))
    runtime = inference_runtime()
    model, cfg, _ = load_trained_model(chosen[0].path, runtime)
    events = EventLog(run.path)
    base_D = [baseline.predict(e.length) for e in examples]
    base_rows = list(
        map_chains(
            lambda pair: {**score_distances(*pair), **score_structure(*pair)[0]}, zip(base_D, examples)
        )
    )
    for target in chosen:
        load_protein_trainable(model, target.path)
        preds, rows, coords = _score_checkpoint(model, examples, full_lengths, target, cfg, runtime, events)
        out_dir = run.eval_epoch_dir(split, target.epoch)
        info = {
            "split": split,
            "checkpoint": str(target.path),
            "epoch": target.epoch,
            "heatmaps": HEATMAP_LIMIT,
        }
        summary = write_checkpoint_outputs(out_dir, rows, base_rows, examples, preds, base_D, coords, info)
        flat = {**summary["model"], **{f"baseline_{k}": v for k, v in summary["baseline"].items()}}
        events.write("eval", target.step, epoch=target.epoch, split=split, metrics=flat)
        print(_headline(f"epoch-{target.epoch}", flat, out_dir))
    write_summary(run.eval_dir(split), SUMMARY_COLUMNS)
    return run.eval_dir(split)


def _split_windows(cfg, split: str, limit: int | None) -> tuple[list, list[int]]:
    """The split's chains (the first ``limit``), each cropped to its first ``protein.max_length``
    window, and their full lengths."""
    from loralab.protein.dataset import ProteinDataset
    from loralab.protein.records import load_split

    examples = load_split(cfg, split)
    if limit is not None:
        examples = examples[:limit]
    full_lengths = [e.length for e in examples]
    windows = ProteinDataset(examples, cfg.protein.max_length, "first", name=split)
    return [windows[i] for i in range(len(windows))], full_lengths


def _score_checkpoint(model, examples, full_lengths, target, cfg, runtime, events) -> tuple[list, list, list]:
    """(predicted distances, per-chain rows, chosen coordinates) of the loaded checkpoint; a heartbeat
    event at the start and every minute of scoring."""
    from loralab.protein.inference import predict_distance_matrices

    tag = f"epoch-{target.epoch}"
    events.write("heartbeat", target.step, stage=f"eval {tag}: predicting {len(examples)} chains")
    contacts: list = []
    preds = predict_distance_matrices(
        model, examples, cfg.evaluation.batch_size, runtime, progress=True, contacts=contacts
    )
    rows, coords, last_beat = [], [], time.time()
    for row, X in map_chains(lambda chain: score_chain(*chain), zip(examples, full_lengths, preds, contacts)):
        rows.append(row)
        coords.append(X)
        if time.time() - last_beat > 60:
            events.write("heartbeat", target.step, stage=f"eval {tag}: scoring")
            last_beat = time.time()
    return preds, rows, coords


def _headline(tag: str, flat: dict, out_dir: Path) -> str:
    return (
        f"{tag}: distance MAE {flat['distance_mae']:.2f} A (baseline {flat['baseline_distance_mae']:.2f} A), "
        f"TM {flat['tm_score']:.3f} ({flat['baseline_tm_score']:.3f}), long-range P@L/5 "
        f"{flat['contact_p_at_L5_sep24']:.3f} ({flat['baseline_contact_p_at_L5_sep24']:.3f}), "
        f"lDDT {flat['lddt']:.3f}; geometry: mean CA-CA {flat['mean_ca_ca']:.2f} A, "
        f"{flat['clashes']:.1f} clashes per chain -> {out_dir}"
    )
