"""OME-Arrow's Arrow types, its metadata fields, and their conversion to and from :class:`ImageMeta`.

The struct types are identical to ome-arrow 0.1.0's ``OME_ARROW_STRUCT`` (list payload)
and ``OME_ARROW_BYTE_STRUCT`` (byte payload). A *record* here is the Python dict of one
struct value without its pixel payload (``chunks`` / ``planes``): ``type``, ``version``,
``id``, ``name``, ``image_type``, ``acquisition_datetime``, ``pixels_meta`` and
``chunk_grid``. Everything read from a file is untrusted and validated here.
"""

from __future__ import annotations

import datetime as _dt
import math
import re
from collections.abc import Mapping
from typing import Any

import numpy as np
import pyarrow as pa

from ..errors import CorruptInputError, OmeArrowDaskError
from ..meta import Channel, Chunks5, ImageMeta, PhysicalSize, check_dtype

OME_ARROW_TYPE = "ome.arrow"
OME_ARROW_VERSION = "0.1.0"
"""The record ``version`` we write (ome-arrow warns on other versions)."""

FILE_METADATA = {b"ome.arrow.type": OME_ARROW_TYPE.encode(), b"ome.arrow.version": OME_ARROW_VERSION.encode()}
"""Schema (and field) metadata of every OME-Arrow table and struct column we write."""

CHANNEL_STRUCT = pa.struct(
    [
        pa.field("id", pa.string()),
        pa.field("name", pa.string()),
        pa.field("emission_um", pa.float32()),
        pa.field("excitation_um", pa.float32()),
        pa.field("illumination", pa.string()),
        pa.field("color_rgba", pa.uint32()),
    ]
)
PIXELS_META_STRUCT = pa.struct(
    [
        pa.field("dimension_order", pa.string()),
        pa.field("type", pa.string()),
        pa.field("size_x", pa.int32()),
        pa.field("size_y", pa.int32()),
        pa.field("size_z", pa.int32()),
        pa.field("size_c", pa.int16()),
        pa.field("size_t", pa.int32()),
        pa.field("physical_size_x", pa.float32()),
        pa.field("physical_size_y", pa.float32()),
        pa.field("physical_size_z", pa.float32()),
        pa.field("physical_size_x_unit", pa.string()),
        pa.field("physical_size_y_unit", pa.string()),
        pa.field("physical_size_z_unit", pa.string()),
        pa.field("channels", pa.list_(CHANNEL_STRUCT)),
    ]
)
CHUNK_GRID_STRUCT = pa.struct(
    [
        pa.field("order", pa.string()),
        pa.field("chunk_t", pa.int32()),
        pa.field("chunk_c", pa.int16()),
        pa.field("chunk_z", pa.int32()),
        pa.field("chunk_y", pa.int32()),
        pa.field("chunk_x", pa.int32()),
        pa.field("chunk_order", pa.string()),
    ]
)
_CHUNK_COORD_FIELDS = [
    pa.field("t", pa.int32()),
    pa.field("c", pa.int16()),
    pa.field("z", pa.int32()),
    pa.field("y", pa.int32()),
    pa.field("x", pa.int32()),
    pa.field("shape_z", pa.int32()),
    pa.field("shape_y", pa.int32()),
    pa.field("shape_x", pa.int32()),
]
LIST_CHUNK_STRUCT = pa.struct([*_CHUNK_COORD_FIELDS, pa.field("pixels", pa.list_(pa.uint16()))])
BYTE_CHUNK_STRUCT = pa.struct(
    [
        *_CHUNK_COORD_FIELDS,
        pa.field("dtype", pa.string()),
        pa.field("compression", pa.string()),
        pa.field("pixel_bytes", pa.large_binary()),
    ]
)
PLANE_STRUCT = pa.struct(
    [
        pa.field("z", pa.int32()),
        pa.field("t", pa.int32()),
        pa.field("c", pa.int16()),
        pa.field("pixels", pa.list_(pa.uint16())),
    ]
)


def _record_struct(chunk_struct: pa.StructType) -> pa.StructType:
    return pa.struct(
        [
            pa.field("type", pa.string()),
            pa.field("version", pa.string()),
            pa.field("id", pa.string()),
            pa.field("name", pa.string()),
            pa.field("image_type", pa.string()),
            pa.field("acquisition_datetime", pa.timestamp("us")),
            pa.field("pixels_meta", PIXELS_META_STRUCT),
            pa.field("chunk_grid", CHUNK_GRID_STRUCT),
            pa.field("chunks", pa.list_(chunk_struct)),
            pa.field("planes", pa.list_(PLANE_STRUCT)),
            pa.field("masks", pa.null()),
        ]
    )


OME_ARROW_STRUCT = _record_struct(LIST_CHUNK_STRUCT)
"""The list payload: ``pixels`` are ``list<uint16>`` whatever ``pixels_meta.type`` says."""

OME_ARROW_BYTE_STRUCT = _record_struct(BYTE_CHUNK_STRUCT)
"""The byte payload: typed, optionally zstd / lz4-frame compressed chunk bytes."""

REQUIRED_FIELDS = frozenset({"type", "version", "id", "name", "acquisition_datetime", "pixels_meta", "planes", "masks"})
"""Fields a struct must have to be taken for an OME-Arrow record (pre-0.1 records included)."""

METADATA_FIELDS = ("type", "version", "id", "name", "image_type", "acquisition_datetime", "pixels_meta", "chunk_grid")
"""Record fields that carry metadata (everything but the payload)."""

ALLOWED_DTYPES = frozenset(
    np.dtype(d) for d in ("?", "u1", "u2", "u4", "u8", "i1", "i2", "i4", "i8", "f2", "f4", "f8", "c8", "c16")
)
"""Pixel dtypes accepted from files (case 34): no objects, voids, datetimes or float128."""

CHANNEL_NAMES_KEY = b"ome.arrow.channel_names"
"""Field metadata key of a tensor export: a JSON list with the name of each channel."""

ALLOWED_COMPRESSIONS = frozenset({"zstd", "lz4"})
"""Per-chunk byte compressions (``lz4`` is the LZ4 frame format, as pyarrow's Codec writes)."""


_ALLOWED_TEXT = "expected bool, int8-64, uint8-64, float16/32/64 or complex64/128"


def is_ome_arrow_struct(arrow_type: pa.DataType) -> bool:
    """True when ``arrow_type`` is a struct with OME-Arrow's record fields.

    >>> is_ome_arrow_struct(OME_ARROW_BYTE_STRUCT), is_ome_arrow_struct(pa.struct([("a", pa.int8())]))
    (True, False)
    """
    if not pa.types.is_struct(arrow_type):
        return False
    names = {arrow_type.field(i).name for i in range(arrow_type.num_fields)}
    return REQUIRED_FIELDS <= names


def dtype_from_string(text: object, where: str) -> np.dtype:
    """Parse an untrusted dtype string against :data:`ALLOWED_DTYPES`, naming ``where``.

    The byte order is normalised to native (see :func:`stored_dtype` for decoding).

    >>> dtype_from_string(">u2", "x"), dtype_from_string("float32", "x")
    (dtype('uint16'), dtype('float32'))
    >>> try:
    ...     dtype_from_string("O", "f.parquet chunk 3")
    ... except CorruptInputError as exc:
    ...     print(str(exc).split(" (")[0])
    f.parquet chunk 3: untrusted pixel dtype 'O' is not allowed
    """
    if isinstance(text, str) and len(text) <= 32:
        try:
            dtype = check_dtype(text)
        except (OmeArrowDaskError, ValueError, TypeError, SyntaxError):
            dtype = None
        if dtype is not None and dtype in ALLOWED_DTYPES:
            return dtype
    raise CorruptInputError(f"{where}: untrusted pixel dtype {text!r} is not allowed ({_ALLOWED_TEXT})")


def stored_dtype(text: object, where: str) -> np.dtype:
    """The dtype a payload's bytes are in (byte order kept), after the allowlist check.

    >>> stored_dtype(">u2", "x").str, stored_dtype("uint16", "x").str
    ('>u2', '<u2')
    """
    dtype_from_string(text, where)
    return np.dtype(str(text))


def compression_from_string(text: object, where: str) -> str | None:
    """Normalise a per-chunk ``compression`` value; ``None`` means raw bytes.

    >>> compression_from_string(None, "x"), compression_from_string("ZSTD", "x"), compression_from_string("none", "x")
    (None, 'zstd', None)
    """
    if text is None:
        return None
    value = str(text).strip().lower()
    if value in ("", "none", "null", "uncompressed"):
        return None
    if value == "lz4_frame":
        value = "lz4"
    if value not in ALLOWED_COMPRESSIONS:
        raise CorruptInputError(f"{where}: chunk compression {text!r} is not supported (expected zstd, lz4 or none)")
    return value


_INT_TEXT = re.compile(r"[+-]?[0-9]{1,18}")
_MAX_SHOWN = 60


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 3] + "..."


def _field_error(where: str, label: str, expected: str, value: object) -> CorruptInputError:
    return CorruptInputError(
        f"{where}: {label} must be {expected}, got {_shown(value)} ({type(value).__name__}); "
        "the metadata is damaged or was written by an incompatible tool"
    )


def _as_int(value: object) -> int | None:
    """``value`` as an exact integer, or None when it is not one (bools, fractions, text like '1e3')."""
    if isinstance(value, (bool, np.bool_)):
        return None
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return int(value) if math.isfinite(value) and float(value).is_integer() else None
    if isinstance(value, str) and _INT_TEXT.fullmatch(value.strip()):
        return int(value)
    return None


def int_field(
    record: Mapping[str, Any],
    key: str,
    where: str,
    *,
    label: str | None = None,
    minimum: int | None = None,
    maximum: int | None = None,
) -> int | None:
    """Read an untrusted integer metadata field; ``None`` when absent or null.

    Integers, integral finite floats and plain decimal text are accepted; anything else
    (``'1e3'``, ``'abc'``, ``inf``, ``True``, a list) and values outside
    ``[minimum, maximum]`` raise :class:`CorruptInputError` naming ``where`` and ``label``.

    >>> int_field({"size_x": "12"}, "size_x", "f.parquet"), int_field({}, "size_x", "f.parquet")
    (12, None)
    >>> try:
    ...     int_field({"size_t": "1e3"}, "size_t", "f.parquet", label="pixels_meta.size_t")
    ... except CorruptInputError as exc:
    ...     print(str(exc).split(";")[0])
    f.parquet: pixels_meta.size_t must be an integer, got '1e3' (str)
    """
    value = record.get(key)
    if value is None:
        return None
    label = label or key
    number = _as_int(value)
    if number is None:
        raise _field_error(where, label, "an integer", value)
    if (minimum is not None and number < minimum) or (maximum is not None and number > maximum):
        low = "" if minimum is None else f" >= {minimum}"
        high = "" if maximum is None else f" <= {maximum}"
        joined = " and".join(part for part in (low, high) if part)
        raise _field_error(where, label, f"an integer{joined}", value)
    return number


def float_field(record: Mapping[str, Any], key: str, where: str, *, label: str | None = None) -> float | None:
    """Read an untrusted finite float metadata field; ``None`` when absent or null.

    Numbers and numeric text are accepted; anything else (``'x'``, ``inf``, ``nan``,
    ``True``) raises :class:`CorruptInputError` naming ``where`` and ``label``.

    >>> float_field({"emission_um": 0.5}, "emission_um", "f.parquet")
    0.5
    """
    value = record.get(key)
    if value is None:
        return None
    number: float | None = None
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_)):
        number = float(value)
    elif isinstance(value, str) and len(value) <= 64:
        try:
            number = float(value)
        except ValueError:
            number = None
    if number is None or not math.isfinite(number):
        raise _field_error(where, label or key, "a finite number", value)
    return number


def text_field(record: Mapping[str, Any], key: str) -> str | None:
    """A free-text metadata field as ``str`` (``None`` when absent or null)."""
    value = record.get(key)
    return None if value is None else str(value)


def _float32_value(value: float | None) -> float | None:
    """Undo float32 storage noise: 0.65 stored as float32 reads back as 0.65."""
    if value is None or abs(value) > float(np.finfo(np.float32).max):
        return value
    return float(str(np.float32(value)))


def _positive_size(pm: Mapping[str, Any], key: str, where: str) -> int:
    value = int_field(pm, key, where, label=f"pixels_meta.{key}", minimum=1)
    if value is None:
        raise CorruptInputError(f"{where}: pixels_meta.{key} must be a positive integer, got None")
    return value


def shape_from_pixels_meta(pm: Mapping[str, Any] | None, where: str) -> tuple[int, int, int, int, int]:
    """Return the TCZYX shape declared by ``pixels_meta``."""
    if not pm:
        raise CorruptInputError(f"{where}: the record has no pixels_meta")
    if not isinstance(pm, Mapping):
        raise _field_error(where, "pixels_meta", "a struct", pm)
    return tuple(_positive_size(pm, f"size_{ax}", where) for ax in "tczyx")  # type: ignore[return-value]


def channels_from_dicts(
    entries: object, size_c: int, where: str = "the record", label: str = "pixels_meta.channels"
) -> tuple[Channel, ...]:
    """Channel descriptors from ome-arrow channel dicts; defaults when absent or mis-sized.

    A field of the wrong type (``color_rgba`` ``'abc'``, ``emission_um`` ``'x'``) raises
    :class:`CorruptInputError` naming ``where`` and ``label[i].field``.
    """
    if not isinstance(entries, list) or len(entries) != size_c:
        return ()
    out = []
    for i, entry in enumerate(entries):
        entry = entry if isinstance(entry, Mapping) else {}
        name = text_field(entry, "name")
        emission = float_field(entry, "emission_um", where, label=f"{label}[{i}].emission_um")
        excitation = float_field(entry, "excitation_um", where, label=f"{label}[{i}].excitation_um")
        out.append(
            Channel(
                name=name if name is not None else f"C{i}",
                id=text_field(entry, "id"),
                color_rgba=int_field(
                    entry, "color_rgba", where, label=f"{label}[{i}].color_rgba", minimum=-(2**31), maximum=2**32 - 1
                ),
                emission_um=_float32_value(emission),
                excitation_um=_float32_value(excitation),
                illumination=text_field(entry, "illumination"),
            )
        )
    return tuple(out)


def channel_dicts(meta: ImageMeta) -> list[dict[str, Any]]:
    """ome-arrow channel dicts for ``meta`` (its defaults fill missing descriptors)."""
    return [
        {
            "id": ch.id if ch.id is not None else f"ch-{i}",
            "name": ch.name,
            "emission_um": ch.emission_um if ch.emission_um is not None else 0.0,
            "excitation_um": ch.excitation_um if ch.excitation_um is not None else 0.0,
            "illumination": ch.illumination if ch.illumination is not None else "Unknown",
            "color_rgba": ch.color_rgba if ch.color_rgba is not None else 0xFFFFFFFF,
        }
        for i, ch in enumerate(meta.channels)
    ]


def physical_size_from_dict(
    pm: Mapping[str, Any], *, float32: bool = True, where: str = "the record", label: str = "pixels_meta."
) -> PhysicalSize:
    """Physical sizes and units from ``pixels_meta`` (or an images-table row).

    ``float32=True`` undoes float32 storage noise (ome-arrow stores float32 sizes). A size
    that is not a finite number raises :class:`CorruptInputError` naming ``where`` and
    ``<label>physical_size_<axis>``.
    """
    values: dict[str, float | None] = {}
    for ax in "zyx":
        value = float_field(pm, f"physical_size_{ax}", where, label=f"{label}physical_size_{ax}")
        values[ax] = _float32_value(value) if float32 else value
    units = {ax: text_field(pm, f"physical_size_{ax}_unit") for ax in "zyx"}
    return PhysicalSize(
        z=values["z"], y=values["y"], x=values["x"], z_unit=units["z"], y_unit=units["y"], x_unit=units["x"]
    )


def as_utc(value: object) -> _dt.datetime | None:
    """OME-Arrow stores UTC wall time without a zone: return it as an aware UTC datetime."""
    if not isinstance(value, _dt.datetime):
        return None
    return value.replace(tzinfo=_dt.UTC) if value.tzinfo is None else value.astimezone(_dt.UTC)


def utc_wall_time(value: _dt.datetime | None) -> _dt.datetime | None:
    """The naive UTC wall time ome-arrow stores for ``value`` (naive input is kept as is)."""
    if value is None or value.tzinfo is None:
        return value
    return value.astimezone(_dt.UTC).replace(tzinfo=None)


def meta_from_record(record: Mapping[str, Any], *, chunks: Chunks5, dtype: np.dtype, where: str) -> ImageMeta:
    """Build :class:`ImageMeta` from a record's metadata fields and the chunk grid found."""
    pm = record.get("pixels_meta") or {}
    shape = shape_from_pixels_meta(pm, where)
    return ImageMeta(
        shape=shape,
        dtype=dtype,
        chunks=chunks,
        channels=channels_from_dicts(pm.get("channels"), shape[1], where),
        physical_size=physical_size_from_dict(pm, where=where),
        id=text_field(record, "id"),
        name=text_field(record, "name"),
        image_type=text_field(record, "image_type"),
        acquisition_datetime=as_utc(record.get("acquisition_datetime")),
    )


def _unit(value: str | None) -> str:
    return value if value is not None else "µm"


def record_from_meta(meta: ImageMeta) -> dict[str, Any]:
    """The metadata fields of an OME-Arrow record for ``meta`` (no payload, no chunk_grid).

    >>> from ome_arrow_dask.meta import regular_chunks
    >>> rec = record_from_meta(ImageMeta((1, 2, 1, 4, 4), "float32", regular_chunks((1, 2, 1, 4, 4), (1, 1, 1, 4, 4))))
    >>> rec["pixels_meta"]["type"], rec["pixels_meta"]["size_c"], rec["pixels_meta"]["dimension_order"]
    ('float32', 2, 'XYCT')
    """
    t, c, z, y, x = meta.shape
    ps = meta.physical_size
    pixels_meta = {
        "dimension_order": "XYCT" if z == 1 else "XYZCT",
        "type": meta.dtype.name,
        "size_x": x,
        "size_y": y,
        "size_z": z,
        "size_c": c,
        "size_t": t,
        "physical_size_x": ps.x,
        "physical_size_y": ps.y,
        "physical_size_z": ps.z,
        "physical_size_x_unit": _unit(ps.x_unit),
        "physical_size_y_unit": _unit(ps.y_unit),
        "physical_size_z_unit": _unit(ps.z_unit),
        "channels": channel_dicts(meta),
    }
    return {
        "type": OME_ARROW_TYPE,
        "version": OME_ARROW_VERSION,
        "id": meta.id if meta.id is not None else "unnamed",
        "name": meta.name if meta.name is not None else (meta.id or "unknown"),
        "image_type": meta.image_type,
        "acquisition_datetime": utc_wall_time(meta.acquisition_datetime),
        "pixels_meta": pixels_meta,
    }
