"""A tiny random Qwen2-Audio (``Qwen2AudioForConditionalGeneration``) for tests and benchmarks.

Same class, chat layout (``<|im_start|>``/``<|im_end|>``, ``<|audio_bos|><|AUDIO|>...<|audio_eos|>``)
and Whisper feature extractor (80 mel bins, the 30 s window) as the real model family, with a
one-layer encoder and a two-layer Qwen2 decoder: well under a million parameters, nothing downloaded.
"""

from __future__ import annotations

from pathlib import Path

from loralab.speech.model.tiny import CONTROL_TOKENS, train_tiny_tokenizer

# Qwen's ChatML layout (the real tokenizer's template renders string contents the same way).
QWEN_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|AUDIO|>",
    "<|audio_bos|>",
    "<|audio_eos|>",
    *CONTROL_TOKENS,
]


def tiny_qwen2audio_config(tokenizer, hidden_size: int = 64, num_layers: int = 2, audio_hidden: int = 32):
    from transformers import Qwen2AudioConfig

    end_id = tokenizer.convert_tokens_to_ids("<|im_end|>")
    eot_id = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    return Qwen2AudioConfig(
        audio_config={
            "model_type": "qwen2_audio_encoder",
            "num_mel_bins": 80,
            "encoder_layers": 1,
            "encoder_attention_heads": 2,
            "encoder_ffn_dim": audio_hidden * 2,
            "d_model": audio_hidden,
            "max_source_positions": 1500,
        },
        text_config={
            "model_type": "qwen2",
            "vocab_size": len(tokenizer),
            "hidden_size": hidden_size,
            "intermediate_size": hidden_size * 2,
            "num_hidden_layers": num_layers,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "max_position_embeddings": 4096,
            "bos_token_id": eot_id,
            "eos_token_id": end_id,
            "pad_token_id": eot_id,
            "tie_word_embeddings": False,
        },
        audio_token_index=tokenizer.convert_tokens_to_ids("<|AUDIO|>"),
    )


def build_tiny_qwen2audio(
    out_dir: str | Path, seed: int = 0, hidden_size: int = 64, num_layers: int = 2
) -> Path:
    """Write a tiny Qwen2-Audio folder (model, tokenizer, Whisper feature extractor)."""
    import torch
    from transformers import Qwen2AudioForConditionalGeneration, WhisperFeatureExtractor

    out_dir = Path(out_dir)
    tokenizer = train_tiny_tokenizer(special_tokens=SPECIAL_TOKENS, chat_template=QWEN_CHAT_TEMPLATE)
    config = tiny_qwen2audio_config(tokenizer, hidden_size=hidden_size, num_layers=num_layers)
    torch.manual_seed(seed)
    model = Qwen2AudioForConditionalGeneration(config).eval()
    end_id = tokenizer.convert_tokens_to_ids("<|im_end|>")
    model.generation_config.eos_token_id = [end_id, tokenizer.eos_token_id]
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    WhisperFeatureExtractor(feature_size=80).save_pretrained(out_dir)
    return out_dir
