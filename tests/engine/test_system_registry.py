"""The open system registry: a third system, in a package of its own, registers itself through
the ``loralab.systems`` entry point group; nothing in loralab is patched or edited."""

from __future__ import annotations

import sys
import textwrap

import pytest

from loralab.config.loader import ConfigError, load_config
from loralab.engine import system

PLUGIN = """
from loralab.engine.system import register_system

HEADLINE_METRICS = ("score",)
EVALUATION_OPTIONS = frozenset({"checkpoints"})


def register():
    register_system("third", __name__)


def build_parts(cfg, runtime): raise NotImplementedError
def count_parameters(cfg): return {}
def describe(cfg): raise NotImplementedError
def evaluate_run(run_dir, request): raise NotImplementedError


def validate_config(cfg):
    return [] if cfg.lora.rank <= 8 else [f"third: lora.rank must be <= 8 (got {cfg.lora.rank})"]
"""


@pytest.fixture
def third_package(tmp_path, monkeypatch):
    """A package 'thirdsys' installed on the path, with its entry point (as pip would write it)."""
    (tmp_path / "thirdsys.py").write_text(textwrap.dedent(PLUGIN))
    info = tmp_path / "thirdsys-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: thirdsys\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[loralab.systems]\nthird = thirdsys:register\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    system.SYSTEM_MODULES.pop("third", None)
    sys.modules.pop("thirdsys", None)


def test_a_third_system_registers_itself_through_its_entry_point(third_package, tmp_path):
    assert "third" not in system.SYSTEM_MODULES  # nobody imported it
    config = tmp_path / "third.yaml"
    config.write_text("name: t\nsystem: third\nlora:\n  rank: 4\n")
    cfg = load_config(config)
    assert cfg.system == "third" and system.registered_systems()["third"] == "thirdsys"
    assert system.system_module("third").HEADLINE_METRICS == ("score",)
    assert "score" in system.headline_metric_order()
    with pytest.raises(ConfigError, match="third: lora.rank must be <= 8"):  # its own rules apply
        load_config(config, ["lora.rank=16"])


def test_an_unknown_system_is_a_config_error_naming_the_registered_ones(tmp_path):
    config = tmp_path / "x.yaml"
    config.write_text("name: x\nsystem: speach\n")
    with pytest.raises(
        ConfigError,
        match="system: unknown 'speach' \\(did you mean 'speech'\\?\\); registered: speech, protein",
    ):
        load_config(config)
