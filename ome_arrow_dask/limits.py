"""Safety limits checked against what file headers claim, before any allocation.

Headers are untrusted: a 8 KB TIFF may claim 100000 x 100000 pixels. Sources compare
declared sizes with these limits (and with the file size) and raise
:class:`~ome_arrow_dask.errors.ResourceLimitError` naming the file. Limits are module
attributes so a user with big iron can raise them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from .errors import ResourceLimitError

MAX_CHUNK_BYTES = 4 * 2**30
"""Largest decoded chunk (tile, strip, page, zarr chunk, Parquet chunk) we will allocate."""

MAX_CHUNKS = 50_000_000
"""Largest number of chunks in one image's grid (the graph would not fit in memory)."""

MAX_COMPRESSION_RATIO = 10_000
"""Declared decoded bytes per stored byte beyond which a file is treated as a bomb."""

MAX_OVERSIZED_TILE_SIDE = 4096
"""Largest TIFF tile side allowed when a tile is larger than the image it tiles.

A tile side beyond the image side rounded up to 16 wastes memory on every decode; small
pyramid levels commonly keep the full level's 256-1024 tiles (tifffile writes them so),
so those stay readable, while a 40000 x 40000 tile on a 16 x 16 image is refused as corrupt.
"""


def check_chunk_grid(where: str, shape: Sequence[int], chunk_shape: Sequence[int], dtype: np.dtype) -> None:
    """Refuse zero-sized chunks, absurd chunk counts and huge chunks, naming ``where``.

    >>> check_chunk_grid("x.zarr", (1, 1, 1, 64, 64), (1, 1, 1, 32, 32), np.dtype("u2"))
    >>> check_chunk_grid("x.zarr", (1, 1, 1, 64, 64), (1, 1, 1, 0, 32), np.dtype("u2"))
    Traceback (most recent call last):
    ...
    ome_arrow_dask.errors.ResourceLimitError: x.zarr: chunk shape (1, 1, 1, 0, 32) has a zero or negative size
    """
    if any(int(c) <= 0 for c in chunk_shape):
        raise ResourceLimitError(f"{where}: chunk shape {tuple(chunk_shape)} has a zero or negative size")
    if any(int(s) < 0 for s in shape):
        raise ResourceLimitError(f"{where}: shape {tuple(shape)} has a negative size")
    n_chunks = math.prod(-(-int(s) // int(c)) for s, c in zip(shape, chunk_shape, strict=True))
    if n_chunks > MAX_CHUNKS:
        raise ResourceLimitError(
            f"{where}: shape {tuple(shape)} with chunks {tuple(chunk_shape)} makes {n_chunks:.3g} chunks, "
            f"more than the limit {MAX_CHUNKS:,} (ome_arrow_dask.limits.MAX_CHUNKS)"
        )
    chunk_bytes = math.prod(int(c) for c in chunk_shape) * np.dtype(dtype).itemsize
    if chunk_bytes > MAX_CHUNK_BYTES:
        raise ResourceLimitError(
            f"{where}: one chunk {tuple(chunk_shape)} of {np.dtype(dtype)} is {chunk_bytes:,} bytes, "
            f"more than the limit {MAX_CHUNK_BYTES:,} (ome_arrow_dask.limits.MAX_CHUNK_BYTES)"
        )


def check_declared_bytes(where: str, declared_bytes: int, stored_bytes: int) -> None:
    """Refuse a file whose header claims far more pixels than its bytes could hold.

    >>> check_declared_bytes("a.tif", 10_000, 8_000)
    >>> check_declared_bytes("a.tif", 18 * 2**30, 8192)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ome_arrow_dask.errors.ResourceLimitError: a.tif: header claims 19,327,352,832 bytes ... refusing to allocate
    """
    if stored_bytes > 0 and declared_bytes > MAX_COMPRESSION_RATIO * stored_bytes and declared_bytes > 2**26:
        raise ResourceLimitError(
            f"{where}: header claims {declared_bytes:,} bytes of pixels but the file holds {stored_bytes:,} bytes "
            f"(ratio above {MAX_COMPRESSION_RATIO}); refusing to allocate"
        )
