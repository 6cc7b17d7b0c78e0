"""The speech chat format: how prompts and answers are laid out as tokens.

Shared by the model layer (generation stops at :func:`answer_end_token_ids`; the loss ignores
:data:`IGNORE_INDEX`) and the batch layer (:mod:`loralab.speech.collate`), below both.

A prompt is the tokenizer's chat template rendered for ``user_content(task, style, reference)``
with ``<|audio_1|>`` replaced by the backbone's audio span and ``<|reference|>`` (text-aware
prompts) by the utterance's sentence [and phones]. The target is the assistant turn exactly as
the chat template renders it after the generation prompt (the answer and the template's
end-of-turn token; for Phi-4-MM ``<|end|>``, for SmolLM2 ``<|im_end|>``), then the tokenizer's
EOS token if the turn does not already end with it (Phi-4-MM: ``<|endoftext|>``), mirroring
Microsoft's Phi-4-multimodal fine-tuning sample. Whitespace after the end-of-turn token is
layout, not a target. Generation stops at any of these end tokens.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from loralab.errors import LoralabError
from loralab.speech.prompts import (
    AUDIO_PLACEHOLDER,
    REFERENCE_PLACEHOLDER,
    estimate_block,
    reference_block,
    user_content,
)

IGNORE_INDEX = -100


def answer_of(record, task: str) -> str:
    """The target answer text of ``record`` for ``task`` (strict JSON as prepared); for one APA
    aspect at a time (``apa_fluency``, ...) that aspect's score alone, as in the joint answer."""
    if task.startswith("apa_"):
        aspect = task.removeprefix("apa_")
        return json.dumps({aspect: json.loads(answer_of(record, "apa"))[aspect]})
    answer = record.apa_answer if task == "apa" else record.mdd_answer
    return answer if isinstance(answer, str) else json.dumps(answer)


class ChatLayout:
    """The token layout of prompts and answers under one tokenizer's chat template.

    The template is rendered once per task with placeholders for the reference (text-aware
    prompts) and the audio; the pieces between them are tokenized once and cached.
    ``audio_span(n)`` gives the ids that stand for a clip of n embeddings (the backbone's).
    """

    def __init__(self, tokenizer, audio_span: Callable[[int], list[int]], prompt_style: str = "paper",
                 prompt_reference: str = "none"):  # fmt: skip
        self.tokenizer = tokenizer
        self.audio_span = audio_span
        self.prompt_style = prompt_style
        self.prompt_reference = prompt_reference
        self._prompt: dict[str, tuple[str, list[list[int]]]] = {}

    def _encode(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def _user(self, task: str) -> dict:
        return {"role": "user", "content": user_content(task, self.prompt_style, self.prompt_reference)}

    def _prompt_parts(self, task: str) -> tuple[str, list[list[int]]]:
        if task not in self._prompt:
            text = self.tokenizer.apply_chat_template(
                [self._user(task)], tokenize=False, add_generation_prompt=True
            )
            if text.count(AUDIO_PLACEHOLDER) != 1:
                raise LoralabError(
                    f"the chat template rendered the {task} prompt with {text.count(AUDIO_PLACEHOLDER)} "
                    f"'{AUDIO_PLACEHOLDER}' placeholders (expected 1): {text[:200]!r}"
                )
            before, after = text.split(AUDIO_PLACEHOLDER)
            pieces = before.split(REFERENCE_PLACEHOLDER) + [after]
            self._prompt[task] = (text, [self._encode(p) for p in pieces])
        return self._prompt[task]

    def prompt_ids(self, task: str, num_audio: int, record: Any = None) -> list[int]:
        """The generation prompt: the reference of ``record`` (text-aware prompts) and the audio
        span of ``num_audio`` embeddings in their places, then the record's estimate where the
        task's prompt carries one (phones_gop)."""
        _, pieces = self._prompt_parts(task)
        ids = list(pieces[0])
        if len(pieces) == 3:
            ids += self._encode(reference_of(record, self.prompt_reference)) + pieces[1]
        estimate = estimate_block(
            self.prompt_reference, task, getattr(record, "text", ""), getattr(record, "estimates", None)
        )
        return ids + self.audio_span(num_audio) + (self._encode(estimate) if estimate else []) + pieces[-1]

    def prompt_text_length(self, task: str, record: Any = None) -> int:
        """Prompt tokens other than the audio span."""
        return len(self.prompt_ids(task, 0, record)) - len(self.audio_span(0))

    def answer_ids(self, task: str, answer: str) -> list[int]:
        """The target tokens: the assistant turn as the template renders it, plus EOS (see module doc)."""
        prompt_text = self._prompt_parts(task)[0]
        messages = [self._user(task), {"role": "assistant", "content": answer}]
        full = self.tokenizer.apply_chat_template(messages, tokenize=False)
        if not full.startswith(prompt_text):
            raise LoralabError(
                "the tokenizer's chat template renders a conversation with the assistant's answer that does "
                "not start with its own generation prompt; loralab cannot tell prompt from answer. "
                f"Prompt: {prompt_text[-80:]!r}; conversation: {full[len(prompt_text) - 80 :][:160]!r}"
            )
        completion = full[len(prompt_text) :].rstrip()
        if answer not in completion:
            raise LoralabError(f"the chat template changed the answer text: {completion[:200]!r}")
        ids = self._encode(completion)
        eos = self.tokenizer.eos_token_id
        if eos is not None and (not ids or ids[-1] != eos):
            ids.append(int(eos))
        return ids


def reference_of(record: Any, mode: str) -> str:
    """The reference block of ``record`` in a text-aware prompt ('' for mode ``none``)."""
    if mode == "none":
        return ""
    if record is None or not getattr(record, "text", None):
        raise LoralabError(f"speech.prompt_reference={mode} needs the sentence of every recording")
    return reference_block(mode, record.text, getattr(record, "canonical_phones", None))


def answer_end_token_ids(tokenizer) -> list[int]:
    """The tokens that close an answer (end-of-turn, EOS): generation stops at any of them."""
    probe = ChatLayout(tokenizer, lambda n: [0] * n, prompt_style="short")
    ids = probe.answer_ids("apa", "{}")
    answer_len = len(probe._encode("{}"))
    special = set(tokenizer.all_special_ids)
    # The trailing tokens after the answer that are special (e.g. <|end|>, <|endoftext|>).
    tail = [i for i in ids[answer_len:] if i in special]
    return list(dict.fromkeys(tail)) or (
        [int(tokenizer.eos_token_id)] if tokenizer.eos_token_id is not None else []
    )
