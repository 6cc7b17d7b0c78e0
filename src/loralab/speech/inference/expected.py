"""Expected-score decoding: each APA score read from the model's probabilities, not its argmax.

Greedy decoding writes the most likely digit; a model whose belief moves with the recording
but not far enough to change the argmax answers the same digits to every recording. Reading
the whole distribution keeps that information (cf. the "G-Eval"-style probability-weighted
scores used with LLM judges).

How: the probabilities the model gave while writing the greedy APA answer (recorded from its
``lm_head`` during generation, :class:`NumberProbabilities`; or, :func:`expected_scores`, the
answer run once more teacher-forced): at the position where each aspect's number starts (right after ``"fluency": ``), the
probabilities of the number tokens 0..10 give the expected score
``sum_k k * p(k) / sum_k p(k)``. Where "10" is two tokens ("1", "0"), the mass of "1" is
split by the model's own probability of "0" after it, read at the next position when the
greedy answer wrote "1" there; otherwise (the answer wrote another digit, and "1" is the
rare score) "1" is taken as the start of "10" — SpeechOcean762 scores of 1 are rare and of
10 common. Answers whose number does not start right after the key are left out.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

ASPECTS = ("accuracy", "fluency", "prosodic", "total")
SCORES = range(11)


def number_token_ids(tokenizer, with_space: bool) -> dict[int, list[int]]:
    """score -> its token ids as written after a colon (with or without a leading space)."""
    prefix = " " if with_space else ""
    return {k: list(tokenizer(prefix + str(k), add_special_tokens=False)["input_ids"]) for k in SCORES}


def score_positions(tokenizer, tokens: Sequence[int]) -> dict[str, int]:
    """aspect -> index in ``tokens`` of the first token of its number (answers as generated)."""
    positions: dict[str, int] = {}
    text = ""
    for i, token in enumerate(tokens):
        piece = tokenizer.decode([token])
        if piece.strip():  # a whitespace-only token before the number is not the number
            for aspect in ASPECTS:
                if aspect not in positions and re.search(rf"[\"']{aspect}[\"']\s*:\s*$", text):
                    positions[aspect] = i
        text += piece
    return positions


def expected_score(probs, ids: dict[int, list[int]], next_probs=None) -> float | None:
    """Expected score from the probabilities at a number's first position (``probs``: vocab),
    ``next_probs`` the position after a written "1" (None: not seen)."""
    weights: dict[int, float] = {}
    for k, seq in ids.items():
        if len(seq) == 1:
            weights[k] = weights.get(k, 0.0) + float(probs[seq[0]])
    ten = ids[10]
    if len(ten) == 2 and ids[1] == ten[:1]:  # "10" = "1" + "0": split the mass of "1"
        p_one = weights.pop(1, 0.0)
        q = 1.0 if next_probs is None else float(next_probs[ten[1]])
        weights[1], weights[10] = p_one * (1 - q), p_one * q
    total = sum(weights.values())
    if total <= 0:
        return None
    return sum(k * w for k, w in weights.items()) / total


def read_expected(tokenizer, tokens: Sequence[int], probs_at) -> dict[str, float]:
    """Expected aspect scores of one generated answer (``tokens``: its new tokens); ``probs_at(i)``
    gives the model's probabilities at new position i (a vocabulary vector, or a mapping that
    holds at least the number tokens of :func:`number_token_ids`)."""
    forms = {space: number_token_ids(tokenizer, space) for space in (False, True)}
    scores: dict[str, float] = {}
    for aspect, i in score_positions(tokenizer, tokens).items():
        written = tokenizer.decode([tokens[i]])
        ids = forms[written.startswith(" ")]
        next_probs = probs_at(i + 1) if tokens[i] == ids[1][0] and i + 1 < len(tokens) else None
        value = expected_score(probs_at(i), ids, next_probs)
        if value is not None:
            scores[aspect] = value
    return scores


def expected_scores(model, inputs: dict, sequences, prompt_len: int, tokenizer) -> list[dict[str, float]]:
    """Expected aspect scores for a batch of generated APA answers (``sequences`` from generate),
    by one teacher-forced pass over prompt + answer."""
    import torch

    attention = torch.cat([inputs["attention_mask"], torch.ones_like(sequences[:, prompt_len:])], dim=1)
    audio = {k: v for k, v in inputs.items() if k not in ("input_ids", "attention_mask")}
    with torch.inference_mode():
        hidden = model.model(input_ids=sequences, attention_mask=attention, use_cache=False, **audio)
        hidden = hidden.last_hidden_state[:, prompt_len - 1 : -1]  # position i predicts new token i

    def probs_of(row: int):
        def probs_at(i: int):
            with torch.inference_mode():
                return torch.softmax(model.lm_head(hidden[row, i]).float(), dim=-1)

        return probs_at

    return [
        read_expected(tokenizer, tokens, probs_of(row))
        for row, tokens in enumerate(sequences[:, prompt_len:].tolist())
    ]


def number_ids(tokenizer) -> list[int]:
    """Every token id of a number 0..10, with and without a leading space."""
    return sorted(
        {i for space in (False, True) for ids in number_token_ids(tokenizer, space).values() for i in ids}
    )


class NumberProbabilities:
    """Records, while ``generate`` runs, the probabilities of the number tokens at every step, from
    the logits the model's ``lm_head`` gives (a forward hook: the logits of the last position of
    each call, the one that predicts the next token; no second pass over prompt + answer).
    ``steps[i]``: (batch x numbers) probabilities at new position i."""

    def __init__(self, model, tokenizer):
        import torch

        self.ids = number_ids(tokenizer)
        self.index = torch.tensor(self.ids)
        self.steps: list = []
        self.handle = model.lm_head.register_forward_hook(self._hook)

    def _hook(self, module, args, output):
        import torch

        logits = output[:, -1, :].float()
        chosen = logits[:, self.index.to(logits.device)]
        self.steps.append(torch.exp(chosen - torch.logsumexp(logits, -1, keepdim=True)).cpu())

    def close(self) -> None:
        self.handle.remove()

    def probs_of(self, row: int):
        def probs_at(i: int) -> dict[int, float]:
            return dict(zip(self.ids, self.steps[i][row].tolist()))

        return probs_at
