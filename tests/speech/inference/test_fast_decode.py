"""Fast decoding (one recording on the KV cache) against the plain route on a tiny random Qwen2-Audio.

* Constrained APA: its expected scores equal those of the evaluation's teacher-forced pass
  (:func:`~loralab.speech.inference.expected.expected_scores`, no cache) over the same answer,
  and each number it wrote is the most likely number there by that pass; with a tokenizer
  that writes "10" as "1" + "0", the ten-or-one decision included (logit biases steer it).
* Greedy with a draft: the tokens of ``model.generate`` (greedy), whatever the draft.
* ``assess_items(fast=True)`` answers as ``fast=False`` under greedy score decoding.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch

from loralab.speech.inference.expected import expected_scores, number_token_ids, score_positions
from loralab.speech.inference.fast_decode import (
    CachedModel,
    FastDecoder,
    apa_template,
    constrained_apa,
    greedy_with_draft,
)
from loralab.speech.scoring.parse import APA_ASPECTS

TEXT = "Picture that family weather cat"


@pytest.fixture(scope="module")
def inference(tiny_qwen2audio_dir):
    from loralab.speech.model.load import load_for_inference

    return load_for_inference(tiny_qwen2audio_dir, device="cpu")


@pytest.fixture(scope="module")
def decoder(inference):
    from loralab.speech.inference.generate import BatchedGenerator

    with BatchedGenerator(inference, prompt_style="short", prompt_reference="phones") as generator:
        yield FastDecoder(generator)


def recording(seed: int, seconds: float = 1.5) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * 16000)) / 16000
    return (0.3 * np.sin(2 * np.pi * rng.uniform(100, 300) * t) + 0.05 * rng.standard_normal(t.size)).astype(
        np.float32
    )


def item(seed: int):
    from loralab.speech.inference.recording_answers import AssessItem

    return AssessItem(str(seed), f"take{seed}.wav", TEXT, 1.5)


class DigitSplitting:
    """The tiny tokenizer, but numbers written digit by digit ("10" = "1" + "0", as SmolLM2's)."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer

    def __call__(self, text, add_special_tokens=False):
        ids = []
        for piece in re.split(r"(\d)", text):
            if piece:
                ids += self.tokenizer(piece, add_special_tokens=False)["input_ids"]
        return {"input_ids": ids}

    def decode(self, ids, **kwargs):
        return self.tokenizer.decode(ids, **kwargs)


class Layout:
    """answer_ids of a ChatLayout, through any tokenizer: the answer and an end token."""

    def __init__(self, tokenizer, end: int):
        self.tokenizer, self.end = tokenizer, end

    def answer_ids(self, task, answer):
        return self.tokenizer(answer)["input_ids"] + [self.end]


class Biased(torch.nn.Module):
    """lm_head plus a fixed bias per token (steers the random model's choices)."""

    def __init__(self, head, bias):
        super().__init__()
        self.head = head
        self.register_buffer("bias", bias)

    def forward(self, x):
        return self.head(x) + self.bias


def check_against_teacher_forcing(inference, decoder, template, tokenizer, seed):
    """Constrained APA vs the evaluation's pass over prompt + the same answer; returns the numbers."""
    inputs = decoder._inputs("apa", recording(seed), item(seed))
    tokens, expected = constrained_apa(CachedModel(inference.model), inputs, template)
    prompt_len = inputs["input_ids"].shape[1]
    sequences = torch.cat([inputs["input_ids"], torch.tensor([tokens])], 1)
    reference = expected_scores(inference.model, inputs, sequences, prompt_len, tokenizer)[0]
    assert set(reference) == set(APA_ASPECTS)
    assert expected == pytest.approx(reference, abs=1e-4)
    # Each number written is the most likely of the numbers' first tokens by the same full pass.
    with torch.inference_mode():
        hidden = inference.model.model(input_ids=sequences, attention_mask=torch.ones_like(sequences),
                                       **{k: v for k, v in inputs.items() if k not in ("input_ids", "attention_mask")})  # fmt: skip
        logits = inference.model.lm_head(hidden.last_hidden_state[0, prompt_len - 1 : -1])
    numbers = template.numbers
    firsts = sorted({seq[0] for seq in numbers.values() if len(seq) == 1 or template.ten_split})
    for i in score_positions(tokenizer, tokens).values():
        assert tokens[i] == firsts[int(torch.argmax(logits[i, firsts]))]
    return json.loads(tokenizer.decode(tokens, skip_special_tokens=True))


def test_template_of_the_answer_the_model_was_trained_on(decoder, inference):
    template = decoder.template("apa")
    assert template is not None and template.aspects == APA_ASPECTS
    scores = [10, 3, 7, 0]
    answer = json.dumps(dict(zip(APA_ASPECTS, scores)))
    assert template.tokens(scores) == decoder.layout.answer_ids("apa", answer)
    one = decoder.template("apa_fluency")
    assert one.tokens([4]) == decoder.layout.answer_ids("apa_fluency", '{"fluency": 4}')


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_constrained_apa_equals_the_expected_score_pass(inference, decoder, seed):
    template = decoder.template("apa")
    numbers = check_against_teacher_forcing(inference, decoder, template, inference.tokenizer, seed)
    assert list(numbers) == list(APA_ASPECTS)


@pytest.mark.parametrize("steer", ["none", "ten", "one"])
def test_constrained_apa_with_ten_written_as_two_tokens(inference, decoder, steer):
    tokenizer = DigitSplitting(inference.tokenizer)
    end = inference.end_token_ids[0]
    template = apa_template(Layout(tokenizer, end), tokenizer, "apa", APA_ASPECTS)
    assert template is not None and template.ten_split
    digits = number_token_ids(tokenizer, with_space=False)
    assert template.numbers == digits
    bias = torch.zeros(inference.model.config.text_config.vocab_size)
    one, zero = digits[1][0], digits[10][1]
    follows = [template.segments[k][0] for k in range(1, len(template.segments))]  # ',' and '}'
    if steer == "ten":  # "1" first, then "0" over what follows: every score 10
        bias[one], bias[zero] = 30.0, 15.0
    elif steer == "one":  # "1" first, then the template's next token: every score 1
        bias[one] = 30.0
        bias[follows] = 45.0
    head = inference.model.lm_head
    inference.model.lm_head = Biased(head, bias)
    try:
        numbers = check_against_teacher_forcing(inference, decoder, template, tokenizer, seed=3)
    finally:
        inference.model.lm_head = head
    if steer == "ten":
        assert set(numbers.values()) == {10}
    elif steer == "one":
        assert set(numbers.values()) == {1}


def plain_greedy(inference, inputs, max_new_tokens):
    with torch.inference_mode():
        out = inference.model.generate(
            **inputs,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            num_beams=1,
            eos_token_id=list(inference.end_token_ids),
            suppress_tokens=[int(inference.audio_token_id)],
            pad_token_id=inference.tokenizer.pad_token_id,
        )
    return out[0, inputs["input_ids"].shape[1] :].tolist()


def test_greedy_with_a_draft_gives_the_greedy_tokens(inference, decoder):
    inputs = decoder._inputs("mdd", recording(5), item(5))
    budget = 14
    greedy = plain_greedy(inference, inputs, budget)
    assert len(greedy) == budget  # the random model never stops: no end token to cut
    ideal = decoder.layout.answer_ids(
        "mdd", json.dumps({"word_transcript": TEXT, "phoneme_transcript": "P IH K"})
    )
    drafts = {
        "none": [],
        "ideal": ideal,
        "exact": greedy,
        "substituted": greedy[:4] + [greedy[4] + 1] + greedy[5:],
        "deleted": greedy[:6] + greedy[7:],
        "inserted": greedy[:3] + [7] + greedy[3:],
        "longer": greedy + ideal,
    }
    for name, draft in drafts.items():
        tokens, hit_limit = greedy_with_draft(
            CachedModel(inference.model, [inference.audio_token_id]),
            inputs,
            draft,
            inference.end_token_ids,
            budget,
        )
        assert (tokens, hit_limit) == (greedy, True), name


def test_greedy_with_a_draft_keeps_the_logits_that_chose_each_token(inference, decoder):
    """What the one-by-one evaluation reads expected scores from: at every new position, the
    logits of a teacher-forced pass over prompt + answer, whether the draft held or not."""
    inputs = decoder._inputs("apa_fluency", recording(9), item(9))
    greedy = plain_greedy(inference, inputs, 10)
    prompt_len = inputs["input_ids"].shape[1]
    sequences = torch.cat([inputs["input_ids"], torch.tensor([greedy])], 1)
    audio = {k: v for k, v in inputs.items() if k not in ("input_ids", "attention_mask")}
    with torch.inference_mode():
        hidden = inference.model.model(
            input_ids=sequences, attention_mask=torch.ones_like(sequences), **audio
        )
        forced = inference.model.lm_head(hidden.last_hidden_state[0, prompt_len - 1 : -1]).float()
    for draft in ([], greedy[:3] + [greedy[3] + 1] + greedy[4:]):
        rows: list = []
        tokens, _ = greedy_with_draft(
            CachedModel(inference.model, [inference.audio_token_id]), inputs, draft, inference.end_token_ids,
            10, logits_out=rows,
        )  # fmt: skip
        assert tokens == greedy and len(rows) == len(greedy)
        torch.testing.assert_close(torch.stack(rows), forced, atol=1e-4, rtol=1e-4)


def test_greedy_with_a_draft_stops_at_an_end_token(inference, decoder):
    """With the end token made likely after a few steps the answer stops there, as generate's."""
    inputs = decoder._inputs("mdd", recording(6), item(6))
    end = inference.end_token_ids[0]
    bias = torch.zeros(inference.model.config.text_config.vocab_size)
    bias[end] = 6.0
    head = inference.model.lm_head
    inference.model.lm_head = Biased(head, bias)
    try:
        greedy = plain_greedy(inference, inputs, 30)
        tokens, hit_limit = greedy_with_draft(
            CachedModel(inference.model, [inference.audio_token_id]), inputs, greedy[:3], [end], 30
        )
    finally:
        inference.model.lm_head = head
    cut = greedy.index(end) if end in greedy else len(greedy)
    assert (tokens, hit_limit) == (greedy[:cut], end not in greedy)


def test_a_prefill_reuses_what_the_prompts_of_one_recording_share(inference, decoder):
    """The APA prompts of one recording agree up to past the audio: the second prefill takes that
    from the cache and gives the logits and answer of a fresh one; another recording (identical
    tokens, other audio) or an unnamed one is prefilled afresh."""
    audio_id = int(inference.audio_token_id)
    shared = CachedModel(inference.model, [audio_id], audio_token_id=audio_id)
    steps = [
        ("take7", recording(7), "apa_fluency", False),
        ("take7", recording(7), "apa_prosodic", True),
        ("take8", recording(8), "apa_prosodic", False),
        (None, recording(8), "apa_fluency", False),
    ]
    for key, audio, task, reuses in steps:
        inputs = decoder._inputs(task, audio, item(7))
        ids = inputs["input_ids"][0].tolist()
        audio_end = len(ids) - ids[::-1].index(audio_id)
        shared.for_recording(key)
        fresh = CachedModel(inference.model, [audio_id], audio_token_id=audio_id)
        logits = shared.start(inputs, [11, 12], keep=3)
        assert (shared.reused >= audio_end) is reuses and (shared.reused == 0) is not reuses, (key, task)
        torch.testing.assert_close(logits, fresh.start(inputs, [11, 12], keep=3), atol=1e-4, rtol=1e-4)
        assert greedy_with_draft(shared, inputs, [], inference.end_token_ids, 6) == greedy_with_draft(
            fresh, inputs, [], inference.end_token_ids, 6
        )


def test_fast_assessment_answers_as_the_batched_one(inference):
    from loralab.speech.inference.recording_answers import AssessItem, assess_items

    items = [AssessItem(str(i), f"take{i}.wav", TEXT, 1.5) for i in range(2)]
    audios = {it.id: recording(10 + i) for i, it in enumerate(items)}
    kwargs = dict(audios=audios, prompt_style="short", prompt_reference="phones", max_new_tokens=10)
    fast = assess_items(inference, items, fast=True, **kwargs)
    plain = assess_items(inference, items, fast=False, **kwargs)
    assert [a.raw for a in fast] == [a.raw for a in plain]
    assert [a.to_dict() for a in fast] == [a.to_dict() for a in plain]


def test_the_one_by_one_route_answers_as_batched_generate(inference, monkeypatch):
    """BatchedGenerator.run with every task one recording at a time (evaluation.speech_route
    one_by_one) writes the answers of its batched generate (left-padded batches of two)."""
    from loralab.speech.inference.generate import BatchedGenerator

    batches = []
    original = BatchedGenerator.generate
    monkeypatch.setattr(
        BatchedGenerator, "generate", lambda self, *a: batches.append(a[0]) or original(self, *a)
    )
    items = [item(30 + i) for i in range(3)]
    clips = {it.audio_path: recording(30 + n, 1.0 + 0.4 * n) for n, it in enumerate(items)}

    def answers(one_by_one) -> dict:
        out: dict = {}
        generator = BatchedGenerator(inference, prompt_style="short", prompt_reference="phones", batch_size=2,
                                     max_new_tokens=10, load_audio=clips.__getitem__)  # fmt: skip
        with generator:
            done = generator.run(items, ["apa", "mdd"], lambda r, t: True,
                                 lambda batch: out.update({(a.id, a.task): a.raw for a in batch}), one_by_one)  # fmt: skip
        assert done == len(out) == 6
        return out

    single = answers(("apa", "mdd"))
    assert batches == []
    assert answers(()) == single and batches == ["apa", "mdd"] * 2


def test_number_probabilities_recorded_while_generating_equal_the_teacher_forced_pass(inference, decoder):
    """The evaluation reads expected scores from the probabilities recorded during generate (no
    second pass): at every new position of a left-padded batch, those of the teacher-forced pass."""
    from loralab.speech.inference.expected import NumberProbabilities

    generator = decoder.generator
    generator.max_new_tokens["apa"] = 9
    records = [item(20), item(21)]
    clips = [recording(20, 1.0), recording(21, 2.2)]
    batch = generator.collator.prompt_batch(records, "apa", clips)
    inputs = {k: v for k, v in batch.items() if k in generator.model_inputs}
    assert (inputs["attention_mask"] == 0).any()  # left padding
    recorder = NumberProbabilities(inference.model, inference.tokenizer)
    try:
        with torch.inference_mode():
            out = generator._generate(
                inputs, "apa", list(inference.end_token_ids), inference.tokenizer.pad_token_id
            )
    finally:
        recorder.close()
    prompt_len = inputs["input_ids"].shape[1]
    assert len(recorder.steps) == out.shape[1] - prompt_len == 9
    attention = torch.cat([inputs["attention_mask"], torch.ones_like(out[:, prompt_len:])], 1)
    audio = {k: v for k, v in inputs.items() if k not in ("input_ids", "attention_mask")}
    with torch.inference_mode():
        hidden = inference.model.model(input_ids=out, attention_mask=attention, **audio).last_hidden_state
        probs = torch.softmax(inference.model.lm_head(hidden[:, prompt_len - 1 : -1]).float(), -1)
    for row in range(2):
        for i in range(9):
            recorded = recorder.probs_of(row)(i)
            assert list(recorded) == recorder.ids
            forced = [float(probs[row, i, t]) for t in recorder.ids]
            assert list(recorded.values()) == pytest.approx(forced, rel=1e-4, abs=1e-7)
