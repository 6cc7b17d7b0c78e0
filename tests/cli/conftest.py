"""Running the CLI in-process on hostile input: exit status and stderr, never a traceback."""

from __future__ import annotations

import pytest


@pytest.fixture
def cli(capsys):
    """``cli(*args) -> (exit status, stderr)``, stdout in ``cli.stdout``; argparse's own exits
    count as statuses."""
    from loralab.cli.main import main

    def run(*args: str) -> tuple[int, str]:
        capsys.readouterr()
        try:
            code = main([str(a) for a in args])
        except SystemExit as e:  # argparse: usage error
            code = e.code
        captured = capsys.readouterr()
        run.stdout = captured.out
        assert "Traceback" not in captured.err
        return code, captured.err

    return run
