"""The estimator's workload: SpeechOcean762-like utterances as token counts, and fake batches.

No tokenizer or audio is needed: prompt and answer lengths come from the prompt texts the
collator uses and from the utterance's duration, with the ratios in :data:`ASSUMPTIONS`
(stated in every estimate's output). Durations follow SpeechOcean762's distribution as the
training benchmark models it (log-normal, median 4.5 s, clipped to 2-20 s).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

SO762_TRAIN_UTTERANCES = 2500
SAMPLE_RATE = 16000
IGNORE_INDEX = -100

ASSUMPTIONS = {
    "durations": "SpeechOcean762-like: log-normal, median 4.5 s, sigma 0.45, clipped to 2-20 s",
    "prompt_chars_per_token": 4.0,
    "answer_json_chars_per_token": 3.0,
    "words_per_second": 1.8,
    "tokens_per_word": 1.3,
    "phones_per_word": 3.3,
    "tokens_per_phone": 1.0,
    "chat_tokens": 6,
}


def so762_durations(n: int, seed: int = 0) -> np.ndarray:
    """Utterance durations in seconds (the same model as ``benchmarks/bench_train.py``)."""
    rng = np.random.default_rng(seed)
    return np.clip(rng.lognormal(math.log(4.5), 0.45, n), 2.0, 20.0)


@dataclass(frozen=True)
class Example:
    """One (utterance, task) example as token counts."""

    task: str
    seconds: float
    prompt_tokens: int  # text and chat tokens of the prompt, audio placeholders excluded
    audio_tokens: int
    answer_tokens: int

    @property
    def length(self) -> int:
        return self.prompt_tokens + self.audio_tokens + self.answer_tokens


def answer_tokens(task: str, seconds: float) -> int:
    """Tokens of the target answer (with its end-of-turn tokens) for an utterance of ``seconds``."""
    a = ASSUMPTIONS
    if task == "mdd":
        words = max(1.0, a["words_per_second"] * seconds)
        text = words * a["tokens_per_word"] + words * a["phones_per_word"] * a["tokens_per_phone"]
        json_part = (
            len('{"word_transcript": "", "phoneme_transcript": ""}') / a["answer_json_chars_per_token"]
        )
        return math.ceil(text + json_part) + 2
    sample = '{"accuracy": 8, "fluency": 8, "prosodic": 8, "total": 8}'
    if task.startswith("apa_"):
        sample = '{"accuracy": 8}'
    return math.ceil(len(sample) / a["answer_json_chars_per_token"]) + 2


def reference_tokens(reference: str, task: str, seconds: float) -> int:
    """Tokens of a text-aware prompt's reference block (``speech.prompt_reference``: the sentence,
    its canonical phones) and estimate line (phones_gop) for an utterance of ``seconds``."""
    from loralab.speech.prompts import uses_estimate

    if reference == "none":
        return 0
    a = ASSUMPTIONS
    words = max(1.0, a["words_per_second"] * seconds)
    tokens = len("Reference text: \n") / a["prompt_chars_per_token"] + words * a["tokens_per_word"]
    if reference in ("phones", "phones_gop"):
        phones = words * a["phones_per_word"] * a["tokens_per_phone"]
        tokens += len("Canonical phones: \n") / a["prompt_chars_per_token"] + phones
    if uses_estimate(reference, task):
        tokens += len("Accuracy estimate: 10\n") / a["prompt_chars_per_token"]
    return math.ceil(tokens)


def prompt_tokens(task: str, style: str) -> int:
    from loralab.speech.prompts import load_prompt

    return math.ceil(len(load_prompt(task, style)) / ASSUMPTIONS["prompt_chars_per_token"]) + int(
        ASSUMPTIONS["chat_tokens"]
    )


def speech_examples(tasks, style: str, audio_tokens_of, n: int = SO762_TRAIN_UTTERANCES, seed: int = 0,
                    shares=(), reference: str = "none"):  # fmt: skip
    """``n`` utterances x ``tasks`` as :class:`Example` (``audio_tokens_of(samples) -> int``); with
    ``shares`` (``speech.task_shares``) each task for the share of the utterances training gives it;
    ``reference``: the prompts' reference block (``speech.prompt_reference``)."""
    from loralab.speech.data.records import task_examples

    prompts = {t: prompt_tokens(t, style) for t in tasks}
    durations = [float(s) for s in so762_durations(n, seed)]
    audio = [audio_tokens_of(int(seconds * SAMPLE_RATE)) for seconds in durations]
    return [
        Example(
            task,
            durations[i],
            prompts[task] + reference_tokens(reference, task, durations[i]),
            audio[i],
            answer_tokens(task, durations[i]),
        )
        for i, task in task_examples(list(range(len(durations))), list(tasks), list(shares or ()), seed)
    ]


def longest(examples, task: str) -> Example:
    return max((e for e in examples if e.task == task), key=lambda e: e.length)


def median_example(examples, task: str) -> Example:
    mine = sorted((e for e in examples if e.task == task), key=lambda e: e.length)
    return mine[len(mine) // 2]
