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
from typing import Any

from loralab.speech.inference.answers import GeneratedAnswer, ideal_apa_answer
from loralab.speech.prompts import TASKS

SAMPLE_RATE = 16000
# max_new_tokens = longest training answer * (1 + ratio) + tokens: room for a slightly longer
# answer than any seen in training, without letting a babbling model run for thousands of steps.
BUDGET_MARGIN_RATIO = 0.25
BUDGET_MARGIN_TOKENS = 16


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

    def checked(self, answer: GeneratedAnswer, record, audio) -> GeneratedAnswer:
        """``answer`` with the heard phones a copy jump skipped put back, where its prompt carried
        them (:func:`~loralab.speech.inference.decoding.restore_skipped_phones`)."""
        from loralab.speech.inference.decoding import restore_skipped_phones
        from loralab.speech.prompts import HEARD_PHONES, evidence_key

        if evidence_key(self.collator.layout.prompt_reference, answer.task) != HEARD_PHONES:
            return answer
        return restore_skipped_phones(answer, (self.evidence(record, audio) or {}).get(HEARD_PHONES))

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
            answer = GeneratedAnswer(uid, task, text, len(kept), cut is None, exp, estimate)
            answers.append(self.checked(answer, records[n], audios[n]))
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

    def mdd_draft(self, record, audio) -> str:
        """The MDD answer a model that copies its evidence writes: the sentence, and the heard phones
        where the prompt gives them (else the canonical ones). Only a draft to verify."""
        from loralab.speech.data.targets import mdd_answer
        from loralab.speech.prompts import HEARD_PHONES

        return mdd_answer(
            record.text, (self.evidence(record, audio) or {}).get(HEARD_PHONES, record.canonical_phones)
        )

    def answer_one_by_one(self, tasks: Sequence[str], audios: Sequence, records: Sequence,
                          todo: Callable[[Any, str], bool] = lambda r, t: True) -> list[GeneratedAnswer]:  # fmt: skip
        """Greedy answers of ``tasks`` (where ``todo``), one recording at a time on the KV cache and
        verified against a draft (:func:`~loralab.speech.inference.fast_decode.greedy_with_draft`:
        the tokens greedy decoding writes, whatever the draft), APA's expected scores read from the
        logits that chose them. A recording's prompts share the cache up to the end of its audio,
        and a long answer that copies its prompt is written in a few passes, not a step per token."""
        import dataclasses

        from loralab.speech.inference.fast_decode import FastDecoder
        from loralab.speech.prompts import HEARD_PHONES, evidence_key

        decoder = FastDecoder(self)
        answers = []
        for record, audio in zip(records, audios):
            for task in tasks:
                if not todo(record, task):
                    continue
                key = evidence_key(self.collator.layout.prompt_reference, task)
                evidence = self._with_estimates([record], [audio])[0].estimates if key else {}
                draft = self.mdd_draft(record, audio) if task == "mdd" else ideal_apa_answer(task)
                answer = decoder.answer(task, audio, record, draft=draft, max_new_tokens=self.max_new_tokens[task],
                                        read_expected=self.read_expected, constrained=False)  # fmt: skip
                if key is not None and key != HEARD_PHONES:  # as generate() records it
                    answer = dataclasses.replace(answer, estimate=evidence[key])
                answers.append(answer)
        return answers

    def run(
        self,
        records: Sequence,
        tasks: Sequence[str],
        todo: Callable[[Any, str], bool],
        on_answers: Callable[[list[GeneratedAnswer]], None],
        one_by_one: Sequence[str] = (),
    ) -> int:
        """Generate every (record, task) for which ``todo`` is true; ``on_answers`` receives each
        batch's answers as soon as they exist. Returns the number of answers generated. The tasks in
        ``one_by_one`` go through :meth:`answer_one_by_one`, the others through batched
        :meth:`generate`: the same tokens and expected scores."""
        done = 0
        singles = [t for t in tasks if t in one_by_one]
        for chunk in self.plan(records, todo, tasks):
            audios = {r.id: self.load_audio(r.audio_path) for r in chunk}
            for task in tasks:
                rows = [r for r in chunk if todo(r, task)]
                if task in singles or not rows:
                    continue
                answers = self.generate(task, [audios[r.id] for r in rows], rows)
                on_answers(answers)
                done += len(answers)
            if singles:
                answers = self.answer_one_by_one(singles, [audios[r.id] for r in chunk], chunk, todo)
                on_answers(answers)
                done += len(answers)
        return done


def resolve_route(route: str, model) -> str:
    """A speech route (``evaluation.speech_route``) for ``model``'s device: auto is one_by_one on a
    CPU (where a recording's prompts gain from sharing the audio on the cache), batched on a GPU
    (where wide batches pay)."""
    if route != "auto":
        return route
    return "one_by_one" if next(model.parameters()).device.type == "cpu" else "batched"


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
