"""One training step and one generation of the real code, measured: bytes held and FLOPs.

:func:`train_step` is what the trainer does per optimizer step at accumulation 1: the system's
loss under autocast, backward, gradient clipping, AdamW, ``zero_grad(set_to_none=True)``.
:func:`measure_training` runs it twice (the first creates AdamW's state, as in any real run)
and reports the second step's peak; the same functions run on real tensors in the validation.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
from torch.utils.flop_counter import FlopCounterMode

from loralab.estimate.fake import AllocationTracker


@dataclass
class StepCost:
    peak_bytes: int  # everything live at the step's peak (weights, optimizer state, grads, activations)
    flops: int


def make_optimizer(model, training_cfg):
    """AdamW over the trainable parameters, as the trainer builds it."""
    from loralab.engine.trainer import trainable_parameters

    params = trainable_parameters(model)
    optimizer = torch.optim.AdamW(
        params,
        lr=training_cfg.learning_rate,
        betas=tuple(training_cfg.adam_betas),
        weight_decay=training_cfg.weight_decay,
    )
    return params, optimizer


def _autocast(dtype):
    return torch.autocast("cpu", dtype=dtype) if dtype is not None else contextlib.nullcontext()


def train_step(model, loss_fn, batch, params, optimizer, autocast_dtype, max_grad_norm: float) -> None:
    with _autocast(autocast_dtype):
        loss = loss_fn(model, batch)
    loss.backward()
    del loss
    torch.nn.utils.clip_grad_norm_(params, max_grad_norm if max_grad_norm > 0 else float("inf"))
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def measure_training(model, loss_fn, batches, training_cfg, autocast_dtype, tracker: AllocationTracker,
                     peak_of: int | None = None):  # fmt: skip
    """StepCost of a training step on each of ``batches`` (after one warm-up step on the first).

    Peaks are measured for the first ``peak_of`` batches (default all), each in its own step:
    FlopCounterMode's module tracking keeps tensors alive in backward, so FLOPs are counted in a
    step of their own."""
    params, optimizer = make_optimizer(model, training_cfg)
    tracker.add(list(model.parameters()) + list(model.buffers()))
    step = (params, optimizer, autocast_dtype, training_cfg.max_grad_norm)
    peak_of = len(batches) if peak_of is None else peak_of
    model.train()
    costs = []
    with tracker:
        train_step(model, loss_fn, batches[0], *step)
        for i, batch in enumerate(batches):
            tracker.add(batch.values())
            tracker.reset_peak()
            if i < peak_of:
                train_step(model, loss_fn, batch, *step)
            peak = tracker.peak if i < peak_of else 0
            with FlopCounterMode(display=False) as counter:
                train_step(model, loss_fn, batch, *step)
            costs.append(StepCost(peak, counter.get_total_flops()))
    state_bytes = sum(
        t.untyped_storage().nbytes()
        for s in optimizer.state.values()
        for t in s.values()
        if isinstance(t, torch.Tensor) and t.dim() > 0
    )
    return costs, state_bytes


@dataclass
class GenerationCost:
    peak_bytes: int  # weights + inputs + activations, with the KV cache grown to the whole answer
    prefill_flops: int
    decode_flops: int  # one decoding step (one new token per sequence)
    kv_bytes_per_token: int  # KV cache bytes per generated position (whole batch)


def measure_generation(lm, batch: dict, new_tokens: int, autocast_dtype, tracker: AllocationTracker):
    """Prefill + two decoding steps with the KV cache (``logits_to_keep=1``, as ``generate`` does);
    the peak is extrapolated to ``new_tokens`` by the measured growth of the cache."""
    lm.eval()
    tracker.add([*lm.parameters(), *lm.buffers(), *batch.values()])
    tracker.reset_peak()
    with tracker, torch.no_grad(), _autocast(autocast_dtype):
        with FlopCounterMode(display=False) as prefill:
            out = lm(**batch, use_cache=True, logits_to_keep=1)
        cache, mask = out.past_key_values, batch["attention_mask"]
        next_ids = batch["input_ids"][:, -1:]
        sizes = []
        for _ in range(2):
            mask = torch.cat([mask, mask[:, -1:]], dim=1)
            with FlopCounterMode(display=False) as decode:
                out = lm(input_ids=next_ids, attention_mask=mask, cache=cache, use_cache=True,
                         logits_to_keep=1)  # fmt: skip
            cache = out.past_key_values
            sizes.append(tracker.current)
        kv_per_token = max(0, sizes[1] - sizes[0])
        peak = tracker.peak + max(0, new_tokens - 2) * kv_per_token
    lm.train()
    return GenerationCost(peak, prefill.get_total_flops(), decode.get_total_flops(), kv_per_token)


def measure_forward(model, forward, batch: dict, autocast_dtype, tracker: AllocationTracker) -> StepCost:
    """Peak and FLOPs of ``forward(model, batch)`` without gradients (an evaluation pass)."""
    model.eval()
    tracker.add([*model.parameters(), *model.buffers(), *batch.values()])
    tracker.reset_peak()
    with tracker, torch.no_grad(), _autocast(autocast_dtype):
        forward(model, batch)
        peak = tracker.peak
        with FlopCounterMode(display=False) as counter:
            forward(model, batch)
    model.train()
    return StepCost(peak, counter.get_total_flops())
