"""Shared fixtures: the sample data folder and small generated images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO.parent / "shared" / "data" / "samples"


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    """The real sample files (../shared/data/samples beside the repo)."""
    if not SAMPLES.is_dir():
        pytest.fail(f"sample data not found at {SAMPLES}; clone the repo next to shared/")
    return SAMPLES


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)
