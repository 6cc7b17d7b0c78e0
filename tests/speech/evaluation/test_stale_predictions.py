"""Round 3: ``evaluate`` never reuses a prediction made from other inputs than the manifest holds
now. Each prediction line records the fingerprint of its utterance's text, phones, duration and
audio; after an edit, that utterance's answers are generated again (and the log says so), the
others are kept."""

from __future__ import annotations

import json
import shutil

from loralab.speech.evaluation import runner
from loralab.speech.inference.generate import BatchedGenerator, GeneratedAnswer


def _perfect(calls: list):
    """A generator that answers with each record's reference answer, counting what it generates."""

    def generate(self, task, audios, rows):
        calls.extend((r.id, task) for r in rows)
        field = "apa_answer" if task == "apa" else "mdd_answer"
        return [GeneratedAnswer(r.id, task, getattr(r, field), 10, False) for r in rows]

    return generate


def _edit_first(manifest_dir, new_word: str) -> str:
    """Change the first word of the first test utterance everywhere it is written; its id."""
    path = manifest_dir / "test.jsonl"
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    record = lines[0]
    old_word = record["text"].split()[0]
    for key in ("text", "word_transcript"):
        record[key] = record[key].replace(old_word, new_word, 1)
    answer = json.loads(record["mdd_answer"])
    answer["word_transcript"] = answer["word_transcript"].replace(old_word, new_word, 1)
    record["mdd_answer"] = json.dumps(answer)
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return record["id"]


def test_an_edited_utterance_is_generated_again_and_the_rest_kept(
    tiny_run_dir, synth_manifest_dir, tmp_path, monkeypatch
):
    manifest = tmp_path / "manifest"
    shutil.copytree(synth_manifest_dir, manifest)
    calls: list = []
    monkeypatch.setattr(BatchedGenerator, "generate", _perfect(calls))
    args = dict(limit=4, manifest_dir=manifest, max_new_tokens=8, progress=False)
    runner.evaluate_run(tiny_run_dir, "1", log=lambda *a: None, **args)
    assert len(calls) == 8
    metrics = tiny_run_dir / "eval" / "epoch-1" / "metrics.json"
    assert json.loads(metrics.read_text())["summary"]["wer"] == 0

    edited = _edit_first(manifest, "ZEBRA")
    calls.clear()
    lines: list[str] = []
    runner.evaluate_run(tiny_run_dir, "1", log=lines.append, **args)
    assert sorted(calls) == [(edited, "apa"), (edited, "mdd")]
    assert any("2 answer(s) on disk were made from other inputs" in line for line in lines), lines
    # The stale answer (the old first word) would give WER > 0 against the edited text.
    assert json.loads(metrics.read_text())["summary"]["wer"] == 0

    calls.clear()
    runner.evaluate_run(tiny_run_dir, "1", log=lambda *a: None, **args)
    assert calls == []  # nothing stale any more: nothing generated


def test_a_moved_manifest_or_run_folder_keeps_its_predictions(
    tiny_run_dir, synth_manifest_dir, tmp_path, monkeypatch
):
    calls: list = []
    monkeypatch.setattr(BatchedGenerator, "generate", _perfect(calls))
    first, second = tmp_path / "a", tmp_path / "b"
    shutil.copytree(synth_manifest_dir, first)
    args = dict(limit=2, max_new_tokens=8, progress=False, log=lambda *a: None)
    runner.evaluate_run(tiny_run_dir, "1", manifest_dir=first, **args)
    assert len(calls) == 4
    shutil.move(first, second)
    moved_run = tmp_path / "moved" / "run"
    shutil.move(tiny_run_dir, moved_run)
    calls.clear()
    runner.evaluate_run(moved_run, "1", manifest_dir=second, **args)
    assert calls == []  # same inputs, same checkpoint: nothing generated again
    settings = json.loads((moved_run / "eval" / "epoch-1" / "settings.json").read_text())
    assert settings["manifest_dir"] == str(second) and settings["model"].startswith(str(moved_run))


def test_a_second_evaluate_of_the_same_run_is_refused_while_one_runs(tiny_run_dir, monkeypatch):
    import os

    import pytest

    from loralab.errors import LoralabError
    from loralab.speech.evaluation.eval_lock import evaluation_lock

    calls: list = []
    monkeypatch.setattr(BatchedGenerator, "generate", _perfect(calls))
    args = dict(limit=2, max_new_tokens=8, progress=False, log=lambda *a: None)
    with evaluation_lock(tiny_run_dir / "eval"):  # another evaluate, holding the folder
        with pytest.raises(LoralabError, match=rf"another 'loralab evaluate' \(pid {os.getpid()}"):
            runner.evaluate_run(tiny_run_dir, "1", **args)
    assert calls == [] and not (tiny_run_dir / "eval" / "epoch-1" / "predictions.jsonl").exists()
    runner.evaluate_run(tiny_run_dir, "1", **args)  # released: it runs
    assert len(calls) == 4
