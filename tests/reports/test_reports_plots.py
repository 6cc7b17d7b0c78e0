"""The status plots: the expected series on each figure, and valid PNG files on disk."""

from __future__ import annotations

import math

import matplotlib.image as mpimg
from matplotlib.lines import Line2D
from reports_eventlogs import of, start_record, step_records, write_log

from loralab.reports.plots import (
    eval_figure,
    grad_norm_figure,
    loss_figure,
    lr_figure,
    status_figures,
    write_plots,
)
from loralab.reports.status import build_status

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
T0 = 1_700_000_000.0


def lines(ax) -> list[Line2D]:
    return [a for a in ax.get_children() if isinstance(a, Line2D)]


def recorded_status(tmp_path, loss_fn=None):
    recs = [start_record(T0), *step_records(T0 + 10, list(range(5, 101, 5)), loss_fn=loss_fn, seed=3)]
    for epoch in (1, 2):
        recs.append({"event": "eval", "time": recs[-1]["time"] + 1, "step": 50 * epoch, "epoch": epoch,
                     "metrics": {"acc_pcc": 0.4 + 0.1 * epoch, "flu_pcc": 0.5, "wer": 0.3 / epoch,
                                 "acc_n": 40, "acc_p_value": 0.01, "per": "nan"}})  # fmt: skip
    config = {"training": {"max_grad_norm": 1.0}}  # only what the plot needs is checked below
    run = write_log(tmp_path / "run", recs, config=config)
    return build_status(run, now=recs[-1]["time"] + 1), recs


def test_figures_have_the_expected_series(tmp_path):
    s, recs = recorded_status(tmp_path)
    steps = of(recs, "step")

    loss_ax = loss_figure(s.steps).axes[0]
    assert len(lines(loss_ax)) == 2  # logged loss and its moving average
    x, y = lines(loss_ax)[0].get_data()
    assert list(x) == [r["step"] for r in steps] and list(y) == [r["loss"] for r in steps]

    assert s.max_grad_norm == 1.0  # from training_config.json (schema defaults fill the rest)
    assert len(lines(status_figures(s)["grad_norm"].axes[0])) == 2  # grad norm + clipping threshold
    assert len(lines(grad_norm_figure(s.steps, None).axes[0])) == 1
    assert len(lines(lr_figure(s.steps).axes[0])) == 1

    fig = eval_figure(s.evals)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    # acc_pcc, flu_pcc, wer; not the count (acc_n), the p-value, or a metric never finite (per)
    assert sorted(ax.get_title() for ax in visible) == ["acc_pcc", "flu_pcc", "wer"]
    for ax in visible:
        (line,) = lines(ax)
        assert list(line.get_xdata()) == [1, 2]


def test_nan_steps_are_marked_not_plotted(tmp_path):
    s, recs = recorded_status(
        tmp_path, loss_fn=lambda step: math.nan if step in (40, 45) else 2.0 - step / 100
    )
    ax = loss_figure(s.steps).axes[0]
    all_lines = lines(ax)
    assert len(all_lines) == 2 + 2  # loss, moving average, one marker per NaN step
    x, y = all_lines[0].get_data()
    assert 40 not in list(x) and all(math.isfinite(v) for v in y)


def test_write_plots_gives_valid_pngs(tmp_path):
    s, _ = recorded_status(tmp_path)
    files = write_plots(s, tmp_path / "plots")
    assert sorted(p.name for p in files) == ["eval_metrics.png", "grad_norm.png", "loss.png", "lr.png"]
    for p in files:
        assert p.read_bytes()[:8] == PNG_MAGIC
        image = mpimg.imread(p)
        assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
        assert image.std() > 0  # not a blank canvas


def test_protein_baseline_joins_its_metric_panel():
    evals = [
        {"epoch": e, "split": None, "metrics": {"distance_mae": 4.0 - e, "baseline_distance_mae": 5.0,
                                                 "tm_score": 0.2 * e, "n_proteins": 30.0}}
        for e in (1, 2, 3)
    ]  # fmt: skip
    fig = eval_figure(evals)
    visible = {ax.get_title(): ax for ax in fig.axes if ax.get_visible()}
    assert sorted(visible) == ["distance_mae", "tm_score"]
    model, baseline = lines(visible["distance_mae"])
    assert list(model.get_ydata()) == [3.0, 2.0, 1.0] and list(baseline.get_ydata()) == [5.0, 5.0, 5.0]
    assert len(lines(visible["tm_score"])) == 1
