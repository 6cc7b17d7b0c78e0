"""Round 3: a recording that stops early must not score near-perfectly. The GOP of an impossible
alignment (more phones than encoder frames) is the worst, not the best; a recording short for
its sentence gets a note (assess, serve) or a warning naming it (evaluate); a sentence far too
long for its recording, or beyond the model's context, is refused with the limits."""

from __future__ import annotations

import itertools
import math
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf
import torch

from loralab.errors import DataError
from loralab.speech.evaluation.runner import _warn_short_recordings
from loralab.speech.inference.reading_length import (
    FAST_PHONES_PER_SECOND,
    MAX_PHONES_PER_SECOND,
    check_reading_length,
    model_context,
    short_recording_note,
)
from loralab.speech.inference.recording_answers import AssessItem, _check_context, load_items
from loralab.speech.model.gop import GopScorer, ctc_min_frames

SENTENCE = "We call it a bear in the zoo"  # 17 canonical phones


def _paths_to(target: list[int], frames: int, classes: int) -> list[tuple[int, ...]]:
    """Every frame path that collapses (CTC: merge repeats, drop blanks) to ``target``."""
    out = []
    for path in itertools.product(range(classes), repeat=frames):
        collapsed = [c for k, c in enumerate(path) if c != 0 and (k == 0 or c != path[k - 1])]
        if collapsed == target:
            out.append(path)
    return out


def test_min_frames_is_where_a_ctc_path_first_exists():
    for target in ([1], [1, 2], [1, 1], [1, 1, 2], [2, 2, 2]):
        needed = ctc_min_frames(target)
        assert not _paths_to(target, needed - 1, 3) and _paths_to(target, needed, 3), target


def test_gop_of_too_little_audio_is_zero_not_a_perfect_100():
    torch.manual_seed(0)
    scorer = GopScorer(["AA", "B"], [torch.randn(3, 4)], [torch.randn(3)])
    frames = torch.randn(3, 4)  # "AA AA B" needs 4 frames (a blank between the two AA)
    assert scorer.gop(frames, "AA AA B") == 0.0
    assert scorer.features(frames, "AA AA B")[0] == 0.0
    log_probs = scorer.log_probs(frames)  # "AA B" fits 3 frames: a real likelihood, below 100
    total = sum(
        math.exp(sum(float(log_probs[t, c]) for t, c in enumerate(p))) for p in _paths_to([1, 2], 3, 3)
    )
    gop = scorer.gop(frames, "AA B")
    assert 0 < gop < 100 and gop == pytest.approx(100 * total ** (1 / 2), rel=1e-5)


def test_the_note_and_the_refusal_follow_the_phone_rate():
    assert short_recording_note(17, 17 / FAST_PHONES_PER_SECOND) is None
    note = short_recording_note(17, 0.8)
    assert note and "0.80 s" in note and "17 phones" in note and "21 phones/s" in note
    check_reading_length(17, 17 / MAX_PHONES_PER_SECOND, "take.wav")
    with pytest.raises(DataError) as info:
        check_reading_length(17, 0.25, "take.wav")
    message = str(info.value)
    assert "take.wav" in message and "17 phones" in message and "0.25 s" in message
    assert f"limit is {MAX_PHONES_PER_SECOND:g}" in message and "about 0.8 s" in message


def test_assess_refuses_a_sentence_far_too_long_for_its_recording(tmp_path):
    wav = tmp_path / "cut.wav"
    t = np.arange(4000) / 16000  # 0.25 s
    sf.write(wav, (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 16000)
    with pytest.raises(
        DataError, match=r"cut\.wav: the sentence has 17 phones but the recording lasts 0\.25 s"
    ):
        load_items([AssessItem("1", str(wav), SENTENCE)])


def test_a_sentence_beyond_the_context_is_refused_with_both_numbers():
    tokenizer = lambda text, add_special_tokens=True: {"input_ids": text.split()}  # noqa: E731
    inference = SimpleNamespace(
        model=SimpleNamespace(
            config=SimpleNamespace(text_config=SimpleNamespace(max_position_embeddings=500))
        ),
        tokenizer=tokenizer,
    )
    assert model_context(inference.model) == 500
    _check_context(inference, [AssessItem("1", "short.wav", SENTENCE)], "phones")
    long = AssessItem("2", "long.wav", " ".join([SENTENCE] * 20))
    with pytest.raises(DataError, match=r"long\.wav: .*needs at least \d+ tokens.*context of 500"):
        _check_context(inference, [long], "phones")


def test_evaluate_names_the_utterances_whose_recording_is_short():
    records = [
        SimpleNamespace(id="full", canonical_phones="W IY K AO L", duration=0.6),
        SimpleNamespace(id="cut", canonical_phones="W IY K AO L IH T", duration=0.2),
    ]
    lines = []
    assert _warn_short_recordings(records, lines.append) == ["cut"]
    assert len(lines) == 1 and "1 utterance(s)" in lines[0] and "cut" in lines[0] and "full" not in lines[0]
