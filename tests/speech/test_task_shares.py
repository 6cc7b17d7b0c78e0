"""speech.task_shares: each task trains on its fixed share of the utterances; the estimator counts an
epoch (shares, reference blocks) as training runs it."""

from __future__ import annotations

import math

import pytest

from loralab.speech.data.records import task_examples


def test_each_task_keeps_its_share_of_the_records_in_record_order():
    records = [f"r{i}" for i in range(10)]
    pairs = task_examples(records, ["apa", "mdd"], [1.0, 0.5], seed=3)
    assert [r for r, t in pairs if t == "apa"] == records
    with_mdd = [r for r, t in pairs if t == "mdd"]
    assert len(with_mdd) == 5 and with_mdd == sorted(with_mdd, key=records.index)
    # record by record, each record's tasks in the configured order
    assert pairs == [(r, t) for r in records for t in ("apa", "mdd") if t == "apa" or r in with_mdd]
    assert task_examples(records, ["apa", "mdd"], [1.0, 0.5], seed=3) == pairs  # fixed by the seed
    others = {
        tuple(r for r, t in task_examples(records, ["apa", "mdd"], [1.0, 0.5], seed=s) if t == "mdd")
        for s in range(8)
    }
    assert len(others) > 1  # ... and drawn with it
    assert task_examples(records, ["apa", "mdd"]) == [(r, t) for r in records for t in ("apa", "mdd")]
    assert len(task_examples(records, ["mdd"], [0.01])) == 1  # at least one


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


def test_the_estimator_counts_each_task_on_the_utterances_training_gives_it():
    from loralab.estimate.inputs import speech_examples

    def tokens_of(samples: int) -> int:
        return samples // 640

    full = speech_examples(["apa", "mdd"], "short", tokens_of, n=40)
    part = speech_examples(["apa", "mdd"], "short", tokens_of, n=40, shares=[1.0, 0.25])
    assert [e.task for e in full] == ["apa", "mdd"] * 40
    assert sum(e.task == "apa" for e in part) == 40 and sum(e.task == "mdd" for e in part) == 10
    chosen = [i for i, task in task_examples(list(range(40)), ["apa", "mdd"], [1.0, 0.25]) if task == "mdd"]
    assert [e.seconds for e in part if e.task == "mdd"] == [full[2 * i + 1].seconds for i in chosen]


def test_the_estimator_counts_the_reference_block_of_text_aware_prompts():
    from loralab.estimate.inputs import ASSUMPTIONS, reference_tokens, speech_examples

    def tokens_of(samples: int) -> int:
        return samples // 640

    words = ASSUMPTIONS["words_per_second"] * 5.0  # 9 words in 5 s
    sentence = words * ASSUMPTIONS["tokens_per_word"] + len("Reference text: \n") / 4
    phones = words * ASSUMPTIONS["phones_per_word"] + len("Canonical phones: \n") / 4
    assert reference_tokens("none", "apa", 5.0) == 0
    assert reference_tokens("text", "apa", 5.0) == math.ceil(sentence)
    assert reference_tokens("phones", "apa_accuracy", 5.0) == math.ceil(sentence + phones)
    assert reference_tokens("phones_gop", "apa", 5.0) == math.ceil(sentence + phones)
    assert reference_tokens("phones_gop", "apa_total", 5.0) == math.ceil(sentence + phones + 22 / 4)
    plain = speech_examples(["apa", "apa_total"], "short", tokens_of, n=5)
    aware = speech_examples(["apa", "apa_total"], "short", tokens_of, n=5, reference="phones_gop")
    for a, b in zip(plain, aware):
        assert b.prompt_tokens - a.prompt_tokens == reference_tokens("phones_gop", a.task, a.seconds) > 0
