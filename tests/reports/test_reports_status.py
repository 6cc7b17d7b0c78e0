"""`loralab status` on recorded event logs: state in each case, and every figure recomputed
here from the records the test wrote."""

from __future__ import annotations

import json
import math
import statistics
import threading
import time

import numpy as np
import pytest
from reports_eventlogs import dead_pid, of, start_record, step_records, write_log

from loralab.cli.main import main
from loralab.errors import LoralabError
from loralab.reports.status import build_status, loss_table_interval
from loralab.reports.status_report import render_json, render_markdown

T0 = 1_700_000_000.0
EFFECTIVE_BATCH = 8 * 4 * 2  # batch x accumulation x world size in start_record


def expected_loss_drop(losses: list[float]) -> tuple[float, int]:
    finite = [v for v in losses if math.isfinite(v)]
    w = max(1, min(10, len(finite) // 5))
    first, last = np.mean(finite[:w]), np.mean(finite[-w:])
    return 100.0 * (first - last) / first, w


def expected_table_steps(logged: list[int], interval: int) -> list[int]:
    """Brute force: first and last logged step, and for every multiple of the interval up to
    the last step, the smallest logged step at or after it."""
    chosen = {logged[0], logged[-1]}
    for m in range(interval, logged[-1] + 1, interval):
        chosen.add(min(s for s in logged if s >= m))
    return sorted(chosen)


def test_live_run_progress_speed_eta_and_loss_table(tmp_path):
    steps_logged = list(range(5, 151, 5))
    recs = [start_record(T0)] + step_records(T0 + 30, steps_logged, seed=1)
    run = write_log(tmp_path / "live", recs)
    now = recs[-1]["time"] + 4.0
    s = build_status(run, now=now)

    assert s.state == "running", s.state_reason
    steps = of(recs, "step")
    assert (s.step, s.total_steps, s.epoch) == (150, 300, pytest.approx(1.5))
    assert s.percent == pytest.approx(50.0)
    sps = (steps[-1]["time"] - steps[0]["time"]) / (steps[-1]["step"] - steps[0]["step"])
    assert s.s_per_step == pytest.approx(sps)
    assert s.samples_per_s == pytest.approx(EFFECTIVE_BATCH / sps)
    assert s.logged_samples_per_s == pytest.approx(steps[-1]["samples_per_s"])
    assert s.eta_s == pytest.approx((300 - 150) * sps)
    assert s.elapsed_s == pytest.approx(now - T0)
    assert s.seconds_since_last_event == pytest.approx(4.0)
    assert s.peak_memory_gb == pytest.approx(max(r["peak_memory_gb"] for r in steps))

    drop, w = expected_loss_drop([r["loss"] for r in steps])
    assert s.loss_window == w
    assert s.loss_drop_pct == pytest.approx(drop)
    assert (s.loss_first, s.loss_last) == (steps[0]["loss"], steps[-1]["loss"])

    # 300 total steps: 10 would give 30 rows (> 20), 20 gives 15.
    assert s.loss_table_every == 20
    assert [r["step"] for r in s.loss_table] == expected_table_steps(steps_logged, 20)
    by_step = {r["step"]: r for r in steps}
    for row in s.loss_table:
        src = by_step[row["step"]]
        assert (row["loss"], row["grad_norm"], row["lr"]) == (src["loss"], src["grad_norm"], src["lr"])

    md = render_markdown(s)
    assert "RUNNING" in md and "150 / 300 (50.0%)" in md and f"{drop:+.1f}%" in md


@pytest.mark.parametrize(
    "total,expected", [(40, 2), (237, 20), (300, 20), (1000, 50), (5000, 250), (30000, 2000)]
)
def test_loss_table_interval_is_smallest_nice_interval_with_at_most_20_rows(total, expected):
    nice = sorted({b * 10**k for b in (1, 2, 5, 10, 20, 25, 50) for k in range(6)})
    assert expected == min(i for i in nice if total / i <= 20)
    assert loss_table_interval(total) == expected


def test_finished_run_with_checkpoints_and_evals(tmp_path):
    run = tmp_path / "finished"
    steps = step_records(T0 + 10, list(range(10, 301, 10)), seed=2)
    recs = [start_record(T0), *steps]
    sizes = {}
    for epoch in (1, 2, 3):
        ck = run / f"checkpoint-epoch-{epoch}"
        (ck / "sub").mkdir(parents=True)
        (ck / "adapter_model.safetensors").write_bytes(b"\0" * (1000 * epoch))
        (ck / "sub" / "optimizer.pt").write_bytes(b"\0" * 77)
        sizes[epoch] = 1000 * epoch + 77
        t = steps[epoch * 10 - 1]["time"]
        recs.append({"event": "checkpoint", "time": t + 1, "step": epoch * 100, "epoch": epoch,
                     "path": str(ck), "size_bytes": sizes[epoch]})  # fmt: skip
        recs.append({"event": "eval", "time": t + 2, "step": epoch * 100, "epoch": epoch,
                     "metrics": {"acc_pcc": 0.5 + epoch / 20, "wer": 0.2 - epoch / 100}})  # fmt: skip
    recs.append({"event": "eval", "time": t + 3, "step": 300, "epoch": 3, "split": "val",
                 "metrics": {"acc_pcc": 0.9}})  # fmt: skip
    (run / "final_model").mkdir(parents=True)
    (run / "final_model" / "adapter_model.safetensors").write_bytes(b"\0" * 4321)
    end_time = recs[-1]["time"] + 5
    recs.append({"event": "end", "time": end_time, "step": 300, "status": "finished",
                 "final_model": str(run / "final_model")})  # fmt: skip
    write_log(run, recs)
    s = build_status(run, now=end_time + 3600)

    assert s.state == "finished"
    assert s.eta_s is None
    assert s.percent == pytest.approx(100.0)
    assert s.elapsed_s == pytest.approx(end_time - T0)
    assert [(c["epoch"], c["size_bytes"], c["state"]) for c in s.checkpoints] == [
        (e, sizes[e], "complete") for e in (1, 2, 3)
    ]
    assert s.final_model["size_bytes"] == 4321
    evals = [(e["epoch"], e["split"], e["metrics"]["acc_pcc"]) for e in s.evals]
    assert evals == [(e, None, 0.5 + e / 20) for e in (1, 2, 3)] + [(3, "val", 0.9)]
    md = render_markdown(s)
    assert "| metric | epoch 1 | epoch 2 | epoch 3 | epoch 3 (val) |" in md
    assert "FINISHED" in md and "checkpoint-epoch-3" in md and f"{3077 / 1024:.1f} KiB" in md


def test_eval_metrics_json_files_are_read_when_no_eval_event(tmp_path):
    recs = [start_record(T0), *step_records(T0 + 10, [10, 20], seed=3)]
    run = write_log(tmp_path / "evalfiles", recs)
    (run / "eval" / "epoch-0").mkdir(parents=True)
    (run / "eval" / "epoch-0" / "metrics.json").write_text(
        json.dumps({"apa": {"accuracy": {"pcc": 0.1, "n": 40}}, "per": 0.7, "note": "text is skipped"})
    )
    s = build_status(run, now=recs[-1]["time"] + 1)
    assert s.evals[0]["epoch"] == 0
    assert s.evals[0]["metrics"] == {"apa.accuracy.pcc": 0.1, "apa.accuracy.n": 40.0, "per": 0.7}


def test_crashed_run_reports_the_error(tmp_path):
    recs = [start_record(T0), *step_records(T0 + 10, list(range(5, 51, 5)), seed=4)]
    recs.append({"event": "error", "time": recs[-1]["time"] + 2, "step": 50, "kind": "exception",
                 "message": "RuntimeError: CUDA error: device-side assert triggered", "ids": ["u1:apa", "u2:mdd"]})  # fmt: skip
    run = write_log(tmp_path / "crashed", recs)
    s = build_status(run, now=recs[-1]["time"] + 10)  # our own pid is alive: the error record decides
    assert s.state == "crashed"
    assert s.error["kind"] == "exception" and "device-side assert" in s.error["message"]
    assert s.eta_s is None
    md = render_markdown(s)
    assert "CRASHED" in md and "device-side assert" in md and "u1:apa, u2:mdd" in md


def test_killed_run_dead_pid_without_end_is_crashed(tmp_path):
    recs = [start_record(T0, pid=dead_pid()), *step_records(T0 + 10, list(range(5, 41, 5)), seed=5)]
    run = write_log(tmp_path / "killed", recs)
    s = build_status(run, now=recs[-1]["time"] + 5)
    assert s.state == "crashed"
    assert s.error["kind"] == "killed"
    assert "gone" in s.state_reason
    assert s.elapsed_s == pytest.approx(recs[-1]["time"] - T0)  # not counted up to now


def test_stalled_run_alive_pid_old_last_write(tmp_path):
    recs = [start_record(T0), *step_records(T0 + 10, list(range(5, 101, 5)), seed=6, mean_gap=4.0)]
    run = write_log(tmp_path / "stalled", recs)
    times = [r["time"] for r in recs]
    gaps = [b - a for a, b in zip(times, times[1:])][1:]  # start -> first step is warm-up
    threshold = max(300.0, 10 * statistics.median(gaps))
    last = times[-1]

    s = build_status(run, now=last + threshold + 1)
    assert s.state == "stalled", s.state_reason
    assert s.stall_threshold_s == pytest.approx(threshold)
    assert s.eta_s is not None  # still a live process: an ETA if it resumes
    assert build_status(run, now=last + threshold - 1).state == "running"
    assert build_status(run, now=last + 60, stall_after_s=30).state == "stalled"


def test_other_host_is_judged_by_silence_only(tmp_path):
    recs = [start_record(T0, host="another-machine", pid=1), *step_records(T0 + 10, [5, 10, 15], seed=7)]
    run = write_log(tmp_path / "remote", recs)
    assert build_status(run, now=recs[-1]["time"] + 10).state == "running"
    s = build_status(run, now=recs[-1]["time"] + 10_000)
    assert s.state == "stalled" and "another machine" in s.state_reason


def test_nan_run(tmp_path):
    def loss(step):
        return math.nan if step in (60, 65) else 3.0 - step / 100

    recs = [start_record(T0), *step_records(T0 + 10, list(range(5, 66, 5)), loss_fn=loss, seed=8)]
    recs.append({"event": "error", "time": recs[-1]["time"] + 1, "step": 65, "kind": "nan",
                 "message": "loss is nan at step 65", "ids": ["SPK1_001:apa"]})  # fmt: skip
    run = write_log(tmp_path / "nan", recs)
    s = build_status(run, now=recs[-1]["time"] + 1)

    assert s.state == "crashed" and s.error["kind"] == "nan" and s.error["ids"] == ["SPK1_001:apa"]
    drop, _ = expected_loss_drop([float(r["loss"]) for r in of(recs, "step")])
    assert s.loss_drop_pct == pytest.approx(drop)
    nan_findings = [f for f in s.findings if f.topic == "nan"]
    assert len(nan_findings) == 1 and nan_findings[0].level == "bad"
    assert "60, 65" in nan_findings[0].message
    text = render_json(s)
    data = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-strict JSON: {c}"))
    assert data["loss_table"][-1]["loss"] is None  # NaN is written null: the JSON stays strict


def test_resumed_run_later_records_win_and_segments_add_up(tmp_path):
    seg1 = [start_record(T0), *step_records(T0 + 10, list(range(5, 121, 5)), seed=9)]
    t1 = seg1[-1]["time"] + 500  # downtime between the crash and the resume is not elapsed time
    seg2 = [
        start_record(t1, step=100, resumed_from="checkpoint-epoch-1"),
        *step_records(t1 + 20, list(range(105, 301, 5)), seed=10),
    ]
    # step_records counts time from step 0; shift segment 2 so its first step is 20 s after t1
    offset = seg2[1]["time"] - (t1 + 20)
    for r in seg2[1:]:
        r["time"] -= offset
    end = {
        "event": "end",
        "time": seg2[-1]["time"] + 1,
        "step": 300,
        "status": "finished",
        "final_model": "x",
    }
    run = write_log(tmp_path / "resumed", seg1 + seg2 + [end])
    s = build_status(run, now=end["time"] + 100)

    assert s.state == "finished" and s.segments == 2
    steps2 = of(seg2, "step")
    by_step = {r["step"]: r["loss"] for r in of(seg1, "step")}
    by_step.update({r["step"]: r["loss"] for r in steps2})
    assert [p.step for p in s.steps] == sorted(by_step)
    assert [p.loss for p in s.steps] == [by_step[k] for k in sorted(by_step)]
    assert s.s_per_step == pytest.approx((steps2[-1]["time"] - steps2[0]["time"]) / (300 - 105))
    assert s.elapsed_s == pytest.approx((seg1[-1]["time"] - T0) + (end["time"] - t1))


def test_analysis_rules_plateau_divergence_spikes():
    from loralab.reports.analysis import analyse
    from loralab.reports.run_log import StepPoint

    def points(losses, grads=None):
        grads = grads or [1.0] * len(losses)
        return [
            StepPoint(i * 10, float(i), i / 10, v, g, 1e-5, 1.0, 1.0, 1.0, 1.0)
            for i, (v, g) in enumerate(zip(losses, grads))
        ]

    falling = analyse(points([3.0 - 0.1 * i for i in range(20)]))
    assert any(f.topic == "loss" and f.level == "ok" and "falling" in f.message for f in falling)

    flat = analyse(points([2.0 - 0.1 * i for i in range(10)] + [1.0 + 0.001 * (i % 2) for i in range(10)]))
    assert any("plateau" in f.message for f in flat)
    assert not any(f.level == "bad" for f in flat)

    diverging = analyse(points([2.0 - 0.1 * i for i in range(10)] + [1.0 + 0.4 * i for i in range(10)]))
    assert any(f.level == "bad" and "diverging" in f.message for f in diverging)
    assert any(f.level == "warn" and "rising" in f.message for f in diverging)

    grads = [1.0] * 20
    grads[13] = 9.0
    spikes = analyse(points([3.0 - 0.1 * i for i in range(20)], grads), max_grad_norm=2.0)
    spike = [f for f in spikes if "spike" in f.message]
    assert spike and "130" in spike[0].message  # the 14th point is step 130
    assert any("clipping threshold 2 in 5%" in f.message for f in spikes)  # 1 of 20


def test_log_without_start_and_bad_dirs(tmp_path):
    run = write_log(
        tmp_path / "evalonly", [{"event": "eval", "time": T0, "step": 0, "epoch": 0, "metrics": {"f1": 0.5}}]
    )
    s = build_status(run, now=T0 + 1)
    assert s.state == "unknown" and s.evals[0]["metrics"] == {"f1": 0.5}
    with pytest.raises(LoralabError, match="does not exist"):
        build_status(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(LoralabError, match="not a run directory"):
        build_status(tmp_path / "empty")


def test_cli_writes_status_md_and_plots_and_exit_codes(tmp_path, capsys):
    recs = [start_record(T0, pid=dead_pid()), *step_records(T0 + 10, list(range(5, 61, 5)), seed=11)]
    crashed = write_log(tmp_path / "cli_crashed", recs)
    assert main(["status", str(crashed), "--format", "json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["state"] == "crashed" and data["step"] == 60
    assert (crashed / "status.md").read_text().startswith("# Run status: recorded — CRASHED")
    assert sorted(p.name for p in (crashed / "plots").iterdir()) == ["grad_norm.png", "loss.png", "lr.png"]

    assert main(["status", str(tmp_path / "missing")]) == 2  # a clear error, no traceback
    assert "does not exist" in capsys.readouterr().err


def test_watch_refreshes_until_the_run_ends(tmp_path, capsys):
    now = time.time()
    recs = [start_record(now - 30), *step_records(now - 25, [5, 10, 15], mean_gap=1.0)]
    run = write_log(tmp_path / "watched", recs)

    def finish():
        time.sleep(0.6)
        with (run / "events.jsonl").open("a") as f:
            f.write(
                json.dumps({"event": "end", "time": time.time(), "step": 15, "status": "finished"}) + "\n"
            )

    thread = threading.Thread(target=finish)
    thread.start()
    assert main(["status", str(run), "--watch", "0.2", "--no-plots"]) == 0
    thread.join()
    out = capsys.readouterr().out
    assert out.count("# Run status") >= 2
    assert "RUNNING" in out and out.rstrip().split("# Run status")[-1].count("FINISHED") >= 1
