"""The system contract: the toy answers everything the engine, config, CLI and reports ask,
so none of them needs to know which system a run is."""

from __future__ import annotations

import json

import pytest
import toy_system
from test_engine_trainer import toy_cfg

from loralab.cli.main import main as cli_main
from loralab.config.loader import ConfigError, validate
from loralab.engine import system
from loralab.engine.run_dir import RunDir
from loralab.engine.trainer import run_training


def test_every_registered_system_meets_the_contract():
    assert {"speech", "protein", "toy"} <= set(system.registered_systems())  # toy: by its own import
    for name in system.registered_systems():
        module = system.system_module(name)
        assert set(module.EVALUATION_OPTIONS) <= {f for f in system.EvalRequest.__dataclass_fields__}
        assert module.HEADLINE_METRICS
    assert {"acc_pcc", "distance_mae"} <= set(system.headline_metric_order())


def test_a_module_missing_part_of_the_contract_is_named(monkeypatch):
    monkeypatch.setitem(system.SYSTEM_MODULES, "broken", "types")  # cleaned up after the test
    with pytest.raises(TypeError, match="lacks build_parts, count_parameters"):
        system.system_module("broken")


def test_config_validation_adds_the_systems_problems(tmp_path):
    cfg = toy_cfg(tmp_path / "run", seed=-1, epochs=0)
    with pytest.raises(ConfigError) as e:
        validate(cfg)
    assert "training.epochs must be >= 1" in str(e.value) and "toy: training.seed must be >= 0" in str(
        e.value
    )


def test_evaluate_asks_the_runs_system(tmp_path, capsys):
    run = tmp_path / "run"
    run_training(toy_cfg(run, epochs=2), toy_system.make_parts())
    assert cli_main(["evaluate", str(run), "--checkpoints", "0,2", "--batch-size", "4", "--limit", "5"]) == 0
    out, err = capsys.readouterr()
    assert "toy evaluation written" in out
    assert "--batch-size: not used for toy runs; ignored" in err and "--limit" not in err
    folders = RunDir(run).eval_folders()
    assert [(split, epoch) for split, epoch, _ in folders] == [("test", 0), ("test", 2)]
    mse = {e: json.loads((d / "metrics.json").read_text())["mse"] for _, e, d in folders}
    assert mse[2] < mse[0]  # the trained adapter beats the untrained base


def test_estimate_asks_the_configs_system(tmp_path, monkeypatch):
    from loralab.errors import LoralabError
    from loralab.estimate import estimate

    cfg = toy_cfg(tmp_path / "run")
    assert estimate(cfg, batch_size=2, mfu=0.5) == {
        "preset": cfg.name, "batch_size": 2, "mfu": 0.5, "weights": "torch.bfloat16"
    }  # fmt: skip
    monkeypatch.delattr(toy_system, "ESTIMATOR")
    with pytest.raises(LoralabError, match="does not support system 'toy'"):
        estimate(cfg, batch_size=2)


def test_speech_describes_its_unfrozen_groups_as_its_backbone_names_them():
    from loralab.config.loader import load_config
    from loralab.speech.contract import describe

    phi = describe(load_config("unfreeze_r64"))
    assert phi.unfrozen_prefixes["audio_encoder"] == ("model.embed_tokens_extend.audio_embed.encoder.",)
    assert phi.reference.label == "paper (unfreeze)" and phi.reference.values(0)["acc_pcc"] is not None
    qwen = describe(load_config("qwen2audio_unfreeze_r64", ["model.unfreeze=[audio_projector]"]))
    assert qwen.unfrozen_prefixes == {"audio_projector": ("model.multi_modal_projector.",)}
    assert phi.other_trainable is None


def test_protein_names_what_an_analytical_count_misses():
    from loralab.config.loader import load_config

    cfg = load_config("small")
    described = system.system_module("protein").describe(cfg)
    assert described.other_trainable == "the protein head" and described.reference is None
    assert cfg.protein.dataset_dir in described.data
