from pathlib import Path

import pytest

from loralab.cli.common import add_config_arguments, config_from_args
from loralab.config import ConfigError, load_config
from loralab.config.loader import SHIPPED_CONFIG_DIR, list_presets

SHIPPED = sorted(SHIPPED_CONFIG_DIR.rglob("*.yaml"))


def test_shipped_configs_found():
    names = {p.stem for p in SHIPPED}
    assert {"paper_r64", "pretrained_r320", "unfreeze_r64"} <= names


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(SHIPPED_CONFIG_DIR)))
def test_every_shipped_config_loads_and_validates(path):
    cfg = load_config(path)
    assert cfg.system in ("speech", "protein")


def test_paper_values():
    p64 = load_config("paper_r64")
    assert (p64.lora.init, p64.lora.rank, p64.lora.alpha, p64.lora.dropout) == ("fresh", 64, 128, 0.05)
    assert (p64.training.batch_size, p64.training.gradient_accumulation) == (8, 8)
    assert p64.training.learning_rate == pytest.approx(2e-5)
    assert p64.run_dir == "output/paper_r64"
    r320 = load_config("pretrained_r320")
    assert (r320.lora.init, r320.lora.rank, r320.lora.alpha, r320.lora.dropout) == (
        "pretrained",
        320,
        640,
        0.01,
    )
    unf = load_config("unfreeze_r64")
    assert unf.strategy == "unfreeze" and unf.model.unfreeze == ["audio_encoder", "audio_projector"]
    assert unf.lora.rank == 64  # inherited through base: paper_r64.yaml


def test_typo_names_key_file_and_suggestion(tmp_path):
    f = tmp_path / "mine.yaml"
    f.write_text("base: paper_r64\ntraining:\n  learnig_rate: 1.0e-4\n")
    with pytest.raises(ConfigError) as e:
        load_config(f)
    msg = str(e.value)
    assert "training.learnig_rate" in msg and "mine.yaml" in msg and "training.learning_rate" in msg


def test_wrong_type_and_literal(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("base: paper_r64\ntraining:\n  epochs: three\n")
    with pytest.raises(ConfigError, match="training.epochs"):
        load_config(f)
    f.write_text("base: paper_r64\nstrategy: unfrezee\n")
    with pytest.raises(ConfigError, match="unfreeze"):
        load_config(f)


def test_validate_collects_every_problem(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("base: paper_r64\ntraining:\n  epochs: 0\n  batch_size: 0\nlora:\n  rank: 0\n")
    with pytest.raises(ConfigError) as e:
        load_config(f)
    msg = str(e.value)
    assert "3 problem(s)" in msg
    assert all(k in msg for k in ("training.epochs", "training.batch_size", "lora.rank"))


def test_base_chain_and_child_wins(tmp_path):
    (tmp_path / "a.yaml").write_text("base: paper_r64\nname: a\ntraining:\n  epochs: 5\n")
    (tmp_path / "b.yaml").write_text("base: a.yaml\nname: b\ntraining:\n  batch_size: 2\n")
    cfg = load_config(tmp_path / "b.yaml")
    assert (cfg.name, cfg.training.epochs, cfg.training.batch_size, cfg.lora.rank) == ("b", 5, 2, 64)


def test_base_loop_is_an_error(tmp_path):
    (tmp_path / "a.yaml").write_text("base: b.yaml\n")
    (tmp_path / "b.yaml").write_text("base: a.yaml\n")
    with pytest.raises(ConfigError, match="loops"):
        load_config(tmp_path / "a.yaml")


def test_unknown_preset_suggests():
    with pytest.raises(ConfigError, match="paper_r64"):
        load_config("paper_r46")


def test_cli_flags_and_key_value_overrides():
    import argparse

    parser = argparse.ArgumentParser()
    add_config_arguments(parser)
    args = parser.parse_args(
        [
            "--config",
            "paper_r64",
            "--epochs",
            "4",
            "--batch-size",
            "2",
            "--gradient-accumulation",
            "3",
            "--learning-rate",
            "1e-4",
            "--output-dir",
            "/tmp/x",
            "--gpus",
            "0,1",
            "lora.rank=16",
            "speech.prompt_style=short",
        ]
    )
    cfg = config_from_args(args)
    t = cfg.training
    assert (t.epochs, t.batch_size, t.gradient_accumulation, t.gpus) == (4, 2, 3, "0,1")
    assert t.learning_rate == pytest.approx(1e-4)
    assert (cfg.output_dir, cfg.lora.rank, cfg.speech.prompt_style) == ("/tmp/x", 16, "short")
    args = parser.parse_args(["pretrained_r320", "training.learning_rate=3e-5"])
    assert config_from_args(args).training.learning_rate == pytest.approx(3e-5)


def test_bad_override_key():
    with pytest.raises(ConfigError, match="did you mean 'lora.rank'"):
        load_config("paper_r64", ["lora.rnak=8"])


def test_presets_listed():
    assert Path(list_presets()["paper_r64"]).name == "paper_r64.yaml"


def test_presets_ship_inside_the_package():
    """Found through importlib.resources, not relative to a source checkout."""
    from importlib.resources import files

    import loralab

    assert SHIPPED_CONFIG_DIR == Path(str(files("loralab") / "configs"))
    assert SHIPPED_CONFIG_DIR.parent == Path(loralab.__file__).parent
    assert list_presets()["paper_r64"] == SHIPPED_CONFIG_DIR / "speech" / "paper_r64.yaml"
    assert (SHIPPED_CONFIG_DIR / "deepspeed" / "zero2.json").is_file()


def test_config_dir_env_adds_and_overrides_presets(tmp_path, monkeypatch):
    (tmp_path / "mine_r8.yaml").write_text("base: paper_r64\nlora:\n  rank: 8\n")
    (tmp_path / "paper_r64.yaml").write_text("base: speech/paper_r64\nname: local_paper\n")
    monkeypatch.setenv("LORALAB_CONFIG_DIR", str(tmp_path))
    presets = list_presets()
    assert presets["mine_r8"] == tmp_path / "mine_r8.yaml"
    assert presets["pretrained_r320"].is_relative_to(SHIPPED_CONFIG_DIR)
    assert load_config("mine_r8").lora.rank == 8
    local = load_config("paper_r64")  # the user's folder wins; its base: is the shipped one
    assert (local.name, local.lora.rank) == ("local_paper", 64)


def test_cli_overrides_after_flags(monkeypatch):
    """key=value may come after flags; an unknown flag is still an error."""
    from loralab.cli import main as cli_main

    seen = {}

    def fake_run(args):
        seen["cfg"] = config_from_args(args)
        return 0

    parser = cli_main.build_parser()
    monkeypatch.setattr(cli_main, "build_parser", lambda: parser)
    train_parser = parser._subparsers._group_actions[0].choices["train"]
    train_parser.set_defaults(_run=fake_run)
    assert cli_main.main(["train", "paper_r64", "--epochs", "1", "lora.rank=8", "lora.alpha=16"]) == 0
    cfg = seen["cfg"]
    assert (cfg.training.epochs, cfg.lora.rank, cfg.lora.alpha) == (1, 8, 16)
    with pytest.raises(SystemExit):
        cli_main.main(["train", "paper_r64", "--epochs", "1", "--no-such-flag"])


def test_system_sections_are_attributes_of_the_config_and_unknown_ones_are_refused():
    from loralab.config.schema import ExperimentConfig
    from loralab.speech.config import SpeechDataConfig

    given = {"speech": SpeechDataConfig(limit=5)}
    cfg = ExperimentConfig(system="speech", sections=given)
    assert cfg.speech.limit == 5 and cfg.protein_head.pair_dim == 128  # a section not given: its defaults
    assert list(given) == ["speech"]  # the caller's mapping is left as it was
    with pytest.raises(TypeError, match="no registered system has the config section"):
        ExperimentConfig(sections={"speach": SpeechDataConfig()})
    with pytest.raises(AttributeError, match="no field or config section 'speach'"):
        _ = cfg.speach


def test_config_dict_keeps_the_layout_of_run_folders():
    """Engine fields first, then the systems' sections as top-level keys, in the order run.json has."""
    from loralab.config.schema import config_to_dict

    data = config_to_dict(load_config("paper_r64"))
    assert list(data) == [
        "name", "system", "description", "strategy", "output_dir", "model", "lora", "training",
        "evaluation", "speech", "protein", "protein_head",
    ]  # fmt: skip
    assert data["speech"]["prompt_style"] == "paper" and "sections" not in data


def test_a_retired_key_still_loads_with_a_warning_and_is_ignored(tmp_path):
    f = tmp_path / "old.yaml"
    f.write_text("base: paper_r64\nspeech:\n  eval_split: dev\n")
    with pytest.warns(
        FutureWarning, match="'speech.eval_split' is retired and ignored: evaluation.split replaces it"
    ):
        cfg = load_config(f)
    assert not hasattr(cfg.speech, "eval_split") and cfg.evaluation.split == "test"


def test_a_typo_of_a_retired_key_names_its_replacement(tmp_path):
    f = tmp_path / "old.yaml"
    f.write_text("base: paper_r64\nspeech:\n  eval_splt: dev\n")
    with pytest.raises(ConfigError, match="'speech.eval_split' is retired: evaluation.split replaces it"):
        load_config(f)


def test_an_old_run_config_with_a_retired_key_loads(tmp_path):
    from loralab.config.loader import build_dataclass
    from loralab.config.schema import ExperimentConfig, config_to_dict

    old = config_to_dict(load_config("paper_r64"))
    old["speech"]["eval_split"] = "test"  # what every run.json written before it was retired holds
    with pytest.warns(FutureWarning, match="speech.eval_split"):
        cfg = build_dataclass(ExperimentConfig, old, "run.json")
    assert cfg == load_config("paper_r64")


def test_a_checkpoint_from_before_a_field_existed_resumes_at_its_default_only():
    from loralab.engine.run_info import config_differences, config_fields

    new = config_fields(load_config("demo_qwen2audio"))
    old = {k: v for k, v in new.items() if not k.startswith("speech.real_voice")}
    assert new["speech.real_voice_calibration"] == "asterisk"  # the demo asks for the real-voice floor
    assert config_differences(old, new) == ["speech.real_voice_calibration: None -> 'asterisk'"]
    at_default = {**new, "speech.real_voice_calibration": "none"}
    assert config_differences(old, at_default) == []  # max_flagged and prompts: at their defaults too
    assert config_differences(old, {**at_default, "speech.real_voice_prompts": 20}) == [
        "speech.real_voice_prompts: None -> 20"
    ]


def test_config_differences_ignore_a_retired_key():
    from loralab.engine.run_info import config_differences

    assert config_differences({"speech.eval_split": "test", "lora.rank": 64}, {"lora.rank": 64}) == []
    assert config_differences({"speech.eval_split": "test", "lora.rank": 64}, {"lora.rank": 8}) == [
        "lora.rank: 64 -> 8"
    ]


def test_protein_head_problems_are_named_with_their_keys():
    overrides = ["protein_head.sequence_conv_blocks=-1", "protein_head.trunk_channels=0"]
    with pytest.raises(ConfigError) as e:
        load_config("protein/cpu", overrides)
    msg = str(e.value)
    assert "2 problem(s)" in msg
    assert "protein_head.sequence_conv_blocks must be >= 0" in msg and "trunk_channels >= 1" in msg
