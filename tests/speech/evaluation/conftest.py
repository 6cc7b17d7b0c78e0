"""Fixtures of the evaluation tests: a fabricated training run on the tiny model.

The run holds what the trainer leaves behind that evaluation reads: ``training_config.json``
(the resolved config under ``config``) and ``checkpoint-epoch-1/`` with a PEFT adapter saved
from the tiny model (its B matrices made non-zero so that it changes the model).
"""

from __future__ import annotations

import json
import shutil

import pytest

from loralab.config.schema import config_to_dict


def run_config(tiny_model_dir, manifest_dir, **evaluation) -> dict:
    from loralab.config.schema import EvaluationConfig, ExperimentConfig, ModelConfig
    from loralab.speech.config import SpeechDataConfig

    cfg = ExperimentConfig(
        name="tiny_eval",
        model=ModelConfig(name_or_path=str(tiny_model_dir), revision=None),
        sections={"speech": SpeechDataConfig(manifest_dir=str(manifest_dir), prompt_style="short")},
        evaluation=EvaluationConfig(batch_size=4, **evaluation),
    )
    return config_to_dict(cfg)


@pytest.fixture(scope="session")
def tiny_adapter_dir(tiny_model_dir, tmp_path_factory):
    """A rank-4 LoRA adapter of the tiny model on the paper's target modules, B != 0."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import Phi4MultimodalForCausalLM

    from loralab.speech.backbones.phi4mm import PHI4_SPEECH_LORA_TARGETS

    model = Phi4MultimodalForCausalLM.from_pretrained(tiny_model_dir)
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=PHI4_SPEECH_LORA_TARGETS))
    torch.manual_seed(0)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.5)
    out = tmp_path_factory.mktemp("adapter") / "checkpoint-epoch-1"
    peft_model.save_pretrained(out, safe_serialization=True)
    (out / "trainer_state.json").write_text(json.dumps({"epoch": 1, "global_step": 7}))
    return out


@pytest.fixture
def tiny_run_dir(tmp_path, tiny_model_dir, synth_manifest_dir, tiny_adapter_dir):
    """A fresh run directory per test: training_config.json + checkpoint-epoch-1/."""
    run = tmp_path / "run"
    run.mkdir()
    # Batched: the tests script BatchedGenerator.generate; the one-by-one route is checked against
    # it in test_runner.py.
    config = run_config(tiny_model_dir, synth_manifest_dir, speech_route="batched")
    (run / "training_config.json").write_text(json.dumps({"config": config}))
    shutil.copytree(tiny_adapter_dir, run / "checkpoint-epoch-1")
    return run


@pytest.fixture
def make_run_dir(tmp_path, tiny_model_dir, synth_manifest_dir, tiny_adapter_dir):
    """A factory of run directories like :func:`tiny_run_dir`, with evaluation settings given."""

    def make(name: str, **evaluation):
        run = tmp_path / name
        run.mkdir()
        config = run_config(tiny_model_dir, synth_manifest_dir, **evaluation)
        (run / "training_config.json").write_text(json.dumps({"config": config}))
        shutil.copytree(tiny_adapter_dir, run / "checkpoint-epoch-1")
        return run

    return make
