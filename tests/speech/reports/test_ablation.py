"""The ablation table: one row per run x score decoding, levers read from each run, CIs shown."""

from __future__ import annotations

import csv
import json
import math

import pytest

from loralab.errors import LoralabError
from loralab.speech.reports.ablation import write_ablation


def _aspect(pcc, ci=None):
    return {"pcc": pcc, "spearman": pcc, "pcc_ci": ci, "parse_rate": 1.0}


def _run(root, name, reference, apa, apa_other=None, decoding="greedy"):
    run = root / name
    (run / "eval" / "epoch-2").mkdir(parents=True)
    (run / "eval" / "epoch-0").mkdir(parents=True)
    config = {"model": {"family": "qwen2audio"}, "speech": {"prompt_style": "short", "prompt_reference": reference,
                                                           "tasks": ["apa", "mdd"]}}  # fmt: skip
    (run / "training_config.json").write_text(json.dumps({"config": config}))
    metrics = {"n_utterances": 7, "score_decoding": decoding, "apa": apa,
               "mdd": {"wer": {"wer": 0.5}, "per": {"per": 0.25}, "detection": {"f1": 0.4, "f1_ci": [0.3, 0.5]}}}  # fmt: skip
    if apa_other is not None:
        metrics[f"apa_{'greedy' if decoding == 'expected' else 'expected'}"] = apa_other
    (run / "eval" / "epoch-2" / "metrics.json").write_text(json.dumps(metrics))
    (run / "eval" / "epoch-0" / "metrics.json").write_text(json.dumps({**metrics, "n_utterances": 99}))
    return run


def test_rows_per_run_and_decoding_with_levers_and_cis(tmp_path):
    constant = {a: _aspect(None) for a in ("accuracy", "fluency", "prosodic", "total")}
    expected = {a: _aspect(0.8, [0.7, 0.9]) for a in ("accuracy", "fluency", "prosodic", "total")}
    text = _run(tmp_path, "text", "phones", constant, expected)
    paper = _run(tmp_path, "paper", "none", {a: _aspect(0.5) for a in expected}, decoding="expected")
    md = write_ablation([text, paper], tmp_path / "out")
    rows = list(csv.DictReader(open(tmp_path / "out" / "ablation.csv")))
    assert [(r["run"], r["reference"], r["decoding"]) for r in rows] == [
        ("text", "phones", "greedy"),
        ("text", "phones", "expected"),
        ("paper", "none", "expected"),
    ]
    assert math.isnan(float(rows[0]["flu_pcc"])) and float(rows[1]["flu_pcc"]) == 0.8
    assert all(r["epoch"] == "2" for r in rows)  # the last evaluated checkpoint, never epoch 0
    text_md = md.read_text()
    assert "| text (epoch 2) | qwen2audio | phones | apa+mdd | expected | 0.800 [0.70, 0.90]" in text_md
    assert "| text (epoch 2) | qwen2audio | phones | apa+mdd | greedy | – |" in text_md
    assert "0.400 [0.30, 0.50]" in text_md  # F1 with its CI


def test_a_run_without_evaluation_says_what_to_run(tmp_path):
    run = tmp_path / "bare"
    run.mkdir()
    with pytest.raises(LoralabError, match="loralab evaluate .*bare --checkpoints last"):
        write_ablation([run], tmp_path / "out")
