"""``eval/table3.md`` / ``table3.csv`` / ``table4.csv``: our epochs in the paper's layout.

Table 3: for every evaluated epoch three rows, ours, the paper's row for the same strategy
and epoch (epoch 0 is the shared "no training" row), and the difference ours - paper; the
parse rates stand beside our numbers, since a correlation over half the answers is not the
same claim as one over all. Table 4: the other systems of the paper's Table 4 and our best
epoch (highest mean of the four PCCs). Table 3 states which MDD scoring convention (see
:mod:`~loralab.speech.scoring.mdd`) produced its F1/precision/recall.

Our rows also carry what the paper does not report: each PCC and the F1 with its bootstrap
95% interval, "0.620 [0.510, 0.700]", and the Spearman correlations (SCC columns after Rec;
"–" in the paper's rows). table3.csv has them as columns ``<x>_scc``, ``<x>_ci_low/_high``.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

from loralab.engine.run_dir import epoch_folders
from loralab.json_numbers import to_float
from loralab.speech.reports.paper import (
    PAPER_FIGURE5,
    PAPER_TABLE4,
    TABLE3_COLUMNS,
    TABLE3_HEADERS,
    TABLE4_COLUMNS,
    paper_row,
)

EXTRA_COLUMNS = ("apa_parse_rate", "mdd_parse_rate")
SCC_COLUMNS = ("acc_scc", "flu_scc", "pros_scc", "total_scc")
SCC_HEADERS = {"acc_scc": "Acc SCC", "flu_scc": "Flu SCC", "pros_scc": "Pros SCC", "total_scc": "Total SCC"}
# What a correlation cannot see, beside it: mean absolute error and the predictions' spread (std
# over the human labels' std; a near-constant answer can have a high PCC and a ratio near 0).
SCALE_COLUMNS = tuple(f"{a}_{k}" for k in ("mae", "spread") for a in ("acc", "flu", "pros", "total"))
SCALE_HEADERS = {
    c: f"{c.split('_')[0].capitalize()} {'MAE' if c.endswith('mae') else 'spread'}" for c in SCALE_COLUMNS
}
# Table-3 columns shown with their bootstrap interval in our rows.
CI_COLUMNS = ("acc_pcc", "flu_pcc", "pros_pcc", "total_pcc", "f1")
CI_CSV_COLUMNS = tuple(f"{k}_ci_{end}" for k in CI_COLUMNS for end in ("low", "high"))
STRATEGY_LABELS = {"lora": "LoRA", "unfreeze": "Unfreeze"}
MDD_CONVENTION_NOTES = {
    "reference": "the public convention of the MDD literature (cageyoko/CTC-Attention-Mispronunciation, "
    "Kaldi align-text), comparable with published numbers",
    "strict": "our strict convention (predicted insertions the annotators did not hear count as false "
    "rejections; one unit per insertion gap), not comparable with published numbers",
}


def _fmt(value: float | None, signed: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:+.3f}" if signed else f"{value:.3f}"


def _undefined(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _with_ci(row: dict, key: str) -> str:
    """``0.620 [0.510, 0.700]``: the value and its bootstrap interval where both are defined."""
    cell = _fmt(row.get(key))
    lo, hi = row.get(f"{key}_ci_low"), row.get(f"{key}_ci_high")
    if _undefined(row.get(key)) or _undefined(lo) or _undefined(hi):
        return cell
    return f"{cell} [{_fmt(lo)}, {_fmt(hi)}]"


def _bootstrap_sentence(summaries: dict[int, dict]) -> str:
    settings = [m["bootstrap"] for m in summaries.values() if m.get("bootstrap")]
    if not settings:
        return ""
    resamples = sorted({s.get("n_resamples") for s in settings})
    confidence = sorted({s.get("confidence") for s in settings})
    level = "/".join(f"{100 * c:g}%" for c in confidence if c is not None) or "95%"
    return (
        f" [lo, hi] after our PCCs and F1: bootstrap {level} percentile interval over "
        f"{'/'.join(map(str, resamples))} resamples of the utterances (with replacement); "
        "SCC: Spearman rank correlation with the human scores (the paper reports none)."
    )


def _pct(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{100 * value:.1f}%"


def read_epoch_summaries(eval_dir: Path) -> dict[int, dict]:
    """epoch -> metrics.json contents, for every ``epoch-N/metrics.json`` under ``eval_dir``."""
    out = {}
    for epoch, folder in epoch_folders(eval_dir).items():
        path = folder / "metrics.json"
        if not path.is_file():
            continue
        metrics = json.loads(path.read_text())
        # metrics.json writes an undefined value as null (loralab.json_numbers); tables compute with NaN.
        metrics["summary"] = {k: to_float(v) if v is None else v for k, v in metrics["summary"].items()}
        for side in ("human", "predicted"):
            fig5 = metrics.get("per_vs_accuracy", {}).get(side)
            if fig5 is not None and fig5.get("pcc") is None:
                fig5["pcc"] = math.nan
        out[epoch] = metrics
    return dict(sorted(out.items()))


def mdd_conventions(summaries: dict[int, dict]) -> dict[int, str]:
    """epoch -> the MDD convention of its headline F1 (metrics.json from before the convention
    was recorded were scored with what is now ``strict``)."""
    out = {}
    for epoch, metrics in summaries.items():
        detection = (metrics.get("mdd") or {}).get("detection")
        if detection is not None:
            out[epoch] = detection.get("convention") or "strict"
    return out


def _convention_sentence(conventions: dict[int, str]) -> str:
    names = sorted(set(conventions.values()))
    if not names:
        return ""
    if len(names) == 1:
        return f" MDD scored with the {names[0]} convention: {MDD_CONVENTION_NOTES.get(names[0], names[0])}."
    parts = []
    for name in names:
        epochs = ", ".join(str(e) for e, c in conventions.items() if c == name)
        parts.append(f"{name} for epoch(s) {epochs}")
    return f" MDD scoring conventions differ between epochs: {'; '.join(parts)}."


def best_epoch(summaries: dict[int, dict]) -> int | None:
    """The epoch (> 0 when any) with the highest mean of the four PCCs that are defined."""

    def score(epoch: int) -> float:
        row = summaries[epoch]["summary"]
        values = [row[k] for k in TABLE3_COLUMNS[:4] if not math.isnan(row[k])]
        return sum(values) / len(values) if values else -math.inf

    trained = [e for e in summaries if e > 0] or list(summaries)
    return max(trained, key=score) if trained else None


def table3_rows(summaries: dict[int, dict], strategy: str) -> list[dict]:
    rows = []
    conventions = mdd_conventions(summaries)
    for epoch, metrics in summaries.items():
        ours = metrics["summary"]
        label = "no training" if epoch == 0 else STRATEGY_LABELS.get(strategy, strategy)
        rows.append(
            {
                "strategy": label,
                "epoch": epoch,
                "source": "ours",
                **ours,
                "mdd_convention": conventions.get(epoch, ""),
            }
        )
        paper = paper_row(strategy, epoch)
        if paper is not None:
            rows.append({"strategy": label, "epoch": epoch, "source": "paper", **paper})
            diff = {k: ours[k] - paper[k] for k in TABLE3_COLUMNS}
            rows.append({"strategy": label, "epoch": epoch, "source": "ours - paper", **diff})
    return rows


def write_tables(eval_dir: Path, summaries: dict[int, dict], *, strategy: str, title: str) -> dict[str, Path]:
    """Write table3.md, table3.csv and table4.csv into ``eval_dir``; returns their paths."""
    eval_dir = Path(eval_dir)
    rows = table3_rows(summaries, strategy)
    csv3 = _write_table3_csv(eval_dir / "table3.csv", rows)
    best = best_epoch(summaries)
    table4 = _table4_rows(summaries, best)
    csv4 = _write_table4_csv(eval_dir / "table4.csv", table4)
    lines = [f"# {title}", "", _table3_preamble(summaries), "", *_table3_md(rows)]
    lines += ["", "## Comparison with other systems (the paper's Table 4)", ""]
    t4_headers = ["System", "Acc", "Flu", "Pros", "Total", "PER"]
    lines.append("| " + " | ".join(t4_headers) + " |")
    lines.append("|" + "---|" * len(t4_headers))
    for name, values in table4:
        lines.append("| " + " | ".join([name, *(_fmt(v) for v in values)]) + " |")
    if best is not None and "per_vs_accuracy" in summaries[best]:
        lines += _figure5_lines(summaries[best]["per_vs_accuracy"], best)
    md = eval_dir / "table3.md"
    md.write_text("\n".join(lines) + "\n")
    return {"table3_md": md, "table3_csv": csv3, "table4_csv": csv4}


def _write_table3_csv(path: Path, rows: list[dict]) -> Path:
    columns = [
        "strategy", "epoch", "source", *TABLE3_COLUMNS, "diagnosis_accuracy", *EXTRA_COLUMNS, "mdd_convention",
        *SCC_COLUMNS, *SCALE_COLUMNS, *CI_CSV_COLUMNS,
    ]  # fmt: skip
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: row.get(k, "") for k in columns})
    return path


def _write_table4_csv(path: Path, table4: list[tuple[str, tuple]]) -> Path:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["system", *TABLE4_COLUMNS])
        for name, values in table4:
            writer.writerow([name, *("" if v is None or math.isnan(v) else v for v in values)])
    return path


def _table3_preamble(summaries: dict[int, dict]) -> str:
    counts = {e: m.get("n_utterances") for e, m in summaries.items()}
    distinct = sorted({c for c in counts.values() if c is not None})
    return (
        f"Utterances evaluated per epoch: {', '.join(map(str, distinct)) or '?'} "
        "(the paper: the 2,500 SpeechOcean762 test utterances). PCC: Pearson correlation with the human "
        "scores over the answers that parsed; WER/PER corpus-level over parsed transcripts; F1/Prec/Rec: "
        "MDD detection (TA/FR/FA/TR)."
        + _bootstrap_sentence(summaries)
        + _convention_sentence(mdd_conventions(summaries))
    )


def _table3_md(rows: list[dict]) -> list[str]:
    """The Markdown Table 3: our rows with CIs, the paper's, and the signed differences."""
    headers = [
        "Strategy",
        "Epoch",
        "Row",
        *(TABLE3_HEADERS[k] for k in TABLE3_COLUMNS),
        *(SCC_HEADERS[k] for k in SCC_COLUMNS),
        *(SCALE_HEADERS[k] for k in SCALE_COLUMNS),
        "APA parsed",
        "MDD parsed",
    ]
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for row in rows:
        signed = row["source"] == "ours - paper"
        cells = [row["strategy"], str(row["epoch"]), row["source"]]
        if row["source"] == "ours":
            cells += [_with_ci(row, k) if k in CI_COLUMNS else _fmt(row[k]) for k in TABLE3_COLUMNS]
            cells += [_fmt(row.get(k)) for k in SCC_COLUMNS]
            cells += [_fmt(row.get(k)) for k in SCALE_COLUMNS]
            cells += [_pct(row["apa_parse_rate"]), _pct(row["mdd_parse_rate"])]
        else:
            cells += [_fmt(row[k], signed) for k in TABLE3_COLUMNS]
            cells += [_fmt(row.get(k), signed) for k in SCC_COLUMNS]
            cells += [""] * len(SCALE_COLUMNS) + ["", ""]  # the paper reports neither
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _figure5_lines(fig5: dict, best: int) -> list[str]:
    return [
        "",
        f"## PER vs accuracy (the paper's Figure 5), epoch {best}",
        "",
        f"Pearson r between per-utterance PER and the human accuracy score: {_fmt(fig5['human']['pcc'])} "
        f"(n = {fig5['human']['n']}; paper {PAPER_FIGURE5['human']:.4f}); with the predicted accuracy: "
        f"{_fmt(fig5['predicted']['pcc'])} (n = {fig5['predicted']['n']}; paper {PAPER_FIGURE5['predicted']:.4f}). "
        f"Scatter plot: epoch-{best}/{fig5.get('plot', 'per_vs_accuracy.png')}",
    ]


def _table4_rows(summaries: dict[int, dict], best: int | None) -> list[tuple[str, tuple]]:
    rows = list(PAPER_TABLE4)
    if best is not None:
        s = summaries[best]["summary"]
        rows.append((f"Ours, epoch {best}", tuple(s[k] for k in TABLE4_COLUMNS)))
    return rows
