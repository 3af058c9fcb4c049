"""OME-Arrow struct records in Parquet: single-row files and rows of multi-row tables.

Opening reads only the record's metadata leaves (``pixels_meta``, ``chunk_grid``, ids)
and the chunk / plane coordinates, never a pixel column. Parquet cannot read part of
a column chunk, and these layouts keep a whole image in one row group, so the first
chunk read in a process reads the payload leaf (``pixel_bytes`` or ``pixels``) of that
row group once, caches it (:data:`MAX_CACHED_PAYLOADS`), and every chunk is a
zero-copy slice of it decoded with ``np.frombuffer``.

Payloads: byte chunks (``OME_ARROW_BYTE_STRUCT``; per-chunk dtype, raw / zstd /
lz4-frame; a chunk dtype other than ``pixels_meta.type`` is refused, except ome-arrow's
all-``uint16`` ``dtype_meta=`` layout), list chunks (``list<uint16>`` values cast to
``pixels_meta.type``, value-checked), or,
when a record has no chunks, planes (planes-only and pre-0.1 legacy records; one plane
per chunk). Chunks win over planes.
"""

from __future__ import annotations

import math
import os
import threading
import warnings
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
from dask.base import tokenize

from ..arrow_schema import (
    METADATA_FIELDS,
    compression_from_string,
    dtype_from_string,
    int_field,
    is_ome_arrow_struct,
    meta_from_record,
    shape_from_pixels_meta,
    stored_dtype,
)
from ..errors import CorruptInputError, OmeArrowDaskError
from ..limits import check_chunk_grid, check_declared_bytes
from ..lowering import ReadPlan
from ..meta import ImageMeta, check_dtype
from ..sources.base import ChunkCoords, SourceBase, chunk_slices
from ..units import format_bytes
from ._parquet_common import (
    DATA_ERRORS,
    Fingerprint,
    as_python,
    build_grid_index,
    cast_pixels,
    corrupt,
    fingerprint,
    integer_column,
    leaf_paths,
    locate_row,
    parquet_file,
    row_group_column,
)

MAX_CACHED_PAYLOADS = 4
"""Payload columns (one row group's pixel leaf each) kept per process."""

PREFERRED_COLUMNS = ("ome_arrow", "image")
"""Column names tried before auto-detection (ome-arrow's two defaults)."""

_COORDS = ("t", "c", "z", "y", "x", "shape_z", "shape_y", "shape_x")


@dataclass(frozen=True)
class _Payload:
    """One row's pixel leaf: per-entry offsets into a flat numpy buffer (zero-copy)."""

    offsets: np.ndarray
    values: np.ndarray
    valid: np.ndarray
    row_starts: np.ndarray


_PAYLOADS: OrderedDict[tuple[Any, ...], _Payload] = OrderedDict()
_PAYLOADS_LOCK = threading.Lock()
_KEY_LOCKS: dict[tuple[Any, ...], threading.Lock] = {}


def clear_payload_cache() -> None:
    """Drop every cached payload column (tests, or to free memory)."""
    with _PAYLOADS_LOCK:
        _PAYLOADS.clear()
        _KEY_LOCKS.clear()


def find_column(schema: pa.Schema, column_name: str | None, path: str) -> str:
    """Pick the struct column holding OME-Arrow records: named, ``ome_arrow``/``image``, or detected.

    A named column that does not exist is replaced by the first OME-Arrow struct column
    with ome-arrow's ``UserWarning`` ("Requested column ... was not usable or not found.
    Auto-detected OME-Arrow column ..."), naming ``path`` too; a named column that is not
    an OME-Arrow struct raises.
    """
    if column_name is not None:
        if column_name not in schema.names:
            found = [f.name for f in schema if is_ome_arrow_struct(f.type)]
            if not found:
                raise OmeArrowDaskError(
                    f"{path}: no column {column_name!r}; OME-Arrow struct columns here: none "
                    "(ome-arrow's message: Could not locate an OME-Arrow struct column: "
                    f"column '{column_name}' not found and auto-detection failed.)"
                )
            others = f"; other OME-Arrow columns: {found[1:]}" if len(found) > 1 else ""
            warnings.warn(
                f"Requested column '{column_name}' was not usable or not found. "
                f"Auto-detected OME-Arrow column '{found[0]}'. ({path}: no column {column_name!r}, "
                f"reading {found[0]!r} instead{others})",
                UserWarning,
                stacklevel=2,
            )
            return found[0]
        if not is_ome_arrow_struct(schema.field(column_name).type):
            raise OmeArrowDaskError(f"{path}: column {column_name!r} is not an OME-Arrow struct column")
        return column_name
    for name in PREFERRED_COLUMNS:
        if name in schema.names and is_ome_arrow_struct(schema.field(name).type):
            return name
    for field in schema:
        if is_ome_arrow_struct(field.type):
            return field.name
    raise OmeArrowDaskError(f"{path}: no OME-Arrow struct column (a struct with pixels_meta, planes, ...) found")


def _select_leaves(paths: list[str], column: str, field: str, names: tuple[str, ...] | None = None) -> list[str]:
    prefix = f"{column}.{field}"
    picked = [p for p in paths if p == prefix or p.startswith(prefix + ".")]
    if names is None:
        return picked
    return [p for p in picked if p.rsplit(".", 1)[-1] in names and p.count(".") == prefix.count(".") + 3]


def _payload_leaf(paths: list[str], column: str, field: str, name: str) -> str:
    prefix = f"{column}.{field}."
    found = [p for p in paths if p.startswith(prefix) and name in p[len(prefix) :].split(".")]
    if len(found) != 1:
        raise CorruptInputError(f"{column}.{field}: expected one {name!r} leaf column, found {found}")
    return found[0]


def record_metadata(array: pa.StructArray, where: str) -> dict[str, Any]:
    """Metadata fields (no payload) of a one-row record array, as Python values."""
    if not array.is_valid()[0].as_py():
        raise CorruptInputError(f"{where}: the record is null")
    names = {array.type.field(i).name for i in range(array.type.num_fields)}
    return {f: as_python(array.field(f)[0], where, f"field {f!r}") for f in METADATA_FIELDS if f in names}


def _row_record(table: pa.Table, column: str, row: int, where: str) -> tuple[dict[str, Any], pa.StructArray]:
    """Metadata dict of one row plus the row's struct (1-element) array."""
    array = table.column(column).combine_chunks().slice(row, 1)
    return record_metadata(array, where), array


def _is_list_of_structs(arrow_type: pa.DataType) -> bool:
    return (pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type)) and pa.types.is_struct(
        arrow_type.value_type
    )


def _check_payload_type(record_type: pa.StructType, layout_field: str, value_field: str, where: str) -> None:
    """The pixel leaf must be binary (byte payloads) or a list of numbers (list payloads, planes)."""
    value_type = record_type.field(layout_field).type.value_type
    if value_type.get_field_index(value_field) < 0:
        raise CorruptInputError(f"{where}: {layout_field} entries have no {value_field!r} field")
    leaf = value_type.field(value_field).type
    if value_field == "pixel_bytes":
        ok = pa.types.is_binary(leaf) or pa.types.is_large_binary(leaf) or pa.types.is_binary_view(leaf)
    else:
        ok = (pa.types.is_list(leaf) or pa.types.is_large_list(leaf)) and (
            pa.types.is_integer(leaf.value_type) or pa.types.is_floating(leaf.value_type)
        )
    if not ok:
        raise CorruptInputError(
            f"{where}: {layout_field}.{value_field} has type {leaf}, expected "
            f"{'binary' if value_field == 'pixel_bytes' else 'a list of numbers'}"
        )


def _entries(
    array: pa.StructArray, field: str, names: tuple[str, ...], where: str, *, nullable: bool = False
) -> dict[str, Any] | None:
    """Per-entry columns of ``chunks`` / ``planes`` for the row, or None when absent or empty."""
    if array.type.get_field_index(field) < 0:
        return None
    lists = array.field(field)
    if not _is_list_of_structs(lists.type):
        raise CorruptInputError(
            f"{where}: the record's {field!r} field has type {lists.type}, expected a list of structs"
        )
    if not lists.is_valid()[0].as_py() or len(lists[0]) == 0:
        return None
    values = lists.flatten()
    out: dict[str, np.ndarray] = {}
    for name in names:
        if values.type.get_field_index(name) < 0:
            raise CorruptInputError(f"{where}: {field} entries have no {name!r} field")
        column = values.field(name)
        if nullable:
            out[name] = as_python(column, where, f"{field}.{name}")
            continue
        out[name] = integer_column(column, where, f"{field}.{name}")
    return out


def _chunk_grid_shape(record: dict[str, Any], entries: dict[str, np.ndarray], shape: tuple[int, ...], where: str):
    grid = record.get("chunk_grid") or {}
    if not isinstance(grid, Mapping):
        raise CorruptInputError(f"{where}: chunk_grid must be a struct, got {type(grid).__name__}")
    steps = {ax: int_field(grid, f"chunk_{ax}", where, label=f"chunk_grid.chunk_{ax}") for ax in "tczyx"}
    if (steps["t"] or 1) != 1 or (steps["c"] or 1) != 1:
        raise CorruptInputError(f"{where}: chunk_grid spans T or C (chunk_t/chunk_c != 1), which the struct forbids")
    order = str(grid.get("chunk_order") or "ZYX").upper()
    if order != "ZYX":
        raise CorruptInputError(f"{where}: chunk_order {order!r} is not supported (only 'ZYX')")
    zyx = []
    for ax, size in zip("zyx", shape[2:], strict=True):
        step = steps[ax] or int(entries[f"shape_{ax}"].max())
        zyx.append(max(1, min(step, size)))
    return (1, 1, *zyx)


@dataclass(frozen=True)
class RecordLayout:
    """Where one record keeps its pixels: payload kind, grid index, per-chunk dtypes and codecs.

    ``kind`` is ``"bytes"``, ``"list"`` or ``"planes"``; ``entry_of`` maps every cell of
    ``meta.chunks`` to its chunk / plane entry.
    """

    kind: str
    meta: ImageMeta
    entry_of: np.ndarray
    chunk_dtypes: tuple[np.dtype, ...] = ()
    chunk_codecs: tuple[str | None, ...] = ()

    @property
    def field(self) -> str:
        """The record field holding the entries (``chunks`` or ``planes``)."""
        return "planes" if self.kind == "planes" else "chunks"

    @property
    def value_field(self) -> str:
        """The entry field holding the pixels (``pixel_bytes`` or ``pixels``)."""
        return "pixel_bytes" if self.kind == "bytes" else "pixels"


DTYPE_META_STORED = np.dtype("uint16")
"""The one stored chunk dtype that may differ from ``pixels_meta.type`` (see :func:`check_chunk_dtypes`)."""


def check_chunk_dtypes(
    declared: np.dtype,
    chunk_dtypes: tuple[np.dtype, ...],
    origins: np.ndarray,
    where: str,
    declared_by: str = "pixels_meta.type declares",
) -> None:
    """Refuse byte chunks whose own ``dtype`` field disagrees with the declared pixel type.

    A byte chunk says what its bytes are, so a chunk in another type than ``pixels_meta.type``
    means the file contradicts itself (damage, or an edited declaration) and raises
    :class:`CorruptInputError` naming the file, the chunk and both types, before any pixel is
    read. The one exception is a layout ome-arrow 0.1.0 writes itself: ``from_numpy(...,
    clamp_to_uint16=True, dtype_meta=X, chunk_encoding="bytes")`` stores every chunk as
    ``uint16`` under ``pixels_meta.type = X``. When ALL chunks are ``uint16`` the declaration
    is honoured with the value-checked cast of
    :func:`~ome_arrow_dask.sources._parquet_common.cast_pixels` (a stored value the declared
    type cannot hold still raises). Byte order is not a disagreement (``>u2`` is ``uint16``).
    ``declared_by`` says where ``declared`` comes from, for the message.
    """
    native = [check_dtype(d) for d in chunk_dtypes]
    if all(d == declared for d in native) or (native and all(d == DTYPE_META_STORED for d in native)):
        return
    i = next(i for i, d in enumerate(native) if d != declared)
    at = tuple(int(v) for v in origins[i]) if i < len(origins) else ()
    raise CorruptInputError(
        f"{where} chunk {i} at (t,c,z,y,x)={at}: the stored pixels are {native[i].name} but {declared_by} "
        f"{declared.name}; a byte chunk carries its own dtype, which must agree with the declared type (only "
        "ome-arrow's all-uint16 chunks written with dtype_meta= may differ), so the file contradicts itself: it is "
        "damaged or its pixel type was edited; rewrite it from its source"
    )


def _pixel_dtype(
    record: dict[str, Any], array: pa.StructArray, kind: str, where: str, origins: np.ndarray
) -> tuple[np.dtype, tuple, tuple]:
    """``pixels_meta.type`` plus per-chunk dtypes / codecs of byte payloads (checked by :func:`check_chunk_dtypes`).

    List and plane payloads (``list<uint16>``) have no dtype of their own: the declared type
    is the only type information and each chunk is value-checked when it is cast to it.
    """
    declared = (record.get("pixels_meta") or {}).get("type")
    chunk_dtypes: tuple[np.dtype, ...] = ()
    chunk_codecs: tuple[str | None, ...] = ()
    if kind == "bytes":
        extra = _entries(array, "chunks", ("dtype", "compression"), where, nullable=True) or {}
        fallback = declared if declared is not None else "uint16"
        chunk_dtypes = tuple(
            stored_dtype(fallback if d is None else d, f"{where} chunk {i}") for i, d in enumerate(extra["dtype"])
        )
        chunk_codecs = tuple(
            compression_from_string(c, f"{where} chunk {i}") for i, c in enumerate(extra["compression"])
        )
        if declared is None and chunk_dtypes:
            dtype = check_dtype(chunk_dtypes[0])
            check_chunk_dtypes(dtype, chunk_dtypes, origins, where, "(without a pixels_meta.type) chunk 0 is")
            return dtype, chunk_dtypes, chunk_codecs
    dtype = dtype_from_string("uint16" if declared is None else declared, f"{where} pixels_meta.type")
    if chunk_dtypes:
        check_chunk_dtypes(dtype, chunk_dtypes, origins, where)
    return dtype, chunk_dtypes, chunk_codecs


def record_layout(
    record: dict[str, Any], array: pa.StructArray, where: str, record_type: pa.StructType | None = None
) -> RecordLayout:
    """Check a one-row record's chunk (or plane) coordinates and index them on its grid.

    ``record`` holds the metadata fields of ``array``'s row (see :func:`record_metadata`);
    ``record_type`` is the full struct type when ``array`` holds only some of its leaves.
    Reads coordinates only, never a pixel payload.
    """
    shape = shape_from_pixels_meta(record.get("pixels_meta"), where)
    chunks = _entries(array, "chunks", _COORDS, where)
    if chunks is not None:
        value_type = (record_type or array.type).field("chunks").type.value_type
        kind = "bytes" if value_type.get_field_index("pixel_bytes") >= 0 else "list"
        chunk_shape = _chunk_grid_shape(record, chunks, shape, where)
        n = len(chunks["t"])
        origins = np.stack([chunks["t"], chunks["c"], chunks["z"], chunks["y"], chunks["x"]], axis=1)
        sizes = np.stack([np.ones(n), np.ones(n), chunks["shape_z"], chunks["shape_y"], chunks["shape_x"]], axis=1)
        what = "chunk"
    else:
        planes = _entries(array, "planes", ("t", "c", "z"), where)
        if planes is None:
            raise CorruptInputError(f"{where}: the record has neither chunks nor planes")
        kind = "planes"
        chunk_shape = (1, 1, 1, shape[3], shape[4])
        n = len(planes["t"])
        zeros = np.zeros(n, dtype=np.int64)
        origins = np.stack([planes["t"], planes["c"], planes["z"], zeros, zeros], axis=1)
        sizes = np.tile(np.asarray(chunk_shape), (n, 1))
        what = "plane"
    value_field = "pixel_bytes" if kind == "bytes" else "pixels"
    _check_payload_type(record_type or array.type, "planes" if kind == "planes" else "chunks", value_field, where)
    dtype, chunk_dtypes, chunk_codecs = _pixel_dtype(record, array, kind, where, origins)
    check_chunk_grid(where, shape, chunk_shape, dtype)
    grid, entry_of = build_grid_index(where, shape, chunk_shape, origins, sizes, what)
    meta = meta_from_record(record, chunks=grid, dtype=dtype, where=where)
    return RecordLayout(kind, meta, entry_of, chunk_dtypes, chunk_codecs)


def load_payload(lists: pa.Array, layout: RecordLayout, where: str) -> _Payload:
    """Per-entry offsets into the flat pixel buffer of a ``chunks`` / ``planes`` list column (zero-copy).

    ``lists`` may hold several rows (a row group); ``row_starts`` says where each row's entries begin.
    """
    row_starts = lists.offsets.to_numpy().astype(np.int64)
    row_starts -= row_starts[0]
    data = lists.flatten().field(layout.value_field)
    valid = data.is_valid().to_numpy(zero_copy_only=False)
    if layout.kind == "bytes":
        if not (pa.types.is_large_binary(data.type) or pa.types.is_binary(data.type)):
            data = data.cast(pa.large_binary())  # binary_view (polars, DuckDB) has no offsets buffer: one copy
        buffers = data.buffers()
        offset_type = np.int64 if pa.types.is_large_binary(data.type) else np.int32
        offsets = np.frombuffer(buffers[1], dtype=offset_type)[data.offset : data.offset + len(data) + 1]
        values = np.frombuffer(buffers[2], dtype=np.uint8) if buffers[2] is not None else np.zeros(0, np.uint8)
    else:
        offsets = data.offsets.to_numpy()
        flat = data.values
        if flat.null_count:
            raise CorruptInputError(f"{where}: the pixel lists hold null values")
        values = flat.to_numpy(zero_copy_only=False)
    return _Payload(offsets=offsets, values=values, valid=valid, row_starts=row_starts)


def row_payload(payload: _Payload, row: int) -> _Payload:
    """The entries of one row of a (row group's) payload."""
    first, last = int(payload.row_starts[row]), int(payload.row_starts[row + 1])
    return _Payload(
        offsets=payload.offsets[first : last + 1],
        values=payload.values,
        valid=payload.valid[first:last],
        row_starts=payload.row_starts,
    )


def decode_entry(
    layout: RecordLayout, payload: _Payload, entry: int, shape: tuple[int, ...], where: str, *, copy: bool = True
) -> np.ndarray:
    """Decode entry ``entry`` of a row's payload into a TCZYX block of ``shape``.

    With ``copy=False`` raw byte chunks in the image dtype and list payloads already in
    the image dtype come back as read-only views of the payload buffer (zero-copy).
    Stored values that the image's declared dtype cannot hold (uint16 300 in an image
    declared uint8) raise :class:`CorruptInputError` naming both dtypes (see
    :func:`~ome_arrow_dask.sources._parquet_common.cast_pixels`).
    """
    if not payload.valid[entry]:
        raise CorruptInputError(f"{where}: the payload is null")
    lo, hi = int(payload.offsets[entry]), int(payload.offsets[entry + 1])
    raw = payload.values[lo:hi]
    dtype = layout.meta.dtype
    if layout.kind == "bytes":
        from ._parquet_common import decode_bytes

        stored = layout.chunk_dtypes[entry]
        codec = layout.chunk_codecs[entry]
        if not copy and codec is None and stored == dtype and raw.size == math.prod(shape) * dtype.itemsize:
            return raw.view(dtype).reshape(shape)
        return cast_pixels(decode_bytes(raw, stored, shape, codec, where), dtype, where, "pixels_meta.type")
    if raw.size != math.prod(shape):
        raise CorruptInputError(f"{where}: payload has {raw.size} values, expected {math.prod(shape)} {shape}")
    block = raw.reshape(shape)
    if block.dtype == dtype:
        return block.copy() if copy else block
    return cast_pixels(block, dtype, where, "pixels_meta.type")


def _list_stats(footer: Any, row_group: int, leaf: str, where: str) -> int | None:
    col = row_group_column(footer, row_group, leaf, where)
    return None if col is None else int(col.total_compressed_size)


class StructSource(SourceBase):
    """One OME-Arrow struct record in a Parquet file (see the module docstring).

    Parameters
    ----------
    path
        The Parquet file.
    column_name
        The struct column; default ``ome_arrow``, then ``image``, then the first struct
        column with OME-Arrow's fields.
    row_index
        Which row (0 for single-row files).
    """

    def __init__(self, path: str, column_name: str | None = None, row_index: int = 0) -> None:
        self.path = path
        self._fingerprint: Fingerprint = fingerprint(path)
        pf = parquet_file(path, self._fingerprint)
        footer = pf.metadata
        try:
            schema = pf.schema_arrow
        except DATA_ERRORS as exc:  # a damaged footer: its schema cannot be converted to Arrow
            raise corrupt(path, exc) from exc
        self.column = find_column(schema, column_name, path)
        self._record_type = schema.field(self.column).type
        n_rows = footer.num_rows
        if not isinstance(row_index, (int, np.integer)) or not 0 <= int(row_index) < n_rows:
            raise OmeArrowDaskError(f"{path}: row_index {row_index!r} is out of range [0, {n_rows})")
        self.row_index = int(row_index)
        self.row_group, self.row_in_group = locate_row(footer, self.row_index)
        self._where = f"{path} (column {self.column!r}, row {self.row_index})"
        paths = leaf_paths(footer, path)
        columns = [leaf for field in METADATA_FIELDS for leaf in _select_leaves(paths, self.column, field)]
        columns += _select_leaves(paths, self.column, "chunks", (*_COORDS, "dtype", "compression"))
        columns += _select_leaves(paths, self.column, "planes", ("t", "c", "z"))
        try:
            table = pf.read_row_group(self.row_group, columns=columns)
        except (OSError, *DATA_ERRORS) as exc:
            raise corrupt(self._where, exc) from exc
        finally:
            pf.close()
        record, array = _row_record(table, self.column, self.row_in_group, self._where)
        self._init_layout(record, array, paths)
        self._rows_in_group = footer.row_group(self.row_group).num_rows
        self._payload_bytes = _list_stats(footer, self.row_group, self._leaf, self._where)
        self._check_stored_values(footer)
        check_declared_bytes(self._where, self._meta.nbytes, self._fingerprint[1])

    # ------------------------------------------------------------------ opening
    def _init_layout(self, record: dict[str, Any], array: pa.StructArray, paths: list[str]) -> None:
        self._layout = record_layout(record, array, self._where, self._record_type)
        self.kind = self._layout.kind
        self._meta = self._layout.meta
        self._field = self._layout.field
        self._leaf = _payload_leaf(paths, self.column, self._field, self._layout.value_field)

    def _check_stored_values(self, footer: Any) -> None:
        """For list / plane payloads in a one-row row group, the footer counts the stored values."""
        if self.kind == "bytes" or self._rows_in_group != 1:
            return
        col = row_group_column(footer, self.row_group, self._leaf, self._where)
        if col is not None:
            stored, declared = int(col.num_values), math.prod(self._meta.shape)
            if stored != declared:
                what = "planes" if self.kind == "planes" else "chunks"
                raise CorruptInputError(
                    f"{self._where}: {what} cover {stored} of {declared} pixels of the declared shape "
                    f"{self._meta.shape} (stored pixel values counted in the Parquet footer)"
                )

    # ------------------------------------------------------------------ Source protocol

    @property
    def token(self) -> str:
        """``tokenize(path, mtime_ns, size, column, row)``."""
        return tokenize(self.path, *self._fingerprint, self.column, self.row_index)

    def input_paths(self) -> tuple[str, ...]:
        """The Parquet file."""
        return (self.path if hasattr(self.path, "loc") else os.path.abspath(self.path),)

    def describe(self) -> str:
        """Format, file, column, row and payload kind."""
        return f"OME-Arrow Parquet {self.path} (column {self.column!r}, row {self.row_index}, {self.kind} payload)"

    def explain_reads(self, read_plan: ReadPlan) -> list[str]:
        """Say that the whole payload column is read once and sliced per chunk."""
        size = "" if self._payload_bytes is None else f", {format_bytes(self._payload_bytes)} stored"
        return [
            f"parquet: row group {self.row_group} holds the whole image ({self._rows_in_group} row(s)); its payload "
            f"column {self._leaf}{size} is read once per process and each chunk is a zero-copy slice of it"
        ]

    def read_chunk(self, chunk_coords: ChunkCoords) -> np.ndarray:
        """Decode the chunk at ``chunk_coords`` (5-D TCZYX, native byte order)."""
        slices = chunk_slices(self._meta, chunk_coords)
        shape = tuple(s.stop - s.start for s in slices)
        entry = int(self._layout.entry_of[tuple(chunk_coords)])
        where = f"{self._where} {'plane' if self.kind == 'planes' else 'chunk'} {entry} at {tuple(chunk_coords)}"
        return decode_entry(self._layout, self._payload(), entry, shape, where)

    # ------------------------------------------------------------------ payload cache
    def _payload(self) -> _Payload:
        key = (self.path, self._fingerprint, self.row_group, self._leaf)
        with _PAYLOADS_LOCK:
            cached = _PAYLOADS.get(key)
            if cached is not None:
                _PAYLOADS.move_to_end(key)
            lock = _KEY_LOCKS.setdefault(key, threading.Lock())
        if cached is not None:
            return self._row_view(cached)
        with lock:
            with _PAYLOADS_LOCK:
                cached = _PAYLOADS.get(key)
            if cached is None:
                cached = self._load_payload()
                with _PAYLOADS_LOCK:
                    _PAYLOADS[key] = cached
                    while len(_PAYLOADS) > MAX_CACHED_PAYLOADS:
                        old, _ = _PAYLOADS.popitem(last=False)
                        _KEY_LOCKS.pop(old, None)
        return self._row_view(cached)

    def _load_payload(self) -> _Payload:
        """Read the payload leaf of the whole row group; keep per-entry offsets (all rows)."""
        from ._parquet_common import read_row_group

        table = read_row_group(self.path, self._fingerprint, self.row_group, [self._leaf], self._where)
        lists = table.column(self.column).combine_chunks().field(self._field)
        return load_payload(lists, self._layout, self._where)

    def _row_view(self, payload: _Payload) -> _Payload:
        """Entries of this source's row (a row group may hold many rows)."""
        return row_payload(payload, self.row_in_group)

