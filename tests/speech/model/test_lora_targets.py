"""LoRA targets are written once, in each backbone module: a speech config that leaves
``lora.target_modules`` unset gets its family's, and every shipped preset resolves to the regex
it spelled out before the presets stopped repeating it."""

from __future__ import annotations

import re

import pytest
import torch

from loralab.config import load_config
from loralab.config.loader import SHIPPED_CONFIG_DIR
from loralab.config.schema import ExperimentConfig, LoraConfig, ModelConfig
from loralab.errors import LoralabError
from loralab.speech import contract

# The literal regexes of configs/speech/base.yaml and qwen2audio_r64.yaml at 7235b80.
PHI4MM_BEFORE = r"model.layers.\d+.((self_attn.(qkv|o)_proj)|(mlp.(gate_up|down)_proj))"
QWEN2AUDIO_BEFORE = (
    r"model\.language_model\.layers\.\d+\.((self_attn\.(q|k|v|o)_proj)|(mlp\.(gate|up|down)_proj))"
)
RESOLVED_BEFORE = {
    "base": PHI4MM_BEFORE,
    "paper_r64": PHI4MM_BEFORE,
    "pretrained_r320": PHI4MM_BEFORE,
    "unfreeze_r64": PHI4MM_BEFORE,
    "qwen2audio_r64": QWEN2AUDIO_BEFORE,
    "qwen2audio_unfreeze_r64": QWEN2AUDIO_BEFORE,
    "demo_qwen2audio": QWEN2AUDIO_BEFORE,
    "demo_qwen2audio_lora": QWEN2AUDIO_BEFORE,
}
SPEECH_PRESETS = sorted((SHIPPED_CONFIG_DIR / "speech").glob("*.yaml"))


def test_every_shipped_speech_preset_is_listed():
    assert {p.stem for p in SPEECH_PRESETS} == set(RESOLVED_BEFORE)


@pytest.mark.parametrize("path", SPEECH_PRESETS, ids=lambda p: p.stem)
def test_a_shipped_speech_preset_resolves_to_the_regex_it_had(path):
    assert load_config(path).lora.target_modules == RESOLVED_BEFORE[path.stem]
    assert "target_modules:" not in path.read_text()  # the family's, not a copy of it


def test_unset_targets_follow_the_family_and_a_set_one_is_kept():
    assert load_config("paper_r64", ["model.family=qwen2audio"]).lora.target_modules == QWEN2AUDIO_BEFORE
    assert load_config("qwen2audio_r64", ["lora.target_modules="]).lora.target_modules == QWEN2AUDIO_BEFORE
    assert load_config("paper_r64", ["lora.target_modules=x_proj"]).lora.target_modules == "x_proj"


def test_resolving_gives_a_new_config_and_leaves_the_given_one_unset():
    cfg = ExperimentConfig(model=ModelConfig(family="qwen2audio"))
    resolved = contract.resolve_config(cfg)
    assert cfg.lora.target_modules is None and resolved.lora.target_modules == QWEN2AUDIO_BEFORE
    assert resolved.speech is cfg.speech and resolved.model == cfg.model


def test_a_config_built_in_code_with_unset_targets_trains_the_familys_modules(tiny_model_dir):
    from loralab.speech.model import training
    from loralab.speech.model.load import resolve_backbone

    backbone = resolve_backbone(tiny_model_dir, "phi4mm")
    base = backbone.load(tiny_model_dir, device="cpu", dtype=torch.float32, attn_implementation="sdpa")
    cfg = ExperimentConfig(model=ModelConfig(name_or_path=str(tiny_model_dir), revision=None))
    model = training.prepare_training_model(cfg, base, backbone)
    wrapped = {n.split("base_model.model.", 1)[-1] for n, m in model.named_modules() if hasattr(m, "lora_A")}
    assert wrapped and all(re.fullmatch(PHI4MM_BEFORE, n) for n in wrapped)
    assert cfg.lora.target_modules is None  # the caller's config is not changed


def test_targets_matching_nothing_are_an_error_that_points_at_the_family_default(tiny_model_dir):
    from loralab.speech.model.load import load_phi4mm
    from loralab.speech.model.lora import add_fresh_lora

    with pytest.raises(LoralabError, match="leave lora.target_modules unset for the model.family's"):
        add_fresh_lora(load_phi4mm(tiny_model_dir), LoraConfig(target_modules="nothing"))
