"""The blosc1 chunk header check shared by local (:mod:`.zarr`) and remote (:mod:`._zarr_remote`) zarr reads."""

from __future__ import annotations

import numpy as np

from ..errors import CorruptInputError

__all__ = ["BLOSC_HEADER", "check_blosc_header"]

BLOSC_HEADER = 16
"""Bytes of a blosc1 chunk header: version, versionlz, flags, typesize, nbytes, blocksize, cbytes."""


def check_blosc_header(where: str, key: str, header: bytes, size: int, expected_nbytes: int | None) -> None:
    """Refuse a blosc chunk of ``size`` bytes shorter than its header's ``cbytes`` or of another decoded size.

    >>> header = bytes(4) + np.array([64, 64, 40], "<u4").tobytes()
    >>> check_blosc_header("a.zarr", "0/0", header, 40, 64)
    >>> try:
    ...     check_blosc_header("a.zarr", "0/0", header, 39, 64)
    ... except CorruptInputError as exc:
    ...     print(str(exc)[:60])
    a.zarr: chunk key '0/0' is truncated: 39 bytes stored, its b
    """
    if len(header) < BLOSC_HEADER:
        raise CorruptInputError(f"{where}: chunk key {key!r} is truncated: {size} bytes, shorter than a blosc header")
    nbytes, _blocksize, cbytes = np.frombuffer(header, "<u4", count=3, offset=4).tolist()
    if size < cbytes:
        raise CorruptInputError(
            f"{where}: chunk key {key!r} is truncated: {size:,} bytes stored, its blosc header declares "
            f"{cbytes:,}; re-copy or re-write the store"
        )
    if expected_nbytes is not None and nbytes != expected_nbytes:
        raise CorruptInputError(
            f"{where}: chunk key {key!r} has a blosc header declaring {nbytes:,} decoded bytes, "
            f"the chunk holds {expected_nbytes:,}; the chunk is corrupt"
        )
