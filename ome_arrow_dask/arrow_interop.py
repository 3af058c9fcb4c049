"""Arrow interop: PyCapsule exports, images as table rows, and chunk streams.

What the Arrow dunders return (pyarrow, polars, DuckDB and Pillow read them):

* ``TensorView.__arrow_c_array__``: a length-1 ``arrow.fixed_shape_tensor`` array whose
  element is the tensor in the view's layout (``shape`` = ``view.shape``, ``dim_names`` =
  the layout letters spelled T/Z/C/Y/X). The field metadata key
  :data:`~ome_arrow_dask.arrow_schema.CHANNEL_NAMES_KEY` holds the channel names as
  JSON. Zero-copy when the layout keeps the buffer's TZCYX axis order (``CYX``,
  ``TZCYX``, ``ZYX``, or YXC with one channel); other layouts are copied once into
  layout order. No ``permutation`` is written: pyarrow 26 reads permuted tensors with
  wrong strides, so a contiguous tensor is what every consumer gets right.
* ``OMEArrow.__arrow_c_array__``: a one-row OME-Arrow struct record with the **byte
  payload** (``OME_ARROW_BYTE_STRUCT``: dtype kept, one chunk per T/C and
  ``(min(Z,16), min(Y,512), min(X,512))`` ZYX block), the layout ome-arrow 0.1.0 reads.
  A consumer that requests ``OME_ARROW_STRUCT`` gets the list payload instead.
  ``pa.table({"image": img})`` is therefore a one-row OME-Arrow table. This reads the
  selection's pixels; ``__arrow_c_schema__`` reads none.

Neither defines ``__arrow_c_stream__``: each is one array. The multi-chunk stream is
:class:`ChunkStream` (``OMEArrow.arrow_chunks()``): one row per chunk of the plan, with
the pixel bytes only when asked for, so DuckDB and polars can query chunk metadata
without reading pixels. :func:`scan_table` opens the image column of a feature table
row by row (:class:`ImageColumn`).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, overload

import numpy as np
import pyarrow as pa

from .arrow_schema import CHANNEL_NAMES_KEY, OME_ARROW_BYTE_STRUCT, OME_ARROW_STRUCT, record_from_meta
from .errors import OmeArrowDaskError, UnsupportedSourceError

if TYPE_CHECKING:
    from .core import OMEArrow
    from .tensor import TensorView

PAYLOADS = ("bytes", "list", "planes")
"""Record payloads: typed chunk bytes, ``list<uint16>`` chunks, ``list<uint16>`` planes."""

CHUNK_STREAM_LAYOUT = b"chunk-stream"
"""``ome.arrow.layout`` schema metadata of a :class:`ChunkStream`."""


# ---------------------------------------------------------------------- tensors
def _value_type(dtype: np.dtype) -> pa.DataType:
    if dtype.kind == "c":
        raise OmeArrowDaskError(f"Arrow has no {dtype} type; cast the view first (tensor_view(dtype=...))")
    return pa.from_numpy_dtype(dtype)


def tensor_field(view: TensorView, name: str = "pixels") -> pa.Field:
    """The ``arrow.fixed_shape_tensor`` field of ``view`` (reads no pixels).

    ``dim_names`` spell the layout with Y/X; the channel names are in the field metadata.
    """
    value_type = _value_type(view.dtype.newbyteorder("="))
    arrow_type = pa.fixed_shape_tensor(value_type, list(view.shape), dim_names=list(view.axes))
    metadata = {CHANNEL_NAMES_KEY: json.dumps(list(view.channel_names)).encode()}
    return pa.field(name, arrow_type, nullable=False, metadata=metadata)


def tensor_array(view: TensorView) -> pa.ExtensionArray:
    """``view`` as a length-1 ``arrow.fixed_shape_tensor`` array (zero-copy when the layout allows).

    Like ``pa.array(ndarray)``, a zero-copy export shares memory with the view's buffer
    (for an in-memory image, the caller's array): writing to that array afterwards shows
    in the Arrow array. Copy first (``view.to_numpy(contiguous=True).copy()``) to keep a
    snapshot of a buffer you will refill.
    """
    arrow_type = tensor_field(view).type
    array = np.ascontiguousarray(view.to_numpy(), dtype=view.dtype.newbyteorder("="))  # Arrow is little-endian
    values = pa.array(array.reshape(-1), type=arrow_type.value_type)
    storage = pa.FixedSizeListArray.from_arrays(values, type=arrow_type.storage_type)
    return pa.ExtensionArray.from_storage(arrow_type, storage)


def tensor_capsules(view: TensorView, requested_schema: object | None = None) -> tuple[object, object]:
    """``(schema, array)`` capsules of :func:`tensor_array`; a requested schema is ignored."""
    del requested_schema  # allowed by the PyCapsule protocol: the consumer casts if it must
    _, array_capsule = tensor_array(view).__arrow_c_array__()
    return tensor_field(view).__arrow_c_schema__(), array_capsule


# ---------------------------------------------------------------------- records
def _record_metadata() -> dict[bytes, bytes]:
    from .writers.parquet import FILE_METADATA

    return dict(FILE_METADATA)


def record_field(payload: str = "bytes", name: str = "ome_arrow") -> pa.Field:
    """The field of an OME-Arrow struct column with ``payload`` (``ome.arrow.*`` field metadata)."""
    if payload not in PAYLOADS:
        raise OmeArrowDaskError(f"payload must be one of {PAYLOADS}, got {payload!r}")
    struct_type = OME_ARROW_BYTE_STRUCT if payload == "bytes" else OME_ARROW_STRUCT
    return pa.field(name, struct_type, metadata=_record_metadata())


def record_array(
    images: OMEArrow | Iterable[OMEArrow],
    *,
    payload: str = "bytes",
    chunk_shape: Sequence[int] | None = None,
    chunk_compression: str | None = None,
) -> pa.StructArray:
    """OME-Arrow struct records, one row per image (reads each image's pixels).

    Parameters
    ----------
    images
        One ``OMEArrow`` or several (e.g. to build the image column of a feature table).
    payload
        ``"bytes"`` (typed chunk bytes, dtype kept), ``"list"`` (``list<uint16>`` chunks;
        values must fit uint16) or ``"planes"`` (``list<uint16>`` planes).
    chunk_shape
        ZYX (or TCZYX with T=C=1) chunk shape; default ``(min(Z,16), min(Y,512), min(X,512))``.
    chunk_compression
        ``None``, ``"zstd"`` or ``"lz4"`` per byte chunk (``payload="bytes"`` only).
    """
    from .core import OMEArrow
    from .writers.parquet import build_record

    record_field(payload)  # validates payload
    codec = None if chunk_compression in (None, "none") else str(chunk_compression).lower()
    if codec not in (None, "zstd", "lz4") or (codec is not None and payload != "bytes"):
        raise OmeArrowDaskError(
            f"chunk_compression must be None, 'zstd' or 'lz4' with payload='bytes', got {chunk_compression!r} "
            f"with payload={payload!r}"
        )
    items = [images] if isinstance(images, OMEArrow) else list(images)
    if not items:
        raise OmeArrowDaskError("record_array needs at least one image")
    rows = []
    for i, image in enumerate(items):
        if not isinstance(image, OMEArrow):
            raise TypeError(f"image {i} is a {type(image).__name__}, expected an OMEArrow")
        if math.prod(image.shape) == 0:
            raise OmeArrowDaskError(f"image {i} is empty (shape {image.shape}); a record needs pixels")
        rows.append(build_record(image, payload=payload, chunk_shape=chunk_shape, codec=codec))
    return rows[0] if len(rows) == 1 else pa.concat_arrays(rows)


def _requested_payload(requested_schema: object | None) -> str:
    """``"list"`` when the consumer asks for ``OME_ARROW_STRUCT``, else the byte payload."""
    if requested_schema is None:
        return "bytes"
    try:
        requested = pa.DataType._import_from_c_capsule(requested_schema)
    except (pa.ArrowException, ValueError, TypeError):
        return "bytes"
    return "list" if requested == OME_ARROW_STRUCT else "bytes"


def record_capsules(image: OMEArrow, requested_schema: object | None = None) -> tuple[object, object]:
    """``(schema, array)`` capsules of ``image`` as a one-row OME-Arrow struct record."""
    payload = _requested_payload(requested_schema)
    _, array_capsule = record_array(image, payload=payload).__arrow_c_array__()
    return record_field(payload).__arrow_c_schema__(), array_capsule


# ---------------------------------------------------------------------- chunk streams
def chunk_stream_schema(image: OMEArrow, *, pixels: bool = False) -> pa.Schema:
    """Schema of :class:`ChunkStream` rows: chunk id, TCZYX origin and shape, dtype, optional bytes."""
    fields = [pa.field("chunk_id", pa.int64(), nullable=False)]
    fields += [pa.field(axis, pa.int32(), nullable=False) for axis in "tczyx"]
    fields += [pa.field(f"shape_{axis}", pa.int32(), nullable=False) for axis in "tczyx"]
    fields.append(pa.field("dtype", pa.string(), nullable=False))
    if pixels:
        fields.append(pa.field("pixel_bytes", pa.large_binary(), nullable=False))
    pixels_meta = record_from_meta(image.meta)["pixels_meta"]
    metadata = {
        **_record_metadata(),
        b"ome.arrow.layout": CHUNK_STREAM_LAYOUT,
        b"ome.arrow.pixels_meta": json.dumps(pixels_meta).encode(),
    }
    return pa.schema(fields, metadata=metadata)


class ChunkStream:
    """The chunks of an image plan as Arrow record batches: one row per chunk, re-iterable.

    Rows follow the plan's chunk grid (the source chunks its selection touches) in
    T→C→Z→Y→X order, as ome-arrow's dataset ``chunks.parquet`` does. Without
    ``pixels`` nothing is read; with ``pixels`` each batch reads only its own chunks,
    when the consumer pulls it. ``pixel_bytes`` holds each chunk's raw C-order TCZYX
    bytes in ``dtype`` (decode with ``np.frombuffer(b, dtype).reshape(shape_t, ..., shape_x)``).

    Every ``__arrow_c_stream__`` call starts a fresh stream, so DuckDB
    (``duckdb.sql("select ... from stream")``) and polars (``pl.DataFrame(stream)``) can
    read it as often as they like.

    Parameters
    ----------
    image
        The plan whose chunks to list.
    pixels
        Add the ``pixel_bytes`` column.
    batch_size
        Chunks per record batch.
    """

    def __init__(self, image: OMEArrow, *, pixels: bool = False, batch_size: int = 64) -> None:
        if int(batch_size) <= 0:
            raise OmeArrowDaskError(f"batch_size must be positive, got {batch_size}")
        self.image = image
        self.pixels = bool(pixels)
        self.batch_size = int(batch_size)
        self.schema = chunk_stream_schema(image, pixels=self.pixels)

    def __len__(self) -> int:
        return math.prod(self.image.meta.numblocks)

    def _batches(self) -> Iterator[pa.RecordBatch]:
        meta = self.image.meta
        starts = [np.concatenate([[0], np.cumsum(axis)[:-1]]).astype(np.int64) for axis in meta.chunks]
        indices = list(np.ndindex(*meta.numblocks))
        delayed = self.image.to_dask().to_delayed() if self.pixels else None
        for first in range(0, len(indices), self.batch_size):
            batch = indices[first : first + self.batch_size]
            columns: dict[str, Any] = {"chunk_id": list(range(first, first + len(batch)))}
            for a, axis in enumerate("tczyx"):
                columns[axis] = [int(starts[a][index[a]]) for index in batch]
                columns[f"shape_{axis}"] = [int(meta.chunks[a][index[a]]) for index in batch]
            columns["dtype"] = [meta.dtype.name] * len(batch)
            if delayed is not None:
                columns["pixel_bytes"] = _binary_column([delayed[index] for index in batch])
            yield pa.RecordBatch.from_pydict(columns, schema=self.schema)

    def reader(self) -> pa.RecordBatchReader:
        """A fresh single-use reader over the batches."""
        return pa.RecordBatchReader.from_batches(self.schema, self._batches())

    def read_all(self) -> pa.Table:
        """All rows as a table (reads the pixels when ``pixels`` is set)."""
        return self.reader().read_all()

    def __arrow_c_stream__(self, requested_schema: object | None = None) -> object:
        """Export a fresh stream through the Arrow PyCapsule interface."""
        return self.reader().__arrow_c_stream__(requested_schema)

    def __repr__(self) -> str:
        what = "with pixel_bytes" if self.pixels else "metadata only"
        return f"ChunkStream({len(self)} chunks, {what}, batch_size={self.batch_size})"


def _binary_column(blocks: list[Any]) -> pa.Array:
    import dask

    arrays = [np.ascontiguousarray(b) for b in dask.compute(*blocks)]
    sizes = np.array([a.nbytes for a in arrays], dtype=np.int64)
    offsets = pa.py_buffer(np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64))
    data = pa.py_buffer(b"".join(memoryview(a.reshape(-1).view(np.uint8)) for a in arrays))
    return pa.LargeBinaryArray.from_buffers(pa.large_binary(), len(arrays), [None, offsets, data])


# ---------------------------------------------------------------------- image columns of tables
class ImageColumn(Sequence["OMEArrow"]):
    """The image column of a table: one lazy ``OMEArrow`` per row, opened when asked for.

    Parameters
    ----------
    open_row
        Returns the image of row ``i`` (injected: a Parquet file or an in-memory table).
    num_rows
        Rows in the table.
    column_name
        The struct column holding the images.
    where
        The table, for ``repr`` and messages.
    """

    def __init__(self, open_row: Callable[[int], OMEArrow], num_rows: int, column_name: str, where: str) -> None:
        self._open_row = open_row
        self.num_rows = int(num_rows)
        self.column_name = column_name
        self.where = where

    def __len__(self) -> int:
        return self.num_rows

    @overload
    def __getitem__(self, index: int) -> OMEArrow: ...

    @overload
    def __getitem__(self, index: slice) -> list[OMEArrow]: ...

    def __getitem__(self, index: int | slice) -> OMEArrow | list[OMEArrow]:
        if isinstance(index, slice):
            return [self._open_row(i) for i in range(*index.indices(self.num_rows))]
        if not isinstance(index, (int, np.integer)):
            raise TypeError(f"rows are selected by int or slice, got {type(index).__name__}")
        row = int(index) + self.num_rows if index < 0 else int(index)
        if not 0 <= row < self.num_rows:
            raise IndexError(f"row {index} is out of range for {self.num_rows} rows of {self.where}")
        return self._open_row(row)

    def __iter__(self) -> Iterator[OMEArrow]:
        for row in range(self.num_rows):
            yield self._open_row(row)

    def __repr__(self) -> str:
        return f"ImageColumn({self.column_name!r}, {self.num_rows} rows of {self.where})"


def scan_table(
    data: Any,
    column_name: str | None = None,
    *,
    tcz: tuple[int, int, int] = (0, 0, 0),
    image_type: str | None = None,
) -> ImageColumn:
    """Open the image column of a table lazily, one ``OMEArrow`` per row.

    Parameters
    ----------
    data
        A Parquet file (opening reads the footer only; row ``i`` reads the metadata of
        its row group when opened and that row group's pixels when read) or an Arrow
        table (``pa.Table``, ``pa.RecordBatch``, or any ``__arrow_c_stream__`` object
        such as a polars DataFrame; rows are zero-copy slices).
    column_name
        The OME-Arrow struct column; default ``ome_arrow``, ``image``, else the first one found.
    tcz, image_type
        Passed to each ``OMEArrow``.
    """
    from .core import OMEArrow
    from .sources._parquet_common import parquet_file
    from .sources._parquet_struct import find_column

    if isinstance(data, (str, os.PathLike)):
        path = os.fspath(data)
        if os.path.isdir(path):
            raise UnsupportedSourceError(f"{path}: scan_table reads one Parquet table file; open datasets with scan()")
        pf = parquet_file(path)
        try:
            column = find_column(pf.schema_arrow, column_name, path)
            num_rows = pf.metadata.num_rows
        finally:
            pf.close()

        def open_file_row(row: int) -> OMEArrow:
            return OMEArrow.scan(path, tcz=tcz, column_name=column, row_index=row, image_type=image_type)

        return ImageColumn(open_file_row, num_rows, column, f"Parquet table {path}")
    table = _as_table(data)
    column = find_column(table.schema, column_name, "the table")
    images = table.column(column)

    def open_table_row(row: int) -> OMEArrow:
        return OMEArrow(images.slice(row, 1), tcz, image_type=image_type)

    return ImageColumn(open_table_row, table.num_rows, column, f"an in-memory table of {table.num_rows} rows")


def _as_table(data: Any) -> pa.Table:
    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    if hasattr(data, "__arrow_c_stream__"):
        return pa.table(data)
    raise TypeError(
        f"scan_table expects a Parquet path or an Arrow table (an object with __arrow_c_stream__), "
        f"got {type(data).__name__}"
    )


# ---------------------------------------------------------------------- single-record files
def to_ome_parquet(
    data: Any,
    out_path: str | os.PathLike[str],
    column_name: str = "image",
    file_metadata: dict[str, str] | None = None,
    compression: str | None = "zstd",
) -> None:
    """Write one OME-Arrow record as a single-row Parquet file (ome-arrow's ``to_ome_parquet``).

    Parameters
    ----------
    data
        The record: a dict in OME-Arrow record form, a ``pa.StructScalar``, a one-row
        OME-Arrow struct array, or an :class:`~ome_arrow_dask.core.OMEArrow` (written
        with the byte payload, dtype kept). Arrow and dict records are written as given
        (list or byte payload), after checking that they open as an image.
    out_path
        The file to write; written to a temporary name and renamed when complete.
    column_name
        The struct column's name (ome-arrow's default ``"image"``).
    file_metadata
        Extra key/value pairs for the schema metadata, next to ``ome.arrow.type`` / ``version``.
    compression
        Parquet codec of every leaf column (default zstd).
    """
    from pathlib import Path

    from ._arrow_import import is_record_dict, record_from_dict, record_source
    from .core import OMEArrow, _absolute
    from .writers.parquet import FILE_METADATA, _write_table

    if isinstance(data, OMEArrow):
        record = record_array(data)
    elif is_record_dict(data):
        record = record_from_dict(data)
    elif isinstance(data, pa.StructScalar):
        record = pa.array([data.as_py()], type=data.type)  # scalars hide their buffers: one copy
    elif isinstance(data, pa.StructArray) and len(data) == 1:
        record = data
    else:
        raise TypeError(
            f"to_ome_parquet writes one OME-Arrow record (dict, StructScalar, one-row StructArray or OMEArrow), "
            f"got {type(data).__name__}"
        )
    record_source(record)  # raises on a record that does not open as an image
    metadata = {**FILE_METADATA, **{str(k).encode(): str(v).encode() for k, v in (file_metadata or {}).items()}}
    table = pa.Table.from_arrays([record], names=[column_name]).replace_schema_metadata(metadata)
    target = Path(_absolute(out_path))
    if target.is_dir():
        raise OmeArrowDaskError(f"{target}: is a directory; to_ome_parquet writes a single file")
    _write_table(table, target, compression)
