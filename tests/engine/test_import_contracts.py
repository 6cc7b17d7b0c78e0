"""The import contracts of pyproject.toml hold (also run by `make lint`), and the checker does
catch a broken one."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
pytestmark = pytest.mark.skipif(
    LINT_IMPORTS is None, reason="import-linter not installed (pip install -e '.[dev]')"
)


def _lint(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [LINT_IMPORTS, "--no-cache", *args], cwd=ROOT, capture_output=True, text=True, timeout=300
    )


def test_the_contracts_are_kept():
    proc = _lint()
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "0 broken" in proc.stdout


def test_a_broken_contract_fails(tmp_path):
    config = tmp_path / "contracts.toml"
    config.write_text(
        '[tool.importlinter]\nroot_package = "loralab"\n\n[[tool.importlinter.contracts]]\n'
        'name = "reports without the engine (false on purpose)"\ntype = "forbidden"\n'
        'source_modules = ["loralab.reports"]\nforbidden_modules = ["loralab.engine"]\n'
    )
    proc = _lint(str(config))
    assert proc.returncode != 0 and "BROKEN" in proc.stdout
