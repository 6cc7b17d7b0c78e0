"""``estimate(cfg)``: memory and time of a preset's training step and evaluation, without a GPU.

The preset's full-size model is built from its config with fake weights; one training step of
the real code (see :mod:`loralab.estimate.measure`) runs on the longest batch of each task
(the peak of an epoch: a length-grouped batch is padded to its longest example) and on the
median one (FLOPs). Epoch FLOPs: every batch of the trainer's own epoch plan over
SpeechOcean762-like lengths, each costed by interpolating the measured steps linearly in its
padded length. Evaluation: prefill and decoding with the KV cache at the evaluator's batch size.
"""

from __future__ import annotations

import torch

from loralab.errors import LoralabError
from loralab.estimate import hardware, inputs
from loralab.estimate.fake import AllocationTracker, OracleFakeMode, wide_constants
from loralab.estimate.measure import measure_generation, measure_training

GB = 1e9
EPOCH_UTTERANCES = inputs.SO762_TRAIN_UTTERANCES


def precision(cfg):
    """(weight dtype of frozen parameters, autocast dtype or None) on a bf16-capable GPU."""
    names = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
    weights = torch.bfloat16 if cfg.model.dtype == "auto" else names[cfg.model.dtype]
    mp = cfg.training.mixed_precision
    autocast = {"auto": torch.bfloat16, "bf16": torch.bfloat16, "fp16": torch.float16, "no": None}[mp]
    return weights, autocast


def _mel_bins(model) -> int | None:
    config = model.causal_lm.config if hasattr(model, "causal_lm") else model.config
    audio = getattr(config, "audio_config", None)
    return getattr(audio, "num_mel_bins", None)


def precision_names(weight_dtype, autocast_dtype) -> dict:
    return {
        "weights": str(weight_dtype).removeprefix("torch."),
        "autocast": str(autocast_dtype).removeprefix("torch.") if autocast_dtype else "none",
    }


def _interpolate(points: list[tuple[int, float]], length: int) -> float:
    (l0, f0), (l1, f1) = sorted(points)
    if l1 == l0:
        return f1
    return f0 + (f1 - f0) * (length - l0) / (l1 - l0)


def epoch_flops(examples, batch_size: int, training_cfg, points: dict) -> tuple[float, int]:
    """(FLOPs of one epoch, micro-batches) over the trainer's epoch plan of ``examples``."""
    from loralab.engine.sampler import epoch_plan

    lengths = [e.length for e in examples]
    plan = epoch_plan(lengths, batch_size, training_cfg.seed, 1, training_cfg.group_by_length)
    total = 0.0
    for batch in plan.batches:
        padded = max(lengths[i] for i in batch)
        total += sum(_interpolate(points[examples[i].task], padded) for i in batch) / batch_size
    return total, len(plan.batches)


def check_batch_size(batch_size: int | None, default: int) -> int:
    size = default if batch_size is None else batch_size
    if size < 1:
        raise LoralabError(f"--batch-size must be at least 1 (got {size})")
    return size


def estimate(cfg, batch_size: int | None = None, mfu: float = hardware.DEFAULT_MFU) -> dict:
    """The estimate of ``cfg`` as a JSON-ready dict (see :func:`loralab.estimate.report.format_estimate`)."""
    batch_size = check_batch_size(batch_size, cfg.training.batch_size)
    if not 0 < mfu <= 1:
        raise LoralabError(f"--mfu must be in (0, 1] (got {mfu})")
    with wide_constants():
        if cfg.system == "protein":
            from loralab.estimate.protein import estimate_protein

            return estimate_protein(cfg, batch_size, mfu, *precision(cfg))
        if cfg.system != "speech":
            raise LoralabError(f"{cfg.name}: the estimator does not support system '{cfg.system}'")
        return _estimate_speech(cfg, batch_size, mfu)


def _estimate_speech(cfg, batch_size: int, mfu: float) -> dict:
    from loralab.estimate import speech
    from loralab.speech.model.training import answer_only_loss

    weight_dtype, autocast_dtype = precision(cfg)
    mode = OracleFakeMode()
    model, backbone = speech.build_fake_model(cfg, mode, weight_dtype)
    audio_id = backbone.audio_token_id(model.causal_lm.config)
    tasks = list(cfg.speech.tasks)
    examples = inputs.speech_examples(tasks, cfg.speech.prompt_style, speech.audio_tokens_counter(backbone))
    chosen = [inputs.longest(examples, t) for t in tasks] + [
        inputs.median_example(examples, t) for t in tasks
    ]
    batches = [
        speech.fake_batch(e, batch_size, mode, backbone, audio_id, mel_bins=_mel_bins(model)) for e in chosen
    ]
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
        "evaluation": _evaluation(cfg, backbone, mode, audio_id, weight_dtype, mfu),
        "assumptions": assumptions(mfu),
    }
    result["fits_24gb"] = result["peak_gb"] <= 24.0
    return result


def memory_breakdown(model, optimizer_bytes: int, peak_bytes: int) -> dict:
    trainable = [p for p in model.parameters() if p.requires_grad]
    weights = sum(p.untyped_storage().nbytes() for p in model.parameters())
    grads = sum(p.numel() * p.element_size() for p in trainable)
    activations = max(0, peak_bytes - weights - grads - optimizer_bytes)
    return {
        "params": {
            "total": sum(p.numel() for p in model.parameters()),
            "trainable": sum(p.numel() for p in trainable),
        },
        "memory_gb": {
            "weights": gb(weights),
            "gradients": gb(grads),
            "optimizer": gb(optimizer_bytes),
            "activations": gb(activations),
            "peak": gb(peak_bytes),
        },  # fmt: skip
        "peak_gb": gb(peak_bytes),
        "peak_bytes": int(peak_bytes),
    }


def timing(flops: float, micro_batches: int, mfu: float) -> dict:
    seconds = {g.key: round(hardware.compute_seconds(flops, g, mfu), 1) for g in hardware.GPUS}
    return {
        "micro_batches_per_epoch": micro_batches,
        "tflops_per_step": round(flops / micro_batches / 1e12, 2),
        "tflops_per_epoch": round(flops / 1e12, 1),
        "epoch_seconds": seconds,
        "epoch_seconds_h100": seconds["h100"],
    }


def gb(n: float) -> float:
    return round(n / GB, 2)


def assumptions(mfu: float) -> dict:
    return {
        "epoch": f"{EPOCH_UTTERANCES} utterances x the preset's tasks (SpeechOcean762 train split)",
        "mfu": mfu,
        "decode_mbu": hardware.DEFAULT_MBU,
        "gpus": {
            g.key: f"{g.name}: {g.bf16_flops / 1e12:g} TFLOPS bf16 dense, {g.bandwidth / 1e12:g} TB/s"
            for g in hardware.GPUS
        },  # fmt: skip
        "lengths": dict(inputs.ASSUMPTIONS),
        "peak": "step 2 (AdamW state allocated) on a batch of the longest example of each task",
        "kernels": "fake tensors on the CPU dispatch path: SDPA attention, CPU autocast op lists",
        "lora_init": "a pretrained adapter costs what a fresh one of the same rank does",
        "audio_encoder_cache": "off (model.cache_audio_encoder saves encoder time after epoch 1, not counted)",
    }


def _evaluation(cfg, backbone, mode, audio_id: int, weight_dtype, mfu: float) -> dict:
    """Generation as ``loralab evaluate`` runs it: adapter merged, weights in ``weight_dtype``, no autocast."""
    from loralab.estimate import speech

    lm = speech.build_fake_inference_model(cfg, mode, weight_dtype)
    size = cfg.evaluation.batch_size
    tasks = list(cfg.speech.tasks)
    test = inputs.speech_examples(
        tasks, cfg.speech.prompt_style, speech.audio_tokens_counter(backbone), seed=1
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
        batch = speech.fake_batch(
            longest, size, mode, backbone, audio_id, with_answer=False, mel_bins=_mel_bins(lm)
        )
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
