"""Fixtures shared by the protein tests: the real structures of MDAnalysisTests, offline."""

from __future__ import annotations

import pytest

from loralab.errors import DataError


@pytest.fixture(scope="session")
def mdanalysis_data():
    """The MDAnalysisTests ``data`` folder (real PDB/mmCIF files; ``dssp/`` holds ~50 single
    chains); the test is skipped when the package is not installed."""
    from loralab.protein.prepare import mdanalysis_test_data

    try:
        return mdanalysis_test_data()
    except DataError as e:
        pytest.skip(str(e))
