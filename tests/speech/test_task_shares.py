"""speech.task_shares: each task trains on its fixed share of the utterances."""

from __future__ import annotations

import pytest

from loralab.speech.system import _examples


def test_each_task_keeps_its_share_of_the_records_in_record_order():
    records = [f"r{i}" for i in range(10)]
    pairs = _examples(records, ["apa", "mdd"], [1.0, 0.5], seed=3)
    assert [r for r, t in pairs if t == "apa"] == records
    with_mdd = [r for r, t in pairs if t == "mdd"]
    assert len(with_mdd) == 5 and with_mdd == sorted(with_mdd, key=records.index)
    # record by record, each record's tasks in the configured order
    assert pairs == [(r, t) for r in records for t in ("apa", "mdd") if t == "apa" or r in with_mdd]
    assert _examples(records, ["apa", "mdd"], [1.0, 0.5], seed=3) == pairs  # fixed by the seed
    others = {
        tuple(r for r, t in _examples(records, ["apa", "mdd"], [1.0, 0.5], seed=s) if t == "mdd")
        for s in range(8)
    }
    assert len(others) > 1  # ... and drawn with it
    assert _examples(records, ["apa", "mdd"]) == [(r, t) for r in records for t in ("apa", "mdd")]
    assert len(_examples(records, ["mdd"], [0.01])) == 1  # at least one


def test_shares_must_match_the_tasks(tiny_qwen2audio_dir, synth_manifest_dir):
    from loralab.config import ConfigError
    from speech.test_training import make_cfg

    for shares in ("[1.0]", "[1.0,0.0]", "[1.0,1.5]"):
        with pytest.raises(ConfigError, match=r"speech.task_shares must give one share in \(0, 1\]"):
            make_cfg(
                "qwen2audio_r64", tiny_qwen2audio_dir, synth_manifest_dir, f"speech.task_shares={shares}"
            )
    cfg = make_cfg("qwen2audio_r64", tiny_qwen2audio_dir, synth_manifest_dir, "speech.task_shares=[1.0,0.5]")
    assert cfg.speech.task_shares == [1.0, 0.5]
