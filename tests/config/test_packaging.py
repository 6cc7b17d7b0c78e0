"""A wheel built from this repository ships its presets (issue 15, item 1).

The wheel is built offline (no build isolation, no dependencies) from a copy of the
sources, installed non-editable into a fresh folder, and run from another directory with
that folder first on the path, so the installed copy, not the editable source, answers.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(
    not (REPO / "pyproject.toml").is_file(), reason="needs the source tree to build a wheel"
)


def _pip(*args: str, cwd: Path) -> None:
    cmd = [sys.executable, "-m", "pip", *args, "--no-deps", "--no-build-isolation", "--no-index", "-q"]
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"{' '.join(cmd)} failed:\n{done.stdout}\n{done.stderr}"


@pytest.fixture(scope="module")
def installed_wheel(tmp_path_factory) -> Path:
    """site-packages-like folder holding loralab installed from a freshly built wheel."""
    root = tmp_path_factory.mktemp("wheel")
    # Build from a copy: no build/ or egg-info left in the working tree, no stale build/lib.
    src = root / "src_copy"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, src / name)
    shutil.copytree(
        REPO / "src", src / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "*.pyc")
    )
    dist = root / "dist"
    _pip("wheel", "-w", str(dist), str(src), cwd=root)
    (wheel,) = dist.glob("loralab-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "loralab/configs/speech/paper_r64.yaml" in names
    assert "loralab/configs/speech/base.yaml" in names  # base: of paper_r64
    assert "loralab/configs/protein/qwen2.5-0.5b.yaml" in names
    assert "loralab/configs/deepspeed/zero2.json" in names
    site = root / "site"
    _pip("install", "--target", str(site), str(wheel), cwd=root)
    return site


def _run_installed(site: Path, code: str, tmp_path: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "LORALAB_CONFIG_DIR"}
    env["PYTHONPATH"] = os.pathsep.join([str(site), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    elsewhere = tmp_path / "elsewhere"  # no configs/ folder here or above it
    elsewhere.mkdir()
    return subprocess.run(
        [sys.executable, "-c", code], cwd=elsewhere, env=env, capture_output=True, text=True, timeout=120
    )


def test_wheel_compare_paper_r64_from_another_directory(installed_wheel, tmp_path):
    code = (
        "import loralab, sys\n"
        "print('LORALAB_FILE', loralab.__file__)\n"
        "from loralab.cli.main import main\n"
        "sys.exit(main(['compare', 'paper_r64']))\n"
    )
    done = _run_installed(installed_wheel, code, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    first = done.stdout.splitlines()[0]
    assert first.startswith("LORALAB_FILE ")
    imported = Path(first.removeprefix("LORALAB_FILE ")).resolve()
    assert imported.is_relative_to(installed_wheel.resolve()), f"imported {imported}, not the wheel's copy"
    assert "| paper_r64 |" in done.stdout
    assert "| trainable parameters | 92,274,688 (92.27M) |" in done.stdout


def test_wheel_finds_shipped_deepspeed_config_and_base_chain(installed_wheel, tmp_path):
    code = (
        "from loralab.config import load_config\n"
        "from loralab.config.loader import resolve_deepspeed_config\n"
        "cfg = load_config('unfreeze_r64')\n"  # base: paper_r64.yaml -> base: base.yaml
        "print('RANK', cfg.lora.rank, cfg.strategy)\n"
        "print('DS', resolve_deepspeed_config('zero2'))\n"
    )
    done = _run_installed(installed_wheel, code, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "RANK 64 unfreeze" in done.stdout
    ds = Path(done.stdout.split("DS ", 1)[1].strip()).resolve()
    assert ds.is_relative_to(installed_wheel.resolve()) and ds.name == "zero2.json"
