"""A copy jump in the MDD answer (heard phones skipped between two repeated words) is put back
from the heard phones, in both decoding routes, and the assessment says so; short deletions are
the answer's own and stay."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from loralab.speech.inference.decoding import SKIP_RUN_PHONES, restore_skipped_phones
from loralab.speech.inference.generate import BatchedGenerator, GeneratedAnswer
from loralab.speech.scoring.align import edit_counts, restore_skips

# "he might ... he was": the answer jumps from the first HH IY to the second.
HEARD = "HH IY M AY T HH IY W AA Z".split()
JUMPED = "HH IY W AA Z".split()


def test_restore_skips_puts_back_long_runs_only():
    assert restore_skips(HEARD, JUMPED, 3) == (HEARD, 5)
    assert restore_skips("K AE T".split(), "K T".split(), 3) == (["K", "T"], 0)  # one phone: the answer's
    assert restore_skips("K AE T S".split(), "K EH T S".split(), 3) == ("K EH T S".split(), 0)
    assert restore_skips("K AE T".split(), "K AE T S".split(), 3) == ("K AE T S".split(), 0)
    assert restore_skips("K AE T S".split(), ["K", "S"], 3) == (["K", "S"], 0)
    assert restore_skips("K AE T S".split(), ["K", "S"], 2) == ("K AE T S".split(), 2)
    with pytest.raises(ValueError, match="min_run"):
        restore_skips(HEARD, JUMPED, 0)


def test_restore_skips_keeps_the_answers_own_edits():
    """Checked against the edit counts: a jump of 5 and a substitution elsewhere; after the repair
    only the substitution is left."""
    heard = "DH AE T HH IY M AY T HH IY W AA Z".split()
    answer = "DH EH T HH IY W AA Z".split()
    before = edit_counts(heard, answer)
    fixed, restored = restore_skips(heard, answer, 3)
    after = edit_counts(heard, fixed)
    assert (before.deletions, before.substitutions) == (5, 1)
    assert restored == 5 and (after.deletions, after.substitutions, after.insertions) == (0, 1, 0)


def _mdd(words: str, phones: list[str]) -> str:
    return json.dumps({"word_transcript": words, "phoneme_transcript": " ".join(phones)})


def test_restored_answer_keeps_the_models_own():
    raw = _mdd("he might he was", JUMPED)
    answer = GeneratedAnswer("1", "mdd", raw, 12, False)
    fixed = restore_skipped_phones(answer, " ".join(HEARD))
    assert json.loads(fixed.raw) == {
        "word_transcript": "he might he was",
        "phoneme_transcript": " ".join(HEARD),
    }
    assert (fixed.restored, fixed.model_raw) == (5, raw)
    assert fixed.to_dict()["model_raw"] == raw and fixed.to_dict()["restored"] == 5
    assert "restored" not in answer.to_dict()  # the answer passed in is not changed
    assert restore_skipped_phones(answer, None) is answer
    short = GeneratedAnswer("1", "mdd", _mdd("he", ["HH"]), 3, False)
    assert restore_skipped_phones(short, "HH IY") is short  # one phone left out
    broken = GeneratedAnswer("1", "mdd", '{"word_transcript": "he", "phoneme_tr', 3, True)
    assert restore_skipped_phones(broken, " ".join(HEARD)) is broken
    assert SKIP_RUN_PHONES >= 2  # a single deleted phone is never a jump


def _generator(reference: str):
    """What BatchedGenerator.checked reads: the layout, and the evidence of a recording."""
    return SimpleNamespace(
        collator=SimpleNamespace(layout=SimpleNamespace(prompt_reference=reference)),
        evidence=lambda record, audio: {"heard_phones": " ".join(HEARD), "accuracy": 7},
    )


def test_only_the_mdd_answer_of_a_heard_prompt_is_checked():
    mdd = GeneratedAnswer("1", "mdd", _mdd("he was", JUMPED), 9, False)
    apa = GeneratedAnswer("1", "apa_accuracy", '{"accuracy": 7}', 5, False)
    assert BatchedGenerator.checked(_generator("heard"), mdd, None, None).restored == 5
    assert BatchedGenerator.checked(_generator("heard"), apa, None, None) is apa
    assert BatchedGenerator.checked(_generator("phones_gop"), mdd, None, None) is mdd


@pytest.mark.parametrize("fast", [True, False])
def test_assessment_notes_a_restored_jump(tiny_model_dir, wav, monkeypatch, fast):
    from loralab.speech.inference.fast_decode import FastDecoder
    from loralab.speech.inference.recording_answers import AssessItem, assess_items
    from loralab.speech.model.load import load_for_inference

    def scripted(self, task, audios, rows):
        if task == "mdd":
            raw = _mdd("we call it bear", "W IY K AO L IH T B EH R".split())
            generated = _mdd("we call", "W IY K AO L".split())
            return [GeneratedAnswer(r.id, task, raw, 9, False, restored=4, model_raw=generated) for r in rows]
        return [GeneratedAnswer(r.id, task, json.dumps({"accuracy": 7}), 5, False) for r in rows]

    monkeypatch.setattr(BatchedGenerator, "generate", scripted)
    monkeypatch.setattr(
        FastDecoder, "answer", lambda self, task, audio, row, **_: scripted(self, task, [audio], [row])[0]
    )
    inference = load_for_inference(tiny_model_dir, device="cpu")
    (result,) = assess_items(inference, [AssessItem("1", str(wav), "We call it bear")], fast=fast)
    (note,) = [n for n in result.notes if "skipped" in n]
    assert "skipped 4 phones" in note and "put back" in note
    assert result.raw["mdd"] == _mdd("we call", "W IY K AO L".split())  # as the model wrote it
    assert [w.word for w in result.words if not w.ok] == []  # the diagnosis is the repaired answer's
