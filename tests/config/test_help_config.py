"""`loralab train --help-config`: every config field, generated from the schema."""

import dataclasses
import typing

from loralab.cli.main import main
from loralab.config.describe import format_config_help
from loralab.config.schema import ExperimentConfig, TrainingConfig
from loralab.engine.system import config_section_types


def _all_keys(cls, prefix=""):
    """Dotted keys of every leaf field, walking nested dataclasses (and, in ExperimentConfig, the
    registered systems' sections) independently of the CLI."""
    hints = typing.get_type_hints(cls)
    keys = []
    for f in dataclasses.fields(cls):
        if cls is ExperimentConfig and f.name == "sections":
            for name, section in config_section_types().items():
                keys += _all_keys(section, f"{name}.")
        elif dataclasses.is_dataclass(hints[f.name]):
            keys += _all_keys(hints[f.name], f"{prefix}{f.name}.")
        else:
            keys.append(f"{prefix}{f.name}")
    return keys


def _run(capsys):
    code = main(["train", "--help-config"])
    return code, capsys.readouterr().out


def test_exits_zero_without_a_config(capsys):
    code, out = _run(capsys)
    assert code == 0
    assert out.strip()


def test_names_every_field_of_every_section(capsys):
    _, out = _run(capsys)
    keys = _all_keys(ExperimentConfig)
    assert len(keys) > 50
    listed = {
        line.strip().split(":", 1)[0] for line in out.splitlines() if line.startswith("  ") and ": " in line
    }
    missing = [k for k in keys if k not in listed]
    assert not missing, missing
    hints = typing.get_type_hints(ExperimentConfig)
    sections = [
        f.name for f in dataclasses.fields(ExperimentConfig) if dataclasses.is_dataclass(hints[f.name])
    ] + list(config_section_types())
    assert {"model", "lora", "training", "speech", "protein", "protein_head", "evaluation"} <= set(sections)
    for section in sections:
        assert any(line.startswith(f"{section}:") for line in out.splitlines()), section


def test_shows_type_default_and_help(capsys):
    _, out = _run(capsys)
    assert "training.learning_rate: float = 2e-05" in out
    help_text = next(
        f.metadata["help"] for f in dataclasses.fields(TrainingConfig) if f.name == "learning_rate"
    )
    assert help_text in out
    assert "Peak learning rate (AdamW)." in out
    assert "lora.rank: int = 64" in out


def test_long_help_is_wrapped():
    text = format_config_help(width=60)
    assert all(len(line) <= 60 for line in text.splitlines() if line.startswith("      "))
    # words survive the wrapping
    assert "Kaldi align-text" in " ".join(line.strip() for line in text.splitlines())


def test_names_a_retired_key_and_its_replacement(capsys):
    _, out = _run(capsys)
    assert "  speech.eval_split: retired, ignored if given; use evaluation.split" in out
