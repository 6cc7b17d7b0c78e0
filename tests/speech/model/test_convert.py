"""convert-checkpoint: original remote-code layout -> native layout + PEFT adapters, round trip."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from loralab.errors import ModelLayoutError


def _batch(model_dir, audio_token_id):
    from loralab.speech.model.load import load_feature_extractor, load_tokenizer

    fe = load_feature_extractor(model_dir)
    tok = load_tokenizer(model_dir)
    rng = np.random.default_rng(0)
    audios = [rng.standard_normal(n).astype(np.float32) * 0.1 for n in (12000, 20000)]
    feats = fe(audios, sampling_rate=16000, return_tensors="pt")
    rows = []
    for n in feats["audio_embed_sizes"].tolist():
        rows.append(
            tok("<|user|>")["input_ids"]
            + [audio_token_id] * n
            + tok("the cat<|end|><|assistant|>")["input_ids"]
        )
    width = max(len(r) for r in rows)
    ids = torch.tensor([r + [0] * (width - len(r)) for r in rows])
    mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
    return {"input_ids": ids, "attention_mask": mask, **feats}


def _logits_with_adapter(model_dir, adapter_dir, batch):
    from loralab.config.schema import LoraConfig
    from loralab.speech.model.load import load_phi4mm
    from loralab.speech.model.lora import add_pretrained_lora

    model = add_pretrained_lora(
        load_phi4mm(model_dir), adapter_dir, LoraConfig(init="pretrained", rank=8, alpha=16)
    )
    model.eval()
    with torch.no_grad():
        return model(**batch).logits


def test_round_trip_gives_the_native_models_logits(
    original_layout_dir, tiny_model_dir, tiny_speech_adapter, tmp_path
):
    from safetensors.torch import load_file

    from loralab.speech.model.convert import convert_original_checkpoint

    native_config = json.loads((tiny_model_dir / "config.json").read_text())
    vision = native_config["vision_config"]
    dst = convert_original_checkpoint(
        original_layout_dir,
        tmp_path / "native",
        vision_config={k: vision[k] for k in ("hidden_size", "intermediate_size", "num_hidden_layers",
                                              "num_attention_heads", "image_size", "patch_size")},
    )  # fmt: skip
    converted = json.loads((dst / "config.json").read_text())
    assert converted["model_type"] == "phi4_multimodal"
    assert not {"speech_lora", "vision_lora", "auto_map", "embd_layer"} & set(converted)
    assert converted["audio_config"] == native_config["audio_config"]
    assert converted["eos_token_id"] == native_config["eos_token_id"]
    adapter_cfg = json.loads((dst / "speech-lora" / "adapter_config.json").read_text())
    assert (adapter_cfg["r"], adapter_cfg["lora_alpha"], adapter_cfg["lora_dropout"]) == (8, 16, 0.01)
    vision_cfg = json.loads((dst / "vision-lora" / "adapter_config.json").read_text())
    assert (vision_cfg["r"], vision_cfg["lora_alpha"]) == (4, 8)
    assert "auto_map" not in json.loads((dst / "preprocessor_config.json").read_text())
    # The speech adapter's tensors come out bit for bit, under PEFT's key names.
    assert {
        k: v.tolist() for k, v in load_file(str(dst / "speech-lora" / "adapter_model.safetensors")).items()
    } == {k: v.tolist() for k, v in load_file(str(tiny_speech_adapter / "adapter_model.safetensors")).items()}

    batch = _batch(tiny_model_dir, native_config["audio_config"]["audio_token_id"])
    expected = _logits_with_adapter(tiny_model_dir, tiny_speech_adapter, batch)
    got = _logits_with_adapter(dst, dst / "speech-lora", batch)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)
    # And the adapter does matter: without it the logits differ.
    from loralab.speech.model.load import load_phi4mm

    with torch.no_grad():
        plain = load_phi4mm(dst).eval()(**batch).logits
    assert (plain - expected).abs().max() > 1e-3


def test_original_layout_is_refused_with_the_command_to_run(original_layout_dir):
    from loralab.speech.model.load import load_phi4mm

    with pytest.raises(ModelLayoutError, match="loralab speech convert-checkpoint") as e:
        load_phi4mm(original_layout_dir)
    assert "speech_lora" in str(e.value)


def test_convert_cli_refuses_native_input_and_existing_output(
    original_layout_dir, tiny_model_dir, tmp_path, capsys
):
    from loralab.cli.main import main

    assert main(["speech", "convert-checkpoint", str(tiny_model_dir), str(tmp_path / "x")]) == 2
    assert "not in the original remote-code layout" in capsys.readouterr().err
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "file").write_text("x")
    assert main(["speech", "convert-checkpoint", str(original_layout_dir), str(tmp_path / "busy")]) == 2
    assert "not empty" in capsys.readouterr().err
    assert not (tmp_path / ".tmp-busy").exists()
