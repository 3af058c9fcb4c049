"""Recognising an OME-Arrow typed chunk dataset directory by its files alone (no pyarrow).

:func:`~ome_arrow_dask.sources.parquet.probe` runs for every local path
:func:`~ome_arrow_dask.sources.open_source` opens, so it must not import the Parquet
readers (:mod:`ome_arrow_dask.sources._parquet_dataset`, which reads the manifest named here).
"""

from __future__ import annotations

import os
from pathlib import Path

from ..jobs.paths import progress_dir

__all__ = ["MANIFEST", "ZARR_MARKERS", "is_dataset_dir", "looks_like_zarr"]

MANIFEST = "_ome_arrow_dataset.json"
"""The dataset's manifest; its absence means the writer did not finish."""

ZARR_MARKERS = ("zarr.json", ".zgroup", ".zattrs", ".zarray")
"""Files that make a folder a zarr store, which this layout never claims."""


def looks_like_zarr(path: str | os.PathLike[str]) -> bool:
    """A ``.zarr`` folder, or one holding zarr v2 / v3 metadata (never an OME-Arrow dataset).

    An interrupted OME-Zarr conversion also leaves a ``<out>.progress`` sibling; it must
    be reported by the OME-Zarr reader, not as an incomplete Parquet dataset.
    """
    p = Path(path)
    return p.name.lower().endswith(".zarr") or any((p / marker).is_file() for marker in ZARR_MARKERS)


def is_dataset_dir(path: str) -> bool:
    """A directory holding a manifest or the dataset's tables (the latter to report them incomplete).

    A directory with only a ``<path>.progress`` sibling is claimed too (an interrupted
    Parquet conversion), unless it is a zarr store (see :func:`looks_like_zarr`).
    """
    p = Path(path)
    if not p.is_dir() or looks_like_zarr(p):
        return False
    names = (MANIFEST, "images.parquet", "chunks.parquet")
    return any((p / name).exists() for name in names) or progress_dir(p).is_dir()
