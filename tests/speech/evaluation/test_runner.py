"""`loralab evaluate` on the tiny model and the synthetic corpus: files, tables, events,
resume after an interruption and after kill -9, and the errors for bad run directories."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from loralab.cli.main import main as cli_main
from loralab.errors import LoralabError
from loralab.speech.evaluation import runner
from loralab.speech.inference.generate import BatchedGenerator, GeneratedAnswer


def _lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_evaluate_end_to_end_writes_tables_and_events(tiny_run_dir, synth_manifest_dir, monkeypatch):
    from loralab.speech.data.records import read_manifest

    records = read_manifest(synth_manifest_dir, "test")[:4]
    n_test = len(records)
    code = cli_main(["evaluate", str(tiny_run_dir), "--checkpoints", "all", "--limit", "4", "--no-progress"])
    assert code == 0
    out = tiny_run_dir / "eval"
    for epoch in (0, 1):
        preds = _lines(out / f"epoch-{epoch}" / "predictions.jsonl")
        assert len(preds) == 2 * n_test
        assert {(p["id"], p["task"]) for p in preds} == {(r.id, t) for r in records for t in ("apa", "mdd")}
        assert all("raw" in p and "errors" in p for p in preds)
        metrics = json.loads((out / f"epoch-{epoch}" / "metrics.json").read_text())
        assert metrics["n_utterances"] == n_test
        for aspect in ("accuracy", "fluency", "prosodic", "total"):
            a = metrics["apa"][aspect]
            assert a["n"] + a["failed"] == n_test  # every answer accounted for, none scored as 0
        assert metrics["mdd"]["per"]["n"] + metrics["mdd"]["per"]["failed"] == n_test
        assert (out / f"epoch-{epoch}" / "per_vs_accuracy.png").is_file()
    settings = json.loads((out / "epoch-1" / "settings.json").read_text())
    assert settings["max_new_tokens"]["mdd"] > settings["max_new_tokens"]["apa"] >= 32
    # The adapter changes the model: epoch 1 answers are not the base model's.
    raw0 = [p["raw"] for p in _lines(out / "epoch-0" / "predictions.jsonl")]
    raw1 = [p["raw"] for p in _lines(out / "epoch-1" / "predictions.jsonl")]
    assert sorted(raw0) != sorted(raw1)

    table = (out / "table3.md").read_text()
    assert (
        "| no training | 0 | paper | -0.041 | -0.017 | -0.049 | -0.104 | 0.970 | 0.792 | 0.143 | 0.154 | 0.134 |"
        in table
    )
    assert "| LoRA | 1 | paper | 0.547 |" in table and "ours - paper" in table
    with (out / "table3.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [(r["epoch"], r["source"]) for r in rows] == [
        ("0", "ours"), ("0", "paper"), ("0", "ours - paper"), ("1", "ours"), ("1", "paper"), ("1", "ours - paper"),
    ]  # fmt: skip
    assert float(rows[1]["per"]) == pytest.approx(0.792)
    with (out / "table4.csv").open() as f:
        systems = [r["system"] for r in csv.DictReader(f)]
    assert systems[0].startswith("GOPT") and systems[-1] == "Ours, epoch 1"

    events = [json.loads(x) for x in (tiny_run_dir / "events.jsonl").read_text().splitlines()]
    evals = [e for e in events if e["event"] == "eval"]
    assert [e["epoch"] for e in evals] == [0, 1]
    assert evals[1]["step"] == 7 and "acc_pcc" in evals[1]["metrics"]

    # Run again: everything is on disk, so no model is loaded and nothing is generated.
    def no_model(*args, **kwargs):
        raise AssertionError("a finished evaluation loaded a model")

    monkeypatch.setattr(runner, "_load", no_model)
    (out / "table3.md").unlink()
    runner.evaluate_run(tiny_run_dir, "all", limit=4, progress=False, log=lambda *a: None)
    assert (out / "table3.md").is_file()


def test_reference_answers_score_perfectly(tiny_run_dir, synth_manifest_dir, monkeypatch):
    """With the reference answers as predictions, the pipeline must report PCC 1, WER/PER 0, F1 1."""
    from loralab.speech.data.records import read_manifest

    records = {r.id: r for r in read_manifest(synth_manifest_dir, "test")}

    def perfect(self, task, audios, rows):
        field = "apa_answer" if task == "apa" else "mdd_answer"
        return [GeneratedAnswer(r.id, task, getattr(records[r.id], field), 10, False) for r in rows]

    monkeypatch.setattr(BatchedGenerator, "generate", perfect)
    runner.evaluate_run(tiny_run_dir, "1", progress=False, log=lambda *a: None)
    s = json.loads((tiny_run_dir / "eval" / "epoch-1" / "metrics.json").read_text())["summary"]
    for key in ("acc_pcc", "total_pcc"):
        assert s[key] == pytest.approx(1.0)
    assert s["wer"] == 0 and s["per"] == 0
    assert s["apa_parse_rate"] == 1 and s["mdd_parse_rate"] == 1
    # The synthetic corpus has injected mispronunciations: all found, all diagnosed right.
    assert s["f1"] == pytest.approx(1.0) and s["diagnosis_accuracy"] == pytest.approx(1.0)
    assert s["per_acc_pcc_human"] is None or -1 <= s["per_acc_pcc_human"] <= 1


def test_expected_scores_are_stored_and_scored_beside_greedy(tiny_run_dir, synth_manifest_dir, monkeypatch):
    """Greedy digits constant (PCC undefined), expected scores equal to the human ones (PCC 1):
    metrics.json keeps both, the headline follows evaluation.score_decoding."""
    from loralab.speech.data.records import read_manifest

    records = {r.id: r for r in read_manifest(synth_manifest_dir, "test")}

    def constant_with_expected(self, task, audios, rows):
        if task == "mdd":
            return [GeneratedAnswer(r.id, task, records[r.id].mdd_answer, 10, False) for r in rows]
        raw = '{"accuracy": 8, "fluency": 8, "prosodic": 8, "total": 8}'
        return [GeneratedAnswer(r.id, task, raw, 10, False, records[r.id].scores.as_dict()) for r in rows]

    monkeypatch.setattr(BatchedGenerator, "generate", constant_with_expected)
    runner.evaluate_run(tiny_run_dir, "1", progress=False, log=lambda *a: None, restart=True)
    s = json.loads((tiny_run_dir / "eval" / "epoch-1" / "metrics.json").read_text())["summary"]
    assert s["flu_pcc"] is None and s["flu_pcc_expected"] == pytest.approx(1.0)


def test_the_one_by_one_route_answers_everything_without_batched_generate(make_run_dir, monkeypatch):
    """evaluation.speech_route one_by_one: every answer is written, none through generate (its
    answers equal batched generate's: test_fast_decode)."""

    def no_batches(*args, **kwargs):
        raise AssertionError("batched generate called under speech_route=one_by_one")

    monkeypatch.setattr(BatchedGenerator, "generate", no_batches)
    run = make_run_dir("single", speech_route="one_by_one")
    runner.evaluate_run(run, "1", limit=5, max_new_tokens=12, progress=False, log=lambda *a: None)
    rows = _lines(run / "eval" / "epoch-1" / "predictions.jsonl")
    assert (
        sorted((p["task"], p["new_tokens"] <= 12) for p in rows) == [("apa", True)] * 5 + [("mdd", True)] * 5
    )
    assert len({p["id"] for p in rows}) == 5


def test_auto_route_is_one_by_one_on_a_cpu_and_batched_on_a_gpu():
    from types import SimpleNamespace

    from loralab.speech.inference.generate import resolve_route

    def on(device: str):
        return SimpleNamespace(
            parameters=lambda: iter([SimpleNamespace(device=SimpleNamespace(type=device))])
        )

    assert resolve_route("auto", on("cpu")) == "one_by_one"
    assert resolve_route("auto", on("cuda")) == resolve_route("auto", on("mps")) == "batched"
    assert (
        resolve_route("batched", on("cpu")) == "batched"
        and resolve_route("one_by_one", on("cuda")) == "one_by_one"
    )


def test_interrupted_evaluation_resumes_without_redoing(tiny_run_dir, monkeypatch):
    calls: list[int] = []
    original = BatchedGenerator.generate

    def counting(self, task, audios, ids):
        calls.append(len(ids))
        if fail_after[0] is not None and len(calls) > fail_after[0]:
            raise KeyboardInterrupt
        return original(self, task, audios, ids)

    fail_after = [2]
    monkeypatch.setattr(BatchedGenerator, "generate", counting)
    args = dict(batch_size=3, max_new_tokens=8, progress=False, log=lambda *a: None)
    with pytest.raises(KeyboardInterrupt):
        runner.evaluate_run(tiny_run_dir, "1", **args)
    preds = tiny_run_dir / "eval" / "epoch-1" / "predictions.jsonl"
    kept = len(_lines(preds))
    assert kept == sum(calls[:2]) > 0
    calls.clear()
    fail_after[0] = None
    runner.evaluate_run(tiny_run_dir, "1", **args)
    final = _lines(preds)
    total = len(final)
    assert len({(p["id"], p["task"]) for p in final}) == total  # no duplicates
    assert sum(calls) == total - kept  # only the missing answers were generated


def test_kill_9_mid_evaluation_then_resume(tiny_run_dir, monkeypatch):
    preds = tiny_run_dir / "eval" / "epoch-1" / "predictions.jsonl"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "loralab.cli.main", "evaluate", str(tiny_run_dir), "--checkpoints", "1",
           "--batch-size", "1", "--limit", "6", "--max-new-tokens", "150", "--no-progress"]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if preds.exists() and len(preds.read_text().splitlines()) >= 2:
                break
            time.sleep(0.02)
        assert proc.poll() is None, "evaluation ended before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    kept = len([x for x in preds.read_bytes().split(b"\n") if x.strip()])
    calls: list[int] = []
    original = BatchedGenerator.generate

    def counting(self, task, audios, ids):
        calls.append(len(ids))
        return original(self, task, audios, ids)

    monkeypatch.setattr(BatchedGenerator, "generate", counting)
    # The batch size may change on resume (it is not part of the settings): finish in big batches.
    runner.evaluate_run(
        tiny_run_dir, "1", limit=6, batch_size=6, max_new_tokens=150, progress=False, log=lambda *a: None
    )
    final = _lines(preds)
    assert len({(p["id"], p["task"]) for p in final}) == len(final) == 12
    # A torn last line (killed mid-write) is generated again; every complete one is kept.
    assert len(final) - kept <= sum(calls) <= len(final) - kept + 1
    assert (tiny_run_dir / "eval" / "table3.md").is_file()


def test_changed_settings_are_refused_unless_restart(tiny_run_dir):
    args = dict(max_new_tokens=8, limit=2, progress=False, log=lambda *a: None)
    runner.evaluate_run(tiny_run_dir, "1", **args)
    with pytest.raises(LoralabError, match="other settings.*--restart"):
        runner.evaluate_run(tiny_run_dir, "1", **{**args, "max_new_tokens": 9})
    runner.evaluate_run(tiny_run_dir, "1", **{**args, "max_new_tokens": 9}, restart=True)
    assert len(_lines(tiny_run_dir / "eval" / "epoch-1" / "predictions.jsonl")) == 4


def test_bad_run_directories(tiny_run_dir, tmp_path, capsys):
    assert cli_main(["evaluate", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert cli_main(["evaluate", str(tmp_path / "empty")]) == 2
    assert "training_config.json" in capsys.readouterr().err

    no_ckpt = tmp_path / "fresh"
    no_ckpt.mkdir()
    (no_ckpt / "training_config.json").write_text((tiny_run_dir / "training_config.json").read_text())
    assert cli_main(["evaluate", str(no_ckpt)]) == 2
    err = capsys.readouterr().err
    assert "no checkpoint-epoch-N" in err and str(no_ckpt) in err

    assert cli_main(["evaluate", str(tiny_run_dir), "--checkpoints", "5"]) == 2
    assert "epoch(s) [5]" in capsys.readouterr().err
    assert cli_main(["evaluate", str(tiny_run_dir), "--checkpoints", "best"]) == 2
    assert "use all, last" in capsys.readouterr().err

    (tiny_run_dir / "checkpoint-epoch-2").mkdir()  # a checkpoint folder without its adapter
    assert cli_main(["evaluate", str(tiny_run_dir), "--checkpoints", "2", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "checkpoint-epoch-2" in err and "adapter" in err


def test_protein_runs_go_to_the_protein_evaluator(tmp_path, monkeypatch, capsys):
    import loralab.protein.evaluate as protein_evaluate

    run = tmp_path / "protein_run"
    run.mkdir()
    (run / "training_config.json").write_text(json.dumps({"config": {"system": "protein"}}))
    seen = {}

    def fake(run_dir, checkpoints="all", split="test", limit=None):
        seen.update(run_dir=run_dir, checkpoints=checkpoints, split=split, limit=limit)
        return run / "eval"

    monkeypatch.setattr(protein_evaluate, "evaluate_run", fake)
    assert cli_main(["evaluate", str(run), "--checkpoints", "last", "--limit", "3", "--batch-size", "4"]) == 0
    assert seen == {"run_dir": str(run), "checkpoints": "last", "split": "test", "limit": 3}
    assert "--batch-size: not used for protein runs; ignored" in capsys.readouterr().err


def test_one_aspect_at_a_time_is_generated_per_aspect_and_scored_as_one_answer(
    tiny_run_dir, synth_manifest_dir, monkeypatch
):
    """speech.tasks = the four apa_<aspect> tasks: one prompt and answer per aspect, merged for scoring."""
    from loralab.speech.chat_format import answer_of
    from loralab.speech.data.records import read_manifest

    records = {r.id: r for r in read_manifest(synth_manifest_dir, "test")}
    config = json.loads((tiny_run_dir / "training_config.json").read_text())
    config["config"]["speech"]["tasks"] = ["apa_accuracy", "apa_fluency", "apa_prosodic", "apa_total"]
    (tiny_run_dir / "training_config.json").write_text(json.dumps(config))
    asked = set()

    def perfect(self, task, audios, rows):
        asked.add(task)
        return [GeneratedAnswer(r.id, task, answer_of(records[r.id], task), 5, False) for r in rows]

    monkeypatch.setattr(BatchedGenerator, "generate", perfect)
    runner.evaluate_run(tiny_run_dir, "1", progress=False, log=lambda *a: None)
    s = json.loads((tiny_run_dir / "eval" / "epoch-1" / "metrics.json").read_text())["summary"]
    assert asked == {"apa_accuracy", "apa_fluency", "apa_prosodic", "apa_total"}
    assert s["total_pcc"] == pytest.approx(1.0) and s["apa_parse_rate"] == 1
    record = next(iter(records.values()))
    assert json.loads(answer_of(record, "apa_fluency")) == {
        "fluency": json.loads(record.apa_answer)["fluency"]
    }


def test_a_target_model_loads_once_and_nothing_outlives_the_run(tiny_run_dir, monkeypatch):
    """Sizing the answers and generating them share the target's one load (passed explicitly,
    no module-level cache), and a second run loads again rather than reusing the first's."""
    loads = []
    real_load = runner._load

    def counting(target, *args):
        loads.append(target.epoch)
        return real_load(target, *args)

    monkeypatch.setattr(runner, "_load", counting)
    runner.evaluate_run(tiny_run_dir, "1", limit=2, progress=False, log=lambda *a: None)
    assert loads == [1]
    runner.evaluate_run(tiny_run_dir, "1", limit=2, restart=True, progress=False, log=lambda *a: None)
    assert loads == [1, 1]
    assert not [n for n, v in vars(runner).items() if isinstance(v, dict) and v and not n.startswith("__")]
