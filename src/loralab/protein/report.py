"""Files of a protein evaluation: per-chain CSV, metrics JSON, heatmaps, structures, summary.

Written by :func:`loralab.protein.evaluate.evaluate_run`; the layout is described there. Scores come
from :mod:`loralab.protein.scoring`, heatmaps from :mod:`loralab.protein.plots`.
"""

from __future__ import annotations

import csv
import json
import math
import re
from pathlib import Path

import numpy as np

from loralab.json_numbers import jsonable
from loralab.protein.scoring import ROW_INFO, mean_metrics, true_distances

# The user's status report set these targets for its distance-matrix model (the protein
# reference): (metric key, "<" or ">", threshold, label).
SEED_TARGETS = (
    ("distance_mae", "<", 5.0, "distance MAE (A)"),
    ("distance_rmse", "<", 7.0, "distance RMSE (A)"),
    ("distance_pearson", ">", 0.7, "distance Pearson"),
    ("mds_quality", ">", 0.7, "MDS reconstruction quality"),
)


def seed_target_rows(model: dict, baseline: dict) -> list[dict]:
    """One row per status-report target: the model's and the baseline's value and whether the
    model meets it (None when the metric is missing)."""
    rows = []
    for key, op, threshold, label in SEED_TARGETS:
        value = model.get(key)
        known = isinstance(value, (int, float)) and math.isfinite(value)
        met = (value < threshold if op == "<" else value > threshold) if known else None
        rows.append({"metric": key, "label": label, "target": f"{op} {threshold:g}", "model": value,
                     "baseline": baseline.get(key), "met": met})  # fmt: skip
    return rows


def _seed_target_lines(model: dict, baseline: dict) -> list[str]:
    lines = ["", "## The status report's targets (last checkpoint)", "",
             "| metric | target | model | baseline | met |", "|---|---|---|---|---|"]  # fmt: skip
    for r in seed_target_rows(model, baseline):
        met = "n/a" if r["met"] is None else "yes" if r["met"] else "no"
        lines.append(f"| {r['label']} | {r['target']} | {_fmt(r['model'])} | {_fmt(r['baseline'])} | {met} |")
    return lines


def _fmt(value) -> str:
    if isinstance(value, float):
        return "" if not math.isfinite(value) else f"{value:.4f}"
    return str(value)


def write_checkpoint_outputs(
    out_dir: Path, rows, base_rows, examples, preds, base_D, coords, info: dict
) -> dict:
    """metrics.json, per_protein.csv, predicted_distances.npz, heatmaps/, structures/ of one checkpoint."""
    from loralab.protein.dataset import decode_residues
    from loralab.protein.pdb_file import write_ca_pdb
    from loralab.protein.plots import save_heatmaps

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = {
        **info,
        "num_proteins": len(rows),
        "num_cropped": int(sum(r["cropped"] for r in rows)),
        "model": mean_metrics(rows),
        "baseline": mean_metrics(base_rows),
        "baseline_method": "mean training C-alpha distance for each sequence separation",
        "aggregation": "mean over chains of per-chain metrics",
    }
    (out_dir / "metrics.json").write_text(json.dumps(jsonable(summary), indent=2) + "\n")
    metric_keys = [k for k in rows[0] if k not in ROW_INFO] if rows else []
    with (out_dir / "per_protein.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([*ROW_INFO, *metric_keys, *(f"baseline_{k}" for k in metric_keys)])
        for row, base in zip(rows, base_rows):
            writer.writerow(
                [row[k] for k in ROW_INFO]
                + [_fmt(row[k]) for k in metric_keys]
                + [_fmt(base.get(k, math.nan)) for k in metric_keys]
            )
    np.savez_compressed(out_dir / "predicted_distances.npz", **{e.id: p for e, p in zip(examples, preds)})
    limit = info.get("heatmaps", 8)
    for e, pred, base in list(zip(examples, preds, base_D))[:limit]:
        true_D = true_distances(e)
        save_heatmaps(
            out_dir / "heatmaps" / f"{_file_name(e.id)}.png",
            [(f"{e.id}: true", true_D), ("predicted", pred), ("baseline (separation mean)", base)],
            vmax=float(np.nanmax(true_D)),
        )
    for e, X in zip(examples, coords):
        seq = decode_residues(e.residue_index)
        name = _file_name(e.id)
        write_ca_pdb(out_dir / "structures" / f"{name}.pred.pdb", X, seq, remarks=[f"predicted, {e.id}"])
        true_X = np.where(e.mask[:, None], e.coords, np.nan)
        write_ca_pdb(out_dir / "structures" / f"{name}.true.pdb", true_X, seq, remarks=[f"true, {e.id}"])
    return summary


def _file_name(protein_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", protein_id)


def _epoch_key(item: tuple[str, dict]) -> tuple[int, str]:
    epoch = item[1].get("epoch")
    return (epoch if isinstance(epoch, int) and epoch >= 0 else 10**9, item[0])


def write_summary(eval_root: Path, columns: dict[str, str]) -> Path:
    """summary.md and summary.csv: one row per evaluated checkpoint, then the baseline."""
    found = {}
    for p in sorted(Path(eval_root).glob("*/metrics.json")):
        found[p.parent.name] = json.loads(p.read_text())
    items = sorted(found.items(), key=_epoch_key)
    rows = [(tag, data["model"]) for tag, data in items]
    if items:
        rows.append(("baseline: separation mean", items[-1][1]["baseline"]))
    header = ["checkpoint", "proteins", *columns.values()]
    n = {tag: data["num_proteins"] for tag, data in items}

    def cell(metrics, key):
        v = metrics.get(key)
        return "" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{v:.3f}"

    table = [[tag, str(n.get(tag, items[-1][1]["num_proteins"] if items else "")), *(cell(m, k) for k in columns)]
             for tag, m in rows]  # fmt: skip
    with (Path(eval_root) / "summary.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(table)
    split = items[-1][1].get("split", "") if items else ""
    lines = [
        f"# Protein evaluation ({split} split)",
        "",
        "Means over chains. RMSD/TM/GDT-TS: MDS reconstruction, minimum over mirror images. "
        "Baseline: mean training distance per sequence separation.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    lines += ["| " + " | ".join(r) + " |" for r in table]
    if items:
        lines += _seed_target_lines(items[-1][1]["model"], items[-1][1]["baseline"])
    md = Path(eval_root) / "summary.md"
    md.write_text("\n".join(lines) + "\n")
    return md
