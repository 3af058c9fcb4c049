"""The package type-checks with the pyproject mypy configuration, and ships its ``py.typed`` marker."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import ome_arrow_dask
from ome_arrow_dask import meta
from ome_arrow_dask.sources import base

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_mypy_passes_on_the_package(tmp_path: Path) -> None:
    # the same command as .ci/run; mypy is in the test extra, so a missing mypy fails here (no skip)
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "ome_arrow_dask", "--cache-dir", str(tmp_path / "mypy-cache")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, f"mypy found problems:\n{result.stdout}{result.stderr}"


def test_mypy_config_is_strict() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"]
    for flag in ("warn_unused_ignores", "disallow_untyped_defs", "check_untyped_defs", "strict_equality"):
        assert config.get(flag) is True, flag
    assert "ignore_missing_imports" not in config  # only per-module, for the untyped libraries listed


def test_py_typed_is_shipped() -> None:
    assert (Path(ome_arrow_dask.__file__).parent / "py.typed").is_file()
    package_data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert "py.typed" in package_data["ome_arrow_dask"]


def test_chunk_coords_has_one_definition() -> None:
    assert base.ChunkCoords is meta.ChunkCoords
    assert meta.ChunkCoords == tuple[int, int, int, int, int]


def test_tczyx() -> None:
    assert meta.tczyx(iter([1, 2, 3, 4, 5])) == (1, 2, 3, 4, 5)
    with pytest.raises(meta.OmeArrowDaskError, match="expected 5 values, one per TCZYX axis, got 4"):
        meta.tczyx([1, 2, 3, 4])
