"""A toy system for the engine tests: a frozen two-layer regressor with a LoRA-like adapter.

Examples are variable-length sequences of 4-d vectors with one target per position (the
"tokens"); the loss is the masked mean squared error, like a mean over target positions.
The adapter (A, B with B = 0 at start) and a bias are the trainable parameters; dropout on
the adapter input makes results depend on the restored RNG. Everything is tiny and
deterministic: the data come from their own generator, not the global RNG.

Used in-process (``make_parts``) and by subprocesses through ``build_parts(cfg, runtime)``
(it registers itself as the system 'toy' when imported, as any package may). It implements the whole
system contract of :mod:`loralab.engine.system`, so the engine, config and report layers are
shown to need nothing a system does not answer. Environment knobs for
subprocesses: TOY_SLEEP (seconds per loss call, so a test can kill mid-epoch), TOY_DROPOUT.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from loralab.engine.run_dir import RunDir
from loralab.engine.system import (
    EvalOutcome,
    EvalRequest,
    ParamCount,
    SystemDescription,
    SystemParts,
    register_system,
)

DIM, HIDDEN, RANK = 4, 16, 2
ADAPTER_FILE = "adapter.safetensors"
LAST_MODEL: list = []  # the model of the latest build_parts, for tests that inspect it afterwards


class ToyModel(nn.Module):
    def __init__(self, dropout: float = 0.1):
        super().__init__()
        self.base = nn.Linear(DIM, HIDDEN)
        self.head = nn.Linear(HIDDEN, 1)
        self.lora_a = nn.Parameter(torch.randn(RANK, DIM) * 0.3)
        self.lora_b = nn.Parameter(torch.zeros(HIDDEN, RANK))
        self.head_bias = nn.Parameter(torch.zeros(1))
        self.drop = nn.Dropout(dropout)
        for p in (*self.base.parameters(), *self.head.parameters()):
            p.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.base(x) + self.drop(x) @ self.lora_a.T @ self.lora_b.T
        return self.head(torch.tanh(h)).squeeze(-1) + self.head_bias


def make_dataset(n: int, seed: int = 123, prefix: str = "toy") -> list[dict]:
    g = torch.Generator().manual_seed(seed)
    teacher = torch.randn(DIM, generator=g)
    data = []
    for i in range(n):
        length = int(torch.randint(2, 13, (1,), generator=g))
        x = torch.randn(length, DIM, generator=g)
        y = torch.sin(x @ teacher) + 0.1 * torch.randn(length, generator=g)
        data.append({"id": f"{prefix}-{i:03d}", "x": x, "y": y})
    return data


def collate(examples: list[dict]) -> dict:
    longest = max(len(e["y"]) for e in examples)
    x = torch.zeros(len(examples), longest, DIM)
    y = torch.zeros(len(examples), longest)
    mask = torch.zeros(len(examples), longest)
    for i, e in enumerate(examples):
        n = len(e["y"])
        x[i, :n], y[i, :n], mask[i, :n] = e["x"], e["y"], 1.0
    return {"x": x, "y": y, "mask": mask, "ids": [e["id"] for e in examples], "num_tokens": int(mask.sum())}


def loss_fn(model, batch: dict) -> torch.Tensor:
    pred = model(batch["x"])
    return ((pred - batch["y"]) ** 2 * batch["mask"]).sum() / batch["mask"].sum()


def trainable_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone().contiguous() for n, p in model.named_parameters() if p.requires_grad}


def save_trainable(model: nn.Module, out: Path) -> None:
    save_file(trainable_state(model), str(Path(out) / ADAPTER_FILE))


def load_trainable(model: nn.Module, src: Path) -> None:
    state = load_file(str(Path(src) / ADAPTER_FILE))
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, value in state.items():
            params[name].copy_(value)


def save_final(model: nn.Module, out: Path) -> None:
    save_trainable(model, out)
    (Path(out) / "model_card.json").write_text(json.dumps({"base": "toy"}))


def param_groups(model: nn.Module) -> dict[str, ParamCount]:
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    return {"adapter": ParamCount(trainable, trainable), "base": ParamCount(0, frozen)}


def make_parts(
    n_train: int = 22,
    dropout: float = 0.1,
    loss=loss_fn,
    evaluate=None,
    sleep: float = 0.0,
    model_seed: int = 0,
) -> SystemParts:
    torch.manual_seed(model_seed)
    model = ToyModel(dropout)
    LAST_MODEL[:] = [model]
    train = make_dataset(n_train)

    def timed_loss(m, batch):
        if sleep:
            time.sleep(sleep)
        return loss(m, batch)

    return SystemParts(
        model=model,
        train_dataset=train,
        collate=collate,
        lengths=[len(e["y"]) for e in train],
        loss_fn=timed_loss,
        param_groups=param_groups(model),
        save_trainable=save_trainable,
        load_trainable=load_trainable,
        save_final=save_final,
        evaluate=evaluate,
    )


def build_parts(cfg, runtime) -> SystemParts:
    """The system entry point, as ``loralab.speech.contract.build_parts`` is."""
    return make_parts(
        sleep=float(os.environ.get("TOY_SLEEP", "0")),
        dropout=float(os.environ.get("TOY_DROPOUT", "0.1")),
        model_seed=cfg.training.seed,
    )


# --- the rest of the system contract -------------------------------------------------------

HEADLINE_METRICS = ("mse",)
EVALUATION_OPTIONS = frozenset({"checkpoints", "split", "limit"})
ESTIMATOR = "toy_system:estimate_toy"  # loralab estimate: named, imported only when asked


def count_parameters(cfg) -> dict[str, ParamCount]:
    return param_groups(ToyModel())


def validate_config(cfg) -> list[str]:
    """The toy's own rule: a seed for its frozen weights."""
    return [] if cfg.training.seed >= 0 else [f"toy: training.seed must be >= 0 (got {cfg.training.seed})"]


def describe(cfg) -> SystemDescription:
    return SystemDescription(data="toy regression sequences", start_point="fresh adapter (B = 0)")


def evaluate_run(run_dir, request: EvalRequest) -> EvalOutcome:
    """MSE of each selected model on the toy evaluation set, into the run's eval folders."""
    run = RunDir(run_dir).require()
    data = make_dataset(8, seed=7, prefix="eval")
    for chosen in run.select(request.checkpoints, run.config().training.epochs):
        torch.manual_seed(run.config().training.seed)  # the frozen weights of build_parts
        model = ToyModel(dropout=0.0)
        if chosen.path is not None:
            load_trainable(model, chosen.path)
        with torch.no_grad():
            mse = float(loss_fn(model, collate(data[: request.limit])))
        out = run.eval_epoch_dir(request.split or "test", chosen.epoch)
        out.mkdir(parents=True, exist_ok=True)
        (out / "metrics.json").write_text(json.dumps({"mse": mse}))
    return EvalOutcome(run.eval_dir(request.split or "test"), [f"toy evaluation written to {run.eval_dir()}"])


def estimate_toy(cfg, batch_size: int, mfu: float, weight_dtype, autocast_dtype) -> dict:
    """``loralab estimate`` for the toy: what it was given, so a test can see the call."""
    return {"preset": cfg.name, "batch_size": batch_size, "mfu": mfu, "weights": str(weight_dtype)}


register_system("toy", __name__)  # configs with 'system: toy' now reach this module: no patching
