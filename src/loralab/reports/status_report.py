"""``status.md``, the JSON form, and writing both with the plots into the run directory."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from loralab.reports.formatting import fmt_bytes, fmt_count, fmt_duration, fmt_num, json_safe, md_table
from loralab.reports.run_log import headline_metrics
from loralab.reports.status import RunStatus, build_status
from loralab.safe_files import write_text_atomic

STATUS_FILE = "status.md"
PLOTS_DIR = "plots"
LEVEL_MARK = {"ok": "OK", "info": "info", "warn": "WARNING", "bad": "PROBLEM"}


def param_totals(params: dict | None) -> tuple[int, int] | None:
    """(trainable, total) over the groups, which partition the model; a group named 'total'
    (the speech system writes one) is that sum already."""
    if not params:
        return None
    from loralab.reports.params import from_groups

    summary = from_groups(params, source="run")
    return summary.trainable, summary.total


def _when(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else "n/a"


def _progress_section(s: RunStatus) -> list[str]:
    total = f"{s.step} / {s.total_steps}" if s.total_steps else str(s.step)
    pct = f" ({s.percent:.1f}%)" if s.percent is not None else ""
    epoch = f"{s.epoch:.2f}" if s.epoch is not None else "n/a"
    rows = [
        ("step", total + pct),
        ("epoch", f"{epoch} / {s.epochs}" if s.epochs else epoch),
        (
            "elapsed",
            fmt_duration(s.elapsed_s) + (f" over {s.segments} segments (resumed)" if s.segments > 1 else ""),
        ),
        ("s/step", fmt_num(s.s_per_step) if s.s_per_step is not None else "n/a"),
        (
            "samples/s (wall, incl. pauses)",
            fmt_num(s.samples_per_s) if s.samples_per_s is not None else "n/a",
        ),
        ("samples/s (trainer, last log)", fmt_num(s.logged_samples_per_s)),
        ("tokens/s (trainer, last log)", fmt_num(s.tokens_per_s)),
        ("effective batch", fmt_num(s.effective_batch)),
        ("ETA", fmt_duration(s.eta_s) if s.eta_s is not None else "–"),
        ("started", _when(s.started_at)),
        ("resumed from", s.resumed_from or "–"),
        ("last record", f"{_when(s.last_event_at)} ({fmt_duration(s.seconds_since_last_event)} ago)"),
    ]
    return ["## Progress", "", md_table(["", ""], rows), ""]


def _loss_section(s: RunStatus) -> list[str]:
    out = ["## Loss", ""]
    if not s.loss_table:
        return out + ["No step logged yet.", ""]
    if s.loss_drop_pct is not None:
        out.append(
            f"Loss drop from the start: **{s.loss_drop_pct:+.1f}%** (mean of the first {s.loss_window} logged "
            f"losses {fmt_num(s.loss_start_mean)} -> last {s.loss_window} {fmt_num(s.loss_recent_mean)}; "
            f"first logged {fmt_num(s.loss_first)}, last {fmt_num(s.loss_last)})."
        )
        out.append("")
    out.append(f"Every {s.loss_table_every} steps:" if s.loss_table_every != 1 else "Every logged step:")
    out.append("")
    rows = [(r["step"], r["epoch"], r["loss"], r["grad_norm"], r["lr"]) for r in s.loss_table]
    out += [md_table(["step", "epoch", "loss", "grad norm", "lr"], rows), ""]
    return out


def _eval_label(e: dict) -> str:
    return f"epoch {e['epoch']}" + (f" ({e['split']})" if e.get("split") else "")


def _eval_section(s: RunStatus) -> list[str]:
    if not s.evals:
        return []
    names = headline_metrics(s.evals)
    # Metrics as rows, evaluations as columns: a dozen metrics fit, a dozen epochs too.
    headers = ["metric", *(_eval_label(e) for e in s.evals)]
    rows = [[n, *(e["metrics"].get(n) for e in s.evals)] for n in names]
    return ["## Evaluation by epoch", "", md_table(headers, rows), ""]


def _checkpoint_section(s: RunStatus) -> list[str]:
    items = list(s.checkpoints) + ([s.final_model] if s.final_model else [])
    if not items:
        return ["## Checkpoints", "", "None yet.", ""]
    rows = [(c["name"], fmt_bytes(c["size_bytes"]), c["state"], c["path"]) for c in items]
    return ["## Checkpoints", "", md_table(["checkpoint", "size", "state", "path"], rows), ""]


def _device_section(s: RunStatus) -> list[str]:
    rows = [
        ("device", s.device or "n/a"),
        ("dtype", s.dtype or "n/a"),
        ("precision", s.precision or "n/a"),
        ("processes", fmt_num(s.world_size)),
        ("memory now (GB)", fmt_num(s.memory_gb)),
        ("peak memory (GB)", fmt_num(s.peak_memory_gb)),
    ]
    out = ["## Device", "", md_table(["", ""], rows), ""]
    if s.params:
        prow = []
        for name, g in s.params.items():
            if name == "total":
                continue
            tr, tot = int(g.get("trainable", 0)), int(g.get("total", 0))
            prow.append((name, fmt_count(tr), fmt_count(tot), f"{100 * tr / tot:.2f}%" if tot else "–"))
        if (totals := param_totals(s.params)) is not None:
            tr, tot = totals
            prow.append(("**all**", fmt_count(tr), fmt_count(tot), f"{100 * tr / tot:.2f}%" if tot else "–"))
        out += ["Parameters:", "", md_table(["group", "trainable", "total", "trainable %"], prow), ""]
    return out


def render_markdown(s: RunStatus, plot_files: list[Path] | None = None) -> str:
    out = [f"# Run status: {s.name} — {s.state.upper()}", ""]
    out.append(f"`{s.run_dir}` · system: {s.system or 'n/a'} · report generated {_when(s.generated_at)}")
    out.append("")
    out.append(f"**State: {s.state}** — {s.state_reason}")
    if s.error:
        msg = s.error.get("message") or ""
        out += ["", "```", f"{s.error.get('kind')}: {msg}".rstrip()]
        if s.error.get("ids"):
            out.append(f"batch ids: {', '.join(map(str, s.error['ids']))}")
        out.append("```")
    out.append("")
    out += _progress_section(s)
    out += _loss_section(s)
    out += _eval_section(s)
    out += ["## Analysis", ""]
    out += [f"- **{LEVEL_MARK[f.level]}** ({f.topic}): {f.message}" for f in s.findings] or [
        "- nothing to report"
    ]
    out += [f"- **unreadable**: {p}" for p in s.problems]
    out.append("")
    out += _checkpoint_section(s)
    out += _device_section(s)
    if plot_files:
        out += ["## Plots", ""]
        out += [f"![{p.stem}]({PLOTS_DIR}/{p.name})" for p in plot_files]
        out.append("")
    if s.config:
        out += ["## Configuration (resolved)", "", "<details><summary>show</summary>", "", "```yaml"]
        out += [yaml.safe_dump(s.config, sort_keys=False).rstrip(), "```", "", "</details>", ""]
    return "\n".join(out)


def render_json(s: RunStatus) -> str:
    return json.dumps(json_safe(s.to_dict()), indent=2, default=str)


@dataclass
class StatusFiles:
    markdown: Path
    plots: list[Path]


def write_status_files(s: RunStatus, out_dir: str | Path | None = None, plots: bool = True) -> StatusFiles:
    """``status.md`` and ``plots/*.png`` into ``out_dir`` (default: the run directory). The
    markdown goes through a temporary file and a rename, so a reader never sees half of it."""
    from loralab.reports.plots import write_plots

    out_dir = Path(out_dir or s.run_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    plot_files = write_plots(s, out_dir / PLOTS_DIR) if plots else []
    path = out_dir / STATUS_FILE
    write_text_atomic(path, render_markdown(s, plot_files))
    return StatusFiles(path, plot_files)


def status_report(
    run_dir: str | Path, *, write: bool = True, plots: bool = True, stall_after_s: float | None = None
) -> tuple[RunStatus, StatusFiles | None]:
    """Compute a run's status and (by default) write status.md and the plots beside it."""
    s = build_status(run_dir, stall_after_s=stall_after_s)
    files = write_status_files(s, plots=plots) if write else None
    return s, files
