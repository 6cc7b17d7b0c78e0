"""The speech system without weights: the preset's full-size model as the trainer builds it, and
fake batches with the collator's layout (prompt masked with -100, answer-only labels)."""

from __future__ import annotations

import dataclasses
import functools

import torch

from loralab.errors import LoralabError
from loralab.estimate.fake import OracleFakeMode, fakeify
from loralab.estimate.inputs import IGNORE_INDEX, Example

TEXT_TOKEN = 1000  # any ordinary token id: values do not change the cost


def build_fake_model(cfg, mode: OracleFakeMode, weight_dtype):
    """(SpeechLoraModel with fake weights, backbone): the preset's architecture from its config alone
    (a local config.json or the published one), frozen weights in ``weight_dtype``, then the
    training set-up of :func:`loralab.speech.model.training.prepare_training_model`."""
    from loralab.speech import system
    from loralab.speech.model import training
    from loralab.speech.model.load import drop_vision_encoder

    try:
        base, backbone, _ = system._meta_model(cfg)
    except LoralabError:
        raise
    except Exception as e:  # noqa: BLE001 - a config transformers cannot build: say which
        raise LoralabError(f"{cfg.name}: cannot build {cfg.model.name_or_path} from its config: {e}") from e
    if backbone.family != "phi4mm":
        raise LoralabError(
            f"{cfg.name}: the estimator supports Phi-4-multimodal speech presets so far, not {backbone.title}"
        )
    for sub in (base.config, base.config.audio_config):
        sub._attn_implementation = "sdpa"
    base.to(weight_dtype)
    drop_vision_encoder(base)
    base.requires_grad_(False)
    # lora.init=pretrained loads Microsoft's adapter: the same shapes as a fresh one of its rank.
    fresh = dataclasses.replace(cfg, lora=dataclasses.replace(cfg.lora, init="fresh"))
    model = training.prepare_training_model(fresh, base, backbone)
    fakeify(model, mode)
    return model, backbone


def audio_frames(samples: int, feature_extractor) -> int:
    return max(0, (samples - feature_extractor.win_length) // feature_extractor.hop_length + 1)


def fake_batch(example: Example, batch_size: int, mode: OracleFakeMode | None, audio_token_id: int, *,
               with_answer: bool = True, text_token: int = TEXT_TOKEN) -> dict:  # fmt: skip
    """``batch_size`` copies of ``example`` as the collator lays it out (Phi-4-multimodal inputs).

    With a ``mode``, token ids, masks and sizes are fake tensors carrying their real values and
    the log-mel features are fake; without one (the validation's real step), all are real."""
    fe = feature_extractor()
    prefix = 3  # <|user|><|APA|> before the audio placeholders
    answer = example.answer_tokens if with_answer else 0
    length = example.prompt_tokens + example.audio_tokens + answer
    ids = torch.full((batch_size, length), text_token, dtype=torch.long)
    ids[:, prefix : prefix + example.audio_tokens] = audio_token_id
    frames = audio_frames(int(example.seconds * 16000), fe)
    batch = {
        "input_ids": ids,
        "attention_mask": torch.ones(batch_size, length, dtype=torch.long),
        "audio_embed_sizes": torch.full((batch_size,), example.audio_tokens, dtype=torch.long),
    }
    if batch_size > 1:
        batch["audio_attention_mask"] = torch.ones(batch_size, frames, dtype=torch.bool)
    if with_answer:
        labels = torch.full((batch_size, length), IGNORE_INDEX, dtype=torch.long)
        labels[:, length - answer :] = text_token
        batch["labels"] = labels
    if mode is None:
        batch["audio_input_features"] = torch.randn(batch_size, frames, fe.feature_size)
        return batch
    batch = {k: mode.constant(v) for k, v in batch.items()}
    with mode:
        batch["audio_input_features"] = torch.empty(batch_size, frames, fe.feature_size)
    return batch


@functools.lru_cache(maxsize=1)
def feature_extractor():
    """Phi-4-multimodal's feature extractor with its defaults (80 mel bins, 10 ms hop, 80 ms per token)."""
    from transformers import Phi4MultimodalFeatureExtractor

    return Phi4MultimodalFeatureExtractor()


def audio_tokens_of(samples: int) -> int:
    from loralab.speech.backbones.phi4mm import audio_embed_count

    return audio_embed_count(samples, feature_extractor())
