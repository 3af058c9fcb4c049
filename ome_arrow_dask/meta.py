"""Image metadata: the TCZYX shape, dtype, chunk grid and OME descriptors of an image.

:class:`ImageMeta` is frozen. It carries everything OME-Arrow's ``pixels_meta`` carries
(channels, physical sizes and units, id, name, image type, acquisition time) plus the
chunk grid of the source, so planning never needs to read pixels.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from .errors import OmeArrowDaskError

AXES = "TCZYX"
"""Canonical axis order of every array this package hands out."""

Shape5 = tuple[int, int, int, int, int]
Chunks5 = tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...], tuple[int, ...], tuple[int, ...]]
ChunkCoords = tuple[int, int, int, int, int]
"""Grid coordinates of one chunk, TCZYX (what ``Source.read_chunk`` takes); the one definition."""

_T = TypeVar("_T")

_NUMERIC_KINDS = frozenset("biufc")


def tczyx(values: Iterable[_T]) -> tuple[_T, _T, _T, _T, _T]:
    """Return ``values`` as a 5-tuple, one entry per TCZYX axis; raise unless there are exactly 5.

    >>> tczyx(n * 2 for n in range(5))
    (0, 2, 4, 6, 8)
    """
    items = tuple(values)
    if len(items) != 5:
        raise OmeArrowDaskError(f"expected 5 values, one per TCZYX axis, got {len(items)}: {items!r}")
    return items


def check_dtype(dtype: npt.DTypeLike) -> np.dtype:
    """Return ``dtype`` as a native-byte-order numeric numpy dtype, or raise.

    >>> check_dtype(">u2")
    dtype('uint16')
    >>> check_dtype("int8")
    dtype('int8')
    """
    try:
        dt = np.dtype(dtype)
    except TypeError as exc:
        raise OmeArrowDaskError(f"not a numpy dtype: {dtype!r}") from exc
    if dt.kind not in _NUMERIC_KINDS or dt.fields is not None or dt.subdtype is not None:
        raise OmeArrowDaskError(
            f"unsupported pixel dtype {dt!s}: expected a numeric dtype (bool, int, uint, float, complex)"
        )
    return dt.newbyteorder("=") if dt.byteorder not in ("=", "|") else dt


@dataclass(frozen=True)
class Channel:
    """One channel's descriptors, as OME-Arrow's ``pixels_meta.channels`` entries."""

    name: str
    id: str | None = None
    color_rgba: int | None = None
    emission_um: float | None = None
    excitation_um: float | None = None
    illumination: str | None = None


@dataclass(frozen=True)
class PhysicalSize:
    """Physical pixel sizes along Z, Y and X with their units (None when unknown)."""

    z: float | None = None
    y: float | None = None
    x: float | None = None
    z_unit: str | None = None
    y_unit: str | None = None
    x_unit: str | None = None


def default_channels(n: int) -> tuple[Channel, ...]:
    """Return ome-arrow's default channel descriptors ``C0..C{n-1}``.

    >>> [c.name for c in default_channels(2)]
    ['C0', 'C1']
    """
    return tuple(Channel(name=f"C{i}", id=f"ch-{i}") for i in range(n))


def regular_chunks(shape: Sequence[int], chunk_shape: Sequence[int]) -> Chunks5:
    """Return dask-style per-axis chunks for a regular grid clipped at the edges.

    >>> regular_chunks((1, 1, 5, 10, 4), (1, 1, 2, 4, 4))
    ((1,), (1,), (2, 2, 1), (4, 4, 2), (4,))
    """
    if len(shape) != 5 or len(chunk_shape) != 5:
        raise OmeArrowDaskError(f"expected 5-D shape and chunk shape, got {shape} and {chunk_shape}")
    out: list[tuple[int, ...]] = []
    for axis, size, step in zip(AXES, shape, chunk_shape, strict=True):
        if step <= 0:
            raise OmeArrowDaskError(f"chunk size along {axis} must be positive, got {step}")
        if size == 0:
            out.append((0,))
            continue
        full, rest = divmod(size, step)
        out.append((step,) * full + ((rest,) if rest else ()))
    return tczyx(out)


@dataclass(frozen=True)
class ImageMeta:
    """Metadata of a TCZYX image; never requires reading pixels.

    Parameters
    ----------
    shape
        Sizes along T, C, Z, Y, X.
    dtype
        Pixel dtype, kept as given (no uint16 clamping); byte order is normalised to native.
    chunks
        Dask-style chunk sizes per axis; they must sum to ``shape``.
    channels
        One :class:`Channel` per C index; defaults to ``C0..C{n-1}``.
    """

    shape: Shape5
    dtype: np.dtype
    chunks: Chunks5
    channels: tuple[Channel, ...] = ()
    physical_size: PhysicalSize = field(default_factory=PhysicalSize)
    id: str | None = None
    name: str | None = None
    image_type: str | None = None
    acquisition_datetime: _dt.datetime | None = None

    def __post_init__(self) -> None:
        shape = tuple(int(s) for s in self.shape)
        if len(shape) != 5 or any(s < 0 for s in shape):
            raise OmeArrowDaskError(f"shape must be 5 non-negative sizes (TCZYX), got {self.shape}")
        object.__setattr__(self, "shape", shape)
        object.__setattr__(self, "dtype", check_dtype(self.dtype))
        chunks = tuple(tuple(int(c) for c in axis) for axis in self.chunks)
        if len(chunks) != 5:
            raise OmeArrowDaskError(f"chunks must have 5 axes (TCZYX), got {len(chunks)}")
        for axis, size, axis_chunks in zip(AXES, shape, chunks, strict=True):
            if sum(axis_chunks) != size or any(c < 0 for c in axis_chunks):
                raise OmeArrowDaskError(f"chunks along {axis} {axis_chunks} do not tile the axis size {size}")
        object.__setattr__(self, "chunks", chunks)
        channels = tuple(self.channels) or default_channels(shape[1])
        if len(channels) != shape[1]:
            raise OmeArrowDaskError(f"{len(channels)} channel descriptors for an image with C={shape[1]}")
        object.__setattr__(self, "channels", channels)

    @property
    def nbytes(self) -> int:
        """Bytes of the whole image at its dtype."""
        return math.prod(self.shape) * self.dtype.itemsize

    @property
    def ndim(self) -> int:
        """Always 5 (TCZYX)."""
        return 5

    @property
    def numblocks(self) -> tuple[int, ...]:
        """Number of chunks along each axis."""
        return tuple(len(c) for c in self.chunks)

    @property
    def channel_names(self) -> tuple[str, ...]:
        """Channel names in C order."""
        return tuple(c.name for c in self.channels)

    def replace(self, **changes: Any) -> ImageMeta:
        """Return a copy with the given fields replaced (validated again)."""
        return dataclasses.replace(self, **changes)
