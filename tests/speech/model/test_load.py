"""Loading: vision encoder dropped, hub ids offline, inference from the folders a user points at."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from loralab.errors import LoralabError

PER_RANK_UNIT = 1_441_792  # LoRA parameters per unit of rank on Phi-4-MM (reference notes)


def _inputs(model_dir):
    from loralab.speech.collate import SpeechCollator
    from loralab.speech.model.load import load_feature_extractor, load_tokenizer

    rng = np.random.default_rng(3)
    audios = [rng.standard_normal(n).astype(np.float32) * 0.1 for n in (9000, 14000)]
    tok = load_tokenizer(model_dir)
    from loralab.speech.backbones import backbone_named

    collator = SpeechCollator(
        tok,
        load_feature_extractor(model_dir),
        backbone_named("phi4mm"),
        tok.convert_tokens_to_ids("<|endoftext11|>"),
    )
    batch = collator.prompt_batch([None, None], "mdd", audios)
    keys = (
        "input_ids",
        "attention_mask",
        "audio_input_features",
        "audio_embed_sizes",
        "audio_attention_mask",
    )
    return {k: batch[k] for k in keys}


def test_vision_encoder_is_dropped_without_changing_audio_outputs(tiny_model_dir):
    from loralab.speech.model.load import VisionEncoderRemoved, load_phi4mm

    full = load_phi4mm(tiny_model_dir, keep_vision=True).eval()
    audio_only = load_phi4mm(tiny_model_dir).eval()
    stub = audio_only.model.embed_tokens_extend.image_embed
    assert isinstance(stub, VisionEncoderRemoved) and not list(stub.parameters())
    assert stub.removed_parameters == sum(
        p.numel() for p in full.model.embed_tokens_extend.image_embed.parameters()
    )
    inputs = _inputs(tiny_model_dir)
    with torch.no_grad():
        torch.testing.assert_close(audio_only(**inputs).logits, full(**inputs).logits, rtol=0, atol=0)
    with pytest.raises(LoralabError, match="audio only"):
        stub(torch.zeros(1))


def test_a_hub_id_not_available_offline_is_a_clear_error():
    from loralab.config import load_config
    from loralab.speech.model.layout import resolve_model_dir
    from loralab.speech.system import count_parameters

    with pytest.raises(
        LoralabError, match="huggingface-cli download loralab-tests/absent --revision refs/pr/70"
    ):
        resolve_model_dir("loralab-tests/absent", "refs/pr/70")
    with pytest.raises(LoralabError, match="could not be read from the Hugging Face hub"):
        count_parameters(load_config("paper_r64", ["model.name_or_path=loralab-tests/absent"]))
    with pytest.raises(LoralabError, match="does not exist"):
        resolve_model_dir("./no/such/folder")


def test_inference_from_a_base_folder_and_from_its_speech_lora(tiny_model_dir, tiny_speech_adapter, tmp_path):
    from loralab.config.schema import LoraConfig
    from loralab.speech.model.load import load_for_inference, load_phi4mm
    from loralab.speech.model.lora import add_pretrained_lora

    model_dir = shutil.copytree(tiny_model_dir, tmp_path / "model")
    shutil.copytree(tiny_speech_adapter, model_dir / "speech-lora")
    inputs = _inputs(model_dir)

    base = load_for_inference(model_dir, device="cpu")
    assert "adapter" not in base.description
    with torch.no_grad():
        torch.testing.assert_close(
            base.model(**inputs).logits, load_phi4mm(model_dir).eval()(**inputs).logits
        )

    merged = load_for_inference(model_dir / "speech-lora", device="cpu")
    assert "merged" in merged.description
    unmerged = add_pretrained_lora(
        load_phi4mm(model_dir), model_dir / "speech-lora", LoraConfig(rank=8, alpha=16)
    )
    with torch.no_grad():
        torch.testing.assert_close(
            merged.model(**inputs).logits, unmerged.eval()(**inputs).logits, rtol=1e-5, atol=1e-5
        )


def test_pretrained_defaults_to_the_models_own_speech_lora(tiny_model_dir, tiny_speech_adapter, tmp_path):
    from loralab.config import load_config
    from loralab.engine.runtime import Runtime
    from loralab.speech.model.training import build_training_model

    model_dir = shutil.copytree(tiny_model_dir, tmp_path / "model")
    shutil.copytree(tiny_speech_adapter, model_dir / "speech-lora")
    cfg = load_config("pretrained_r320", [f"model.name_or_path={model_dir}", "lora.rank=8", "lora.alpha=16"])
    model = build_training_model(cfg, Runtime.cpu())
    assert any(".lora_B." in n and p.abs().sum() > 0 for n, p in model.named_parameters())


def test_full_size_counts_from_config_alone(tmp_path):
    """Phi-4-multimodal's real architecture on the meta device: the reference notes' LoRA figures."""
    from transformers import Phi4MultimodalConfig

    from loralab.config import load_config
    from loralab.speech.system import count_parameters

    rope = {"rope_type": "longrope", "short_factor": [1.0] * 48, "long_factor": [1.0] * 48}
    Phi4MultimodalConfig(
        num_attention_heads=24, tie_word_embeddings=True, rope_scaling=rope, partial_rotary_factor=0.75
    ).save_pretrained(tmp_path)
    r64 = count_parameters(load_config("paper_r64", [f"model.name_or_path={tmp_path}"]))
    r320 = count_parameters(load_config("pretrained_r320", [f"model.name_or_path={tmp_path}"]))
    unfreeze = count_parameters(load_config("unfreeze_r64", [f"model.name_or_path={tmp_path}"]))
    assert r64["lora"].trainable == 64 * PER_RANK_UNIT and r320["lora"].trainable == 320 * PER_RANK_UNIT
    # Base weights plus Microsoft's two LoRAs (speech r=320, vision r=256): the published ~5.6B.
    base = r64["total"].total - r64["lora"].total
    assert 5.5e9 < base + (320 + 256) * PER_RANK_UNIT < 5.7e9
    assert r64["total"].trainable == r64["lora"].trainable
    assert unfreeze["total"].trainable == sum(
        unfreeze[g].total for g in ("lora", "audio_encoder", "audio_projector")
    )
