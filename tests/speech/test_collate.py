"""The chat-template collator: answer-only labels, audio expansion, padding, generation prompts."""

from __future__ import annotations

import json

import pytest

from loralab.errors import LoralabError

PHI4_END = "<|end|><|endoftext|>"


@pytest.fixture(scope="module")
def parts(tiny_model_dir, synth_manifest_dir):
    from loralab.speech.data.records import read_manifest
    from loralab.speech.model.load import load_feature_extractor, load_tokenizer

    tokenizer = load_tokenizer(tiny_model_dir)
    fe = load_feature_extractor(tiny_model_dir)
    audio_token_id = json.loads((tiny_model_dir / "config.json").read_text())["audio_config"][
        "audio_token_id"
    ]
    records = read_manifest(synth_manifest_dir, "train")[:3]
    return tokenizer, fe, audio_token_id, records


def _collator(parts, style="paper", tokenizer=None):
    from loralab.speech.collate import SpeechCollator

    tok, fe, audio_id, _ = parts
    from loralab.speech.backbones import backbone_named

    return SpeechCollator(tokenizer or tok, fe, backbone_named("phi4mm"), audio_id, style)


def test_unmasked_labels_decode_to_exactly_the_json_answers(parts):
    tok, _, audio_id, records = parts
    examples = [(r, t) for r in records for t in ("apa", "mdd")]
    batch = _collator(parts)(examples)
    assert batch["ids"] == [f"{r.id}:{t}" for r, t in examples]
    for row, (record, task) in enumerate(examples):
        labels = batch["labels"][row]
        target = labels[labels != -100].tolist()
        answer = record.apa_answer if task == "apa" else record.mdd_answer
        assert tok.decode(target) == answer + PHI4_END
        json.loads(answer)  # the targets are strict JSON
        # Targets are one contiguous block at the end of the unpadded row, equal to the input tokens there.
        length = int(batch["attention_mask"][row].sum())
        assert batch["attention_mask"][row, :length].all() and not batch["attention_mask"][row, length:].any()
        assert batch["input_ids"][row, length - len(target) : length].tolist() == target
        assert (labels[: length - len(target)] == -100).all() and (labels[length:] == -100).all()
        # One audio token per audio embedding, all inside the (masked) prompt.
        audio_positions = (batch["input_ids"][row] == audio_id).nonzero().flatten()
        assert len(audio_positions) == int(batch["audio_embed_sizes"][row])
        assert (labels[audio_positions] == -100).all()
    assert batch["num_tokens"] == int((batch["labels"] != -100).sum())


def test_prompt_layout_and_control_tokens(parts):
    tok, _, audio_id, records = parts
    batch = _collator(parts, "short")([(records[0], "mdd")])
    text = tok.decode(batch["input_ids"][0])
    n = int(batch["audio_embed_sizes"][0])
    assert text.startswith("<|user|><|MDD|>" + "<|endoftext11|>" * n)
    assert "<|end|><|assistant|>" + records[0].mdd_answer + PHI4_END == text[text.index("<|end|>") :]


def test_lengths_from_duration_match_the_collated_rows(parts):
    from loralab.speech.backbones.phi4mm import audio_embed_count

    _, fe, _, records = parts
    collator = _collator(parts)
    for record in records:
        for task in ("apa", "mdd"):
            batch = collator([(record, task)])
            assert collator.example_length(record, task) == batch["input_ids"].shape[1]
    # The embedding count by hand: 25 ms windows every 10 ms, 8 frames per embedding, rounded up.
    assert audio_embed_count(16000, fe) == -(-((16000 - 400) // 160 + 1) // 8) == 13


def test_generation_prompts_are_left_padded_training_prefixes(parts):
    _, _, _, records = parts
    collator = _collator(parts)
    prompts = collator.prompt_batch(records, "apa")
    train = collator([(r, "apa") for r in records])
    assert "labels" not in prompts
    width = prompts["input_ids"].shape[1]
    for row in range(len(records)):
        length = int(prompts["attention_mask"][row].sum())
        assert not prompts["attention_mask"][row, : width - length].any()
        prompt = prompts["input_ids"][row, width - length :].tolist()
        assert train["input_ids"][row, :length].tolist() == prompt
        assert (train["labels"][row, :length] == -100).all() and train["labels"][row, length] != -100


def test_layout_follows_the_tokenizers_chat_template(parts, tiny_model_dir):
    """A ChatML (SmolLM2-style) template: targets end with its <|im_end|>, no trailing newline."""
    from loralab.speech.model.load import load_tokenizer

    tok = load_tokenizer(tiny_model_dir)
    tok.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
    tok.eos_token = "<|im_end|>"
    tok.chat_template = (
        "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\n' + m['content'] + '<|im_end|>\n' }}{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
    )
    record = parts[3][0]
    batch = _collator(parts, "short", tokenizer=tok)([(record, "apa")])
    labels = batch["labels"][0]
    assert tok.decode(labels[labels != -100]) == record.apa_answer + "<|im_end|>"
    assert tok.decode(batch["input_ids"][0]).startswith("<|im_start|>user\n<|APA|>")

    from loralab.speech.chat_format import answer_end_token_ids

    assert answer_end_token_ids(tok) == [tok.convert_tokens_to_ids("<|im_end|>")]
    assert answer_end_token_ids(parts[0]) == parts[0].convert_tokens_to_ids(["<|end|>", "<|endoftext|>"])


def test_a_template_that_rewrites_the_prompt_is_refused(parts, tiny_model_dir):
    from loralab.speech.model.load import load_tokenizer

    tok = load_tokenizer(tiny_model_dir)
    # The generation prompt differs from how the answered conversation starts.
    tok.chat_template = (
        "{% for m in messages %}{{ m['role'] + ':' + m['content'] }}{% endfor %}"
        "{% if add_generation_prompt %}{{ 'ASSISTANT>' }}{% endif %}"
    )
    with pytest.raises(LoralabError, match="generation prompt"):
        _collator(parts, tokenizer=tok)([(parts[3][0], "apa")])


def test_phi4_hub_template_that_appends_eos_itself(parts, tiny_model_dir):
    """Phi-4-multimodal's own template ends a conversation without generation prompt with EOS."""
    from loralab.speech.model.load import load_tokenizer

    tok = load_tokenizer(tiny_model_dir)
    tok.chat_template = (
        "{% for message in messages %}{{ '<|' + message['role'] + '|>' + message['content'] + '<|end|>' }}"
        "{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>' }}{% else %}{{ eos_token }}{% endif %}"
    )
    record = parts[3][0]
    batch = _collator(parts, tokenizer=tok)([(record, "mdd")])
    labels = batch["labels"][0]
    assert tok.decode(labels[labels != -100]) == record.mdd_answer + PHI4_END  # EOS once, not twice


def test_audio_features_of_near_equal_lengths_match_unbatched(tiny_model_dir):
    """Waveforms ending within one hop of each other (common in length-grouped batches) broke
    transformers' batched extractor; each row must equal that utterance's unbatched features."""
    import numpy as np
    import torch

    from loralab.speech.backbones.phi4mm import extract_audio_features
    from loralab.speech.model.load import load_feature_extractor

    fe = load_feature_extractor(tiny_model_dir)
    rng = np.random.default_rng(0)
    audios = [rng.standard_normal(n).astype(np.float32) * 0.1 for n in (16000, 16000 - 80, 12000)]
    batch = extract_audio_features(fe, audios)
    for i, audio in enumerate(audios):
        single = fe([audio], sampling_rate=fe.sampling_rate, return_tensors="pt")
        frames = single["audio_input_features"].shape[1]
        assert torch.equal(batch["audio_input_features"][i, :frames], single["audio_input_features"][0])
        assert not batch["audio_input_features"][i, frames:].any()  # padding frames are zero
        assert int(batch["audio_attention_mask"][i].sum()) == frames
        assert int(batch["audio_embed_sizes"][i]) == int(single["audio_embed_sizes"][0])
