"""Helpers shared by the OME-Arrow Parquet layouts: safe file opening, the chunk index, decoding.

Every Parquet file is opened with ``page_checksum_verification=True``; pyarrow errors
become :class:`~ome_arrow_dask.errors.CorruptInputError` naming the file. Footers are
parsed once per process (:func:`parquet_file` reuses them) and a file whose size or
mtime changed since it was opened raises :class:`~ome_arrow_dask.errors.InputChangedError`.

A remote file arrives as a :class:`~ome_arrow_dask.storage.RemoteURL`: its fingerprint is
(a hash of) its ETag and its size (one HEAD), and pyarrow reads it through an fsspec file
object with ``pre_buffer=True`` (coalesced ranged GETs: footer, then the columns read).
"""

from __future__ import annotations

import math
import os
import warnings
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import CorruptInputError, InputChangedError
from ..lru import LRUCache
from ..meta import Chunks5, regular_chunks
from ..storage import is_network_error, remote_error

Fingerprint = tuple[int, int]

MAX_CACHED_FOOTERS = 64
"""Parsed Parquet footers kept per process (keyed by path, mtime and size)."""

_FOOTERS: LRUCache[tuple[str, Fingerprint], pq.FileMetaData] = LRUCache(MAX_CACHED_FOOTERS)


def fingerprint(path: str) -> Fingerprint:
    """``(mtime_ns, size)`` of ``path``; what the token and change checks use.

    For a :class:`~ome_arrow_dask.storage.RemoteURL`: ``(crc32 of the ETag, size)``, one HEAD.
    """
    loc = getattr(path, "loc", None)
    if loc is not None:
        version, size = loc.stat()
        return (zlib.crc32(version.encode()), size)
    st = os.stat(path)
    return (st.st_mtime_ns, st.st_size)


def _source(path: str) -> Any:
    """What pyarrow opens: the path, or an fsspec file object for a remote URL.

    A pinned remote file (size known) is opened without read-ahead: pyarrow asks for the
    exact ranges it needs (the footer, then ``pre_buffer``'s coalesced column ranges), so
    read-ahead would only fetch bytes nobody reads.
    """
    loc = getattr(path, "loc", None)
    if loc is None:
        return path
    if getattr(loc, "pinned", None) is not None:
        return loc.open(block_size=2**16, cache_type="none")
    return loc.open(block_size=2**16)


def _failed(path: str, exc: BaseException) -> Exception:
    """A remote request failure (denied, unreachable) as such, anything else as corrupt data."""
    if getattr(path, "loc", None) is not None and is_network_error(exc):
        return remote_error(str(path), exc)
    return corrupt(path, exc)


def corrupt(where: str, exc: BaseException) -> CorruptInputError:
    """Wrap a pyarrow / codec error into a :class:`CorruptInputError` naming ``where``."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return CorruptInputError(f"{where}: cannot read the Parquet data ({type(exc).__name__}: {text})")


DATA_ERRORS = (pa.ArrowException, UnicodeDecodeError, OverflowError, ValueError)
"""What converting damaged Arrow values to Python raises (invalid UTF-8, out-of-range timestamps...)."""


def as_python(values: pa.Array | pa.ChunkedArray | pa.Scalar, where: str, what: str) -> Any:
    """``values.to_pylist()`` (or a scalar's ``as_py()``), damaged values raising :class:`CorruptInputError`.

    Bit flips in a file can leave bytes that are not UTF-8 in a string column, or a
    timestamp past year 9999; pyarrow only notices when converting to Python.
    """
    try:
        return values.as_py() if isinstance(values, pa.Scalar) else values.to_pylist()
    except DATA_ERRORS as exc:
        raise CorruptInputError(
            f"{where}: {what} holds a damaged value ({type(exc).__name__}: {str(exc)[:200]})"
        ) from exc


def integer_column(values: pa.Array | pa.ChunkedArray, where: str, what: str) -> np.ndarray:
    """An integer Arrow column without nulls as ``int64`` numpy; other types raise :class:`CorruptInputError`."""
    if not pa.types.is_integer(values.type):
        raise CorruptInputError(f"{where}: {what} has type {values.type}, expected integers")
    if values.null_count:
        raise CorruptInputError(f"{where}: {what} holds null values")
    out = values.to_numpy()
    if out.dtype == np.uint64 and len(out) and int(out.max()) > np.iinfo(np.int64).max:
        raise CorruptInputError(f"{where}: {what} holds values beyond the int64 range")
    return out.astype(np.int64)


def cast_pixels(block: np.ndarray, dtype: np.dtype, where: str, declared_by: str = "the image") -> np.ndarray:
    """Convert a decoded block to the image's declared ``dtype``, refusing a lossy conversion.

    Stored and declared types may legitimately differ (ome-arrow keeps ``list<uint16>``
    payloads for every pixel type, and ``dtype_meta=`` records declare ``uint8`` over
    ``uint16`` chunks), so the check is on the values: a safe cast is always taken; any
    other cast must round-trip exactly, else the file contradicts itself (uint16 300
    declared uint8 would wrap to 44) and :class:`CorruptInputError` names both types and
    ``declared_by`` (the field or table holding the declaration).
    """
    dtype = np.dtype(dtype)
    if block.dtype == dtype:
        return block
    if np.can_cast(block.dtype, dtype, "safe"):
        return block.astype(dtype)
    with np.errstate(invalid="ignore", over="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", np.exceptions.ComplexWarning)  # the round trip catches a lost imaginary part
        out = block.astype(dtype)
        back = out.astype(block.dtype)
    lossy = back != block
    if block.dtype.kind in "fc":
        lossy &= ~(np.isnan(block) & np.isnan(back))
    if lossy.any():
        i = np.unravel_index(int(np.flatnonzero(lossy.reshape(-1))[0]), block.shape)
        raise CorruptInputError(
            f"{where}: the stored pixels are {block.dtype.name} but {declared_by} declares {dtype.name}, and "
            f"stored value {block[i].item()!r} (at {tuple(int(v) for v in i)} of the chunk) does not fit "
            f"{dtype.name} (it would read as {out[i].item()!r}); the file contradicts itself"
        )
    return out


def read_footer(path: str, expected: Fingerprint | None = None) -> pq.FileMetaData:
    """Parse (or reuse) the footer of ``path``; raise if the file changed since ``expected``."""
    current = fingerprint(path)
    if expected is not None and current != tuple(expected):
        raise InputChangedError(f"{path}: the file changed after it was opened (mtime or size differ); open it again")

    def parse() -> pq.FileMetaData:
        try:
            return pq.read_metadata(_source(path))
        except (OSError, pa.ArrowException, ValueError, UnicodeDecodeError, KeyError) as exc:
            raise _failed(path, exc) from exc

    return _FOOTERS.get_or_load((path, current), parse)


def parquet_file(path: str, expected: Fingerprint | None = None) -> pq.ParquetFile:
    """Open ``path`` with page checksum verification, reusing a parsed footer."""
    footer = read_footer(path, expected)
    remote = getattr(path, "loc", None) is not None
    try:
        return pq.ParquetFile(_source(path), metadata=footer, page_checksum_verification=True, pre_buffer=remote)
    except (OSError, pa.ArrowException, ValueError) as exc:
        raise _failed(path, exc) from exc


@contextmanager
def _reading(path: str, expected: Fingerprint, where: str) -> Iterator[pq.ParquetFile]:
    """The opened file; a pyarrow failure while reading it becomes an error naming ``where`` (or the URL)."""
    pf = parquet_file(path, expected)
    try:
        yield pf
    except (OSError, pa.ArrowException, ValueError, IndexError, KeyError) as exc:
        if getattr(path, "loc", None) is not None and is_network_error(exc):
            raise remote_error(str(path), exc) from exc
        raise corrupt(where, exc) from exc
    finally:
        pf.close()


def _check_columns(table: pa.Table, columns: list[str], where: str) -> pa.Table:
    """``table``, refused when pyarrow skipped requested columns the file does not have."""
    missing = sorted({c.split(".")[0] for c in columns} - set(table.column_names))
    if missing:
        raise CorruptInputError(f"{where}: the file has no column(s) {missing}; it is damaged or not of this layout")
    return table


def read_row_group(path: str, expected: Fingerprint, row_group: int, columns: list[str], where: str) -> pa.Table:
    """Read ``columns`` of one row group, verifying page checksums; errors name ``where``."""
    with _reading(path, expected, where) as pf:
        table = pf.read_row_group(row_group, columns=columns)
    return _check_columns(table, columns, where)


def read_row_groups(
    path: str, expected: Fingerprint, row_groups: Sequence[int], columns: list[str], where: str
) -> tuple[pa.Table, np.ndarray]:
    """Read ``columns`` of several row groups in one pyarrow call (remote: ``pre_buffer`` coalesces the ranges).

    Returns the table (the row groups' rows in the order given) and the offset of each
    row group's first row in it. Page checksums are verified; errors name ``where``.
    """
    with _reading(path, expected, where) as pf:
        sizes = [pf.metadata.row_group(int(rg)).num_rows for rg in row_groups]
        table = pf.read_row_groups([int(rg) for rg in row_groups], columns=columns, use_threads=False)
    return _check_columns(table, columns, where), np.cumsum([0, *sizes[:-1]], dtype=np.int64)


PRE_BUFFER_HOLE_BYTES = 8192
"""pyarrow's ``pre_buffer`` merges column ranges whose gap is at most this (``CacheOptions`` default)."""

PRE_BUFFER_RANGE_BYTES = 32 * 2**20
"""... into ranges of at most this many bytes (``CacheOptions`` default)."""


def coalesced_ranges(footer: pq.FileMetaData, row_groups: Sequence[int], columns: Sequence[str]) -> int:
    """How many ranged reads ``pre_buffer`` makes for ``columns`` (top-level names) of ``row_groups``.

    Mirrors pyarrow's coalescing (sorted column-chunk ranges merged across gaps up to
    :data:`PRE_BUFFER_HOLE_BYTES`, merged ranges capped at :data:`PRE_BUFFER_RANGE_BYTES`);
    used by ``explain()`` to state the requests a remote read will make.
    """
    wanted = set(columns)
    spans = []
    for rg in row_groups:
        group = footer.row_group(int(rg))
        for i in range(group.num_columns):
            col = group.column(i)
            if col.path_in_schema.split(".")[0] not in wanted:
                continue
            start = col.data_page_offset
            if col.has_dictionary_page and 0 < (col.dictionary_page_offset or 0) < start:
                start = col.dictionary_page_offset
            spans.append((start, start + col.total_compressed_size))
    count, first, end = 0, -1, -1
    for lo, hi in sorted(spans):
        if count and lo - end <= PRE_BUFFER_HOLE_BYTES and max(hi, end) - first <= PRE_BUFFER_RANGE_BYTES:
            end = max(end, hi)
            continue
        count, first, end = count + 1, lo, hi
    return count


def leaf_paths(footer: pq.FileMetaData, where: str = "the Parquet file") -> list[str]:
    """Dotted Parquet leaf paths (``col.chunks.list.element.t``) of a file."""
    try:
        schema = footer.schema
        return [schema.column(i).path for i in range(len(schema))]
    except DATA_ERRORS as exc:  # a damaged footer: column names that are not UTF-8
        raise corrupt(where, exc) from exc


def row_group_column(footer: pq.FileMetaData, row_group: int, leaf: str, where: str) -> Any | None:
    """The column chunk metadata of ``leaf`` in ``row_group`` (None when absent); damage names ``where``."""
    try:
        rg = footer.row_group(row_group)
        for i in range(rg.num_columns):
            col = rg.column(i)
            if col.path_in_schema == leaf:
                return col
    except DATA_ERRORS as exc:  # a damaged footer: column paths that are not UTF-8
        raise corrupt(where, exc) from exc
    return None


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
    view = np.frombuffer(raw, dtype=np.uint8)  # type: ignore[call-overload]  # any buffer
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
        decoded = decoder(view, out=buffer)  # type: ignore[arg-type]  # imagecodecs takes any writable buffer
    except Exception as exc:  # codec errors have no common base class
        raise CorruptInputError(f"{where}: cannot decompress the {compression} payload ({exc})") from exc
    if len(decoded) != expected:
        raise CorruptInputError(
            f"{where}: {compression} payload decodes to {len(decoded)}{'+' if len(decoded) > expected else ''} "
            f"bytes, expected {expected} (shape {tuple(shape)} of {dtype})"
        )
    return buffer[:expected].view(dtype).reshape(tuple(shape))
