"""The speech demo model: a Qwen2-Audio-class model built from real, small pretrained parts.

``Qwen2AudioForConditionalGeneration`` (the class of Qwen2-Audio-7B) whose audio tower is the
real OpenAI Whisper tiny.en encoder (converted offline by :mod:`loralab.demo.whisper`) and
whose language model is the real SmolLM2-135M-Instruct (:mod:`loralab.demo.smollm`), with a
fresh linear projector between them (384 -> 576). Both parts hear and speak English before
any training: what the demo trains is the bridge (the projector) and a LoRA on the decoder.

Qwen2-Audio's encoder is Whisper's (same module names), plus an average pool of 2 before its
final LayerNorm: one embedding per 40 ms. Whisper's weights load into it one to one.

The projector starts like the earlier demo's audio path (measured there): its output scaled
to the RMS of SmolLM2's token embeddings, its bias the embedding of the newline token, which
the decoder already attends to.
"""

from __future__ import annotations

from pathlib import Path

from loralab.demo.smollm import (
    BUILD_VERSIONS,
    CONTROL_TOKENS,
    PAD_TOKEN,
    _is_complete,
    _write_atomically,
    cache_root,
    ensure_smollm2_llama,
    without_default_system_prompt,
)
from loralab.errors import LoralabError

FOLDER = "demo-qwen2audio-whisper-smollm2"
AUDIO_TOKENS = ["<|AUDIO|>", "<|audio_bos|>", "<|audio_eos|>"]
BUILD_VERSIONS[FOLDER] = 1  # bumped when what the build writes changes


def add_demo_tokens(tokenizer):
    """SmolLM2's tokenizer plus Qwen2-Audio's audio tokens and the control tokens (in place)."""
    tokenizer.add_special_tokens({"additional_special_tokens": [*CONTROL_TOKENS, *AUDIO_TOKENS]})
    tokenizer.pad_token = PAD_TOKEN
    if isinstance(tokenizer.chat_template, str):
        tokenizer.chat_template = without_default_system_prompt(tokenizer.chat_template)
    return tokenizer


def demo_config(whisper_config, llama_config, tokenizer):
    """Qwen2AudioConfig: Whisper's encoder sizes, SmolLM2's decoder, the new vocabulary."""
    from transformers import Qwen2AudioConfig

    text = llama_config.to_dict()
    text.update(vocab_size=len(tokenizer), tie_word_embeddings=False, pad_token_id=tokenizer.pad_token_id)
    end_id = tokenizer.convert_tokens_to_ids("<|im_end|>")
    text["eos_token_id"] = end_id
    w = whisper_config
    return Qwen2AudioConfig(
        audio_config={
            "model_type": "qwen2_audio_encoder",
            "num_mel_bins": w.num_mel_bins,
            "encoder_layers": w.encoder_layers,
            "encoder_attention_heads": w.encoder_attention_heads,
            "encoder_ffn_dim": w.encoder_ffn_dim,
            "d_model": w.d_model,
            "max_source_positions": w.max_source_positions,
            "scale_embedding": w.scale_embedding,
            "activation_function": w.activation_function,
        },
        text_config=text,
        audio_token_index=tokenizer.convert_tokens_to_ids("<|AUDIO|>"),
    )


def _load_parts(model, whisper, llama, tokenizer) -> None:
    """Whisper's encoder into the audio tower, SmolLM2 into the language model (strict)."""
    import torch

    encoder_state = whisper.model.encoder.state_dict()
    result = model.model.audio_tower.load_state_dict(encoder_state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise LoralabError(
            f"Whisper -> Qwen2-Audio encoder: missing {result.missing_keys[:5]}, unexpected {result.unexpected_keys[:5]}"
        )
    text_state = {
        k.removeprefix("model."): v for k, v in llama.state_dict().items() if k.startswith("model.")
    }
    old = text_state["embed_tokens.weight"]
    embed = old.new_empty(len(tokenizer), old.shape[1])
    embed[: old.shape[0]] = old
    embed[old.shape[0] :] = old.mean(dim=0, keepdim=True)  # as transformers' resizing does
    text_state["embed_tokens.weight"] = embed
    result = model.model.language_model.load_state_dict(text_state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise LoralabError(
            f"SmolLM2 -> Qwen2-Audio decoder: missing {result.missing_keys[:5]}, unexpected {result.unexpected_keys[:5]}"
        )
    with torch.no_grad():
        model.lm_head.weight.copy_(embed)  # SmolLM2 ties them; a copy here (LoRA never touches either)


def init_projector(model, tokenizer, seed: int = 0) -> None:
    """Projector output at the RMS of the token embeddings, bias = the newline's embedding."""
    import torch

    embed = model.model.language_model.embed_tokens.weight
    newline = tokenizer("\n", add_special_tokens=False)["input_ids"]
    if len(newline) != 1:
        raise LoralabError(f"SmolLM2's tokenizer splits a newline into {len(newline)} tokens, expected 1")
    linear = model.model.multi_modal_projector.linear
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        linear.weight.normal_(0.0, 1.0, generator=generator)
        probe = torch.randn(4096, linear.in_features, generator=generator)  # LayerNorm output: unit scale
        out_rms = float((probe @ linear.weight.T).pow(2).mean().sqrt())
        linear.weight.mul_(float(embed.pow(2).mean().sqrt()) / out_rms)
        linear.bias.copy_(embed[newline[0]])


def build_demo_model(whisper_dir: Path, llama_dir: Path, out_dir: Path, seed: int = 0) -> None:
    """Write the demo model folder (model, tokenizer, Whisper feature extractor) into ``out_dir``."""
    import torch
    from transformers import (
        AutoModelForCausalLM,
        AutoTokenizer,
        Qwen2AudioForConditionalGeneration,
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
    )

    whisper = WhisperForConditionalGeneration.from_pretrained(whisper_dir, dtype=torch.float32)
    llama = AutoModelForCausalLM.from_pretrained(llama_dir, dtype=torch.float32)
    tokenizer = add_demo_tokens(AutoTokenizer.from_pretrained(llama_dir))
    config = demo_config(whisper.config, llama.config, tokenizer)
    torch.manual_seed(seed)
    model = Qwen2AudioForConditionalGeneration(config).eval()
    _load_parts(model, whisper, llama, tokenizer)
    init_projector(model, tokenizer, seed)
    model.generation_config.eos_token_id = [config.text_config.eos_token_id]
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.bos_token_id = tokenizer.convert_tokens_to_ids("<|im_start|>")
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    WhisperFeatureExtractor.from_pretrained(whisper_dir).save_pretrained(out_dir)


def ensure_demo_qwen2audio(root: str | Path | None = None, rebuild: bool = False, seed: int = 0) -> Path:
    """The speech demo model folder, built once from the converted Whisper and SmolLM2."""
    from loralab.demo.whisper import ensure_whisper_tiny_en

    folder = Path(root or cache_root()) / FOLDER
    if _is_complete(folder) and not rebuild:
        return folder
    whisper_dir = ensure_whisper_tiny_en(root)
    llama_dir = ensure_smollm2_llama(root)
    print(
        f"Building the speech demo model (Whisper tiny.en encoder + SmolLM2, Qwen2-Audio class) in {folder}"
    )
    return _write_atomically(folder, lambda tmp: build_demo_model(whisper_dir, llama_dir, tmp, seed))
