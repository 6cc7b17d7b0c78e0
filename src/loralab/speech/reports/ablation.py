"""The ablation table: the quality levers, on and off, side by side (``loralab evaluate --ablation``).

Each variant is one evaluated run (its last evaluated epoch) under one score decoding. Levers
read from the run itself: the prompt (``speech.prompt_style``, ``speech.prompt_reference``),
the tasks, the backbone family, and the decoding (greedy digits or expected scores: both
come from the same predictions, see :mod:`~loralab.speech.inference.expected`). Levers that need their own training
(a text-aware prompt) are compared by giving the runs trained with and without them.
Every PCC and F1 comes with its bootstrap 95% CI, so a difference can be told from noise.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

from loralab.engine.run_dir import RunDir
from loralab.errors import LoralabError

ASPECTS = (("acc", "accuracy"), ("flu", "fluency"), ("pros", "prosodic"), ("total", "total"))
ABLATION_MD = "ablation.md"
ABLATION_CSV = "ablation.csv"


def _last_metrics(run_dir: Path) -> dict:
    found = [
        (epoch, folder / "metrics.json")
        for split, epoch, folder in RunDir(run_dir).eval_folders()
        if split == "test" and epoch > 0 and (folder / "metrics.json").is_file()  # epoch 0: untrained
    ]
    if not found:
        raise LoralabError(
            f"{run_dir} has no evaluated checkpoint (eval/epoch-N/metrics.json, N > 0): "
            f"run `loralab evaluate {run_dir} --checkpoints last` first"
        )
    epoch, path = found[-1]
    return {**json.loads(path.read_text()), "epoch": epoch}


def _levers(run_dir: Path) -> dict:
    cfg = RunDir(run_dir).raw_config()
    speech = cfg.get("speech", {})
    return {
        "run": run_dir.name,
        "family": cfg.get("model", {}).get("family", "phi4mm"),
        "prompt": speech.get("prompt_style", "paper"),
        "reference": speech.get("prompt_reference", "none"),
        "tasks": "+".join(speech.get("tasks", [])),
    }


def _num(value) -> float:
    return math.nan if value is None else float(value)


def variant_rows(run_dir: str | Path) -> list[dict]:
    """One row per score decoding the run's last evaluation holds."""
    run_dir = Path(run_dir)
    metrics, levers = _last_metrics(run_dir), _levers(run_dir)
    headline = metrics.get("score_decoding", "greedy")
    mdd = metrics.get("mdd") or {}
    rows = []
    for decoding in ("greedy", "expected"):
        apa = metrics.get("apa") if decoding == headline else metrics.get(f"apa_{decoding}")
        if apa is None:
            continue
        row = {**levers, "epoch": metrics["epoch"], "decoding": decoding, "n": metrics.get("n_utterances")}
        for short, aspect in ASPECTS:
            stats = apa.get(aspect, {})
            ci = stats.get("pcc_ci") or [None, None]
            row.update({f"{short}_pcc": _num(stats.get("pcc")), f"{short}_pcc_ci_low": _num(ci[0]),
                        f"{short}_pcc_ci_high": _num(ci[1]), f"{short}_scc": _num(stats.get("spearman"))})  # fmt: skip
        f1_ci = (mdd.get("detection") or {}).get("f1_ci") or [None, None]
        row.update(
            wer=_num((mdd.get("wer") or {}).get("wer")),
            per=_num((mdd.get("per") or {}).get("per")),
            f1=_num((mdd.get("detection") or {}).get("f1")),
            f1_ci_low=_num(f1_ci[0]),
            f1_ci_high=_num(f1_ci[1]),
            apa_parse_rate=_num(apa.get("parse_rate")),
        )
        rows.append(row)
    return rows


def _cell(row: dict, key: str) -> str:
    value = row[key]
    if value != value:  # NaN: undefined (e.g. PCC of constant answers)
        return "–"
    low, high = row.get(f"{key}_ci_low", math.nan), row.get(f"{key}_ci_high", math.nan)
    ci = f" [{low:.2f}, {high:.2f}]" if low == low and high == high else ""
    return f"{value:.3f}{ci}"


def write_ablation(run_dirs: list[str | Path], out_dir: str | Path) -> Path:
    """ablation.md and ablation.csv in ``out_dir`` over the runs' last evaluations; returns the .md."""
    rows = [row for run in run_dirs for row in variant_rows(run)]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / ABLATION_CSV, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    head = ["run", "family", "reference in prompt", "tasks", "decoding", "Acc PCC", "Flu PCC", "Pros PCC",
            "Total PCC", "Acc SCC", "Flu SCC", "Pros SCC", "Total SCC", "WER", "PER", "F1", "APA parsed"]  # fmt: skip
    lines = [
        "# Ablation: quality levers on and off",
        "",
        f"Each row: a run's last evaluated epoch ({rows[0]['n']} utterances) under one score decoding. "
        "PCC and F1 with their bootstrap 95% CI (resampled utterances): where two CIs overlap widely, "
        "the difference is not established. Greedy and expected rows of one run share their predictions.",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for r in rows:
        cells = [f"{r['run']} (epoch {r['epoch']})", r["family"], r["reference"], r["tasks"], r["decoding"]]
        cells += [_cell(r, f"{s}_pcc") for s, _ in ASPECTS] + [_cell(r, f"{s}_scc") for s, _ in ASPECTS]
        cells += [_cell(r, "wer"), _cell(r, "per"), _cell(r, "f1"), f"{r['apa_parse_rate']:.0%}"]
        lines.append("| " + " | ".join(cells) + " |")
    path = out_dir / ABLATION_MD
    path.write_text("\n".join(lines) + "\n")
    return path
