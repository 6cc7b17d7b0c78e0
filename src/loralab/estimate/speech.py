"""The speech system without weights: the preset's full-size model as the trainer builds it, and
fake batches with the collator's layout (prompt masked with -100, answer-only labels)."""

from __future__ import annotations

import dataclasses
import functools

import torch

from loralab.errors import LoralabError
from loralab.estimate.fake import OracleFakeMode, fakeify
from loralab.estimate.inputs import IGNORE_INDEX, SAMPLE_RATE, Example

TEXT_TOKEN = 1000  # any ordinary token id: values do not change the cost


def _meta_base(cfg, weight_dtype):
    """(frozen base model on the meta device in ``weight_dtype``, backbone) as the backbone loads it:
    from the config alone (a local config.json or the published one), SDPA, vision encoder dropped."""
    from loralab.speech import system
    from loralab.speech.model.load import drop_vision_encoder

    try:
        base, backbone, _ = system._meta_model(cfg)
    except LoralabError:
        raise
    except Exception as e:  # noqa: BLE001 - a config transformers cannot build: say which
        raise LoralabError(f"{cfg.name}: cannot build {cfg.model.name_or_path} from its config: {e}") from e
    base.config._attn_implementation = "sdpa"
    for name in ("audio_config", "text_config"):
        if getattr(base.config, name, None) is not None:
            getattr(base.config, name)._attn_implementation = "sdpa"
    base.to(weight_dtype)
    if backbone.family == "phi4mm":
        drop_vision_encoder(base)
    base.requires_grad_(False)
    return base, backbone


def build_fake_model(cfg, mode: OracleFakeMode, weight_dtype):
    """(SpeechLoraModel with fake weights, backbone): the base with the training set-up of
    :func:`loralab.speech.model.training.prepare_training_model`."""
    from loralab.speech.model import training

    base, backbone = _meta_base(cfg, weight_dtype)
    # lora.init=pretrained loads Microsoft's adapter: the same shapes as a fresh one of its rank.
    # The audio-encoder cache hashes the features (data fake tensors lack); an epoch-1 step runs
    # the encoder on every clip anyway.
    fresh = dataclasses.replace(
        cfg,
        lora=dataclasses.replace(cfg.lora, init="fresh"),
        model=dataclasses.replace(cfg.model, cache_audio_encoder=False),
    )
    model = training.prepare_training_model(fresh, base, backbone)
    fakeify(model, mode)
    return model, backbone


def build_fake_inference_model(cfg, mode: OracleFakeMode, weight_dtype):
    """The model ``loralab evaluate`` generates with: the adapter merged into the base weights
    (the same shapes as the base) and unfrozen modules loaded into them, all in ``weight_dtype``."""
    base, _ = _meta_base(cfg, weight_dtype)
    base.eval()
    fakeify(base, mode)
    return base


def audio_frames(samples: int, feature_extractor) -> int:
    return max(0, (samples - feature_extractor.win_length) // feature_extractor.hop_length + 1)


def fake_batch(example: Example, batch_size: int, mode: OracleFakeMode | None, backbone, audio_token_id: int, *,
               with_answer: bool = True, text_token: int = TEXT_TOKEN, mel_bins: int | None = None) -> dict:  # fmt: skip
    """``batch_size`` copies of ``example`` as the collator lays it out for ``backbone``'s family.

    With a ``mode``, token ids, masks and sizes are fake tensors carrying their real values and
    the log-mel features are fake; without one (the validation's real step), all are real."""
    prefix = 3  # <|user|><|APA|> before the audio placeholders
    answer = example.answer_tokens if with_answer else 0
    length = example.prompt_tokens + example.audio_tokens + answer
    ids = torch.full((batch_size, length), text_token, dtype=torch.long)
    ids[:, prefix : prefix + example.audio_tokens] = audio_token_id
    batch = {"input_ids": ids, "attention_mask": torch.ones(batch_size, length, dtype=torch.long)}
    if with_answer:
        labels = torch.full((batch_size, length), IGNORE_INDEX, dtype=torch.long)
        labels[:, length - answer :] = text_token
        batch["labels"] = labels
    audio, shape = _audio_inputs(backbone.family, example, batch_size, mel_bins)
    batch.update(audio)
    if mode is None:
        batch["input_features" if backbone.family == "qwen2audio" else "audio_input_features"] = torch.randn(
            shape
        )
        return batch
    batch = {k: mode.constant(v) for k, v in batch.items()}
    with mode:
        batch["input_features" if backbone.family == "qwen2audio" else "audio_input_features"] = torch.empty(
            shape
        )
    return batch


def _audio_inputs(family: str, example: Example, batch_size: int, mel_bins: int | None) -> tuple[dict, tuple]:
    """(audio tensors with values, shape of the features) for ``batch_size`` clips of ``example``;
    ``mel_bins``: the audio encoder's (Whisper: 128 for Qwen2-Audio, 80 for tiny.en)."""
    fe = feature_extractor(family)
    samples = int(example.seconds * SAMPLE_RATE)
    if family == "qwen2audio":  # Whisper: a fixed 30 s window, the clip's frames marked
        window = fe.nb_max_frames
        mask = torch.zeros(batch_size, window, dtype=torch.long)
        mask[:, : min(-(-samples // fe.hop_length), window)] = 1
        return {"feature_attention_mask": mask}, (batch_size, mel_bins or fe.feature_size, window)
    frames = audio_frames(samples, fe)
    audio = {"audio_embed_sizes": torch.full((batch_size,), example.audio_tokens, dtype=torch.long)}
    if batch_size > 1:
        audio["audio_attention_mask"] = torch.ones(batch_size, frames, dtype=torch.bool)
    return audio, (batch_size, frames, fe.feature_size)


@functools.lru_cache(maxsize=2)
def feature_extractor(family: str = "phi4mm"):
    """The family's feature extractor with the published model's settings (no files needed):
    Phi-4-multimodal's (80 mel bins, 10 ms hop, 80 ms per token), Qwen2-Audio's Whisper (128 bins)."""
    if family == "qwen2audio":
        from transformers import WhisperFeatureExtractor

        return WhisperFeatureExtractor(feature_size=128)
    from transformers import Phi4MultimodalFeatureExtractor

    return Phi4MultimodalFeatureExtractor()


def audio_tokens_counter(backbone):
    """samples -> audio embeddings (= audio placeholder tokens), as the backbone counts them."""
    fe = feature_extractor(backbone.family)
    return lambda samples: backbone.num_audio_tokens(samples, fe)


def _mel_bins(model) -> int | None:
    config = model.causal_lm.config if hasattr(model, "causal_lm") else model.config
    audio = getattr(config, "audio_config", None)
    return getattr(audio, "num_mel_bins", None)


def estimate_speech(cfg, batch_size: int, mfu: float, weight_dtype, autocast_dtype) -> dict:
    """``loralab estimate`` of a speech config: one training step on the longest and the median
    batch of each task, the epoch's FLOPs, and evaluation (:func:`estimate_evaluation`)."""
    from loralab.estimate import inputs
    from loralab.estimate.core import assumptions, epoch_flops, memory_breakdown, precision_names, timing
    from loralab.estimate.fake import AllocationTracker
    from loralab.estimate.measure import measure_training
    from loralab.speech.model.training import answer_only_loss

    mode = OracleFakeMode()
    model, backbone = build_fake_model(cfg, mode, weight_dtype)
    audio_id = backbone.audio_token_id(model.causal_lm.config)
    tasks = list(cfg.speech.tasks)
    examples = inputs.speech_examples(
        tasks, cfg.speech.prompt_style, audio_tokens_counter(backbone), shares=cfg.speech.task_shares,
        reference=cfg.speech.prompt_reference,
    )  # fmt: skip
    chosen = [inputs.longest(examples, t) for t in tasks] + [
        inputs.median_example(examples, t) for t in tasks
    ]
    batches = [fake_batch(e, batch_size, mode, backbone, audio_id, mel_bins=_mel_bins(model)) for e in chosen]
    with mode:
        costs, optimizer_bytes = measure_training(
            model, answer_only_loss, batches, cfg.training, autocast_dtype, AllocationTracker(), len(tasks)
        )
    points = {t: [(chosen[i].length, costs[i].flops), (chosen[i + len(tasks)].length, costs[i + len(tasks)].flops)]
              for i, t in enumerate(tasks)}  # fmt: skip
    flops, micro_batches = epoch_flops(examples, batch_size, cfg.training, points)
    result = {
        "preset": cfg.name,
        "model": cfg.model.name_or_path,
        "batch_size": batch_size,
        "gradient_accumulation": cfg.training.gradient_accumulation,
        "precision": precision_names(weight_dtype, autocast_dtype),
        "activation_checkpointing": bool(cfg.model.gradient_checkpointing),
        **memory_breakdown(model, optimizer_bytes, max(c.peak_bytes for c in costs)),
        "peak_batch": {
            t: {"seconds": round(chosen[i].seconds, 2), "tokens": chosen[i].length}
            for i, t in enumerate(tasks)
        },  # fmt: skip
        **timing(flops, micro_batches, mfu),
        "evaluation": estimate_evaluation(cfg, backbone, mode, audio_id, weight_dtype, mfu),
        "assumptions": assumptions(mfu),
    }
    result["fits_24gb"] = result["peak_gb"] <= 24.0
    return result


def estimate_evaluation(cfg, backbone, mode, audio_id: int, weight_dtype, mfu: float) -> dict:
    """Generation as ``loralab evaluate`` runs it: adapter merged, weights in ``weight_dtype``, no autocast."""
    from loralab.estimate import hardware, inputs
    from loralab.estimate.core import EPOCH_UTTERANCES, gb
    from loralab.estimate.fake import AllocationTracker
    from loralab.estimate.measure import measure_generation

    lm = build_fake_inference_model(cfg, mode, weight_dtype)
    size = cfg.evaluation.batch_size
    tasks = list(cfg.speech.tasks)
    test = inputs.speech_examples(
        tasks,
        cfg.speech.prompt_style,
        audio_tokens_counter(backbone),
        seed=1,
        reference=cfg.speech.prompt_reference,
    )
    decoder_bytes = sum(
        p.untyped_storage().nbytes()
        for name, p in lm.named_parameters()
        if not name.startswith(backbone.audio_path_prefixes())
    )
    peak, flops, seconds = 0, 0.0, {g.key: 0.0 for g in hardware.GPUS}
    for task in tasks:
        longest = inputs.longest(test, task)
        prompt_len = longest.prompt_tokens + longest.audio_tokens
        batch = fake_batch(longest, size, mode, backbone, audio_id, with_answer=False, mel_bins=_mel_bins(lm))
        with mode:
            cost = measure_generation(lm, batch, longest.answer_tokens, None, AllocationTracker())
        peak = max(peak, cost.peak_bytes)
        mine = [e for e in test if e.task == task]
        for start in range(0, len(mine), size):
            chunk = mine[start : start + size]
            length = max(e.prompt_tokens + e.audio_tokens for e in chunk)
            steps = max(e.answer_tokens for e in chunk)
            share = len(chunk) / size
            prefill = cost.prefill_flops * length / prompt_len * share
            flops += prefill + steps * cost.decode_flops * share
            read = decoder_bytes + cost.kv_bytes_per_token * (length + steps / 2) * share
            for g in hardware.GPUS:
                seconds[g.key] += hardware.compute_seconds(prefill, g, mfu) + steps * hardware.decode_seconds(
                    cost.decode_flops * share, read, g, mfu
                )
    return {
        "batch_size": size,
        "peak_gb": gb(peak),
        "tflops_per_epoch": round(flops / 1e12, 1),
        "epoch_seconds": {k: round(v, 1) for k, v in seconds.items()},
        "utterances": EPOCH_UTTERANCES,
        "note": "generation with the KV cache until the longest answer of each batch ends",
    }
