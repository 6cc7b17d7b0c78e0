"""Phi-4-multimodal (transformers' native ``Phi4MultimodalForCausalLM``): the paper's backbone.

Audio: ``Phi4MultimodalFeatureExtractor`` (80 log-mel bins, 10 ms hop), a conformer encoder
and a two-layer projector, one audio embedding per 80 ms, no fixed window. The prompt holds
the audio token (``<|endoftext11|>``) once per embedding. The vision encoder is dropped at
load time (see :mod:`loralab.speech.model.load`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from loralab.errors import LoralabError
from loralab.speech.backbones.base import Backbone

# The LoRA targets of the paper: the text decoder's attention and MLP projections only.
# Plain module names would also hit the audio encoder's o_proj/down_proj.
PHI4_SPEECH_LORA_TARGETS = r"model.layers.\d+.((self_attn.(qkv|o)_proj)|(mlp.(gate_up|down)_proj))"

AUDIO_EMBED = "model.embed_tokens_extend.audio_embed."
# Phi-4's turn layout ('<|user|>...<|end|><|assistant|>'), for a tokenizer without a template.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>' + message['content'] + '<|end|>' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>' }}{% endif %}"
)


def audio_embed_count(num_samples: int, feature_extractor) -> int:
    """Audio embeddings (= audio tokens) for ``num_samples`` samples, as the feature extractor counts.

    frames = (samples - win) // hop + 1; then ceil-divided by the compression and downsample rates.
    """
    fe = feature_extractor
    frames = max(0, (num_samples - fe.win_length) // fe.hop_length + 1) * fe.audio_feat_stride
    n = -(-frames // fe.audio_compression_rate)
    return -(-n // fe.audio_downsample_rate)


def extract_audio_features(feature_extractor, audios: Sequence) -> dict:
    """Log-mel features of a batch, one feature-extractor call per utterance, zero-padded.

    transformers' batched Phi4MultimodalFeatureExtractor fails with "size of tensor a (N)
    must match ... b (N+1)" when a shorter waveform ends within one hop of the longest
    (length-grouped batches make that common), and leaves partial frames past a shorter
    utterance's end non-zero. Per utterance gives the unbatched
    reference features; padding frames are 0 = log(1), as the batched path makes them.
    Keys: audio_input_features, audio_embed_sizes, audio_attention_mask (batches of > 1).
    """
    import torch

    fe = feature_extractor
    singles = [fe([audio], sampling_rate=fe.sampling_rate, return_tensors="pt") for audio in audios]
    out = {"audio_embed_sizes": torch.cat([s["audio_embed_sizes"] for s in singles])}
    if len(singles) == 1:
        out["audio_input_features"] = singles[0]["audio_input_features"]
        return out
    feats = [s["audio_input_features"][0] for s in singles]
    frames = torch.tensor([f.shape[0] for f in feats])
    padded = feats[0].new_zeros(len(feats), int(frames.max()), feats[0].shape[-1])
    for i, f in enumerate(feats):
        padded[i, : f.shape[0]] = f
    out["audio_input_features"] = padded
    out["audio_attention_mask"] = torch.arange(padded.shape[1])[None, :] < frames[:, None]
    return out


class Phi4MultimodalBackbone(Backbone):
    family = "phi4mm"
    title = "Phi-4-multimodal"
    model_types = ("phi4_multimodal", "phi4mm")
    presets = ("paper_r64", "pretrained_r320", "unfreeze_r64")
    default_lora_targets = PHI4_SPEECH_LORA_TARGETS
    audio_encoder_prefixes = (AUDIO_EMBED + "encoder.",)
    audio_projector_prefixes = (AUDIO_EMBED + "up_proj_for_speech.", AUDIO_EMBED + "down_proj_for_speech.")
    # The image encoder and the projector used when audio comes with an image: unused for speech.
    vision_prefixes = (
        "model.embed_tokens_extend.image_embed.",
        AUDIO_EMBED + "up_proj_for_vision_speech.",
        AUDIO_EMBED + "down_proj_for_vision_speech.",
    )
    audio_input_keys = ("audio_input_features", "audio_embed_sizes", "audio_attention_mask")

    def check_model_dir(self, model_dir: Path, config: dict, check_weights: bool = True) -> None:
        from loralab.speech.model.layout import check_native_layout

        check_native_layout(model_dir, config, check_weights=check_weights)

    def config_from_dict(self, config: dict):
        from transformers import Phi4MultimodalConfig

        return Phi4MultimodalConfig.from_dict(config)

    def model_class(self):
        from transformers import Phi4MultimodalForCausalLM

        return Phi4MultimodalForCausalLM

    def load(self, model_dir: Path, *, device, dtype, attn_implementation: str):
        from loralab.speech.model.weights import load_phi4mm

        return load_phi4mm(model_dir, device=device, dtype=dtype, attn_implementation=attn_implementation)

    def load_feature_extractor(self, model_dir: Path):
        from transformers import Phi4MultimodalFeatureExtractor

        if not (Path(model_dir) / "preprocessor_config.json").is_file():
            raise LoralabError(
                f"{model_dir} has no preprocessor_config.json (the audio feature extractor settings); "
                "a native Phi-4-multimodal folder ships one"
            )
        return Phi4MultimodalFeatureExtractor.from_pretrained(str(model_dir))

    def audio_token_id(self, model_config) -> int:
        return int(model_config.audio_config.audio_token_id)

    def default_chat_template(self) -> str:
        return CHAT_TEMPLATE

    def removed_parameters(self, model) -> int:
        from loralab.speech.model.weights import VisionEncoderRemoved

        stub = model.model.embed_tokens_extend.image_embed
        return stub.removed_parameters if isinstance(stub, VisionEncoderRemoved) else 0

    def min_samples(self, feature_extractor) -> int:
        return int(feature_extractor.win_length)

    def audio_features(self, feature_extractor, audios: Sequence) -> tuple[dict, list[int]]:
        batch = extract_audio_features(feature_extractor, audios)
        return batch, [int(n) for n in batch["audio_embed_sizes"].tolist()]

    def num_audio_tokens(self, num_samples: int, feature_extractor) -> int:
        return audio_embed_count(num_samples, feature_extractor)
