"""The contract between the shared trainer and a system (speech, protein).

The engine knows nothing of audio or proteins. A system module (``loralab.speech.system``,
``loralab.protein.system``) exposes:

* ``build_parts(cfg, runtime) -> SystemParts``: the trainer does the rest (optimizer,
  schedule, accumulation, mixed precision, checkpoints, resume, events, TensorBoard,
  distributed). ``runtime`` is :class:`loralab.engine.runtime.Runtime` (device, dtypes,
  process rank/world size, ``is_main``).
* ``count_parameters(cfg) -> dict[str, ParamCount]``: the same groups ``build_parts``
  reports, computed without loading weights (the model built on the meta device from its
  config), so ``loralab compare`` can show presets before any run exists.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SYSTEM_MODULES = {"speech": "loralab.speech.system", "protein": "loralab.protein.system"}


@dataclass
class ParamCount:
    """Trainable and total parameters of one named group (e.g. 'lora', 'audio_encoder')."""

    trainable: int
    total: int


@dataclass
class SystemParts:
    """Everything the trainer needs from a system.

    model: the module to train; exactly the intended parameters have requires_grad=True
        (trainable ones in fp32; frozen ones may be bf16).
    train_dataset: an indexable sequence of examples, passed to ``collate``.
    collate: list of examples -> batch dict of tensors; it also carries ``"ids"``
        (list[str], one per example: utterance or protein ids, named in NaN reports) and
        ``"num_tokens"`` (int, target tokens or pairs, for throughput).
    lengths: one int per train example (for length-grouped batches).
    loss_fn: (model, batch) -> scalar mean loss over target positions only. ``model`` is the
        module as the trainer prepared it (under DDP/DeepSpeed a wrapper): run the forward
        through ``model(...)`` so gradient synchronisation hooks fire; reach attributes of the
        inner module through its ``.module``. Tensors of ``batch`` are already on the device,
        and the call runs under the run's autocast.
    param_groups: name -> ParamCount, printed at start and stored in training_config.json.
    save_trainable(model, dir): write adapter and any unfrozen weights as safetensors (the
        trainer passes the unwrapped module; ``dir`` exists).
    load_trainable(model, dir): load what save_trainable wrote (resume, evaluation).
    save_final(model, dir): write what inference needs (adapter, unfrozen weights,
        tokenizer/processor files, a model card pointing at the base model).
    evaluate: optional (model, run_dir, epoch) -> dict of metrics, run after each epoch
        when cfg.evaluation.every_epoch is set, on the main process only, with the unwrapped
        module; the trainer restores the training RNG afterwards and sets train() mode again.
    """

    model: Any
    train_dataset: Sequence
    collate: Callable[[list], dict]
    lengths: list[int]
    loss_fn: Callable[[Any, dict], Any]
    param_groups: dict[str, ParamCount]
    save_trainable: Callable[[Any, Path], None]
    load_trainable: Callable[[Any, Path], None]
    save_final: Callable[[Any, Path], None]
    evaluate: Callable[[Any, Path, int], dict[str, float]] | None = None
    # Deprecated, read by nothing: accepted until loralab.protein.system stops passing them.
    eval_dataset: Sequence | None = None
    extra: dict[str, Any] | None = None


def system_module(name: str):
    """The module implementing system ``name`` (its ``build_parts``)."""
    if name not in SYSTEM_MODULES:
        raise ValueError(f"unknown system '{name}' (known: {', '.join(SYSTEM_MODULES)})")
    return importlib.import_module(SYSTEM_MODULES[name])
