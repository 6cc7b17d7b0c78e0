"""Device, dtypes and the ``accelerate.Accelerator`` of a run.

Order matters: ``training.gpus`` must reach ``CUDA_VISIBLE_DEVICES`` before anything
initialises CUDA, so :func:`make_accelerator` sets it first, then creates the Accelerator
(which picks DDP / DeepSpeed / single device from the launcher's environment), then
derives the :class:`~loralab.engine.runtime.Runtime` handed to the system.
"""

from __future__ import annotations

import importlib.util
import os
import warnings

from loralab.config.loader import resolve_deepspeed_config, shipped_deepspeed_configs
from loralab.config.schema import ExperimentConfig
from loralab.engine.precision import training_precision
from loralab.engine.runtime import Runtime
from loralab.errors import LoralabError


def apply_gpu_selection(gpus: str | None) -> None:
    """Restrict CUDA to the listed devices (``'0,1'``); must run before CUDA is initialised."""
    if gpus is None:
        return
    import torch

    wanted = ",".join(p.strip() for p in gpus.split(","))
    current = os.environ.get("CUDA_VISIBLE_DEVICES")
    if torch.cuda.is_initialized() and current != wanted:
        raise LoralabError(
            f"training.gpus={gpus!r} came too late: CUDA is already initialised in this process. "
            f"Set CUDA_VISIBLE_DEVICES={wanted} in the environment instead."
        )
    os.environ["CUDA_VISIBLE_DEVICES"] = wanted


def resolve_precision(cfg: ExperimentConfig, device_type: str):
    """The run's :class:`~loralab.engine.precision.Precision` (frozen weights, autocast, why)."""
    return training_precision(cfg.model.dtype, cfg.training.mixed_precision, device_type)


def _detect_device_type() -> str:
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def deepspeed_plugin(cfg: ExperimentConfig):
    """accelerate's DeepSpeedPlugin for ``training.deepspeed`` with every "auto" we own filled in.

    accelerate fills bf16/fp16 from mixed_precision and gradient clipping/accumulation from
    the plugin arguments; the micro-batch size it would take from a prepared DataLoader,
    which this trainer does not hand over (it shards batches itself), so it is set here.
    """
    from accelerate.utils import DeepSpeedPlugin

    t = cfg.training
    path = resolve_deepspeed_config(t.deepspeed)
    if path is None:
        shipped = ", ".join(shipped_deepspeed_configs()) or "(none found)"
        raise LoralabError(
            f"training.deepspeed: {t.deepspeed!r} is neither a file nor a shipped DeepSpeed config "
            f"(shipped: {shipped}; e.g. training.deepspeed=zero2)"
        )
    plugin = DeepSpeedPlugin(
        hf_ds_config=str(path),
        gradient_accumulation_steps=t.gradient_accumulation,
        gradient_clipping=t.max_grad_norm if t.max_grad_norm > 0 else None,
    )
    ds = plugin.deepspeed_config
    ds["train_micro_batch_size_per_gpu"] = t.batch_size  # train_batch_size stays "auto": x accum x processes
    if ds.get("gradient_clipping") == "auto":
        ds["gradient_clipping"] = t.max_grad_norm  # 0 disables in DeepSpeed as here
    return plugin


def _allow_a_new_precision(mixed_precision: str) -> None:
    """accelerate keeps one mixed-precision setting per process; a single-process caller that runs
    a second training at another precision (the demo, a benchmark, tests) gets a fresh state."""
    from accelerate.state import AcceleratorState, PartialState

    state = AcceleratorState._shared_state
    if state and state.get("_mixed_precision") != mixed_precision and not PartialState().use_distributed:
        AcceleratorState._reset_state()


def make_accelerator(cfg: ExperimentConfig):
    """(Accelerator, Runtime) for this process, from the config and the launcher's environment."""
    import torch
    from accelerate import Accelerator
    from accelerate.utils import DistributedDataParallelKwargs

    apply_gpu_selection(cfg.training.gpus)
    device_type = _detect_device_type()
    if cfg.training.gpus is not None and device_type != "cuda":
        raise LoralabError(
            f"training.gpus={cfg.training.gpus!r} (--gpus) but no such CUDA GPU is usable on this machine "
            f"({device_type} only); leave --gpus out to train on {device_type}, or list the GPUs nvidia-smi shows"
        )
    precision = resolve_precision(cfg, device_type)
    kwargs = {}
    if cfg.training.deepspeed:
        if device_type != "cuda":
            raise LoralabError("training.deepspeed needs CUDA GPUs; leave it unset on CPU/MPS")
        if importlib.util.find_spec("deepspeed") is None:
            raise LoralabError(
                f"training.deepspeed={cfg.training.deepspeed!r} but DeepSpeed is not installed: "
                "pip install 'loralab[deepspeed]' (or leave training.deepspeed unset for plain DDP)"
            )
        kwargs["deepspeed_plugin"] = deepspeed_plugin(cfg)
    _allow_a_new_precision(precision.mixed_precision)
    with warnings.catch_warnings():
        # accelerate warns about MPS/bf16 specifics that do not apply to our explicit choices.
        warnings.simplefilter("ignore", UserWarning)
        accelerator = Accelerator(
            mixed_precision=precision.mixed_precision,
            gradient_accumulation_steps=cfg.training.gradient_accumulation,
            cpu=device_type == "cpu",
            kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=False)],
            **kwargs,
        )
    # The Accelerator state is a per-process singleton: make the setting of *this* run win.
    accelerator.gradient_accumulation_steps = cfg.training.gradient_accumulation
    runtime = Runtime(
        device=accelerator.device,
        weight_dtype=precision.weights,
        autocast_dtype=precision.autocast,
        precision_why=precision.why,
        rank=accelerator.process_index,
        world_size=accelerator.num_processes,
        local_rank=accelerator.local_process_index,
    )
    if device_type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
    return accelerator, runtime
