"""The OME-Arrow record codec: pixels to struct records and back, in one place.

A record is one value of ``OME_ARROW_BYTE_STRUCT`` or ``OME_ARROW_STRUCT`` (see
:mod:`~ome_arrow_dask.arrow.schema`). Its pixels are in one of three payloads:

* ``"bytes"``: ``chunks`` of typed C-order ZYX bytes (``dtype`` per chunk; raw, zstd or
  lz4-frame), the layout ome-arrow's ``from_numpy(..., chunk_encoding="bytes")`` writes;
* ``"list"``: ``chunks`` with ``list<uint16>`` pixels, cast to ``pixels_meta.type`` on read;
* ``"planes"``: ``planes`` with ``list<uint16>`` YX pixels (planes-only and pre-0.1 records).

A record holding both chunks and planes is read from its chunks (as ome-arrow does).

Encoding (:func:`encode_record`, :func:`encode_blocks`) streams a dask array block by
block; decoding is split so that readers decode one chunk at a time:
:func:`record_metadata` and :func:`record_layout` read the metadata and coordinates
(no pixels), :func:`load_payload` indexes a pixel column without copying it, and
:func:`decode_entry` decodes one chunk. :func:`decode_record` decodes a whole record.
Everything decoded is untrusted: damaged fields raise
:class:`~ome_arrow_dask.errors.CorruptInputError` naming ``where``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import dask
import numpy as np
import pyarrow as pa

from ..errors import CorruptInputError, OmeArrowDaskError
from ..limits import check_chunk_grid
from ..meta import ImageMeta, check_dtype, regular_chunks
from ..sources._parquet_common import as_python, build_grid_index, cast_pixels, decode_bytes, integer_column
from .schema import (
    BYTE_CHUNK_STRUCT,
    CHUNK_GRID_STRUCT,
    LIST_CHUNK_STRUCT,
    METADATA_FIELDS,
    OME_ARROW_BYTE_STRUCT,
    OME_ARROW_STRUCT,
    PIXELS_META_STRUCT,
    PLANE_STRUCT,
    compression_from_string,
    dtype_from_string,
    int_field,
    meta_from_record,
    record_from_meta,
    shape_from_pixels_meta,
    stored_dtype,
)

PAYLOADS = ("bytes", "list", "planes")
"""Record payloads: typed chunk bytes, ``list<uint16>`` chunks, ``list<uint16>`` planes."""

CHUNK_CODECS = ("zstd", "lz4")
"""Per-chunk compressions of byte payloads (``lz4`` is the LZ4 frame format)."""

COORD_FIELDS = ("t", "c", "z", "y", "x", "shape_z", "shape_y", "shape_x")
"""Coordinate fields of every chunk entry."""

BATCH_BLOCKS = 8
"""Blocks computed together while encoding; memory stays near ``BATCH_BLOCKS`` chunks."""

DTYPE_META_STORED = np.dtype("uint16")
"""The one stored chunk dtype that may differ from ``pixels_meta.type`` (see :func:`check_chunk_dtypes`)."""

_I32 = pa.int32()
_COORD_TYPES = (_I32, pa.int16(), _I32, _I32, _I32, _I32, _I32, _I32)


# ---------------------------------------------------------------------- chunk shapes
def default_chunk_shape(shape: Sequence[int]) -> tuple[int, int, int, int, int]:
    """``(1, 1, min(Z, 16), min(Y, 512), min(X, 512))``, at least 1 on every axis.

    >>> default_chunk_shape((3, 2, 40, 1000, 300))
    (1, 1, 16, 512, 300)
    """
    _t, _c, z, y, x = (int(s) for s in shape)
    return (1, 1, max(1, min(z, 16)), max(1, min(y, 512)), max(1, min(x, 512)))


def resolve_chunk_shape(option: Sequence[int] | None, shape: Sequence[int], *, struct: bool) -> tuple[int, ...]:
    """The TCZYX chunk shape for ``option`` (ZYX or TCZYX; None: the default), clipped to ``shape``.

    ``struct=True`` (records) requires T and C chunks of 1: a record chunk never spans them.

    >>> resolve_chunk_shape((2, 64, 64), (1, 1, 5, 40, 100), struct=True)
    (1, 1, 2, 40, 64)
    """
    if option is None:
        return default_chunk_shape(shape)
    values = tuple(int(v) for v in option)
    if len(values) == 3:
        values = (1, 1, *values)
    if len(values) != 5 or any(v <= 0 for v in values):
        raise OmeArrowDaskError(f"chunk_shape must be 3 (ZYX) or 5 (TCZYX) positive sizes, got {option!r}")
    if struct and values[:2] != (1, 1):
        raise OmeArrowDaskError("the struct layout stores one T and one C per chunk: chunk_shape T and C must be 1")
    return tuple(min(v, max(s, 1)) for v, s in zip(values, shape, strict=True))


def record_chunk_shape(shape: Sequence[int], payload: str, option: Sequence[int] | None = None) -> tuple[int, ...]:
    """The chunk shape a record with ``payload`` is encoded in: one YX plane for ``"planes"``.

    >>> record_chunk_shape((1, 2, 3, 40, 50), "planes"), record_chunk_shape((1, 2, 3, 40, 50), "bytes")
    ((1, 1, 1, 40, 50), (1, 1, 3, 40, 50))
    """
    if payload == "planes":
        return (1, 1, 1, int(shape[3]), int(shape[4]))
    return resolve_chunk_shape(option, shape, struct=True)


def check_payload(payload: str, codec: str | None = None) -> str | None:
    """Validate ``payload`` and a per-chunk ``codec``; return the codec normalised (None: raw).

    >>> check_payload("bytes", "ZSTD"), check_payload("list", "none")
    ('zstd', None)
    """
    if payload not in PAYLOADS:
        raise OmeArrowDaskError(f"payload must be one of {PAYLOADS}, got {payload!r}")
    name = None if codec in (None, "none") else str(codec).lower()
    if name not in (None, *CHUNK_CODECS):
        raise OmeArrowDaskError(f"chunk_compression must be None, 'zstd' or 'lz4', got {codec!r}")
    if name is not None and payload != "bytes":
        raise OmeArrowDaskError("chunk_compression applies to payload='bytes' only")
    return name


# ---------------------------------------------------------------------- encoding
def iter_blocks(array: Any, chunk_shape: Sequence[int]) -> Iterator[tuple[tuple[int, ...], np.ndarray]]:
    """Yield ``(origin, block)`` of a TCZYX array over a regular grid in C order, a few blocks at a time."""
    import dask.array as da

    array = da.asarray(array)
    grid = regular_chunks(array.shape, chunk_shape)
    delayed = array.rechunk(grid).to_delayed()
    offsets = [np.concatenate([[0], np.cumsum(axis)[:-1]]).astype(int) for axis in grid]
    indices = list(np.ndindex(*delayed.shape))
    for start in range(0, len(indices), BATCH_BLOCKS):
        batch = indices[start : start + BATCH_BLOCKS]
        blocks = dask.compute(*[delayed[i] for i in batch])
        for index, block in zip(batch, blocks, strict=True):
            origin = tuple(int(offsets[axis][k]) for axis, k in enumerate(index))
            yield origin, np.ascontiguousarray(block)


def check_uint16(block: np.ndarray, origin: Sequence[int]) -> np.ndarray:
    """``block`` as uint16 for a list payload; values that would change raise :class:`OmeArrowDaskError`."""
    if block.dtype == np.uint16:
        return block
    if block.dtype.kind not in "biuf" or (block.size and not _fits_uint16(block)):
        raise OmeArrowDaskError(
            f"payloads 'list' and 'planes' store pixels as uint16, but the {block.dtype} block at {tuple(origin)} "
            "holds values that are not integers in 0..65535; use payload='bytes' (keeps the dtype)"
        )
    return block.astype(np.uint16)


def _fits_uint16(block: np.ndarray) -> bool:
    if block.dtype.kind == "f":
        if not np.isfinite(block).all() or not np.array_equal(block, np.trunc(block)):
            return False
    return bool(block.min() >= 0 and block.max() <= 65535)


def _chunk_bytes(block: np.ndarray, codec: str | None) -> bytes | memoryview:
    raw = np.ascontiguousarray(block).reshape(-1).view(np.uint8).data
    if codec is None:
        return raw
    return pa.Codec(codec).compress(raw, asbytes=True)


def encode_entries(
    blocks: Iterable[tuple[Sequence[int], np.ndarray]], payload: str = "bytes", codec: str | None = None
) -> pa.StructArray:
    """The ``chunks`` (or, for ``"planes"``, ``planes``) entries of one record, from TCZYX blocks."""
    coords: dict[str, list[int]] = {k: [] for k in COORD_FIELDS}
    parts: list[Any] = []
    dtypes: list[str] = []
    for origin, block in blocks:
        for axis, start in zip("tczyx", origin, strict=True):
            coords[axis].append(int(start))
        for axis, size in zip("zyx", block.shape[2:], strict=True):
            coords[f"shape_{axis}"].append(int(size))
        if payload == "bytes":
            parts.append(_chunk_bytes(block, codec))
            dtypes.append(block.dtype.name)
        else:
            parts.append(check_uint16(block, origin).reshape(-1))
    coord_arrays = [pa.array(coords[k], t) for k, t in zip(COORD_FIELDS, _COORD_TYPES, strict=True)]
    if payload == "bytes":
        sizes = np.array([len(p) for p in parts], dtype=np.int64)
        offsets = pa.py_buffer(np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64))
        data = pa.py_buffer(b"".join(parts))
        values = pa.LargeBinaryArray.from_buffers(pa.large_binary(), len(parts), [None, offsets, data])
        arrays = [*coord_arrays, pa.array(dtypes, pa.string()), pa.array([codec] * len(parts), pa.string()), values]
        return pa.StructArray.from_arrays(arrays, fields=list(BYTE_CHUNK_STRUCT))
    sizes = np.array([p.size for p in parts], dtype=np.int32)
    offsets_array = pa.array(np.concatenate([[0], np.cumsum(sizes)]).astype(np.int32))
    flat = np.concatenate(parts) if parts else np.zeros(0, np.uint16)
    pixels = pa.ListArray.from_arrays(offsets_array, pa.array(flat, pa.uint16()))
    if payload == "planes":
        arrays = [pa.array(coords["z"], _I32), pa.array(coords["t"], _I32), pa.array(coords["c"], pa.int16()), pixels]
        return pa.StructArray.from_arrays(arrays, fields=list(PLANE_STRUCT))
    return pa.StructArray.from_arrays([*coord_arrays, pixels], fields=list(LIST_CHUNK_STRUCT))


def _one(value: Any, arrow_type: pa.DataType) -> pa.Array:
    return pa.array([value], type=arrow_type)


def _list_of(entries: pa.Array, struct_type: pa.DataType) -> pa.Array:
    return pa.ListArray.from_arrays(pa.array([0, len(entries)], pa.int32()), entries, type=pa.list_(struct_type))


def encode_blocks(
    meta: ImageMeta,
    blocks: Iterable[tuple[Sequence[int], np.ndarray]],
    chunk_shape: Sequence[int],
    *,
    payload: str = "bytes",
    codec: str | None = None,
) -> pa.StructArray:
    """A one-row record for ``meta`` whose pixels are ``blocks`` on the regular grid ``chunk_shape``.

    ``blocks`` are ``(origin, TCZYX block)`` pairs covering the image once, in T→C→Z→Y→X
    order (what :func:`iter_blocks` yields); ``chunk_shape`` is recorded in ``chunk_grid``
    (planes records have none). The struct is ``OME_ARROW_BYTE_STRUCT`` for ``"bytes"``,
    else ``OME_ARROW_STRUCT``.
    """
    codec = check_payload(payload, codec)
    entries = encode_entries(blocks, payload, codec)
    record = record_from_meta(meta)
    struct_type = OME_ARROW_BYTE_STRUCT if payload == "bytes" else OME_ARROW_STRUCT
    grid = None
    if payload != "planes":
        grid = {"order": "TCZYX", "chunk_t": 1, "chunk_c": 1, "chunk_z": int(chunk_shape[2])}
        grid.update({"chunk_y": int(chunk_shape[3]), "chunk_x": int(chunk_shape[4]), "chunk_order": "ZYX"})
    chunk_type = struct_type.field("chunks").type.value_type
    arrays = {
        "type": _one(record["type"], pa.string()),
        "version": _one(record["version"], pa.string()),
        "id": _one(record["id"], pa.string()),
        "name": _one(record["name"], pa.string()),
        "image_type": _one(record["image_type"], pa.string()),
        "acquisition_datetime": _one(record["acquisition_datetime"], pa.timestamp("us")),
        "pixels_meta": _one(record["pixels_meta"], PIXELS_META_STRUCT),
        "chunk_grid": _one(grid, CHUNK_GRID_STRUCT),
        "chunks": pa.array([[]], pa.list_(chunk_type)) if payload == "planes" else _list_of(entries, chunk_type),
        "planes": _list_of(entries, PLANE_STRUCT) if payload == "planes" else pa.array([[]], pa.list_(PLANE_STRUCT)),
        "masks": pa.nulls(1),
    }
    return pa.StructArray.from_arrays(list(arrays.values()), fields=list(struct_type))


def encode_record(
    array: Any,
    meta: ImageMeta,
    *,
    payload: str = "bytes",
    chunk_shape: Sequence[int] | None = None,
    codec: str | None = None,
) -> pa.StructArray:
    """Encode the TCZYX ``array`` (dask or numpy) with metadata ``meta`` as a one-row record.

    Parameters
    ----------
    array
        The pixels, shape ``meta.shape``; a dask array is computed a few blocks at a time.
    meta
        Metadata of the image (``pixels_meta``, ids, channels, ...).
    payload
        ``"bytes"`` (typed chunk bytes, dtype kept), ``"list"`` (``list<uint16>`` chunks;
        values must fit uint16) or ``"planes"`` (``list<uint16>`` planes).
    chunk_shape
        ZYX (or TCZYX with T=C=1) chunk shape; default ``(min(Z,16), min(Y,512), min(X,512))``.
    codec
        ``None``, ``"zstd"`` or ``"lz4"`` per byte chunk (``payload="bytes"`` only).

    >>> meta = ImageMeta((1, 1, 1, 2, 3), "int16", regular_chunks((1, 1, 1, 2, 3), (1, 1, 1, 2, 3)))
    >>> record = encode_record(np.arange(-3, 3, dtype="int16").reshape(meta.shape), meta)
    >>> decode_record(record)[1].ravel().tolist()
    [-3, -2, -1, 0, 1, 2]
    """
    codec = check_payload(payload, codec)
    if tuple(array.shape) != tuple(meta.shape):
        raise OmeArrowDaskError(f"the array has shape {tuple(array.shape)}, but the metadata says {meta.shape}")
    chunk = record_chunk_shape(meta.shape, payload, chunk_shape)
    return encode_blocks(meta, iter_blocks(array, chunk), chunk, payload=payload, codec=codec)


# ---------------------------------------------------------------------- records in Python form
def is_record_dict(data: object) -> bool:
    """True for a mapping in OME-Arrow record form (has ``pixels_meta``), as ome-arrow's ``OMEArrow(dict)`` takes.

    >>> is_record_dict({"pixels_meta": {}}), is_record_dict({"a": 1}), is_record_dict([1])
    (True, False, False)
    """
    return isinstance(data, Mapping) and not isinstance(data, pa.Scalar) and "pixels_meta" in data  # not StructScalar


def record_from_dict(record: Mapping[str, Any]) -> pa.StructArray:
    """A one-row OME-Arrow struct array from a record in Python form (ome-arrow's ``OMEArrow(dict)``).

    The struct is ``OME_ARROW_BYTE_STRUCT`` when the chunks carry ``pixel_bytes``, else
    ``OME_ARROW_STRUCT``; fields the dict lacks are null and keys the struct does not have
    are ignored, as in ome-arrow. Values that do not fit the struct (e.g. negative
    ``list<uint16>`` pixels) raise :class:`~ome_arrow_dask.errors.CorruptInputError` naming the cause.
    """
    chunks = record.get("chunks") or []
    first = chunks[0] if isinstance(chunks, (list, tuple)) and chunks else None
    byte_chunks = isinstance(first, Mapping) and "pixel_bytes" in first
    struct_type = OME_ARROW_BYTE_STRUCT if byte_chunks else OME_ARROW_STRUCT
    row = {struct_type.field(i).name: record.get(struct_type.field(i).name) for i in range(struct_type.num_fields)}
    try:
        return pa.array([row], type=struct_type)
    except (pa.ArrowException, TypeError, ValueError, OverflowError) as exc:
        raise CorruptInputError(
            f"the OME-Arrow record dict does not fit the OME-Arrow struct ({exc}); list payloads store "
            "pixels as uint16 (0..65535), byte payloads need 'pixel_bytes' and 'dtype' in every chunk"
        ) from exc


# ---------------------------------------------------------------------- decoding: layout
@dataclass(frozen=True)
class Payload:
    """The pixel leaf of some rows: per-entry offsets into a flat numpy buffer (zero-copy).

    ``row_starts[i]`` is the first entry of row ``i`` (a row group may hold many rows).
    """

    offsets: np.ndarray
    values: np.ndarray
    valid: np.ndarray
    row_starts: np.ndarray


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


def record_metadata(array: pa.StructArray, where: str) -> dict[str, Any]:
    """Metadata fields (no payload) of a one-row record array, as Python values."""
    if not array.is_valid()[0].as_py():
        raise CorruptInputError(f"{where}: the record is null")
    names = {array.type.field(i).name for i in range(array.type.num_fields)}
    return {f: as_python(array.field(f)[0], where, f"field {f!r}") for f in METADATA_FIELDS if f in names}


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
    out: dict[str, Any] = {}
    for name in names:
        if values.type.get_field_index(name) < 0:
            raise CorruptInputError(f"{where}: {field} entries have no {name!r} field")
        column = values.field(name)
        if nullable:
            out[name] = as_python(column, where, f"{field}.{name}")
            continue
        out[name] = integer_column(column, where, f"{field}.{name}")
    return out


def _chunk_grid_shape(
    record: dict[str, Any], entries: dict[str, np.ndarray], shape: tuple[int, ...], where: str
) -> tuple[int, ...]:
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
) -> tuple[np.dtype, tuple[np.dtype, ...], tuple[str | None, ...]]:
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
    chunks = _entries(array, "chunks", COORD_FIELDS, where)
    chunk_shape: tuple[int, ...]
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


# ---------------------------------------------------------------------- decoding: pixels
def load_payload(lists: pa.Array, layout: RecordLayout, where: str) -> Payload:
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
    return Payload(offsets=offsets, values=values, valid=valid, row_starts=row_starts)


def row_payload(payload: Payload, row: int) -> Payload:
    """The entries of one row of a (row group's) payload."""
    first, last = int(payload.row_starts[row]), int(payload.row_starts[row + 1])
    return Payload(
        offsets=payload.offsets[first : last + 1],
        values=payload.values,
        valid=payload.valid[first:last],
        row_starts=payload.row_starts,
    )


def decode_entry(
    layout: RecordLayout, payload: Payload, entry: int, shape: tuple[int, ...], where: str, *, copy: bool = True
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


def open_record(array: pa.StructArray, row: int, where: str) -> tuple[RecordLayout, Payload]:
    """Layout and payload of row ``row`` of an in-memory record array (no pixel is decoded)."""
    one = array.slice(row, 1)
    layout = record_layout(record_metadata(one, where), one, where)
    return layout, row_payload(load_payload(one.field(layout.field), layout, where), 0)


def decode_record(array: pa.StructArray, row_index: int = 0) -> tuple[ImageMeta, np.ndarray]:
    """Decode row ``row_index`` of an OME-Arrow struct array: its metadata and its TCZYX pixels.

    The pixels come back in ``pixels_meta.type`` whatever the payload stores (``list<uint16>``
    values are cast, value-checked). Reads the whole record; sources decode one chunk per read.
    """
    if not 0 <= int(row_index) < len(array):
        raise OmeArrowDaskError(f"row_index {row_index!r} is out of range for {len(array)} records")
    where = f"OME-Arrow record (row {int(row_index)})"
    layout, payload = open_record(array, int(row_index), where)
    meta = layout.meta
    out = np.empty(meta.shape, dtype=meta.dtype)
    starts = [np.concatenate([[0], np.cumsum(axis)[:-1]]).astype(int) for axis in meta.chunks]
    for index in np.ndindex(*meta.numblocks):
        slices = tuple(slice(int(starts[a][i]), int(starts[a][i]) + meta.chunks[a][i]) for a, i in enumerate(index))
        shape = tuple(s.stop - s.start for s in slices)
        entry = int(layout.entry_of[index])
        what = f"{where} {'plane' if layout.kind == 'planes' else 'chunk'} {entry} at {index}"
        out[slices] = decode_entry(layout, payload, entry, shape, what, copy=False)
    return meta, out
