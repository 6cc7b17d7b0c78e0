"""Device/precision choices, --gpus, the shipped DeepSpeed config under accelerate's semantics, the CLI."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from loralab.config import load_config
from loralab.config.loader import SHIPPED_CONFIG_DIR, resolve_deepspeed_config
from loralab.config.schema import ExperimentConfig, ModelConfig, TrainingConfig
from loralab.engine.setup import apply_gpu_selection, deepspeed_plugin, make_accelerator, resolve_precision
from loralab.errors import LoralabError

REPO = Path(__file__).resolve().parents[2]


def _autos(node, where=""):
    if isinstance(node, dict):
        return [a for k, v in node.items() for a in _autos(v, f"{where}.{k}")]
    return [where] if node == "auto" else []


def test_zero2_config_resolves_every_auto_the_way_accelerate_fills_it():
    cfg = ExperimentConfig(
        training=TrainingConfig(batch_size=8, gradient_accumulation=8, max_grad_norm=1.0, deepspeed="zero2")
    )
    plugin = deepspeed_plugin(cfg)
    plugin.set_mixed_precision("bf16")  # what Accelerator(mixed_precision="bf16") does
    # What Accelerator.prepare fills from the micro-batch size for 2 processes.
    plugin.deepspeed_config_process(must_match=False, train_batch_size=8 * 8 * 2, gradient_clipping=1.0)
    ds = plugin.deepspeed_config
    assert _autos(ds) == []
    assert ds["zero_optimization"]["stage"] == 2 and plugin.zero_stage == 2
    assert ds["train_micro_batch_size_per_gpu"] == 8
    assert ds["gradient_accumulation_steps"] == 8
    assert ds["train_batch_size"] == 128
    assert ds["gradient_clipping"] == 1.0
    assert ds["bf16"]["enabled"] is True
    assert "optimizer" not in ds and "scheduler" not in ds  # the trainer's AdamW and schedule are used


def test_deepspeed_needs_cuda_and_names_the_file():
    bad = ExperimentConfig(training=TrainingConfig(deepspeed="configs/deepspeed/nope.json"))
    with pytest.raises(LoralabError, match="nope.json"):
        deepspeed_plugin(bad)
    if not torch.cuda.is_available():
        with pytest.raises(LoralabError, match="needs CUDA"):
            make_accelerator(ExperimentConfig(training=TrainingConfig(deepspeed="zero2")))


def test_deepspeed_config_by_shipped_name_or_path(tmp_path, monkeypatch):
    """A shipped name works from any directory (a wheel has no configs/ folder); a file path too."""
    monkeypatch.chdir(tmp_path)
    shipped = resolve_deepspeed_config("zero2")
    assert shipped is not None and shipped.is_relative_to(SHIPPED_CONFIG_DIR)
    for spelling in ("zero2.json", "deepspeed/zero2.json", "configs/deepspeed/zero2.json"):
        assert resolve_deepspeed_config(spelling) == shipped
    mine = tmp_path / "mine.json"
    mine.write_text(shipped.read_text())
    assert resolve_deepspeed_config(mine) == mine
    assert resolve_deepspeed_config("elsewhere/zero2.json") is None  # a missing file is not the shipped one
    with pytest.raises(LoralabError, match="shipped: zero2"):
        deepspeed_plugin(ExperimentConfig(training=TrainingConfig(deepspeed="zero3")))


def test_precision_choices_on_cpu(monkeypatch):
    monkeypatch.setenv("LORALAB_CPU_BF16", "0")
    p = resolve_precision(ExperimentConfig(), "cpu")
    assert (p.weights, p.autocast, p.mixed_precision) == (torch.float32, None, "no")
    monkeypatch.setenv("LORALAB_CPU_BF16", "1")
    explicit = ExperimentConfig(
        model=ModelConfig(dtype="bf16"), training=TrainingConfig(mixed_precision="bf16")
    )
    p = resolve_precision(explicit, "cpu")
    assert (p.weights, p.autocast, p.mixed_precision) == (torch.bfloat16, torch.bfloat16, "bf16")


def test_cpu_runtime_of_a_single_process():
    accelerator, runtime = make_accelerator(ExperimentConfig())
    assert runtime.device.type == "cpu" and runtime.weight_dtype == torch.float32
    assert runtime.autocast_dtype is None and (runtime.rank, runtime.world_size, runtime.is_main) == (
        0,
        1,
        True,
    )


def test_gpus_become_cuda_visible_devices(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    apply_gpu_selection(None)
    assert "CUDA_VISIBLE_DEVICES" not in os.environ
    apply_gpu_selection("1, 3")
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "1,3"


def test_cli_flags_and_overrides_reach_the_config(tmp_path):
    import argparse

    from loralab.cli import train as train_cli
    from loralab.cli.common import config_from_args

    parser = argparse.ArgumentParser()
    train_cli.add_arguments(parser)
    args = parser.parse_args(
        [
            "paper_r64",
            "lora.rank=8",
            "--batch-size",
            "2",
            "--gpus",
            "0,1",
            "--output-dir",
            str(tmp_path),
            "--resume",
        ]
    )
    cfg = config_from_args(args)
    assert args.resume and cfg.lora.rank == 8 and cfg.training.batch_size == 2
    assert cfg.training.gpus == "0,1" and cfg.run_dir == str(tmp_path)
    assert cfg == load_config(
        "paper_r64", ["lora.rank=8", "training.batch_size=2", "training.gpus=0,1", f"output_dir={tmp_path}"]
    )


def test_cli_refuses_a_taken_run_dir_without_traceback(tmp_path, capsys):
    from loralab.cli.main import main

    (tmp_path / "events.jsonl").write_text('{"event": "start"}\n')
    assert main(["train", "paper_r64", "--output-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "already holds a run" in err and "--resume" in err and "Traceback" not in err
