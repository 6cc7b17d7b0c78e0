"""Fast decoding of one recording's answers on the KV cache (what ``assess`` and ``serve`` use).

Two ways to ask the model for fewer forward passes, each giving what the plain route gives
(:class:`~loralab.speech.inference.generate.BatchedGenerator`: greedy ``generate``, the
expected scores read from the probabilities at each number's position):

* **Constrained APA** (expected-score decoding): the answer's format is fixed JSON
  (``{"accuracy": N, "fluency": N, ...}`` as the model was trained on it), so its template
  tokens are fed, not generated; only at each number's first position the model is read: the
  expected score from its probabilities over the numbers 0..10 (exactly
  :func:`~loralab.speech.inference.expected.expected_score`), and the number written there its
  most likely one, as a greedy answer that keeps to the template would write it. Where "10" is
  two tokens ("1" + "0"), "1" is fed with "0" after it: the position after "1" gives the
  probability of "0" (the split of the mass of "1", as :func:`~loralab.speech.inference.expected.expected_score` reads it) and
  whether the number is 10 (p("0") >= p(the template's next token)) or 1 (then "0" is dropped
  from the cache). Speculative: the prompt, the whole template and guessed numbers (10, then
  the number before) go in one prefill; a number the model contradicts is put right and the
  rest fed again from it. One pass where there were ~31 greedy steps.
* **Greedy with a draft** (MDD, and APA under greedy decoding): the ideal answer (the sentence
  and its canonical phones, as the evaluation's token budget writes it) is a draft that one
  forward pass verifies (speculative decoding, the draft from the prompt's own reference): the
  model's greedy token at each position is kept; at the first difference the draft is
  re-aligned (substitution, deletion or insertion of a token) and the rest verified again.
  The tokens are those of greedy decoding, whatever the draft; a model that copies the
  canonical phones answers in the prefill alone.

One recording at a time (no padding; ``batch size`` 1 is what a learner's request is), and
Qwen2-Audio's encoder over the recording's own frames
(:mod:`loralab.speech.backbones.qwen2audio_window`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from loralab.speech.inference.answers import GeneratedAnswer
from loralab.speech.inference.expected import SCORES, expected_score, number_token_ids, score_positions

PLACEHOLDER = 5  # the number the template is tokenized with (any single-token score)
REDRAFT_TOKENS = 16  # draft tokens verified per pass after the first difference


@dataclass(frozen=True)
class ApaTemplate:
    """An APA answer's tokens around its numbers: ``segments[k]`` precedes number k (the last
    one is the tail: ``}`` and the end tokens); ``numbers[n]`` are the tokens of score n."""

    aspects: tuple[str, ...]
    segments: tuple[tuple[int, ...], ...]
    numbers: dict[int, list[int]]

    def tokens(self, scores: Sequence[int]) -> list[int]:
        out = list(self.segments[0])
        for n, segment in zip(scores, self.segments[1:]):
            out += self.numbers[n] + list(segment)
        return out

    @property
    def ten_split(self) -> bool:
        """ "10" is "1" + "0" (digit tokenizers)."""
        ten = self.numbers[10]
        return len(ten) == 2 and self.numbers[1] == ten[:1]


def apa_template(layout, tokenizer, task: str, aspects: Sequence[str]) -> ApaTemplate | None:
    """The template of ``task``'s answer as the model was trained on it (``layout``: the
    collator's :class:`~loralab.speech.chat_format.ChatLayout`), or None when the tokenizer
    does not split it into fixed pieces and numbers (then: generate)."""
    aspects = tuple(aspects)

    def answer(n: int) -> list[int]:
        return layout.answer_ids(task, json.dumps(dict.fromkeys(aspects, n)))

    base = answer(PLACEHOLDER)
    positions = score_positions(tokenizer, base)
    if sorted(positions) != sorted(aspects):
        return None
    at = [positions[a] for a in aspects]
    if at != sorted(at):
        return None
    written = tokenizer.decode([base[at[0]]])
    numbers = number_token_ids(tokenizer, written.startswith(" "))
    if numbers[PLACEHOLDER] != [base[i] for i in at[:1]] or any(base[i] != base[at[0]] for i in at):
        return None
    bounds = [-1, *at]
    segments = [tuple(base[bounds[k] + 1 : bounds[k + 1]]) for k in range(len(at))] + [
        tuple(base[at[-1] + 1 :])
    ]
    template = ApaTemplate(aspects, tuple(segments), numbers)
    # Every number in every slot must tokenize as the splice does (no merges across pieces).
    if any(template.tokens([n] * len(aspects)) != answer(n) for n in SCORES):
        return None
    return template


class CachedModel:
    """One sequence (batch of 1) on the model's KV cache: a prefill with the audio, then more
    tokens; logits only where asked. Across the prompts of one recording (:meth:`for_recording`)
    a prefill reuses the positions its prompt shares with what the cache holds, when they cover
    the whole audio (phones_gop's APA prompts differ only after it)."""

    def __init__(self, model, suppress: Sequence[int] = (), audio_token_id: int | None = None):
        self.model = model
        self.suppress = list(suppress)
        self.audio_token_id = audio_token_id
        self.cache = None
        self.ids: list[int] = []  # the tokens in the cache
        self.recording = self.cached_recording = None
        self.reused = 0  # positions the last prefill took from the cache

    @property
    def length(self) -> int:
        """Positions in the cache."""
        return len(self.ids)

    def for_recording(self, key) -> None:
        """Name the recording the next prompts are of (None: never reuse)."""
        self.recording = key

    def _run(self, ids, keep: int, **kwargs):
        import torch

        attention = torch.ones(1, self.length + ids.shape[1], dtype=torch.long, device=ids.device)
        with torch.inference_mode():
            out = self.model.model(
                input_ids=ids, attention_mask=attention, cache=self.cache, use_cache=True, **kwargs
            )
            self.cache = out.past_key_values
            self.ids += ids[0].tolist()
            return self.model.lm_head(out.last_hidden_state[0, -keep:]).float()

    def _reusable(self, ids: list[int], keep: int) -> int:
        """How many leading positions of ``ids`` the cache can keep (0: prefill afresh)."""
        if self.cache is None or self.recording is None or self.recording != self.cached_recording:
            return 0
        if self.audio_token_id is None or self.audio_token_id not in ids:
            return 0
        shared = next(
            (k for k, (a, b) in enumerate(zip(self.ids, ids)) if a != b), min(len(self.ids), len(ids))
        )
        shared = min(shared, len(ids) - keep)  # the last ``keep`` positions are run for their logits
        audio_end = len(ids) - ids[::-1].index(self.audio_token_id)
        return shared if shared >= audio_end else 0

    def start(self, inputs: dict, extra: Sequence[int], keep: int):
        """Prefill ``inputs`` (one prompt with its audio inputs) + ``extra`` tokens; the logits of
        the last ``keep`` positions."""
        import torch

        prompt = inputs["input_ids"]
        ids = torch.cat([prompt, torch.tensor([list(extra)], dtype=prompt.dtype, device=prompt.device)], 1)
        self.reused = self._reusable(ids[0].tolist(), keep)
        if self.reused:
            self.crop(self.reused)
            return self._run(ids[:, self.reused :], keep)
        audio = {k: v for k, v in inputs.items() if k not in ("input_ids", "attention_mask")}
        self.cache, self.ids, self.cached_recording = None, [], self.recording
        return self._run(ids, keep, **audio)

    def feed(self, tokens: Sequence[int]):
        """Append ``tokens``; the logits of every one of their positions."""
        import torch

        ids = torch.tensor([list(tokens)], dtype=torch.long, device=next(self.model.parameters()).device)
        return self._run(ids, len(tokens))

    def crop(self, length: int) -> None:
        """Keep the first ``length`` positions of the cache."""
        if length < self.length:
            self.cache.crop(length - self.length)  # transformers 5: minus the tokens to remove
            self.ids = self.ids[:length]

    def greedy(self, logits) -> list[int]:
        if self.suppress:
            logits = logits.clone()
            logits[:, self.suppress] = float("-inf")
        return logits.argmax(-1).tolist()


def constrained_apa(lm: CachedModel, inputs: dict, template: ApaTemplate,
                    guess: int = 10) -> tuple[list[int], dict[str, float]]:  # fmt: skip
    """The answer's tokens (template + the most likely numbers) and its expected scores.

    Speculative: the prompt, the template and every number guessed (``guess``) go in one pass;
    a number the model's reading contradicts is put right and the rest of the template fed
    again from it, every later number guessed equal to it (scores of one recording agree)."""
    import torch

    numbers, segments, aspects = template.numbers, template.segments, template.aspects
    single = {seq[0]: n for n, seq in numbers.items() if len(seq) == 1}
    one, zero = numbers[1][0], numbers[10][-1]
    firsts = sorted(set(single) | ({one} if template.ten_split else set()))

    def rest(k: int, n: int) -> list[int]:
        """The tokens from number k on, every number n (number k's first token first)."""
        out: list[int] = []
        for j in range(k, len(aspects)):
            out += numbers[n] + (list(segments[j + 1]) if j + 1 < len(aspects) else [])
        return out

    fed = list(segments[0]) + rest(0, guess)
    rows = lm.start(inputs, fed, keep=len(fed) + 1)  # rows[i]: the logits that predict fed[i]
    base, q = lm.length - len(fed), len(segments[0])  # cache before ``fed``; number k in ``fed``
    guesses = [guess] * len(aspects)
    chosen: list[int] = []
    expected: dict[str, float] = {}
    k = 0
    while k < len(aspects):
        probs = torch.softmax(rows[q], -1)
        first = firsts[int(torch.argmax(probs[firsts]))]
        value = None
        if template.ten_split and first == one:
            n = 10  # "1" must be fed with "0" after it to read the split of its mass
            if fed[q] == one:
                next_probs = torch.softmax(rows[q + 1], -1)
                follow = segments[k + 1][0] if segments[k + 1] else zero
                n = 10 if next_probs[zero] >= next_probs[follow] else 1
                value = expected_score(probs, numbers, next_probs)
        else:
            n = single[first]
            value = expected_score(probs, numbers, None)
        if n == guesses[k]:  # (then a first "1" was fed with what follows it: value is read)
            chosen.append(n)
            if value is not None:
                expected[aspects[k]] = value
            q += len(numbers[n]) + (len(segments[k + 1]) if k + 1 < len(aspects) else 0)
            k += 1
            continue
        # A wrong guess: keep the cache up to number k, feed the rest again guessing n.
        lm.crop(base + q)
        guesses[k:] = [n] * (len(aspects) - k)
        fed = rest(k, n)
        rows = torch.cat([rows[q : q + 1], lm.feed(fed)])
        base, q = base + q, 0
    return template.tokens(chosen), expected


def _realign(out: list[int], draft: Sequence[int], at: int) -> int:
    """Where the draft goes on after ``out[-1]``, which stands where ``draft[at]`` stood."""
    if at < len(draft) and out[-1] == draft[at]:
        return at + 1
    for n in (3, 2, 1):  # the last n tokens found in the draft near ``at``: nearest wins
        if len(out) < n:
            continue
        ends = [
            e
            for e in range(max(n, at - 3), min(len(draft), at + 5) + 1)
            if list(draft[e - n : e]) == out[-n:]
        ]
        if ends:
            return min(ends, key=lambda e: abs(e - (at + 1)))
    return at + 1  # a substituted token


def greedy_with_draft(lm: CachedModel, inputs: dict, draft: Sequence[int], end_ids: Sequence[int],
                      max_new_tokens: int, logits_out: list | None = None) -> tuple[list[int], bool]:  # fmt: skip
    """Greedy decoding, verified against ``draft``; (new tokens without the end token, hit_limit).
    ``logits_out``, when given, receives the logits that chose each new token, in order."""
    end = set(end_ids)
    start = 0
    candidates = list(draft[:max_new_tokens])
    prompt_len = inputs["input_ids"].shape[1]
    logits = lm.start(inputs, candidates, keep=len(candidates) + 1)
    out: list[int] = []
    while True:
        preds = lm.greedy(logits)
        for j, token in enumerate(preds):
            out.append(token)
            if logits_out is not None:
                logits_out.append(logits[j])
            if token in end:
                return out[:-1], False
            if len(out) >= max_new_tokens:
                return out, True
            if j >= len(candidates) or token != candidates[j]:
                break
        # The cache holds the prompt and the candidates; those before out[-1] were right.
        lm.crop(prompt_len + len(out) - 1)
        start = _realign(out, draft, start + j)
        candidates = list(draft[start : start + min(REDRAFT_TOKENS, max_new_tokens - len(out))])
        logits = lm.feed([out[-1], *candidates])


class FastDecoder:
    """Answers of one recording at a time through :class:`CachedModel` (see the module doc).
    ``generator``: a :class:`~loralab.speech.inference.generate.BatchedGenerator` (its
    collator lays out the prompts; inside the generator's ``with`` block the audio encoder's
    output is cached across tasks, over the real frames only for Qwen2-Audio). Changes nothing
    on the model."""

    def __init__(self, generator):
        self.generator = generator
        self.inference = generator.inference
        self.layout = generator.collator.layout
        self.templates: dict[str, ApaTemplate | None] = {}
        self.lm: CachedModel | None = None  # one sequence, kept across the tasks of a recording

    def template(self, task: str) -> ApaTemplate | None:
        if task not in self.templates:
            from loralab.speech.scoring.parse import APA_ASPECTS

            aspects = APA_ASPECTS if task == "apa" else (task.removeprefix("apa_"),)
            self.templates[task] = apa_template(self.layout, self.inference.tokenizer, task, aspects)
        return self.templates[task]

    def _inputs(self, task: str, audio, record) -> dict:
        g = self.generator
        batch = g.prompt_batch([record], task, [audio])
        device = next(self.inference.model.parameters()).device
        return {k: v.to(device) if hasattr(v, "to") else v for k, v in batch.items() if k in g.model_inputs}

    def answer(self, task: str, audio, record, *, draft: str | None, max_new_tokens: int,
               read_expected: bool, constrained: bool = True) -> GeneratedAnswer:  # fmt: skip
        """``task``'s answer for one recording. APA with ``read_expected`` and ``constrained``: held to
        its template, expected scores read on the way; else greedy verified against ``draft`` (an
        answer text, or None), APA's expected scores read from the logits that chose its tokens."""
        from loralab.speech.data.audio import waveform_key

        inf = self.inference
        inputs = self._inputs(task, audio, record)
        if self.lm is None:
            audio_id = int(inf.audio_token_id)
            self.lm = CachedModel(inf.model, suppress=[audio_id], audio_token_id=audio_id)
        lm = self.lm
        lm.for_recording(waveform_key(audio))
        read = task.startswith("apa") and read_expected
        template = self.template(task) if read and constrained else None
        if template is not None:
            tokens, expected = constrained_apa(lm, inputs, template)
            hit_limit = False
        else:
            draft_ids = self.layout.answer_ids(task, draft) if draft is not None else []
            rows: list | None = [] if read else None
            tokens, hit_limit = greedy_with_draft(
                lm, inputs, draft_ids, inf.end_token_ids, max_new_tokens, logits_out=rows
            )
            expected = None
            if rows is not None:  # the probabilities greedy decoding chose each token from
                import torch

                from loralab.speech.inference.expected import read_expected as read_scores

                expected = read_scores(inf.tokenizer, tokens, lambda i: torch.softmax(rows[i], -1))
        end = set(inf.end_token_ids)
        kept = next((tokens[:i] for i, t in enumerate(tokens) if t in end), tokens)
        text = inf.tokenizer.decode(kept, skip_special_tokens=True).strip()
        answer = GeneratedAnswer(getattr(record, "id", "0"), task, text, len(kept), hit_limit, expected)
        return self.generator.checked(answer, record, audio)
