"""Batches for training and generation, laid out by the tokenizer's own chat template.

One example is ``(record, task)``: an utterance record (``loralab.speech.data.records``) and
``'apa'`` or ``'mdd'``. Its token sequence is::

    [chat-template prompt, user content = user_content(task, style, reference)]  ->  labels -100
        ... with <|audio_1|> replaced by the backbone's audio span (one audio token per
        audio embedding, e.g. Qwen2-Audio's <|audio_bos|> <|AUDIO|> x n <|audio_eos|>)
        ... and <|reference|> (text-aware prompts) by the utterance's sentence [and phones]
    [the assistant turn: answer + end-of-turn token(s)]                ->  labels = tokens

What is a target, and the token layout itself, is :mod:`loralab.speech.chat_format`'s
(:class:`ChatLayout`); this module pads, loads audio features and builds the labels.

The prompt is tokenized on its own, so the tokens the model is trained on after are exactly
those :meth:`SpeechCollator.prompt_batch` gives generation. Training batches are right-padded; prompt
batches for generation are left-padded.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from loralab.errors import LoralabError
from loralab.speech.chat_format import IGNORE_INDEX, ChatLayout, answer_of


def _pad(rows: list[list[int]], value: int, left: bool):
    import torch

    width = max(len(r) for r in rows)
    out = torch.full((len(rows), width), value, dtype=torch.long)
    for i, r in enumerate(rows):
        if r:
            if left:
                out[i, width - len(r) :] = torch.tensor(r, dtype=torch.long)
            else:
                out[i, : len(r)] = torch.tensor(r, dtype=torch.long)
    return out


def _default_audio_loader() -> Callable[[str], Any]:
    from loralab.speech.data.audio import load_audio

    return load_audio


class SpeechCollator:
    """``(record, task)`` examples -> a training batch; ``prompt_batch`` -> a generation batch.

    Batch keys: ``input_ids``, ``attention_mask``, ``labels`` (training only), the backbone's
    audio inputs (``backbone.audio_input_keys``), ``ids`` (``"<utterance id>:<task>"``) and
    ``num_tokens`` (target tokens).
    """

    def __init__(
        self,
        tokenizer,
        feature_extractor,
        backbone,
        audio_token_id: int,
        prompt_style: str = "paper",
        prompt_reference: str = "none",
        audio_loader: Callable[[str], Any] | None = None,
    ):
        self.tokenizer = tokenizer
        self.feature_extractor = feature_extractor
        self.backbone = backbone

        def audio_span(count: int) -> list[int]:
            return backbone.audio_span(tokenizer, audio_token_id, count)

        self.layout = ChatLayout(tokenizer, audio_span, prompt_style, prompt_reference)
        self.audio_loader = audio_loader
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        if pad is None:
            raise LoralabError("the tokenizer has neither a pad token nor an EOS token to pad with")
        self.pad_token_id = int(pad)

    def _features(self, records: Sequence, audios: Sequence | None) -> tuple[dict, list[int]]:
        if audios is None:
            loader = self.audio_loader or _default_audio_loader()
            audios = [loader(r.audio_path) for r in records]
        shortest = self.backbone.min_samples(self.feature_extractor)
        for record, audio in zip(records, audios):
            if len(audio) < shortest:
                raise LoralabError(
                    f"utterance {getattr(record, 'id', '?')}: audio of {len(audio)} samples is shorter than "
                    f"one analysis window ({shortest} samples at {self.feature_extractor.sampling_rate} Hz)"
                )
        return self.backbone.audio_features(self.feature_extractor, audios)

    def __call__(self, examples: Sequence[tuple[Any, str]]) -> dict:
        records = [record for record, _ in examples]
        batch, counts = self._features(records, None)
        inputs, labels = [], []
        for (record, task), n_audio in zip(examples, counts):
            prompt = self.layout.prompt_ids(task, n_audio, record)
            answer = self.layout.answer_ids(task, answer_of(record, task))
            inputs.append(prompt + answer)
            labels.append([IGNORE_INDEX] * len(prompt) + answer)
        batch["input_ids"] = _pad(inputs, self.pad_token_id, left=False)
        batch["attention_mask"] = _pad([[1] * len(r) for r in inputs], 0, left=False)
        batch["labels"] = _pad(labels, IGNORE_INDEX, left=False)
        batch["ids"] = [f"{record.id}:{task}" for record, task in examples]
        batch["num_tokens"] = int((batch["labels"] != IGNORE_INDEX).sum())
        return batch

    def prompt_batch(self, records: Sequence, task: str, audios: Sequence | None = None) -> dict:
        """Left-padded prompts WITHOUT answers, for generation (``audios``: arrays instead of files)."""
        batch, counts = self._features(records, audios)
        prompts = [self.layout.prompt_ids(task, n, r) for r, n in zip(records, counts)]
        batch["input_ids"] = _pad(prompts, self.pad_token_id, left=True)
        batch["attention_mask"] = _pad([[1] * len(p) for p in prompts], 0, left=True)
        batch["ids"] = [f"{getattr(r, 'id', i)}:{task}" for i, r in enumerate(records)]
        batch["num_tokens"] = 0
        return batch

    def example_length(self, record, task: str) -> int:
        """Tokens of an example (audio embeddings + text), from the record's duration: no audio read."""
        fe = self.feature_extractor
        num_audio = self.backbone.num_audio_tokens(round(record.duration * fe.sampling_rate), fe)
        answer = self.layout.answer_ids(task, answer_of(record, task))
        return len(self.layout.prompt_ids(task, num_audio, record)) + len(answer)
