"""Arrow data out: tensors and OME-Arrow records through the Arrow PyCapsule interface.

What the Arrow dunders return (pyarrow, polars, DuckDB and Pillow read them):

* ``TensorView.__arrow_c_array__``: a length-1 ``arrow.fixed_shape_tensor`` array whose
  element is the tensor in the view's layout (``shape`` = ``view.shape``, ``dim_names`` =
  the layout letters spelled T/Z/C/Y/X). The field metadata key
  :data:`~ome_arrow_dask.arrow.schema.CHANNEL_NAMES_KEY` holds the channel names as
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

Neither defines ``__arrow_c_stream__``: each is one array (the chunk stream is
:class:`~ome_arrow_dask.arrow.chunks.ChunkStream`). Records are encoded by
:mod:`~ome_arrow_dask.arrow.codec`; an image is anything with ``meta`` and
``to_dask()`` (:class:`ImagePlan`, e.g. an ``OMEArrow``), so this module never imports
:mod:`ome_arrow_dask.core`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np
import pyarrow as pa

from ..errors import OmeArrowDaskError
from ..meta import ImageMeta
from .codec import PAYLOADS, encode_record
from .schema import CHANNEL_NAMES_KEY, FILE_METADATA, OME_ARROW_BYTE_STRUCT, OME_ARROW_STRUCT

if TYPE_CHECKING:
    from ..tensor import TensorView

__all__ = [
    "PAYLOADS",
    "ImagePlan",
    "record_array",
    "record_capsules",
    "record_field",
    "tensor_array",
    "tensor_capsules",
    "tensor_field",
]


@runtime_checkable
class ImagePlan(Protocol):
    """What the Arrow exports read from an image: its metadata and its lazy TCZYX pixels (``OMEArrow`` is one)."""

    @property
    def meta(self) -> ImageMeta:
        """Metadata of the image (shape, dtype, chunks, channels, ...)."""
        ...

    def to_dask(self) -> Any:
        """The pixels as a lazy 5-D TCZYX dask array."""
        ...


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
def record_field(payload: str = "bytes", name: str = "ome_arrow") -> pa.Field:
    """The field of an OME-Arrow struct column with ``payload`` (``ome.arrow.*`` field metadata)."""
    if payload not in PAYLOADS:
        raise OmeArrowDaskError(f"payload must be one of {PAYLOADS}, got {payload!r}")
    struct_type = OME_ARROW_BYTE_STRUCT if payload == "bytes" else OME_ARROW_STRUCT
    return pa.field(name, struct_type, metadata=dict(FILE_METADATA))


def record_array(
    images: ImagePlan | Iterable[ImagePlan],
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
    record_field(payload)  # validates payload
    codec = None if chunk_compression in (None, "none") else str(chunk_compression).lower()
    if codec not in (None, "zstd", "lz4") or (codec is not None and payload != "bytes"):
        raise OmeArrowDaskError(
            f"chunk_compression must be None, 'zstd' or 'lz4' with payload='bytes', got {chunk_compression!r} "
            f"with payload={payload!r}"
        )
    items = [images] if isinstance(images, ImagePlan) else list(images)
    if not items:
        raise OmeArrowDaskError("record_array needs at least one image")
    rows = []
    for i, image in enumerate(items):
        if not isinstance(image, ImagePlan):
            raise TypeError(f"image {i} is a {type(image).__name__}, expected an OMEArrow")
        meta = image.meta
        if math.prod(meta.shape) == 0:
            raise OmeArrowDaskError(f"image {i} is empty (shape {meta.shape}); a record needs pixels")
        rows.append(encode_record(image.to_dask(), meta, payload=payload, chunk_shape=chunk_shape, codec=codec))
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


def record_capsules(image: ImagePlan, requested_schema: object | None = None) -> tuple[object, object]:
    """``(schema, array)`` capsules of ``image`` as a one-row OME-Arrow struct record."""
    payload = _requested_payload(requested_schema)
    _, array_capsule = record_array(image, payload=payload).__arrow_c_array__()
    return record_field(payload).__arrow_c_schema__(), array_capsule
