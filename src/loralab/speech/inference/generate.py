"""Batched greedy generation of APA and MDD answers.

Utterances are sorted by audio length (longest first: an out-of-memory batch shows up at
once, not after an hour) and cut into batches; each batch's audio is loaded and turned into
features once and used for both tasks. Prompts are LEFT-padded so that every row's next
token sits at the same position; the KV cache is on; decoding is greedy (settings from
:mod:`~.decoding`, the checkpoint's generation_config set aside); every row stops at
one of the model's end tokens (``<|end|>``, ``<|endoftext|>``), and only the generated tokens
are decoded (never the prompt, the mistake of the earlier attempt).

The model is anything with the fields of ``loralab.speech.model.load.InferenceModel``:
``model``, ``tokenizer``, ``feature_extractor``, ``audio_token_id``, ``end_token_ids``, ``backbone``.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from loralab.speech.prompts import TASKS

SAMPLE_RATE = 16000
# max_new_tokens = longest training answer * (1 + ratio) + tokens: room for a slightly longer
# answer than any seen in training, without letting a babbling model run for thousands of steps.
BUDGET_MARGIN_RATIO = 0.25
BUDGET_MARGIN_TOKENS = 16


@dataclass
class GeneratedAnswer:
    """One generated answer: the decoded text of the new tokens only. ``hit_limit``: it ended
    at max_new_tokens instead of an end token (a truncated answer usually fails to parse)."""

    id: str
    task: str
    raw: str
    new_tokens: int
    hit_limit: bool
    expected: dict[str, float] | None = None  # APA: expected scores (loralab.speech.inference.expected)
    # The GOP scorer's estimate in the prompt (prompt_reference phones_gop: apa_accuracy's of the
    # accuracy, apa_total's of the total).
    estimate: int | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {
            "id": self.id,
            "task": self.task,
            "raw": self.raw,
            "new_tokens": self.new_tokens,
            "hit_limit": self.hit_limit,
        }
        if self.expected is not None:
            out["expected"] = self.expected
        if self.estimate is not None:
            out["estimate"] = self.estimate
        return out


def answer_token_budget(tokenizer, answers: Iterable[str]) -> int:
    """max_new_tokens from the longest answer (in tokens) plus the margin; at least 32."""
    longest = max((len(tokenizer(a, add_special_tokens=False)["input_ids"]) for a in answers), default=0)
    return max(32, math.ceil(longest * (1 + BUDGET_MARGIN_RATIO)) + BUDGET_MARGIN_TOKENS)


def task_budgets(tokenizer, records: Sequence, tasks: Sequence[str]) -> dict[str, int]:
    """Per-task max_new_tokens from the (training) records' target answers."""
    from loralab.speech.chat_format import answer_of

    return {t: answer_token_budget(tokenizer, (answer_of(r, t) for r in records)) for t in tasks}


class BatchedGenerator:
    """Generates answers for (utterance, task) pairs, batch by batch.

    Use it as a context manager, ``with BatchedGenerator(inference, ...) as generator:``: inside
    the block the model's audio encoder runs through an output cache (where the family has one),
    so that each batch's clips are encoded once for APA and reused for MDD; the block's end gives
    the encoder its own forward back, also on an error. Outside a block nothing on the model is
    changed and every task encodes its clips again."""

    def __init__(
        self,
        inference,
        *,
        prompt_style: str = "paper",
        prompt_reference: str = "none",
        batch_size: int = 16,
        max_new_tokens: dict[str, int] | int = 256,
        load_audio: Callable[[str], Any] | None = None,
        fixed_length: bool = False,
        read_expected: bool = True,
    ):
        """``fixed_length``: every answer runs to max_new_tokens (end tokens ignored), for
        benchmarks on random weights, which stop at random or never. ``read_expected``: APA
        answers also get expected scores (from the probabilities recorded while generating; see :mod:`~.expected`)."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1 (got {batch_size})")
        self.inference = inference
        self.prompt_style = prompt_style
        self.batch_size = batch_size
        self.max_new_tokens = (
            dict(max_new_tokens)
            if isinstance(max_new_tokens, dict)
            else {t: int(max_new_tokens) for t in TASKS}
        )
        if load_audio is None:
            from loralab.speech.data.audio import load_audio
        self.load_audio = load_audio
        self.fixed_length = fixed_length
        self.read_expected = read_expected and not fixed_length
        from loralab.speech.collate import SpeechCollator

        # One collator for the whole run: it caches the tokenized prompt of each task.
        self.collator = SpeechCollator(
            inference.tokenizer,
            inference.feature_extractor,
            inference.backbone,
            inference.audio_token_id,
            prompt_style,
            prompt_reference,
        )
        self.model_inputs = ("input_ids", "attention_mask", *inference.backbone.audio_input_keys)
        self._estimates: dict[tuple[str, str], dict] = {}  # (waveform key, canonical phones) -> estimates
        # Greedy in every route: the checkpoint's generation_config cannot change it (see .decoding).
        from loralab.speech.inference.decoding import greedy_only

        self.decoding_notes = greedy_only(inference.model)
        for note in self.decoding_notes:
            print(f"note: {note}", file=sys.stderr)
        self._restores: list[Callable[[], None] | None] = []  # one per open block (blocks may nest)

    def __enter__(self) -> BatchedGenerator:
        inf = self.inference
        # Room for one batch of clips twice over: a batch's APA and MDD prompts share them.
        self._restores.append(inf.backbone.install_encoder_cache(inf.model, max_items=2 * self.batch_size))
        return self

    def __exit__(self, *exc_info) -> None:
        restore = self._restores.pop()
        if restore is not None:
            restore()

    def prompt_batch(self, records: Sequence, task: str, audios: Sequence) -> dict:
        """The collator's prompt batch; where the prompt carries an estimate (prompt_reference
        phones_gop, tasks apa_accuracy and apa_total) each record first gets the model's estimates of
        its recording (once per recording and sentence), and ``estimates`` lists the task's."""
        from loralab.speech.prompts import HEARD_PHONES, evidence_key

        records, audios = list(records), list(audios)
        key = evidence_key(self.collator.layout.prompt_reference, task)
        if key is None:
            return self.collator.prompt_batch(records, task, audios)
        records = self._with_estimates(records, audios)
        batch = self.collator.prompt_batch(records, task, audios)
        if key != HEARD_PHONES:  # the numbers are scored on their own (metrics' gop_estimate)
            batch["estimates"] = [r.estimates[key] for r in records]
        return batch

    def _with_estimates(self, records: list, audios: list) -> list:
        from loralab.errors import LoralabError
        from loralab.speech.data.audio import waveform_key
        from loralab.speech.model.gop_fit import WithEstimate, recording_estimates

        inf = self.inference
        if inf.gop_scorer is None:
            raise LoralabError(
                f"speech.prompt_reference={self.collator.layout.prompt_reference} needs the model's GOP scorer, "
                "and this model has none "
                "(no gop_scorer.safetensors in its folder): use the prompt_reference it was trained with"
            )
        keys = [(waveform_key(a), r.canonical_phones) for r, a in zip(records, audios)]
        todo = sorted({k: i for i, k in enumerate(keys) if k not in self._estimates}.values())
        if todo:
            try:
                values = recording_estimates(
                    inf.gop_scorer, inf.model, inf.backbone, inf.feature_extractor,
                    [records[i] for i in todo], [audios[i] for i in todo],
                )  # fmt: skip
            except RuntimeError as e:
                if "shapes cannot be multiplied" not in str(e):
                    raise
                raise _other_encoder(inf.gop_scorer, e) from None
            self._estimates.update({keys[i]: v for i, v in zip(todo, values)})
            while len(self._estimates) > 4 * self.batch_size:
                self._estimates.pop(next(iter(self._estimates)))  # oldest first
        return [WithEstimate(r, self._estimates[k]) for r, k in zip(records, keys)]

    def evidence(self, record, audio) -> dict | None:
        """The scorer's evidence of one recording if this generator computed it (and still holds it)."""
        from loralab.speech.data.audio import waveform_key

        return self._estimates.get((waveform_key(audio), record.canonical_phones))

    def generate(self, task: str, audios: Sequence, records: Sequence) -> list[GeneratedAnswer]:
        """Answers of ``task`` for one batch of waveforms; ``records`` have an ``id`` (and the
        ``text``/``canonical_phones`` a text-aware prompt needs)."""
        import torch

        inf = self.inference
        batch = self.prompt_batch(records, task, audios)
        ids = [r.id for r in records]
        device = next(inf.model.parameters()).device
        inputs = {
            k: v.to(device) if hasattr(v, "to") else v for k, v in batch.items() if k in self.model_inputs
        }
        end_ids = list(inf.end_token_ids)
        pad_id = inf.tokenizer.pad_token_id if inf.tokenizer.pad_token_id is not None else end_ids[0]
        recorder = None
        if task.startswith("apa") and self.read_expected:
            from loralab.speech.inference.expected import NumberProbabilities

            recorder = NumberProbabilities(inf.model, inf.tokenizer)
        try:
            with torch.inference_mode():
                out = self._generate(inputs, task, end_ids, pad_id)
        finally:
            if recorder is not None:
                recorder.close()
        prompt_len = inputs["input_ids"].shape[1]
        new = out[:, prompt_len:].tolist()
        expected = [None] * len(ids)
        if recorder is not None and len(recorder.steps) == out.shape[1] - prompt_len:
            from loralab.speech.inference.expected import read_expected

            expected = [read_expected(inf.tokenizer, row, recorder.probs_of(n)) for n, row in enumerate(new)]
        elif recorder is not None:  # lm_head not called once per token: one teacher-forced pass
            from loralab.speech.inference.expected import expected_scores

            expected = expected_scores(inf.model, inputs, out, prompt_len, inf.tokenizer)
        estimates = batch.get("estimates")
        answers = []
        for n, (uid, tokens, exp) in enumerate(zip(ids, new, expected)):
            cut = next((i for i, t in enumerate(tokens) if t in end_ids), None)
            kept = tokens if cut is None else tokens[:cut]
            text = inf.tokenizer.decode(kept, skip_special_tokens=True).strip()
            estimate = estimates[n] if estimates else None
            answers.append(GeneratedAnswer(uid, task, text, len(kept), cut is None, exp, estimate))
        return answers

    def _generate(self, inputs: dict, task: str, end_ids: list[int], pad_id: int):
        from loralab.speech.inference.decoding import generate_settings

        inf = self.inference
        settings = generate_settings(
            self.max_new_tokens[task],
            end_ids,
            pad_id,
            # A generated audio token would make the model re-run the audio encoder on its
            # features mid-generation (and fail); an untrained model may well emit one.
            suppress=[int(inf.audio_token_id)],
            min_new_tokens=self.max_new_tokens[task] if self.fixed_length else None,
        )
        return inf.model.generate(**inputs, **settings)

    def plan(self, records: Sequence, todo: Callable[[Any, str], bool], tasks: Sequence[str]):
        """Batches (records, tasks-needed) in longest-first order, skipping finished pairs."""
        pending = [r for r in records if any(todo(r, t) for t in tasks)]
        pending.sort(key=lambda r: (-float(r.duration), r.id))
        for start in range(0, len(pending), self.batch_size):
            yield pending[start : start + self.batch_size]

    def run(
        self,
        records: Sequence,
        tasks: Sequence[str],
        todo: Callable[[Any, str], bool],
        on_answers: Callable[[list[GeneratedAnswer]], None],
    ) -> int:
        """Generate every (record, task) for which ``todo`` is true; ``on_answers`` receives each
        batch's answers as soon as they exist. Returns the number of answers generated."""
        done = 0
        for chunk in self.plan(records, todo, tasks):
            audios = {r.id: self.load_audio(r.audio_path) for r in chunk}
            for task in tasks:
                rows = [r for r in chunk if todo(r, task)]
                if not rows:
                    continue
                answers = self.generate(task, [audios[r.id] for r in rows], rows)
                on_answers(answers)
                done += len(answers)
        return done


def _other_encoder(scorer, error: Exception):
    """The error of a GOP scorer fit on another model's encoder (its heads' input width differs)."""
    from loralab.errors import LoralabError
    from loralab.speech.model.gop import GOP_FILE

    width = scorer.weights[0].shape[1] if scorer.weights else "?"
    return LoralabError(
        f"{GOP_FILE}: the GOP scorer takes {width}-wide encoder frames, and this model's audio encoder "
        f"gives frames of another width ({error}): the scorer was fit on another model. Copy the model "
        "folder whole (adapter and scorer together), or retrain"
    )
