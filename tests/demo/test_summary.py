"""The demo's closing summary: loss figures from an event log, checks, partial results."""

from __future__ import annotations

import statistics

from loralab.demo.stages import StageClock
from loralab.demo.summary import acceptance_checks, build_summary, render_summary
from loralab.engine.events import EventLog

FULL_PLAN = {"mode": "full", "budget_seconds": 900}


def test_training_loss_from_event_log(tmp_path):
    from loralab.demo.speech_demo import training_loss

    losses = [4.0, 3.0, 3.5, 2.0, 1.0, float("nan"), 1.5, 0.5, 0.75]
    log = EventLog(tmp_path)
    log.write("start", 0, total_steps=9)
    for step, loss in enumerate(losses, 1):
        log.write("step", step, loss=loss, grad_norm=1.0, lr=1e-3)
    log.write("end", 9, status="finished")
    got = training_loss(tmp_path)
    assert got["first"] == 4.0 and got["last"] == 0.75 and got["steps_logged"] == 9
    assert got["mean_first_logged"] == round(statistics.mean(losses[:3]), 4)
    assert got["mean_last_logged"] == round(statistics.mean(losses[-3:]), 4)
    assert got["falls"] is True


def test_checks_follow_the_mode():
    results = {
        "speech": {
            "runs": {
                "unfreeze": {
                    "metrics": {"apa_parse_rate": 0.95, "mdd_parse_rate": 0.85},
                    "training_loss": {"mean_first_logged": 3.0, "mean_last_logged": 1.0, "falls": True},
                }
            }
        }
    }
    checks = {c["check"]: c for c in acceptance_checks(FULL_PLAN, results, 901.0)}
    # Over the budget: reported, never a failure of the demo.
    assert not checks["total wall time (s)"]["passed"] and not checks["total wall time (s)"]["required"]
    apa, mdd = (checks[f"speech {t} answers that parse (test split)"] for t in ("APA", "MDD"))
    assert apa["passed"] and not mdd["passed"] and mdd["required"]
    quick = acceptance_checks({"mode": "quick", "budget_seconds": 180}, results, 100.0)
    assert all(c["passed"] or not c["required"] for c in quick)


def test_partial_results_and_errors_render(tmp_path):
    clock = StageClock(log=lambda _: None)
    with clock.stage("speech", "synth"):
        pass
    results = {"speech": {"model": "m", "utterances": {"train": 3}, "runs": {"unfreeze": {"preset": "p"}}},
               "protein": {"backbone": "b", "structure_files": 2}}  # fmt: skip
    errors = {"speech": "DataError: no audio"}
    summary = build_summary(plan=FULL_PLAN, clock=clock, results=results, errors=errors, out_dir=tmp_path,
                            started_at=0.0, threads=2)  # fmt: skip
    assert summary["ok"] is False and summary["stages"][0]["status"] == "ok"
    text = render_summary(summary, tmp_path / "summary.json")
    assert "speech FAILED: DataError: no audio" in text and "speech synth" in text
    assert "loralab train paper_r64" in text


def test_answer_variety_counts_distinct_raw_answers_per_task(tmp_path):
    import json

    from loralab.demo.speech_demo import answer_variety

    rows = [
        ("u1", "apa", "A"),
        ("u2", "apa", "B"),
        ("u3", "apa", "A"),
        ("u1", "mdd", "M"),
        ("u2", "mdd", "M"),
    ]
    epoch_dir = tmp_path / "epoch-2"
    epoch_dir.mkdir()
    lines = [json.dumps({"id": i, "task": t, "raw": r}) for i, t, r in rows]
    # A torn last line (a killed evaluation) is not an answer.
    (epoch_dir / "predictions.jsonl").write_text("\n".join(lines) + '\n{"id": "u4", "task": "apa", "ra')
    expected = {task: len({r for _, t, r in rows if t == task}) for task in ("apa", "mdd")}
    assert answer_variety(tmp_path, 2) == expected == {"apa": 2, "mdd": 1}
    assert answer_variety(tmp_path, 3) == {}  # no such epoch evaluated


def test_a_gop_prompt_is_named_and_its_estimate_shown_beside_the_answer(tmp_path):
    run = {
        "preset": "p",
        "prompt_reference": "phones_gop",
        "metrics": {
            "acc_pcc": 0.612,
            "gop_estimate_acc_pcc": 0.587,
            "total_pcc": 0.71,
            "gop_estimate_total_pcc": 0.69,
            "apa_parse_rate": 1.0,
        },  # fmt: skip
    }
    results = {"speech": {"model": "m", "utterances": {"train": 3}, "runs": {"unfreeze": run}}}
    summary = build_summary(plan=FULL_PLAN, clock=StageClock(log=lambda _: None), results=results, errors={},
                            out_dir=tmp_path, started_at=0.0, threads=2)  # fmt: skip
    text = render_summary(summary, tmp_path / "summary.json")
    assert "in the accuracy and total prompts the model's GOP scorer's estimate of that aspect" in text
    assert "with the paper's prompt, measured before (README): PCC acc 0.08" in text
    assert "loralab train demo_qwen2audio speech.prompt_reference=none 'speech.tasks=[apa,mdd]'" in text
    assert (
        "accuracy: the model's answer PCC 0.612; the GOP scorer's estimate in its prompt, scored alone: PCC 0.587"
        in text
    )
    assert (
        "total: the model's answer PCC 0.710; the GOP scorer's estimate in its prompt, scored alone: PCC 0.690"
        in text
    )


def test_the_paper_prompt_command_the_summary_prints_is_a_valid_configuration():
    import shlex

    from loralab.config import load_config
    from loralab.demo.summary import PAPER_PROMPT_COMMAND

    words = shlex.split(PAPER_PROMPT_COMMAND.split("&&")[0])
    assert words[:3] == ["loralab", "train", "demo_qwen2audio"]
    cfg = load_config("demo_qwen2audio", [w for w in words[3:] if "=" in w and not w.startswith("-")])
    assert (cfg.speech.prompt_reference, list(cfg.speech.tasks), list(cfg.speech.task_shares)) == (
        "none", ["apa", "mdd"], [1.0, 0.5],
    )  # fmt: skip


def test_listening_checks_are_required_in_full_mode_and_printed_one_line_each(tmp_path):
    wrong = {"check": "wrong sentence", "unit": "pairs", "n": 16, "held": 6, "needed": 13, "passed": False,
             "target": "t"}  # fmt: skip
    pauses = {
        "check": "pauses",
        "unit": "sentences",
        "n": 6,
        "held": 6,
        "needed": 5,
        "passed": True,
        "target": "t",
    }
    real = {"check": "LibriVox", "skipped": "no LibriVox clips", "passed": False}
    listening = {"checks": {"wrong_sentence": wrong, "pauses": pauses, "librivox": real}, "passed": False}
    results = {"speech": {"runs": {"unfreeze": {"metrics": {}, "listening": listening}}}}
    checks = {c["check"]: c for c in acceptance_checks(FULL_PLAN, results, 100.0)}
    assert checks["speech listening: wrong sentence"]["value"] == "6/16 pairs (need 13)"
    assert (
        checks["speech listening: wrong sentence"]["required"]
        and checks["speech listening: pauses"]["passed"]
    )
    assert not checks["speech listening: LibriVox"]["passed"]
    clock = StageClock(log=lambda _: None)
    summary = build_summary(plan=FULL_PLAN, clock=clock, results=results, errors={}, out_dir=tmp_path,
                            started_at=0.0, threads=2)  # fmt: skip
    assert summary["ok"] is False and summary["listening"] is listening
    text = render_summary(summary, tmp_path / "summary.json")
    assert "listening wrong sentence: 6/16 pairs hold (need 13) [FAIL]" in text
    assert "listening pauses: 6/6 sentences hold (need 5) [PASS]" in text
    assert "[FAIL] speech listening: wrong sentence: 6/16 pairs (need 13)" in text
