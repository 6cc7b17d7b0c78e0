"""Answer parsing: strict JSON, the paper's single-quoted style, fences, trailing text, and
failures kept with a reason (a missing score is never 0)."""

from __future__ import annotations

import pytest

from loralab.speech.scoring.parse import parse_answer, parse_reference


def test_strict_json_with_trailing_text():
    a = parse_answer("apa", '{"accuracy": 10, "fluency": 9, "prosodic": 8, "total": 7} and more text')
    assert a.ok and a.method == "json"
    assert a.values == {"accuracy": 10.0, "fluency": 9.0, "prosodic": 8.0, "total": 7.0}


def test_paper_single_quoted_style_with_apostrophe():
    raw = (
        "{'word_transcript': 'That's an interesting observation.', "
        "'phoneme_transcript': 'DH EH S AX N IH N T AX R EH S T IH NG'}"
    )
    a = parse_answer("mdd", raw)
    assert a.ok, a.reason
    assert a.values["word_transcript"] == "That's an interesting observation."
    assert a.values["phoneme_transcript"].startswith("DH EH S")


def test_python_dict_with_extra_key_and_code_fence():
    raw = "Here you go:\n```python\n{'accuracy': 6, 'fluency': 5, 'prosodic': 4, 'total': 3, 'completeness': 2}\n```"
    a = parse_answer("apa", raw)
    assert a.ok and a.method == "python"
    assert a.values["total"] == 3.0


def test_tolerant_scan_of_unquoted_keys_and_unclosed_object():
    a = parse_answer("apa", "Sure! {accuracy: 7, fluency: '6.5', 'prosodic': 5, \"total\": 6")
    assert a.ok and a.method == "tolerant"
    assert a.values == {"accuracy": 7.0, "fluency": 6.5, "prosodic": 5.0, "total": 6.0}


def test_scores_coerced_and_clamped():
    a = parse_answer("apa", '{"accuracy": "8/10", "fluency": 12, "prosodic": -1, "total": 7.5}')
    assert a.ok
    assert a.values == {"accuracy": 8.0, "fluency": 10.0, "prosodic": 0.0, "total": 7.5}
    assert sorted(a.clamped) == ["fluency", "prosodic"]


def test_missing_and_bad_scores_are_failures_not_zero():
    a = parse_answer("apa", '{"accuracy": 8, "fluency": null, "prosodic": "good"}')
    assert not a.ok
    assert a.values == {"accuracy": 8.0}
    assert set(a.errors) == {"fluency", "prosodic", "total"}
    assert a.errors["total"] == "missing"
    assert "not a number" in a.errors["prosodic"]


@pytest.mark.parametrize("raw", ["", "   ", "I think the accuracy is 8", "<|end|>"])
def test_no_object_is_a_failure_with_the_raw_text_kept(raw):
    a = parse_answer("apa", raw)
    assert not a.ok and a.values == {} and a.method is None
    assert a.raw == raw
    assert all(a.errors[k] for k in ("accuracy", "fluency", "prosodic", "total"))


def test_truncated_transcript_is_reported():
    a = parse_answer("mdd", "{'word_transcript': 'It is fine', 'phoneme_transcript': 'IH T IH Z F")
    assert a.values["word_transcript"] == "It is fine"
    assert "unterminated" in a.errors["phoneme_transcript"]


def test_phoneme_list_is_joined_and_round_trip():
    a = parse_answer("mdd", '{"word_transcript": "hi", "phoneme_transcript": ["HH", "AY"]}')
    assert a.values["phoneme_transcript"] == "HH AY"
    again = type(a).from_dict(a.to_dict())
    assert again == a


def test_reference_must_parse():
    assert (
        parse_reference("mdd", '{"word_transcript": "A", "phoneme_transcript": "AH"}')["word_transcript"]
        == "A"
    )
    with pytest.raises(ValueError, match="does not parse"):
        parse_reference("apa", '{"accuracy": 3}')
