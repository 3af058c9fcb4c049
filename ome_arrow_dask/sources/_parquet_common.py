"""Helpers shared by the OME-Arrow Parquet layouts: safe file opening, the chunk index, decoding.

Every Parquet file is opened with ``page_checksum_verification=True``; pyarrow errors
become :class:`~ome_arrow_dask.errors.CorruptInputError` naming the file. Footers are
parsed once per process (:func:`parquet_file` reuses them) and a file whose size or
mtime changed since it was opened raises :class:`~ome_arrow_dask.errors.InputChangedError`.
"""

from __future__ import annotations

import math
import os
import threading
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import CorruptInputError, InputChangedError
from ..meta import Chunks5, regular_chunks

Fingerprint = tuple[int, int]

MAX_CACHED_FOOTERS = 64
"""Parsed Parquet footers kept per process (keyed by path, mtime and size)."""

_FOOTERS: OrderedDict[tuple[str, Fingerprint], pq.FileMetaData] = OrderedDict()
_FOOTERS_LOCK = threading.Lock()


def fingerprint(path: str) -> Fingerprint:
    """``(mtime_ns, size)`` of ``path``; what the token and change checks use."""
    st = os.stat(path)
    return (st.st_mtime_ns, st.st_size)


def corrupt(where: str, exc: BaseException) -> CorruptInputError:
    """Wrap a pyarrow / codec error into a :class:`CorruptInputError` naming ``where``."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return CorruptInputError(f"{where}: cannot read the Parquet data ({type(exc).__name__}: {text})")


def read_footer(path: str, expected: Fingerprint | None = None) -> pq.FileMetaData:
    """Parse (or reuse) the footer of ``path``; raise if the file changed since ``expected``."""
    current = fingerprint(path)
    if expected is not None and current != tuple(expected):
        raise InputChangedError(f"{path}: the file changed after it was opened (mtime or size differ); open it again")
    key = (path, current)
    with _FOOTERS_LOCK:
        if key in _FOOTERS:
            _FOOTERS.move_to_end(key)
            return _FOOTERS[key]
    try:
        footer = pq.read_metadata(path)
    except (OSError, pa.ArrowException, ValueError, UnicodeDecodeError, KeyError) as exc:
        raise corrupt(path, exc) from exc
    with _FOOTERS_LOCK:
        _FOOTERS[key] = footer
        while len(_FOOTERS) > MAX_CACHED_FOOTERS:
            _FOOTERS.popitem(last=False)
    return footer


def parquet_file(path: str, expected: Fingerprint | None = None) -> pq.ParquetFile:
    """Open ``path`` with page checksum verification, reusing a parsed footer."""
    footer = read_footer(path, expected)
    try:
        return pq.ParquetFile(path, metadata=footer, page_checksum_verification=True)
    except (OSError, pa.ArrowException, ValueError) as exc:
        raise corrupt(path, exc) from exc


def read_row_group(path: str, expected: Fingerprint, row_group: int, columns: list[str], where: str) -> pa.Table:
    """Read ``columns`` of one row group, verifying page checksums; errors name ``where``."""
    pf = parquet_file(path, expected)
    try:
        return pf.read_row_group(row_group, columns=columns)
    except (OSError, pa.ArrowException, ValueError, IndexError, KeyError) as exc:
        raise corrupt(where, exc) from exc
    finally:
        pf.close()


def leaf_paths(footer: pq.FileMetaData) -> list[str]:
    """Dotted Parquet leaf paths (``col.chunks.list.element.t``) of a file."""
    schema = footer.schema
    return [schema.column(i).path for i in range(len(schema))]


def locate_row(footer: pq.FileMetaData, row_index: int) -> tuple[int, int]:
    """``(row group, row within it)`` of a global row index."""
    remaining = row_index
    for i in range(footer.num_row_groups):
        n = footer.row_group(i).num_rows
        if remaining < n:
            return i, remaining
        remaining -= n
    raise IndexError(row_index)  # pragma: no cover - callers check the range first


def _where_entry(where: str, what: str, i: int, origin: Sequence[int]) -> str:
    return f"{where}: {what} entry {i} at (t,c,z,y,x)={tuple(int(v) for v in origin)}"


def build_grid_index(
    where: str,
    shape: Sequence[int],
    chunk_shape: Sequence[int],
    origins: np.ndarray,
    sizes: np.ndarray,
    what: str = "chunk",
) -> tuple[Chunks5, np.ndarray]:
    """Check that ``n`` stored entries tile ``shape`` on a regular grid; map grid cells to entries.

    ``origins`` and ``sizes`` are ``(n, 5)`` TCZYX arrays. Returns the dask-style
    chunks and an array of shape ``numblocks`` holding the entry index of every cell.
    Raises :class:`CorruptInputError` for off-grid, mis-sized, duplicate or missing
    entries ("chunks cover N of M pixels").
    """
    chunks = regular_chunks(shape, chunk_shape)
    numblocks = tuple(len(c) for c in chunks)
    shape_arr = np.asarray(shape, dtype=np.int64)
    step = np.asarray(chunk_shape, dtype=np.int64)
    origins = np.asarray(origins, dtype=np.int64).reshape(-1, 5)
    sizes = np.asarray(sizes, dtype=np.int64).reshape(-1, 5)
    bad = np.flatnonzero(((origins < 0) | (origins >= shape_arr)).any(axis=1))
    if bad.size:
        i = int(bad[0])
        raise CorruptInputError(
            f"{_where_entry(where, what, i, origins[i])} lies outside the image shape {tuple(shape)}"
        )
    bad = np.flatnonzero((origins % step != 0).any(axis=1))
    if bad.size:
        i = int(bad[0])
        raise CorruptInputError(
            f"{_where_entry(where, what, i, origins[i])} is not on the chunk grid {tuple(int(s) for s in step)}"
        )
    expected = np.minimum(step, shape_arr - origins)
    bad = np.flatnonzero((sizes != expected).any(axis=1))
    if bad.size:
        i = int(bad[0])
        raise CorruptInputError(
            f"{_where_entry(where, what, i, origins[i])} has shape {tuple(int(v) for v in sizes[i])}, "
            f"expected {tuple(int(v) for v in expected[i])} on the chunk grid"
        )
    cells = origins // step
    flat = np.ravel_multi_index(tuple(cells.T), numblocks) if len(cells) else np.zeros(0, np.int64)
    order = np.argsort(flat, kind="stable")
    dup = np.flatnonzero(np.diff(flat[order]) == 0)
    if dup.size:
        i, j = sorted((int(order[dup[0]]), int(order[dup[0] + 1])))
        raise CorruptInputError(
            f"{_where_entry(where, what, j, origins[j])} duplicates entry {i}: two {what}s at the same position "
            "are ambiguous"
        )
    entry_of = np.full(numblocks, -1, dtype=np.int64)
    entry_of.reshape(-1)[flat] = np.arange(len(flat))
    if len(flat) != entry_of.size:
        covered = int(np.prod(sizes, axis=1).sum())
        missing = np.unravel_index(int(np.flatnonzero(entry_of.reshape(-1) < 0)[0]), numblocks)
        raise CorruptInputError(
            f"{where}: {what}s cover {covered} of {math.prod(int(s) for s in shape)} pixels of the declared shape "
            f"{tuple(int(s) for s in shape)} (first missing {what} at grid position "
            f"{tuple(int(v) for v in missing)}); the metadata claims more pixels than are stored"
        )
    return chunks, entry_of


def decode_bytes(
    raw: object,
    dtype: np.dtype,
    shape: Sequence[int],
    compression: str | None,
    where: str,
) -> np.ndarray:
    """Decode one raw / zstd / lz4-frame payload into a fresh array of ``shape``.

    The decompressed size is bounded by the declared size: a payload that decodes
    to more or fewer bytes raises :class:`CorruptInputError` naming ``where``.
    """
    expected = math.prod(int(s) for s in shape) * dtype.itemsize
    view = np.frombuffer(raw, dtype=np.uint8)
    if compression is None:
        if len(view) != expected:
            raise CorruptInputError(
                f"{where}: payload is {len(view)} bytes, expected {expected} (shape {tuple(shape)} of {dtype})"
            )
        out = np.empty(tuple(shape), dtype=dtype)
        out.reshape(-1).view(np.uint8)[:] = view
        return out
    import imagecodecs

    decoder = imagecodecs.zstd_decode if compression == "zstd" else imagecodecs.lz4f_decode
    buffer = np.empty(expected + 1, dtype=np.uint8)
    try:
        decoded = decoder(view, out=buffer)
    except Exception as exc:  # codec errors have no common base class
        raise CorruptInputError(f"{where}: cannot decompress the {compression} payload ({exc})") from exc
    if len(decoded) != expected:
        raise CorruptInputError(
            f"{where}: {compression} payload decodes to {len(decoded)}{'+' if len(decoded) > expected else ''} "
            f"bytes, expected {expected} (shape {tuple(shape)} of {dtype})"
        )
    return buffer[:expected].view(dtype).reshape(tuple(shape))
