"""Shared fixtures: the sample data folder and small generated images."""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SAMPLES = Path(os.environ.get("OME_ARROW_DASK_SAMPLES", REPO.parent / "shared" / "data" / "samples"))
BUNDLED = REPO / "tests" / "data" / "samples.tar.xz"
"""The same sample files (400 KB, BSD-3 from ome-arrow's test data), for clones without ../shared."""


@pytest.fixture(scope="session")
def samples_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real sample files: ../shared/data/samples beside the repo, else the bundled copy."""
    if SAMPLES.is_dir():
        return SAMPLES
    target = tmp_path_factory.mktemp("bundled")
    with tarfile.open(BUNDLED) as tar:
        tar.extractall(target, filter="data")
    return target / "samples"


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)
