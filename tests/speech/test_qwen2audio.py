"""The Qwen2-Audio family on a tiny random model built from a config: each strategy trains what it
should, the answer-only labels are the JSON answers, a fresh LoRA starts at the base model's loss,
the encoder cache is exact, and a model of the other family is a clear error."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from loralab.config.schema import config_to_dict
from loralab.engine.model_card import write_card
from loralab.errors import ModelLayoutError
from speech.test_training import build, changed_groups_for, first_batch, make_cfg, snapshot, train_steps


def test_fresh_lora_starts_at_the_base_models_loss_and_trains_only_lora(
    tiny_qwen2audio_dir, synth_manifest_dir
):
    from transformers import Qwen2AudioForConditionalGeneration

    parts = build(make_cfg("qwen2audio_r64", tiny_qwen2audio_dir, synth_manifest_dir))
    batch = first_batch(parts)
    # Independent reference: transformers' own loss (full logits, shifted labels) of the base model.
    base = Qwen2AudioForConditionalGeneration.from_pretrained(tiny_qwen2audio_dir, dtype=torch.float32).eval()
    keys = ("input_ids", "attention_mask", "labels", "input_features", "feature_attention_mask")
    with torch.no_grad():
        reference = base(**{k: batch[k] for k in keys}).loss.item()
    before = snapshot(parts.model)
    losses = train_steps(parts, batch)
    assert losses[0] == pytest.approx(reference, rel=1e-5)
    assert losses[-1] < losses[0] - 0.05
    assert changed_groups_for(before, snapshot(parts.model), "qwen2audio") == {
        "lora": True,
        "audio_encoder": False,
        "audio_projector": False,
        "text_decoder": False,
        "vision": False,
    }
    lora_names = [n for n in before if ".lora_A." in n]
    assert lora_names and all(".language_model.layers." in n for n in lora_names)  # decoder only


@pytest.mark.parametrize(
    ("unfreeze", "encoder", "projector"),
    [("[audio_encoder,audio_projector]", True, True), ("[audio_projector]", False, True)],
)
def test_unfreeze_trains_exactly_the_named_groups(
    tiny_qwen2audio_dir, synth_manifest_dir, unfreeze, encoder, projector
):
    cfg = make_cfg(
        "qwen2audio_unfreeze_r64", tiny_qwen2audio_dir, synth_manifest_dir, f"model.unfreeze={unfreeze}"
    )
    parts = build(cfg)
    batch = first_batch(parts)
    before = snapshot(parts.model)
    train_steps(parts, batch)
    changed = changed_groups_for(before, snapshot(parts.model), "qwen2audio")
    assert changed == {
        "lora": True,
        "audio_encoder": encoder,
        "audio_projector": projector,
        "text_decoder": False,
        "vision": False,
    }


def test_answer_only_labels_decode_to_the_json_answers(tiny_qwen2audio_dir, synth_manifest_dir):
    from loralab.speech.chat_format import answer_of

    parts = build(make_cfg("qwen2audio_r64", tiny_qwen2audio_dir, synth_manifest_dir))
    examples = [parts.train_dataset[i] for i in range(4)]
    batch = parts.collate(examples)
    tok = parts.collate.tokenizer
    audio_token_id = parts.model.backbone.audio_token_id(parts.model.causal_lm.config)
    for row, (record, task) in enumerate(examples):
        labels = batch["labels"][row]
        answer = tok.decode(labels[labels != -100].tolist())
        assert answer == answer_of(record, task) + "<|im_end|><|endoftext|>"
        ids = batch["input_ids"][row].tolist()
        n_audio = ids.count(audio_token_id)
        start = ids.index(tok.convert_tokens_to_ids("<|audio_bos|>"))
        assert ids[start + 1 + n_audio] == tok.convert_tokens_to_ids("<|audio_eos|>")


def test_text_aware_prompt_puts_the_reference_before_the_audio(tiny_qwen2audio_dir, synth_manifest_dir):
    cfg = make_cfg(
        "qwen2audio_r64", tiny_qwen2audio_dir, synth_manifest_dir, "speech.prompt_reference=phones"
    )
    parts = build(cfg)
    record, task = parts.train_dataset[0]
    batch = parts.collate([(record, task)])
    text = parts.collate.tokenizer.decode(batch["input_ids"][0].tolist())
    expected = f"Reference text: {record.text}\nCanonical phones: {record.canonical_phones}\n<|audio_bos|>"
    assert expected in text
    assert len(batch["input_ids"][0]) == parts.collate.example_length(record, task)


def test_audio_token_count_from_length_equals_the_features(tiny_qwen2audio_dir):
    from loralab.speech.backbones import backbone_named
    from loralab.speech.model.load import load_feature_extractor

    backbone = backbone_named("qwen2audio")
    fe = load_feature_extractor(tiny_qwen2audio_dir)
    lengths = [400, 401, 1599, 1600, 1601, 16000, 23456, 48000, 480000, 500000]
    _, counts = backbone.audio_features(fe, [np.zeros(n, np.float32) for n in lengths])
    assert counts == [backbone.num_audio_tokens(n, fe) for n in lengths]
    assert counts[5] == 25 and counts[-1] == counts[-2] == 750  # 40 ms each; cropped at 30 s


def test_encoder_cache_returns_the_encoders_own_output(tiny_qwen2audio_dir):
    from loralab.speech.backbones import backbone_named
    from loralab.speech.model.load import load_feature_extractor

    backbone = backbone_named("qwen2audio")
    model = backbone.load(tiny_qwen2audio_dir, device="cpu", dtype=torch.float32, attn_implementation="sdpa")
    rng = np.random.default_rng(0)
    audios = [0.1 * rng.standard_normal(n).astype(np.float32) for n in (16000, 24000, 8000)]
    inputs, _ = backbone.audio_features(load_feature_extractor(tiny_qwen2audio_dir), audios)
    ids = torch.full((3, 1), 5)
    with torch.no_grad():
        plain = model.model.audio_tower(inputs["input_features"]).last_hidden_state
        assert backbone.install_encoder_cache(model) is not None
        cache = model.model.audio_tower.forward
        first = model.model.audio_tower(inputs["input_features"][:2]).last_hidden_state
        again = model.model.audio_tower(inputs["input_features"][[2, 1, 0]]).last_hidden_state
    assert cache.misses == 3 and cache.hits == 2
    assert torch.allclose(first, plain[:2], atol=1e-6)
    assert torch.allclose(again, plain[[2, 1, 0]], atol=1e-6)
    del ids


def test_model_of_the_other_family_names_both(tiny_qwen2audio_dir, tiny_model_dir, synth_manifest_dir):
    with pytest.raises(ModelLayoutError, match=r"Qwen2-Audio.*Phi-4-multimodal.*qwen2audio_r64"):
        build(make_cfg("paper_r64", tiny_qwen2audio_dir, synth_manifest_dir, "lora.rank=8"))
    with pytest.raises(ModelLayoutError, match=r"Phi-4-multimodal.*Qwen2-Audio.*paper_r64"):
        build(make_cfg("qwen2audio_r64", tiny_model_dir, synth_manifest_dir))


def test_folder_without_processor_files_names_them(tiny_qwen2audio_dir, tmp_path, synth_manifest_dir):
    broken = tmp_path / "model"
    shutil.copytree(tiny_qwen2audio_dir, broken)
    (broken / "preprocessor_config.json").unlink()
    (broken / "tokenizer.json").unlink()
    with pytest.raises(ModelLayoutError, match=r"preprocessor_config\.json, tokenizer\.json or vocab\.json"):
        build(make_cfg("qwen2audio_r64", broken, synth_manifest_dir))


def test_trained_model_loads_for_inference_and_generates(tiny_qwen2audio_dir, synth_manifest_dir, tmp_path):
    from loralab.speech.inference.generate import BatchedGenerator
    from loralab.speech.model.load import load_for_inference

    cfg = make_cfg("qwen2audio_unfreeze_r64", tiny_qwen2audio_dir, synth_manifest_dir)
    parts = build(cfg)
    train_steps(parts, first_batch(parts), steps=2)
    parts.save_final(parts.model, tmp_path / "final_model")
    write_card(
        tmp_path / "final_model", config_to_dict(cfg), epoch=1, step=2, versions={}
    )  # as the engine does
    inference = load_for_inference(tmp_path / "final_model", device="cpu")
    assert inference.backbone.family == "qwen2audio"
    record = parts.train_dataset[0][0]
    from loralab.speech.data.audio import load_audio

    with BatchedGenerator(inference, prompt_style="short", max_new_tokens=4) as generator:
        (answer,) = generator.generate("apa", [load_audio(record.audio_path)], [record])
    assert answer.new_tokens <= 4 and answer.id == record.id
