"""One NaN convention: written null (strict JSON), read back as NaN; older 'nan' strings read too."""

from __future__ import annotations

import json
import math

import pytest

from loralab.engine.events import EventLog, read_events
from loralab.json_numbers import jsonable, to_float
from loralab.reports.run_log import flatten_metrics


def _strict(text: str):
    return json.loads(text, parse_constant=lambda c: pytest.fail(f"non-strict JSON: {c}"))


def test_non_finite_numbers_are_written_null_and_read_as_nan(tmp_path):
    log = EventLog(tmp_path)
    log.write(
        "step", 3, loss=math.nan, grad_norm=math.inf, metrics={"pcc": -math.inf, "n": 4}, lr=[0.1, math.nan]
    )
    line = (tmp_path / "events.jsonl").read_text().splitlines()[0]
    record = _strict(line)
    assert (record["loss"], record["grad_norm"], record["metrics"], record["lr"]) == (
        None,
        None,
        {"pcc": None, "n": 4},
        [0.1, None],
    )
    assert math.isnan(to_float(read_events(tmp_path)[0]["loss"]))


def test_older_strings_and_plain_numbers_read_back():
    assert math.isnan(to_float("nan")) and to_float("inf") == math.inf and to_float(2) == 2.0
    assert jsonable((1.0, {"a": math.nan})) == [1.0, {"a": None}]
    flat = flatten_metrics({"summary": {"acc_pcc": None, "per": "nan", "wer": 0.2, "name": "x"}})
    assert set(flat) == {"summary.acc_pcc", "summary.per", "summary.wer"}
    assert math.isnan(flat["summary.acc_pcc"]) and math.isnan(flat["summary.per"])
