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


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> object:
    """With ``OME_ARROW_DASK_STRICT_SKIPS=1`` (set by .ci/run), a skip is a failure unless it is a GPU test.

    The only acceptable reason to skip is missing hardware. Tests that need an optional
    library or a system tool (napari, Xvfb, Chromium, moto) skip with an install hint on a
    developer's machine, but CI installs all of them, so a skip there means a broken setup.
    """
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    strict = os.environ.get("OME_ARROW_DASK_STRICT_SKIPS") == "1"
    if strict and report.skipped and not hasattr(report, "wasxfail") and item.get_closest_marker("gpu") is None:
        reason = report.longrepr[-1] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped, which CI does not allow (OME_ARROW_DASK_STRICT_SKIPS=1): {reason}"
