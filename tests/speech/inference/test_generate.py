"""Batched generation: left padding and the KV cache give the same tokens as unpadded rows;
only generated tokens are decoded, cut at the first end token; the token budget rule."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

from loralab.speech.inference.generate import BatchedGenerator, answer_token_budget

MODEL_INPUTS = (
    "input_ids",
    "attention_mask",
    "audio_input_features",
    "audio_embed_sizes",
    "audio_attention_mask",
)


@pytest.fixture(scope="module")
def tiny_inference(tiny_model_dir):
    from loralab.speech.model.load import load_for_inference

    return load_for_inference(tiny_model_dir, device="cpu")


def _audios(lengths, seed=0):
    rng = np.random.default_rng(seed)
    return [(0.1 * rng.standard_normal(n)).astype(np.float32) for n in lengths]


def test_left_padded_batch_equals_unpadded_rows(tiny_inference):
    """Each row of a left-padded batch generates exactly what the same row generates alone.

    The row alone gets the very audio features it had in the batch (the audio encoder's own
    padding effect is the model's, not ours) but no text padding: what differs is only left
    padding, attention mask, positions and the KV cache, which must not change a token."""
    import torch

    inf = tiny_inference
    gen = BatchedGenerator(inf, prompt_style="short", batch_size=4, max_new_tokens=12)
    audios = _audios([16000, 40000, 24000, 9000])
    ids = ["a", "b", "c", "d"]
    records = [SimpleNamespace(id=i) for i in ids]
    batched = gen.generate("mdd", audios, records)
    batch = gen.collator.prompt_batch(records, "mdd", audios)
    pad_id = inf.tokenizer.pad_token_id
    for row, answer in enumerate(batched):
        mask = batch["attention_mask"][row].bool()
        single = {
            "input_ids": batch["input_ids"][row][mask][None],
            "attention_mask": torch.ones(1, int(mask.sum()), dtype=torch.long),
            "audio_input_features": batch["audio_input_features"][row : row + 1],
            "audio_embed_sizes": batch["audio_embed_sizes"][row : row + 1],
            "audio_attention_mask": batch["audio_attention_mask"][row : row + 1],
        }
        with torch.no_grad():
            out = inf.model.generate(
                **single, max_new_tokens=12, do_sample=False, eos_token_id=inf.end_token_ids,
                pad_token_id=pad_id, suppress_tokens=[inf.audio_token_id],
            )  # fmt: skip
        tokens = out[0, single["input_ids"].shape[1] :].tolist()
        cut = next((i for i, t in enumerate(tokens) if t in inf.end_token_ids), len(tokens))
        assert inf.tokenizer.decode(tokens[:cut], skip_special_tokens=True).strip() == answer.raw
        assert answer.new_tokens == cut


class _ScriptedModel:
    """Stands in for model.generate: returns the prompt, then scripted tokens (end + padding)."""

    def __init__(self, tokenizer, continuations):
        import torch

        self.tokenizer = tokenizer
        self.continuations = continuations
        self.param = torch.nn.Parameter(torch.zeros(1))
        self.calls = []

    def parameters(self):
        return iter([self.param])

    def generate(self, input_ids, **kwargs):
        import torch

        self.calls.append(kwargs)
        width = max(len(c) for c in self.continuations)
        pad = self.tokenizer.pad_token_id
        rows = [c + [pad] * (width - len(c)) for c in self.continuations]
        return torch.cat([input_ids, torch.tensor(rows, dtype=torch.long)], dim=1)


def test_only_generated_tokens_decoded_and_cut_at_end_token(tiny_inference):
    tok = tiny_inference.tokenizer
    end = tok.convert_tokens_to_ids("<|end|>")
    answer = tok('{"accuracy": 7}', add_special_tokens=False)["input_ids"]
    # The longest row: it reached max_new_tokens without an end token (no padding after it).
    unfinished = tok('{"accuracy": 7, "fluency": 6, "prosodic":', add_special_tokens=False)["input_ids"]
    after_end = tok("trailing words", add_special_tokens=False)["input_ids"]
    model = _ScriptedModel(tok, [answer + [end] + after_end, unfinished])
    inf = SimpleNamespace(**{**vars(tiny_inference), "model": model})
    gen = BatchedGenerator(
        inf, prompt_style="short", batch_size=2, max_new_tokens={"apa": 40, "mdd": 99}, read_expected=False
    )
    out = gen.generate("apa", _audios([16000, 20000]), [SimpleNamespace(id="u1"), SimpleNamespace(id="u2")])
    assert [a.raw for a in out] == ['{"accuracy": 7}', '{"accuracy": 7, "fluency": 6, "prosodic":']
    assert [a.hit_limit for a in out] == [False, True]
    assert out[0].new_tokens == len(answer)
    call = model.calls[0]
    assert call["max_new_tokens"] == 40 and call["do_sample"] is False and call["use_cache"] is True
    assert set(call["eos_token_id"]) >= {end}


def test_token_budget_is_longest_answer_plus_margin(tiny_inference):
    tok = tiny_inference.tokenizer
    answers = ['{"word_transcript": "A CAT", "phoneme_transcript": "AH K AE T"}', '{"accuracy": 1}']
    longest = max(len(tok(a, add_special_tokens=False)["input_ids"]) for a in answers)
    assert answer_token_budget(tok, answers) == max(32, math.ceil(longest * 1.25) + 16)
    assert answer_token_budget(tok, []) == 32


def test_run_sorts_longest_first_and_skips_done(tiny_inference):
    records = [
        SimpleNamespace(id=f"r{i}", duration=d, audio_path=f"p{i}") for i, d in enumerate([1.0, 3.0, 2.0])
    ]
    gen = BatchedGenerator(tiny_inference, prompt_style="short", batch_size=2, load_audio=lambda p: p)
    seen = []
    gen.generate = lambda task, audios, rows: (seen.append((task, [r.id for r in rows])), [])[1]
    gen.run(records, ["apa", "mdd"], lambda r, t: not (r.id == "r1" and t == "apa"), lambda answers: None)
    assert seen == [("apa", ["r2"]), ("mdd", ["r1", "r2"]), ("apa", ["r0"]), ("mdd", ["r0"])]
