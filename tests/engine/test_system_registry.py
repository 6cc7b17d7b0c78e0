"""The open system registry: a third system, in a package of its own, registers itself through
the ``loralab.systems`` entry point group; nothing in loralab is patched or edited."""

from __future__ import annotations

import sys
import textwrap

import pytest

from loralab.config.describe import format_config_help
from loralab.config.loader import ConfigError, load_config
from loralab.config.schema import config_to_dict
from loralab.engine import system

PLUGIN = """
from dataclasses import dataclass

from loralab.config.schema import doc
from loralab.engine.system import register_system

HEADLINE_METRICS = ("score",)
EVALUATION_OPTIONS = frozenset({"checkpoints"})


@dataclass
class ThirdDataConfig:
    \"\"\"The third system's data.\"\"\"

    depth: int = doc("How deep the third system digs.", 3)


CONFIG_SECTIONS = {"third_data": ThirdDataConfig}


def register():
    register_system("third", __name__, config_sections=__name__)


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
    system.SYSTEM_CONFIG_SECTIONS.pop("third", None)
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


def test_a_third_system_owns_its_config_section(third_package, tmp_path):
    config = tmp_path / "third.yaml"
    config.write_text("name: t\nsystem: third\nlora:\n  rank: 4\nthird_data:\n  depth: 7\n")
    cfg = load_config(config)
    assert cfg.third_data.depth == 7 and cfg.speech.prompt_reference == "none"  # beside the others
    assert list(config_to_dict(cfg))[-1] == "third_data" and config_to_dict(cfg)["third_data"] == {"depth": 7}
    assert "third_data.depth: int = 3" in format_config_help()
    assert "How deep the third system digs." in format_config_help()
    config.write_text("name: t\nsystem: third\nthird_data:\n  dept: 7\n")
    with pytest.raises(ConfigError, match="unknown key 'third_data.dept'; did you mean 'third_data.depth'"):
        load_config(config)


def test_an_unknown_system_is_a_config_error_naming_the_registered_ones(tmp_path):
    config = tmp_path / "x.yaml"
    config.write_text("name: x\nsystem: speach\n")
    with pytest.raises(
        ConfigError,
        match="system: unknown 'speach' \\(did you mean 'speech'\\?\\); registered: speech, protein",
    ):
        load_config(config)
