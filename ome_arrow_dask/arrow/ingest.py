"""Arrow data in: OME-Arrow records, fixed-shape tensors and Pillow images as image sources.

Anything with ``__arrow_c_array__`` or ``__arrow_c_stream__`` (pyarrow arrays and
scalars, polars Series, Pillow images, this package's own exports) is read through the
Arrow C data interface, without copying where the buffers allow:

* **OME-Arrow struct records** (list or byte payload, planes, pre-0.1 records). A record
  whose pixels lie in one C-ordered run (each chunk covers whole Y/X planes, chunks in
  T→C→Z order, raw bytes in the image dtype: what :meth:`OMEArrow.to_arrow` and
  ome-arrow's ``from_numpy`` write for small images) becomes an in-memory array over the
  Arrow buffer. Any other record becomes a :class:`RecordSource` that decodes one chunk
  per read (raw chunks are views of the buffer too).
* **Tensors**: ``arrow.fixed_shape_tensor`` arrays, or nested fixed-size lists (polars
  ``Array``, DuckDB ``ARRAY``). Axis letters come from ``dim_order``, else ``dim_names``,
  else the rank default; channel names from the field metadata key
  :data:`~ome_arrow_dask.arrow.schema.CHANNEL_NAMES_KEY`.
* **Pillow images** (Pillow >= 11.2): single-band modes become YX, multi-band YXC with
  the band names as channel names (RGB keeps a strided view of Pillow's 4-byte pixels).

The imported arrays are read-only views: Arrow buffers are immutable.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pyarrow as pa
from dask.base import tokenize

from ..errors import (
    DimOrderError,
    InconsistentInputError,
    OmeArrowDaskError,
    SelectionError,
    UnsupportedSourceError,
)
from ..meta import Channel, ImageMeta
from ..sources.base import ArraySource, ChunkCoords, Source, SourceBase, chunk_slices, parse_dim_order
from .codec import decode_entry, open_record
from .schema import CHANNEL_NAMES_KEY, REQUIRED_FIELDS, is_ome_arrow_struct

_EXPECTED = (
    "an OME-Arrow struct array, an arrow.fixed_shape_tensor array (or nested fixed-size lists) or a Pillow image"
)

_PILLOW_DTYPES = {"I;16": "<u2", "I;16L": "<u2", "I;16N": "=u2", "I;16B": ">u2"}
"""Pillow exports these modes as int16; their pixels are uint16 in the given byte order."""

_PILLOW_BANDS = {1: slice(0, 1), 2: slice(0, 4, 3), 3: slice(0, 3), 4: slice(0, 4)}
"""Bytes of Pillow's 4-byte pixel that hold the bands (LA / PA keep alpha in byte 3)."""


def is_arrow_input(data: object) -> bool:
    """True for Arrow arrays / scalars and objects exporting ``__arrow_c_array__`` or ``__arrow_c_stream__``.

    >>> is_arrow_input(pa.array([1])), is_arrow_input(np.zeros(3))
    (True, False)
    """
    return (
        isinstance(data, (pa.Array, pa.ChunkedArray, pa.Scalar))
        or hasattr(data, "__arrow_c_array__")
        or hasattr(data, "__arrow_c_stream__")
    )


def source_from_arrow(
    data: Any,
    *,
    dim_order: str | None = None,
    row_index: int | None = None,
    chunks: Any = None,
) -> Source:
    """Open Arrow ``data`` as a source (see the module docstring for what is accepted).

    Parameters
    ----------
    data
        An Arrow array, chunked array or struct scalar, or any object with
        ``__arrow_c_array__`` / ``__arrow_c_stream__``.
    dim_order
        Axis letters of a tensor element (or, with one more letter, of the array axis
        followed by the element axes). Not valid for records and Pillow images' fixed axes.
    row_index
        Which row of a multi-row record or tensor array; required when there are several.
    chunks
        Dask-style chunks for tensors and Pillow images; records keep their chunk grid.
    """
    if _is_pillow(data):
        return _pillow_source(data, dim_order, chunks)
    array, metadata = _import_array(data)
    if pa.types.is_struct(array.type) and not is_ome_arrow_struct(array.type):
        names = {array.type.field(i).name for i in range(array.type.num_fields)}
        raise UnsupportedSourceError(
            f"cannot import an Arrow array of type {array.type}: a struct without OME-Arrow's record fields "
            f"(missing {sorted(REQUIRED_FIELDS - names)}); for the image column of a table use "
            "OMEArrow.scan_table(table, column_name=...)"
        )
    if is_ome_arrow_struct(array.type):
        if dim_order is not None:
            raise DimOrderError("dim_order does not apply to OME-Arrow struct records: they carry their TCZYX axes")
        if chunks is not None:
            raise OmeArrowDaskError("chunks= does not apply to OME-Arrow struct records: they keep their chunk grid")
        return record_source(array, row_index)
    return _tensor_source(array, metadata, dim_order, row_index, chunks)


# ---------------------------------------------------------------------- C data interface
def _import_array(data: Any) -> tuple[pa.Array, dict[bytes, bytes] | None]:
    """One contiguous Arrow array for ``data`` plus its field metadata (when it exports a schema)."""
    if isinstance(data, pa.Scalar):
        return pa.repeat(data, 1), None  # scalars hide their buffers: this is a copy
    if isinstance(data, pa.Array):
        return data, None
    if isinstance(data, pa.ChunkedArray) or not hasattr(data, "__arrow_c_array__"):
        chunked = data if isinstance(data, pa.ChunkedArray) else pa.chunked_array(data)
        return (chunked.chunk(0) if chunked.num_chunks == 1 else chunked.combine_chunks()), None
    return pa.array(data), _field_metadata(data)


def _field_metadata(data: Any) -> dict[bytes, bytes] | None:
    export = getattr(data, "__arrow_c_schema__", None)
    if export is None:
        return None
    try:
        return pa.Field._import_from_c_capsule(export()).metadata
    except (pa.ArrowException, ValueError, TypeError):
        return None


def _pick_row(n_rows: int, row_index: int | None, what: str) -> int:
    if row_index is None:
        if n_rows == 1:
            return 0
        raise SelectionError(f"the {what} has {n_rows} rows; pass row_index= to pick one")
    if not isinstance(row_index, (int, np.integer)) or not 0 <= int(row_index) < n_rows:
        raise SelectionError(f"row_index {row_index!r} is out of range for the {what} of {n_rows} rows")
    return int(row_index)


# ---------------------------------------------------------------------- OME-Arrow records
class RecordSource(SourceBase):
    """One OME-Arrow struct record held in memory; each chunk is decoded when read.

    Raw byte chunks in the image dtype and ``list<uint16>`` payloads of uint16 images
    are returned as read-only views of the Arrow buffers (zero-copy).

    Parameters
    ----------
    array
        A struct array of OME-Arrow records (``OME_ARROW_STRUCT``, ``OME_ARROW_BYTE_STRUCT``,
        pre-0.1 records; large / view string and list variants are fine).
    row_index
        Which row; required when ``array`` has more than one.
    """

    def __init__(self, array: pa.StructArray, row_index: int | None = None) -> None:
        row = _pick_row(len(array), row_index, "OME-Arrow struct array")
        self._row_index = row
        self._array = array.slice(row, 1)
        self._where = f"Arrow OME-Arrow record (row {row})"
        self._layout, self._payload = open_record(self._array, 0, self._where)

    @property
    def meta(self) -> ImageMeta:
        """Metadata from the record's ``pixels_meta`` and its chunk / plane coordinates."""
        return self._layout.meta

    @property
    def kind(self) -> str:
        """Payload kind: ``"bytes"``, ``"list"`` or ``"planes"``."""
        return self._layout.kind

    @property
    def token(self) -> str:
        """A hash of the metadata and the payload (computed once)."""
        token = self.__dict__.get("_token")
        if token is None:
            offsets = self._payload.offsets.astype(np.int64)
            row_values = self._payload.values[int(offsets[0]) : int(offsets[-1])]  # this row's, wherever stored
            token = self.__dict__["_token"] = tokenize(
                "ome-arrow-record",
                self.meta,
                self._layout.kind,
                self._layout.chunk_codecs,
                self._layout.chunk_dtypes,
                offsets - offsets[0],
                row_values,
            )
        return token

    def describe(self) -> str:
        """Name the payload kind."""
        return f"in-memory OME-Arrow record ({self.kind} payload)"

    def read_chunk(self, chunk_coords: ChunkCoords) -> np.ndarray:
        """Decode the chunk at ``chunk_coords`` (a view of the buffer when stored raw)."""
        slices = chunk_slices(self.meta, chunk_coords)
        shape = tuple(s.stop - s.start for s in slices)
        entry = int(self._layout.entry_of[tuple(chunk_coords)])
        where = f"{self._where} {'plane' if self.kind == 'planes' else 'chunk'} {entry} at {tuple(chunk_coords)}"
        return decode_entry(self._layout, self._payload, entry, shape, where, copy=False)

    def contiguous_array(self) -> np.ndarray | None:
        """The whole TCZYX image as a view of the Arrow buffer, or None when it is not stored in one run."""
        layout, payload, meta = self._layout, self._payload, self.meta
        t, c, _, y, x = meta.shape
        if meta.numblocks[3:] != (1, 1) or not payload.valid.all():
            return None
        if not np.array_equal(layout.entry_of.reshape(-1), np.arange(layout.entry_of.size)):
            return None
        if layout.kind == "bytes":
            if any(codec is not None for codec in layout.chunk_codecs) or any(
                d != meta.dtype for d in layout.chunk_dtypes
            ):
                return None
            unit = meta.dtype.itemsize
        elif payload.values.dtype == meta.dtype:
            unit = 1
        else:
            return None
        expected = np.tile(np.asarray(meta.chunks[2], dtype=np.int64) * y * x * unit, t * c)
        if not np.array_equal(np.diff(payload.offsets.astype(np.int64)), expected):
            return None
        flat = payload.values[int(payload.offsets[0]) : int(payload.offsets[-1])]
        return (flat.view(meta.dtype) if layout.kind == "bytes" else flat).reshape(meta.shape)

    def __reduce__(self) -> tuple[object, ...]:
        return (RecordSource, (self._array, None))


def record_source(array: pa.Array, row_index: int | None = None) -> Source:
    """Open one record of an OME-Arrow struct array; zero-copy in-memory when stored in one run."""
    record = RecordSource(array, row_index)
    whole = record.contiguous_array()
    if whole is None:
        return record
    return ArraySource(whole, "TCZYX", chunks=record.meta.chunks, meta=record.meta)


# ---------------------------------------------------------------------- tensors
def tensor_ndarray(array: pa.Array) -> tuple[np.ndarray, list[str] | None]:
    """``(n, *element_shape)`` numpy view of a tensor array, plus its ``dim_names``.

    Accepts ``arrow.fixed_shape_tensor`` (without a permutation) and nested fixed-size lists.

    >>> nd, names = tensor_ndarray(pa.FixedShapeTensorArray.from_numpy_ndarray(np.zeros((2, 3, 4), "u1")))
    >>> nd.shape, names
    ((2, 3, 4), None)
    """
    arrow_type = array.type
    if isinstance(arrow_type, pa.FixedShapeTensorType):
        permutation = arrow_type.permutation
        if permutation is not None and list(permutation) != list(range(len(permutation))):
            raise UnsupportedSourceError(
                f"tensor type {arrow_type} has the permutation {list(permutation)}; producers disagree on its "
                "meaning (pyarrow writes the inverse of the spec's), so pass a tensor without one "
                "(e.g. FixedShapeTensorArray.from_numpy_ndarray(np.ascontiguousarray(x)))"
            )
        shape, names, storage = list(arrow_type.shape), arrow_type.dim_names, array.storage
    elif pa.types.is_fixed_size_list(arrow_type):
        shape, names, storage, inner = [], None, array, arrow_type
        while pa.types.is_fixed_size_list(inner):
            shape.append(inner.list_size)
            inner = inner.value_type
    else:
        raise UnsupportedSourceError(f"cannot import an Arrow array of type {arrow_type}: expected {_EXPECTED}")
    values = storage
    while pa.types.is_fixed_size_list(values.type):
        if values.null_count:
            raise InconsistentInputError(f"the tensor array of type {arrow_type} holds null tensors")
        values = values.flatten()
    if values.null_count:
        raise InconsistentInputError(f"the tensor array of type {arrow_type} holds null values")
    kind = values.type
    if not (pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)):
        raise UnsupportedSourceError(f"tensor values of type {kind} are not pixels (expected int, float or bool)")
    flat = values.to_numpy(zero_copy_only=False)
    return flat.reshape((len(array), *shape)), names


def _tensor_order(dim_order: str | None, names: list[str] | None) -> str | None:
    """Axis letters: ``dim_order``, else single-letter ``dim_names`` (None: the rank default)."""
    if dim_order is not None:
        return dim_order
    if names and all(isinstance(n, str) and len(n) == 1 for n in names):
        return "".join(names)
    if names:
        raise DimOrderError(f"the tensor dim_names {names} are not axis letters; pass dim_order (e.g. 'ZYX')")
    return None


def _tensor_source(
    array: pa.Array, metadata: dict[bytes, bytes] | None, dim_order: str | None, row_index: int | None, chunks: Any
) -> ArraySource:
    nd, names = tensor_ndarray(array)
    element_ndim = nd.ndim - 1
    order = _tensor_order(dim_order, names)
    if order is not None and len(order) == element_ndim + 1:
        if row_index is not None:
            raise SelectionError("row_index does not apply when dim_order also names the array axis")
        tensor = nd
    else:
        if len(nd) != 1 and row_index is None:
            raise SelectionError(
                f"the tensor array holds {len(nd)} tensors of shape {nd.shape[1:]}; pass row_index= to pick one, "
                f"or a dim_order of {element_ndim + 1} letters whose first one names the array axis (e.g. 'T...')"
            )
        tensor = nd[_pick_row(len(nd), row_index, "tensor array")]
    try:
        letters = parse_dim_order(order, tensor.ndim)
    except DimOrderError as exc:
        given = f"dim_order {dim_order!r}" if dim_order is not None else f"the tensor dim_names {names}"
        raise DimOrderError(f"{given} does not fit a tensor of shape {tensor.shape}: {exc}") from exc
    return _array_source(tensor, letters, chunks, _channel_names(metadata))


def _channel_names(metadata: dict[bytes, bytes] | None) -> list[str] | None:
    raw = (metadata or {}).get(CHANNEL_NAMES_KEY)
    if raw is None:
        return None
    try:
        names = json.loads(raw)
    except ValueError as exc:
        raise InconsistentInputError(f"field metadata {CHANNEL_NAMES_KEY.decode()} is not JSON ({exc})") from exc
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise InconsistentInputError(f"field metadata {CHANNEL_NAMES_KEY.decode()} must be a JSON list of strings")
    return names


def _array_source(array: np.ndarray, letters: str, chunks: Any, channel_names: list[str] | None) -> ArraySource:
    source = ArraySource(array, letters, chunks=chunks)
    if channel_names is None:
        return source
    size_c = source.meta.shape[1]
    if len(channel_names) != size_c:
        raise InconsistentInputError(
            f"the field metadata names {len(channel_names)} channels {channel_names}, but dim_order {letters!r} "
            f"gives C={size_c}; pass a dim_order that puts the channel axis at C"
        )
    channels = tuple(Channel(name=name, id=f"ch-{i}") for i, name in enumerate(channel_names))
    return ArraySource(array, letters, chunks=source.meta.chunks, meta=source.meta.replace(channels=channels))


# ---------------------------------------------------------------------- Pillow
def _is_pillow(data: object) -> bool:
    return type(data).__module__.split(".")[0] == "PIL" and hasattr(data, "getbands") and hasattr(data, "mode")


def pillow_pixels(image: Any) -> np.ndarray:
    """YX (one band) or YXC pixels of a Pillow image: a view of its Arrow export when Pillow gives one.

    The view shares Pillow's memory, as ``Image.__arrow_c_array__`` itself does: drawing
    on the image afterwards shows in the pixels. Pass ``image.copy()`` for a snapshot.

    Pillow stores multi-band pixels in 4 bytes (RGB pads, LA keeps alpha in byte 3).
    Images Pillow cannot export (stored in several memory blocks) are copied with
    ``numpy.asarray``.
    """
    bands = len(image.getbands())
    width, height = image.size
    try:
        array = pa.array(image)
    except ValueError:  # "Image rows are not contiguous in memory": multi-block storage
        return np.asarray(image)
    flat = array.flatten() if pa.types.is_fixed_size_list(array.type) else array
    values = flat.to_numpy(zero_copy_only=False)
    if image.mode in _PILLOW_DTYPES:
        values = values.view(_PILLOW_DTYPES[image.mode])
    elif image.mode == "1":
        values = values != 0  # numpy's view of a bilevel image is bool
    if bands == 1 and not pa.types.is_fixed_size_list(array.type):
        return values.reshape(height, width)
    if bands not in _PILLOW_BANDS or values.size != height * width * 4:
        raise UnsupportedSourceError(f"Pillow mode {image.mode!r} ({bands} bands) has no known Arrow pixel layout")
    return values.reshape(height, width, 4)[:, :, _PILLOW_BANDS[bands]]


def _pillow_source(image: Any, dim_order: str | None, chunks: Any) -> ArraySource:
    pixels = pillow_pixels(image)
    letters = "YX" if pixels.ndim == 2 else "YXC"
    if dim_order is not None and parse_dim_order(dim_order, pixels.ndim) != letters:
        raise DimOrderError(f"a Pillow {image.mode!r} image is {letters}; got dim_order {dim_order!r}")
    names = [str(band) for band in image.getbands()]
    if math.prod(pixels.shape) == 0:
        raise UnsupportedSourceError(f"the Pillow image is empty (size {image.size})")
    return _array_source(pixels, letters, chunks, names)
