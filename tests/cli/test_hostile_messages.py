"""Family 4, misleading results and messages: a failed answer is not "ok", a 1-step run trains,
--gpus with no GPU says so (see test_hostile_options), --limit 0 names the flag."""

from __future__ import annotations

import pytest

from loralab.engine.schedule import WarmupDecay, warmup_steps


def _assessment(phonemes):
    from loralab.speech.inference.recording_answers import Assessment
    from loralab.speech.scoring.word_diagnosis import WordDiagnosis

    word = WordDiagnosis(word="bear", canonical=["B", "EH", "R"], heard=[], lexicon="cmudict")
    return Assessment(
        audio="me.wav",
        text="bear",
        scores={},
        word_transcript=None,
        phoneme_transcript=phonemes,
        words=[word],
        notes=[],
        failures={} if phonemes is not None else {"mdd.phoneme_transcript": "no JSON in the answer"},
        raw={},
    )


def test_assess_json_does_not_call_words_ok_when_the_phones_were_unreadable():
    assert _assessment(None).to_dict()["words"][0]["ok"] is None
    assert _assessment("B EH R").to_dict()["words"][0]["ok"] is True


@pytest.mark.parametrize("total", [1, 2, 10, 1000])
def test_warm_up_never_takes_every_step(total):
    warmup = warmup_steps(0.1, total)
    schedule = WarmupDecay("linear", warmup, total)
    assert warmup < total
    assert any(schedule(step) > 0 for step in range(total))  # some step has a learning rate


def test_one_step_run_trains_with_a_nonzero_learning_rate():
    assert warmup_steps(0.5, 1) == 0 and WarmupDecay("cosine", 0, 1)(0) == 1.0
    assert warmup_steps(0.1, 100) == 10  # unchanged for ordinary runs


def test_limit_zero_names_the_flag_not_the_split(cli):
    code, err = cli("evaluate", "RUN", "--limit", "0")
    assert code == 2 and "argument --limit: must be a whole number >= 1, got 0" in err
    assert "holds no utterances" not in err
