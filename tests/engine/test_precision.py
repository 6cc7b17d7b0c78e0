"""Precision chosen for the hardware: detection, the choices and refusals, and bf16 numerics
checked against fp32 (one step's loss and gradients; a bf16 run resuming bit-identically)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
import toy_system

from loralab.config.schema import ExperimentConfig, ModelConfig, TrainingConfig
from loralab.engine.precision import (
    CPU_BF16_ENV,
    cpu_bf16_support,
    inference_precision,
    training_precision,
)
from loralab.engine.setup import make_accelerator
from loralab.errors import LoralabError


def _cpuinfo_bf16() -> bool | None:
    """Does /proc/cpuinfo list a bf16 matrix instruction (None where there is no such file)?"""
    info = Path("/proc/cpuinfo")
    if not info.is_file():
        return None
    flags = set(re.findall(r"\w+", info.read_text()))
    return bool(flags & {"amx_bf16", "avx512_bf16", "bf16"})


def test_detection_agrees_with_the_processors_own_flags(monkeypatch):
    monkeypatch.delenv(CPU_BF16_ENV, raising=False)
    expected = _cpuinfo_bf16()
    if expected is None:
        pytest.skip("no /proc/cpuinfo to check against")
    found, why = cpu_bf16_support()
    assert found == expected, why


@pytest.mark.parametrize("forced", ["0", "1"])
def test_auto_follows_the_detection(monkeypatch, forced):
    monkeypatch.setenv(CPU_BF16_ENV, forced)
    p = training_precision("auto", "auto", "cpu")
    if forced == "1":
        assert (p.weights, p.autocast, p.mixed_precision) == (torch.bfloat16, torch.bfloat16, "bf16")
    else:
        assert (p.weights, p.autocast, p.mixed_precision) == (torch.float32, None, "no")
    assert f"{CPU_BF16_ENV}={forced}" in p.why and p.why.startswith("auto")
    inference = inference_precision("cpu")
    assert inference.weights == (torch.bfloat16 if forced == "1" else torch.float32)


def test_explicit_choices_and_refusals_on_cpu(monkeypatch):
    monkeypatch.setenv(CPU_BF16_ENV, "0")
    assert training_precision("auto", "no", "cpu").weights == torch.float32
    assert training_precision("fp32", "no", "cpu").why == "training.mixed_precision=no, model.dtype=fp32"
    with pytest.raises(LoralabError, match="cannot multiply bf16 natively.*mixed_precision=no"):
        training_precision("auto", "bf16", "cpu")
    with pytest.raises(LoralabError, match="fp16 on a CPU"):
        training_precision("auto", "fp16", "cpu")
    with pytest.raises(LoralabError, match="use fp32"):
        inference_precision("cpu", "bf16")
    monkeypatch.setenv(CPU_BF16_ENV, "1")
    p = training_precision("fp32", "bf16", "cpu")  # bf16 products over fp32 frozen weights
    assert (p.weights, p.autocast) == (torch.float32, torch.bfloat16)


def test_the_runtime_carries_the_choice_and_its_reason(monkeypatch):
    monkeypatch.setenv(CPU_BF16_ENV, "1")
    _, runtime = make_accelerator(ExperimentConfig())
    assert (runtime.weight_dtype, runtime.autocast_dtype) == (torch.bfloat16, torch.bfloat16)
    assert runtime.precision_why == f"auto: {CPU_BF16_ENV}=1"
    monkeypatch.setenv(CPU_BF16_ENV, "0")
    _, runtime = make_accelerator(ExperimentConfig(model=ModelConfig(), training=TrainingConfig()))
    assert (runtime.weight_dtype, runtime.autocast_dtype) == (torch.float32, None)


def _one_step(dtype, autocast, tiny_model_dir, manifest_dir):
    """Loss and trainable gradients of one step of the tiny Phi-4-MM's paper_r64 set-up."""
    from loralab.config import load_config
    from loralab.engine.precision import autocast_context
    from loralab.engine.runtime import Runtime
    from loralab.speech.system import build_parts

    cfg = load_config(
        "paper_r64",
        [f"model.name_or_path={tiny_model_dir}", f"speech.manifest_dir={manifest_dir}",
         "speech.prompt_style=short", "lora.rank=8", "lora.alpha=16", "lora.dropout=0"],
    )  # fmt: skip
    torch.manual_seed(0)
    parts = build_parts(cfg, Runtime(device=torch.device("cpu"), weight_dtype=dtype, autocast_dtype=autocast))
    batch = parts.collate([parts.train_dataset[i] for i in range(4)])
    model = parts.model.train()
    torch.manual_seed(1)
    for name, p in model.named_parameters():  # B != 0, so that every LoRA tensor gets a gradient
        if "lora_B" in name:
            p.data.normal_(0, 0.02)
    with autocast_context("cpu", autocast):
        loss = parts.loss_fn(model, batch)
    loss.backward()
    grads = {n: p.grad.detach().float().clone() for n, p in model.named_parameters() if p.requires_grad}
    assert {p.dtype for p in model.parameters() if p.requires_grad} == {torch.float32}
    return loss.detach(), grads


def test_a_bf16_step_is_within_tolerance_of_fp32(tiny_model_dir, synth_manifest_dir):
    """bf16 frozen weights under bf16 autocast: the loss within 1% and every gradient tensor
    within 10% (relative L2) of the fp32 step; the loss itself is reduced in fp32."""
    loss32, grads32 = _one_step(torch.float32, None, tiny_model_dir, synth_manifest_dir)
    loss16, grads16 = _one_step(torch.bfloat16, torch.bfloat16, tiny_model_dir, synth_manifest_dir)
    assert loss16.dtype == torch.float32
    assert abs(loss16.item() - loss32.item()) <= 0.01 * abs(loss32.item())
    assert grads16.keys() == grads32.keys() and grads32
    for name, g32 in grads32.items():
        if g32.norm() == 0:
            continue
        rel = ((grads16[name] - g32).norm() / g32.norm()).item()
        assert rel < 0.10, f"{name}: relative gradient error {rel:.3f}"


def test_a_bf16_run_resumes_bit_identically(monkeypatch, tmp_path):
    """The toy system trained under bf16 autocast, interrupted and resumed, ends with exactly the
    uninterrupted bf16 run's weights (and not with the fp32 run's)."""
    from safetensors.torch import load_file

    from loralab.engine.trainer import run_training

    monkeypatch.setenv(CPU_BF16_ENV, "1")
    training = dict(epochs=2, batch_size=4, gradient_accumulation=2, learning_rate=0.05, log_every=1, seed=0)

    def cfg(run, mp):
        return ExperimentConfig(name="toy", output_dir=str(run),
                                training=TrainingConfig(mixed_precision=mp, **training))  # fmt: skip

    def weights(run):
        return load_file(str(run / "final_model" / toy_system.ADAPTER_FILE))

    run_training(cfg(tmp_path / "whole", "bf16"), toy_system.make_parts())
    run_training(cfg(tmp_path / "fp32", "no"), toy_system.make_parts())
    calls = {"n": 0}

    def interrupted(model, batch):
        calls["n"] += 1
        if calls["n"] == 8:  # 6 micro-batches an epoch: inside epoch 2
            raise KeyboardInterrupt
        return toy_system.loss_fn(model, batch)

    with pytest.raises(KeyboardInterrupt):
        run_training(cfg(tmp_path / "cut", "bf16"), toy_system.make_parts(loss=interrupted))
    torch.manual_seed(99)
    run_training(cfg(tmp_path / "cut", "bf16"), toy_system.make_parts(), resume=True)
    whole, cut, fp32 = weights(tmp_path / "whole"), weights(tmp_path / "cut"), weights(tmp_path / "fp32")
    for name in whole:
        assert torch.equal(cut[name], whole[name]), name
    assert any(not torch.equal(whole[n], fp32[n]) for n in whole)  # bf16 really computed in bf16
