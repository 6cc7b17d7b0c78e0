"""Backbones for tests and benchmarks, built from a config: no network, no downloads.

* :func:`build_tiny_backbone` writes a random Qwen2/Llama causal LM (a few thousand
  parameters) plus a character-level tokenizer to a folder that
  ``model.name_or_path`` can point at, exactly like a real checkpoint.
* :func:`known_backbone_config` gives the published config of the presets' backbones, so
  parameter counts (``loralab compare``) and the GPU benchmark work without the hub.
"""

from __future__ import annotations

from pathlib import Path


def known_backbone_config(name: str):
    """A transformers config for a preset's backbone, offline (see loralab.engine.known_models)."""
    from loralab.engine.known_models import published_config

    return published_config(name)


def char_tokenizer():
    """One token per character (letters, digits, a few symbols) plus <pad>/<unk>/<s>/</s>."""
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    symbols = [chr(c) for c in range(ord("A"), ord("Z") + 1)] + [
        chr(c) for c in range(ord("a"), ord("z") + 1)
    ]
    symbols += list("0123456789 .,-*")
    specials = ["<pad>", "<unk>", "<s>", "</s>"]
    vocab = {tok: i for i, tok in enumerate(specials + symbols)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", unk_token="<unk>", bos_token="<s>", eos_token="</s>"
    )


def build_tiny_backbone(
    out_dir: str | Path,
    *,
    arch: str = "qwen2",
    hidden_size: int = 32,
    num_layers: int = 2,
    num_heads: int = 4,
    seed: int = 0,
) -> Path:
    """A random causal LM folder (safetensors + config + char tokenizer); returns the folder."""
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig, Qwen2Config

    out_dir = Path(out_dir)
    tokenizer = char_tokenizer()
    common = dict(
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=max(1, num_heads // 2),
        vocab_size=len(tokenizer),
        max_position_embeddings=2048,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=True,
    )
    config = {"qwen2": Qwen2Config, "llama": LlamaConfig}[arch](**common)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir


def build_random_backbone(out_dir: str | Path, config, dtype=None, seed: int = 0) -> Path:
    """A randomly initialised causal LM of ``config`` (e.g. :func:`known_backbone_config`'s
    Qwen2.5-0.5B dimensions) saved with the character tokenizer: a full-size stand-in for
    speed measurements, no download."""
    import torch
    from transformers import AutoModelForCausalLM

    out_dir = Path(out_dir)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    model.save_pretrained(out_dir)
    char_tokenizer().save_pretrained(out_dir)
    return out_dir
