"""Backbone configs that work offline: a local folder, the Hugging Face cache, or the
published architecture of the models our presets name.

``loralab compare`` and the parameter counters of both systems use these, so a user can
see what a preset trains before any download, and an unreachable hub never costs minutes
of retries. Weights are never involved: the configs build models on the meta device.
"""

from __future__ import annotations

from pathlib import Path

# Text-model dimensions from each model's published config.json on the hub. The classes'
# other defaults (Phi-4-MM's audio and vision encoders) follow the same models.
PUBLISHED_CONFIGS: dict[str, tuple[str, dict]] = {
    "microsoft/Phi-4-multimodal-instruct": (
        "Phi4MultimodalConfig",
        dict(
            hidden_size=3072,
            intermediate_size=8192,
            num_hidden_layers=32,
            num_attention_heads=24,
            num_key_value_heads=8,
            vocab_size=200064,
            tie_word_embeddings=True,
            # The released audio_processor.config says t5_bias_max_distance 500 (the class default
            # is 1000: 16,000 relative-bias parameters too many).
            audio_config=dict(bias_max_distance=500),
        ),
    ),
    # Whisper-large-v3-style encoder (the class defaults: 32 layers, d_model 1280, 128 mels) + Qwen-7B.
    "Qwen/Qwen2-Audio-7B-Instruct": (
        "Qwen2AudioConfig",
        dict(
            audio_token_index=151646,
            text_config=dict(
                model_type="qwen2",
                hidden_size=4096,
                intermediate_size=11008,
                num_hidden_layers=32,
                num_attention_heads=32,
                num_key_value_heads=32,
                vocab_size=156032,
                max_position_embeddings=8192,
                rope_theta=10000.0,
                rms_norm_eps=1e-5,
                tie_word_embeddings=False,
            ),
        ),
    ),
    "Qwen/Qwen2.5-0.5B": (
        "Qwen2Config",
        dict(
            hidden_size=896,
            intermediate_size=4864,
            num_hidden_layers=24,
            num_attention_heads=14,
            num_key_value_heads=2,
            vocab_size=151936,
            max_position_embeddings=32768,
            rope_theta=1000000.0,
            rms_norm_eps=1e-6,
            tie_word_embeddings=True,
        ),
    ),
    # Base and instruct share the architecture (Llama; 9 heads of 64, 3 KV heads).
    **{
        name: (
            "LlamaConfig",
            dict(
                hidden_size=576,
                intermediate_size=1536,
                num_hidden_layers=30,
                num_attention_heads=9,
                num_key_value_heads=3,
                vocab_size=49152,
                max_position_embeddings=8192,
                rope_theta=100000.0,
                rms_norm_eps=1e-5,
                tie_word_embeddings=True,
            ),
        )
        for name in ("HuggingFaceTB/SmolLM2-135M", "HuggingFaceTB/SmolLM2-135M-Instruct")
    },
}


# LoRA adapters a released checkpoint ships (folder, rank, target regex): the hub counts them in
# the model's parameter total (Phi-4-multimodal-instruct's 5.57B holds both; the original layout
# bakes them into the weights, the native one keeps them in these folders).
_PHI4_DECODER = r"model.layers.\d+.((self_attn.(qkv|o)_proj)|(mlp.(gate_up|down)_proj))"
RELEASED_ADAPTERS: dict[str, tuple[tuple[str, int, str], ...]] = {
    "microsoft/Phi-4-multimodal-instruct": (
        ("speech-lora", 320, _PHI4_DECODER),
        ("vision-lora", 256, _PHI4_DECODER),
    ),
}


def published_config(name: str):
    """The transformers config of a model in :data:`PUBLISHED_CONFIGS`, or None."""
    if name not in PUBLISHED_CONFIGS:
        return None
    import transformers

    class_name, fields = PUBLISHED_CONFIGS[name]
    return getattr(transformers, class_name)(**fields)


def local_model_dir(name_or_path: str, revision: str | None = None) -> Path | None:
    """The model as a local folder: the folder itself, or its snapshot in the Hugging Face
    cache. None when neither exists. Never touches the network."""
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(name_or_path, revision=revision, local_files_only=True))
    except Exception:  # noqa: BLE001 - not cached (or not a valid repo id): no local copy
        return None


def offline_config(name_or_path: str, revision: str | None = None, trust_remote_code: bool = False):
    """(transformers config, where it came from) without the network: the config.json of a
    local folder or of the cached snapshot, else the published architecture
    (:data:`PUBLISHED_CONFIGS`). The one lookup every parameter count and estimate uses, so
    they all describe the same model. LookupError (saying why) when there is none offline."""
    local = local_model_dir(name_or_path, revision)
    if local is not None:
        from transformers import AutoConfig

        if not (local / "config.json").is_file():
            raise LookupError(f"{local} has no config.json")
        return AutoConfig.from_pretrained(local, trust_remote_code=trust_remote_code), str(
            local / "config.json"
        )
    published = published_config(name_or_path)
    if published is not None:
        return published, f"published architecture of {name_or_path}"
    raise LookupError(
        f"model config not available offline: '{name_or_path}' is neither a folder nor in the Hugging Face cache"
    )


def available_offline(name_or_path: str, revision: str | None = None) -> bool:
    """Whether a config for this model can be had without the network."""
    return local_model_dir(name_or_path, revision) is not None or name_or_path in PUBLISHED_CONFIGS
