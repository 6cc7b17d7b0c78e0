"""Fixtures of the model tests: a tiny speech adapter, a tiny model in the ORIGINAL remote-code layout."""

from __future__ import annotations

import json
import re
import shutil

import pytest

ORIGINAL_AUTO_MAP = {
    "AutoConfig": "configuration_phi4mm.Phi4MMConfig",
    "AutoModelForCausalLM": "modeling_phi4mm.Phi4MMForCausalLM",
}
# Native -> original names, written out here independently of the converter's own table.
NATIVE_TO_ORIGINAL = [
    (r"(encoders\.\d+\.feed_forward_(in|out))\.gate_up_proj\.", r"\1.net.0.linear."),
    (r"(encoders\.\d+\.feed_forward_(in|out))\.down_proj\.", r"\1.net.2."),
    (r"(encoders\.\d+\.self_attn)\.(q|k|v)_proj\.", r"\1.linear_\2."),
    (r"(encoders\.\d+\.self_attn)\.o_proj\.", r"\1.linear_out."),
    (r"audio_embed\.up_proj_for_speech\.", "audio_embed.audio_projection.speech.0."),
    (r"audio_embed\.down_proj_for_speech\.", "audio_embed.audio_projection.speech.2."),
    (r"audio_embed\.up_proj_for_vision_speech\.", "audio_embed.audio_projection.vision.0."),
    (r"audio_embed\.down_proj_for_vision_speech\.", "audio_embed.audio_projection.vision.2."),
    (r"image_embed\.img_projection_up\.", "image_embed.img_projection.0."),
    (r"image_embed\.img_projection_down\.", "image_embed.img_projection.2."),
    (r"image_embed\.global_img_feature_extensor$", "image_embed.glb_GN"),
    (r"image_embed\.sub_img_feature_extensor$", "image_embed.sub_GN"),
]


def original_name(native: str) -> str:
    for pattern, replacement in NATIVE_TO_ORIGINAL:
        native = re.sub(pattern, replacement, native)
    return native


def _adapter_tensors(adapter_dir) -> dict:
    from safetensors.torch import load_file

    prefix = "base_model.model."
    return {k[len(prefix) :]: v for k, v in load_file(str(adapter_dir / "adapter_model.safetensors")).items()}


def write_original_layout(native_dir, speech_dir, vision_dir, out_dir, speech=(8, 16), vision=(4, 8)):
    """A model folder as Microsoft's remote code lays it out: LoRAs baked in (base_layer., lora_A.speech),
    phi4mm config with embd_layer/audio_processor/speech_lora/vision_lora/auto_map, two shards."""
    from safetensors.torch import load_file, save_file

    native = json.loads((native_dir / "config.json").read_text())
    weights = load_file(str(native_dir / "model.safetensors"))
    adapters = {"speech": _adapter_tensors(speech_dir), "vision": _adapter_tensors(vision_dir)}
    lora_modules = {k.rsplit(".lora_", 1)[0] for k in adapters["speech"]}
    original = {}
    for key, tensor in weights.items():
        module, leaf = key.rsplit(".", 1)
        original[f"{module}.base_layer.{leaf}" if module in lora_modules else original_name(key)] = tensor
    for which, tensors in adapters.items():
        for key, tensor in tensors.items():
            module, ab = key.rsplit(".lora_", 1)
            original[f"{module}.lora_{ab[0]}.{which}.weight"] = tensor
    out_dir.mkdir(parents=True)
    keys = sorted(original)
    halves = {"model-00001-of-00002.safetensors": keys[::2], "model-00002-of-00002.safetensors": keys[1::2]}
    weight_map = {}
    for file, names in halves.items():
        save_file(
            {k: original[k].contiguous() for k in names}, str(out_dir / file), metadata={"format": "pt"}
        )
        weight_map.update(dict.fromkeys(names, file))
    (out_dir / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {}, "weight_map": weight_map})
    )

    audio = native["audio_config"]
    config = {
        k: v
        for k, v in native.items()
        if k
        not in ("audio_config", "vision_config", "architectures", "model_type", "rope_parameters", "dtype")
    }
    config.update(
        model_type="phi4mm",
        architectures=["Phi4MMForCausalLM"],
        auto_map=ORIGINAL_AUTO_MAP,
        eos_token_id=native["bos_token_id"],
        torch_dtype="float32",
        rope_theta=native["rope_parameters"]["rope_theta"],
        partial_rotary_factor=native["rope_parameters"]["partial_rotary_factor"],
        rope_scaling=None,
        full_attn_mod=1,
        img_processor=None,
        embd_layer={
            "embedding_cls": "image_audio",
            "audio_embd_layer": {"embedding_cls": "audio", "downsample_rate": audio["downsample_rate"]},
            "image_embd_layer": {
                "embedding_cls": "tune_image",
                "crop_size": native["vision_config"]["crop_size"],
            },
        },
        audio_processor={
            "name": "cascades",
            "config": {
                "activation": audio["activation"],
                "activation_checkpointing": {"interval": 1, "module": "transformer", "offload": False},
                "attention_dim": audio["hidden_size"],
                "attention_heads": audio["num_attention_heads"],
                "batch_norm": False,
                "bias_in_glu": True,
                "causal": True,
                "chunk_size": audio["chunk_size"],
                "cnn_layer_norm": True,
                "conv_activation": audio["conv_activation"],
                "conv_glu_type": audio["conv_glu_type"],
                "depthwise_multiplier": audio["depthwise_multiplier"],
                "depthwise_seperable_out_channel": audio["depthwise_separable_out_channel"],
                "dropout_rate": audio["dropout_rate"],
                "encoder_embedding_config": {"input_size": audio["input_size"]},
                "ext_pw_kernel_size": 1,
                "ext_pw_out_channel": audio["ext_pw_out_channel"],
                "input_layer": "nemo_conv",
                "input_size": audio["input_size"],
                "kernel_size": audio["kernel_size"],
                "left_chunk": audio["left_chunk"],
                "linear_units": audio["intermediate_size"],
                "nemo_conv_settings": {"conv_channels": audio["nemo_conv_channels"]},
                "num_blocks": audio["num_blocks"],
                "relative_attention_bias_args": {
                    "t5_bias_max_distance": audio["bias_max_distance"],
                    "type": "t5",
                },
                "time_reduction": audio["time_reduction"],
            },
        },
        speech_lora={"r": speech[0], "lora_alpha": speech[1], "dp": 0.01, "layer": "layers.*proj"},
        vision_lora={"r": vision[0], "lora_alpha": vision[1], "dp": 0.0, "layer": "layers.*proj"},
    )
    (out_dir / "config.json").write_text(json.dumps(config, indent=2))
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        if (native_dir / name).is_file():
            shutil.copy2(native_dir / name, out_dir / name)
    (out_dir / "preprocessor_config.json").write_text(
        json.dumps(
            {
                "auto_map": {"AutoFeatureExtractor": "processing_phi4mm.Phi4MMAudioFeatureExtractor"},
                "feature_extractor_type": "Phi4MMAudioFeatureExtractor",
                "processor_class": "Phi4MMProcessor",
                "audio_compression_rate": 8,
                "audio_downsample_rate": 1,
                "audio_feat_stride": 1,
                "dynamic_hd": 36,
            }
        )
    )
    return out_dir


@pytest.fixture(scope="session")
def original_layout_dir(tiny_model_dir, tiny_speech_adapter, tmp_path_factory):
    """The tiny model + speech LoRA (r=8) + a vision LoRA (r=4) in the original remote-code layout."""
    from loralab.speech.model.tiny import build_tiny_speech_adapter

    vision = build_tiny_speech_adapter(
        tiny_model_dir, tmp_path_factory.mktemp("adapter") / "vision", 4, 8, seed=1
    )
    out = tmp_path_factory.mktemp("original") / "Phi-4-multimodal-instruct"
    return write_original_layout(tiny_model_dir, tiny_speech_adapter, vision, out)
