"""A tiny random Phi-4-multimodal with a tokenizer trained on the fly.

Tests, benchmarks and CI use it in place of the 5.6B model: same class
(``Phi4MultimodalForCausalLM``), same chat format and special tokens, same feature
extractor, a few hundred thousand parameters. Nothing is downloaded.
"""

from __future__ import annotations

from pathlib import Path

# Phi-4-multimodal's chat format (the tokenizer's own template on the hub does the same).
from loralab.speech.backbones.phi4mm import CHAT_TEMPLATE as PHI4_CHAT_TEMPLATE

AUDIO_TOKEN = "<|endoftext11|>"
IMAGE_TOKEN = "<|endoftext10|>"
CONTROL_TOKENS = ["<|APA|>", "<|MDD|>"]
SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|user|>",
    "<|assistant|>",
    "<|system|>",
    "<|end|>",
    AUDIO_TOKEN,
    IMAGE_TOKEN,
    *CONTROL_TOKENS,
]

# A minimal vision encoder: audio-only models never use it, but the class builds one.
TINY_VISION_CONFIG = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
    "image_size": 28,
    "crop_size": 28,
    "patch_size": 14,
}

ARPABET = (
    "AA AE AH AO AW AY B CH D DH EH ER EY F G HH IH IY JH K L M N NG OW OY P R S SH T TH UH UW V W Y Z ZH"
).split()


def _training_corpus() -> list[str]:
    """Text that covers prompts, JSON answers, ARPAbet and common English words."""
    from loralab.speech import prompts

    lines = []
    for style in ("paper", "short"):
        for task in ("apa", "mdd"):
            try:
                lines.append(prompts.load_prompt(task, style))
            except Exception:  # prompts not shipped yet: the corpus below still covers the format
                pass
    words = (
        "the a an and of to in is it you that he was for on are as with his they I at be this have from "
        "or one had by word but not what all were we when your can said there use each which she do how "
        "their if will up other about out many then them these so some her would make like him into time "
        "has look two more write go see number no way could people my than first water been call who oil "
        "its now find long down day did get come made may part book cat dog sun red blue green tree house "
        "school friend mother father water morning evening happy quickly slowly open close read sing"
    ).split()
    for i in range(0, len(words), 7):
        lines.append(" ".join(words[i : i + 7]).capitalize() + ".")
    lines.append(" ".join(ARPABET) + " <unk>")
    lines.append(" ".join(p + "0 " + p + "1 " + p + "2" for p in ARPABET))
    lines.append('{"accuracy": 10, "fluency": 9, "prosodic": 8, "total": 7}')
    lines.append("{'accuracy': 6, 'fluency': 5, 'prosodic': 4, 'total': 3, 'completeness': 2} 0 1")
    lines.append('{"word_transcript": "That\'s it.", "phoneme_transcript": "DH AE T S IH T"}')
    return lines * 3


def train_tiny_tokenizer(
    vocab_size: int = 600, special_tokens=SPECIAL_TOKENS, chat_template=PHI4_CHAT_TEMPLATE
):
    """A byte-level BPE tokenizer with Phi-4-MM's special tokens and chat template (or the given
    ones: the first special token is BOS, EOS, pad and unk)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(special_tokens),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_training_corpus(), trainer=trainer)
    first = special_tokens[0]
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=first,
        eos_token=first,
        pad_token=first,
        unk_token=first,
        additional_special_tokens=list(special_tokens[1:]),
    )
    fast.chat_template = chat_template
    return fast


def tiny_config(tokenizer, hidden_size: int = 64, num_layers: int = 2, audio_hidden: int = 32):
    """A Phi4MultimodalConfig of a few hundred thousand parameters."""
    from transformers import Phi4MultimodalConfig

    audio_token_id = tokenizer.convert_tokens_to_ids(AUDIO_TOKEN)
    image_token_id = tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
    end_id = tokenizer.convert_tokens_to_ids("<|end|>")
    eot_id = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    return Phi4MultimodalConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=num_layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        original_max_position_embeddings=4096,
        bos_token_id=eot_id,
        eos_token_id=[eot_id, end_id],
        pad_token_id=eot_id,
        audio_config={
            "hidden_size": audio_hidden,
            "intermediate_size": audio_hidden * 2,
            "num_blocks": 2,
            "num_attention_heads": 2,
            "ext_pw_out_channel": audio_hidden,
            "depthwise_separable_out_channel": audio_hidden,
            "nemo_conv_channels": audio_hidden,
            "audio_token_id": audio_token_id,
        },
        vision_config={**TINY_VISION_CONFIG, "image_token_id": image_token_id},
    )


def build_tiny_phi4mm(out_dir: str | Path, seed: int = 0, hidden_size: int = 64, num_layers: int = 2) -> Path:
    """Write a tiny native-layout Phi-4-multimodal folder (model, tokenizer, feature extractor)."""
    import torch
    from transformers import Phi4MultimodalFeatureExtractor, Phi4MultimodalForCausalLM

    out_dir = Path(out_dir)
    tokenizer = train_tiny_tokenizer()
    config = tiny_config(tokenizer, hidden_size=hidden_size, num_layers=num_layers)
    torch.manual_seed(seed)
    model = Phi4MultimodalForCausalLM(config).eval()
    model.generation_config.eos_token_id = config.eos_token_id
    model.generation_config.pad_token_id = config.pad_token_id
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    Phi4MultimodalFeatureExtractor().save_pretrained(out_dir)
    return out_dir


def build_tiny_speech_adapter(
    model_dir: str | Path, out_dir: str | Path, rank: int = 8, alpha: int = 16, seed: int = 0
) -> Path:
    """A PEFT speech LoRA for the tiny model with random non-zero A and B (as if already trained).

    Stands in for Microsoft's ``speech-lora`` in tests of ``lora.init: pretrained``.
    """
    import torch
    from peft import LoraConfig
    from transformers import Phi4MultimodalForCausalLM

    from loralab.speech.backbones.phi4mm import PHI4_SPEECH_LORA_TARGETS
    from loralab.speech.model.lora import wrap_with_lora

    model = Phi4MultimodalForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    config = LoraConfig(
        r=rank,
        lora_alpha=alpha,
        lora_dropout=0.01,
        target_modules=PHI4_SPEECH_LORA_TARGETS,
        task_type="CAUSAL_LM",
    )
    peft_model = wrap_with_lora(model, config)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if ".lora_" in name:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.05)
    out_dir = Path(out_dir)
    peft_model.save_pretrained(str(out_dir), save_embedding_layers=False)
    return out_dir
