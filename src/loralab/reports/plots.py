"""PNG plots of a run: loss, grad norm, learning rate, eval metrics by epoch.

Each ``*_figure`` function returns a :class:`matplotlib.figure.Figure` (built without
pyplot, so nothing global and no display is touched) that tests can inspect before it is
saved with the Agg canvas.
"""

from __future__ import annotations

import math
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from loralab.reports.analysis import moving_average, window_size
from loralab.reports.run_log import StepPoint, headline_metrics

MAX_EVAL_PANELS = 12


def _finite_series(steps: list[StepPoint], attr: str) -> tuple[list[int], list[float]]:
    # Non-finite values would wreck autoscaling; they are reported in the analysis instead.
    pts = [(p.step, getattr(p, attr)) for p in steps if math.isfinite(getattr(p, attr))]
    return [s for s, _ in pts], [v for _, v in pts]


def _new_figure(title: str, width: float = 7.0, height: float = 4.0) -> Figure:
    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    fig.suptitle(title)
    return fig


def loss_figure(steps: list[StepPoint], title: str = "training loss") -> Figure:
    """The logged loss and, from 5 points on, its moving average (window as in the analysis)."""
    fig = _new_figure(title)
    ax = fig.add_subplot()
    x, y = _finite_series(steps, "loss")
    ax.plot(x, y, color="tab:blue", alpha=0.6, linewidth=1, label="loss (logged)")
    if len(y) >= 5:
        w = window_size(len(y))
        ax.plot(x, moving_average(y, w), color="tab:red", linewidth=2, label=f"moving average ({w})")
    bad = [p.step for p in steps if "loss" in p.nonfinite]
    for s in bad:  # axvline adds a Line2D too: say so in the legend
        ax.axvline(s, color="black", linestyle=":", label="NaN/inf loss" if s == bad[0] else None)
    if y and min(y) > 0 and max(y) / min(y) > 20:
        ax.set_yscale("log")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3)
    if y or bad:
        ax.legend()
    return fig


def grad_norm_figure(steps: list[StepPoint], max_grad_norm: float | None = None) -> Figure:
    """The logged (pre-clipping) grad norm, with the clipping threshold as a dashed line."""
    fig = _new_figure("gradient norm")
    ax = fig.add_subplot()
    x, y = _finite_series(steps, "grad_norm")
    ax.plot(x, y, color="tab:green", linewidth=1, label="grad norm")
    if max_grad_norm:
        ax.axhline(max_grad_norm, color="gray", linestyle="--", label=f"clip at {max_grad_norm:g}")
    if y and min(y) > 0 and max(y) / min(y) > 50:
        ax.set_yscale("log")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("grad norm")
    ax.grid(alpha=0.3)
    ax.legend()
    return fig


def lr_figure(steps: list[StepPoint]) -> Figure:
    fig = _new_figure("learning rate")
    ax = fig.add_subplot()
    x, y = _finite_series(steps, "lr")
    ax.plot(x, y, color="tab:purple", linewidth=1.5)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("learning rate")
    ax.ticklabel_format(axis="y", style="sci", scilimits=(-2, 3))
    ax.grid(alpha=0.3)
    return fig


BASELINE_PREFIX = "baseline_"


def plotted_metrics(evals: list[dict]) -> list[str]:
    """One panel per metric; a ``baseline_X`` metric joins X's panel instead of its own."""
    names = headline_metrics(evals, finite_only=True)
    return [n for n in names if not (n.startswith(BASELINE_PREFIX) and n[len(BASELINE_PREFIX) :] in names)][
        :MAX_EVAL_PANELS
    ]


def eval_figure(evals: list[dict]) -> Figure | None:
    """One panel per metric (scales differ: PCC, error rates, Å), one line each, by epoch."""
    names = plotted_metrics(evals)
    if not names:
        return None
    cols = min(3, len(names))
    rows = math.ceil(len(names) / cols)
    fig = _new_figure("evaluation by epoch", width=3.3 * cols, height=2.6 * rows + 0.5)
    axes = fig.subplots(rows, cols, squeeze=False)
    for i, name in enumerate(names):
        ax = axes[i // cols][i % cols]
        splits = list(dict.fromkeys(e.get("split") for e in evals))
        for split in splits:  # one line per evaluated split (usually just the default, test)
            pts = sorted(
                (e["epoch"], e["metrics"][name])
                for e in evals
                if name in e["metrics"] and e.get("split") == split
            )
            pts = [(ep, v) for ep, v in pts if math.isfinite(v)]
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=split or "test")
            base = [
                (e["epoch"], e["metrics"][BASELINE_PREFIX + name])
                for e in evals
                if e.get("split") == split
                and math.isfinite(e["metrics"].get(BASELINE_PREFIX + name, math.nan))
            ]
            if base:  # the evaluator's reference predictor, for scale
                base.sort()
                ax.plot(
                    [p[0] for p in base], [p[1] for p in base], linestyle="--", color="gray", label="baseline"
                )
        if len(splits) > 1 or ax.get_legend_handles_labels()[1].count("baseline"):
            ax.legend(fontsize=7)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("epoch", fontsize=8)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    for j in range(len(names), rows * cols):
        axes[j // cols][j % cols].set_visible(False)
    return fig


def status_figures(status) -> dict[str, Figure]:
    """File stem -> figure, for the plots a :class:`RunStatus` has data for."""
    figures: dict[str, Figure] = {}
    if status.steps:
        figures["loss"] = loss_figure(status.steps, title=f"training loss: {status.name}")
        figures["grad_norm"] = grad_norm_figure(status.steps, status.max_grad_norm)
        figures["lr"] = lr_figure(status.steps)
    if status.evals and (fig := eval_figure(status.evals)) is not None:
        figures["eval_metrics"] = fig
    return figures


def save_figure(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path


def write_plots(status, out_dir: str | Path) -> list[Path]:
    """Render every available plot into ``out_dir`` (``<run>/plots``); returns the files."""
    return [save_figure(fig, Path(out_dir) / f"{stem}.png") for stem, fig in status_figures(status).items()]
