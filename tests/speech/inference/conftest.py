"""Fixtures of the inference tests."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf


@pytest.fixture
def wav(tmp_path):
    """A 1.2 s tone: a recording the tiny models can be asked about."""
    path = tmp_path / "take.wav"
    t = np.arange(16000 * 1.2) / 16000
    sf.write(path, (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 16000)
    return path
