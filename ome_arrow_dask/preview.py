"""Bounded-read previews: what napari's contrast limits and the Jupyter thumbnail are made of.

:func:`sample` reads one (t, z) plane of up to :data:`MAX_CHANNELS` channels, never more
than ``max_bytes`` of decoded chunks (:data:`PREVIEW_MAX_BYTES`, 32 MiB, by default):

1. from the smallest pyramid level when the plan is a whole-plane view of a pyramidal
   OME-Zarr or OME-TIFF (level ``k`` is opened with ``level=k``);
2. otherwise every ``step``-th row and column of the plane, when the chunks that touches
   fit the budget (strip TIFFs and small chunks: only the strips of the sampled rows);
3. otherwise a centred crop, halved until its chunks fit the budget, sampled the same way.

:func:`composite` turns a sample into an RGB image: each channel scaled by robust
percentiles of the sample itself and tinted with its metadata color.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from . import colors
from .errors import OmeArrowDaskError
from .lowering import ReadPlan, lower
from .meta import Channel
from .sources.abilities import SupportsPyramidLevel

if TYPE_CHECKING:
    import dask.array as da

    from .core import OMEArrow

PREVIEW_MAX_BYTES = 32 * 2**20
"""Default byte budget of one preview sample (decoded chunk bytes)."""
PREVIEW_SIZE = 256
"""Longest side of a preview, in pixels."""
MAX_CHANNELS = 8
"""At most this many channels are sampled and composited."""
PREVIEW_MAX_CHUNKS = 256
"""Default chunk budget of one preview sample (each chunk may be a request on remote storage)."""
MAX_LEVELS = 32

PALETTE = colors.PALETTE
"""Channel colors when the metadata gives none (see :data:`ome_arrow_dask.colors.PALETTE`)."""


@dataclass(frozen=True)
class Sample:
    """The pixels of a preview and what was read to get them."""

    pixels: np.ndarray
    """(C, Y, X) array of the sampled channels."""
    channels: tuple[int, ...]
    t: int
    z: int
    level: int | None
    """Pyramid level read, or None when the plan was sampled directly."""
    step: int
    crop: tuple[int, int, int, int] | None
    """(y0, y1, x0, x1) of a centred crop in the sampled level, or None for the whole plane."""
    chunks_read: int
    bytes_read: int
    max_bytes: int
    max_chunks: int

    def describe(self) -> str:
        """One line saying what was read."""
        where = f"pyramid level {self.level}" if self.level is not None else "full resolution"
        region = "whole plane" if self.crop is None else "centre crop y={}:{} x={}:{}".format(*self.crop)
        stride = f", 1 in {self.step} pixels along y and x" if self.step > 1 else ""
        return (
            f"t={self.t} z={self.z}, {len(self.channels)} channel(s), {where}, {region}{stride}: "
            f"read {self.chunks_read} chunk(s), {_mib(self.bytes_read)} "
            f"(budget {_mib(self.max_bytes)}, {self.max_chunks} chunks)"
        )


def _mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n / 1024:.1f} KiB"


def _level_of(source: object) -> int | None:
    """The pyramid level a zarr / TIFF source was opened at (None for sources without levels)."""
    return int(source.pyramid_level) if isinstance(source, SupportsPyramidLevel) else None


def pyramid_path_levels(path: str, first: OMEArrow, **options: Any) -> list[OMEArrow]:
    """Every pyramid level of ``path`` as lazy plans, largest first (metadata only).

    ``first`` is ``path`` opened with ``options`` (``OMEArrow.scan(path, **options)``); the
    other levels are opened the same way with ``level=k`` until the format says the level
    does not exist. A level is kept only while T, C, Z and dtype match level 0 and Y / X shrink.
    """
    base = first
    levels = [base]
    if _level_of(base.source) is None:
        return levels
    for k in range(int(options.get("level", 0)) + 1, MAX_LEVELS):
        try:
            nxt = type(base).scan(path, **{**options, "level": k})
        except (OmeArrowDaskError, TypeError, OSError):
            break
        prev = levels[-1]
        if (
            nxt.shape[:3] != base.shape[:3]
            or nxt.dtype != base.dtype
            or nxt.shape[3] > prev.shape[3]
            or nxt.shape[4] > prev.shape[4]
            or nxt.shape[3:] == prev.shape[3:]
        ):
            break
        levels.append(nxt)
    return levels


def smallest_level(plan: OMEArrow) -> tuple[OMEArrow, int | None]:
    """The plan on its source's smallest pyramid level, or ``(plan, None)`` when there is none.

    Only a plan that shows whole Y/X planes of a zarr / TIFF level has a smaller
    equivalent; its T, C, Z selection is carried over.
    """
    source = plan.source
    level = _level_of(source)
    meta = source.meta
    sel = plan.selection
    if level is None or sel[3] != range(meta.shape[3]) or sel[4] != range(meta.shape[4]):
        return plan, None
    paths = source.input_paths()  # type: ignore[attr-defined]
    if not paths:
        return plan, None
    try:
        levels = pyramid_path_levels(paths[0], type(plan).scan(paths[0], level=level), level=level)
    except (OmeArrowDaskError, TypeError, OSError):  # opened with options (dims=...) a plain scan lacks
        return plan, None
    if len(levels) < 2 or levels[0].meta.shape != meta.shape:
        return plan, None
    low = levels[-1]
    lshape = low.shape
    low_level = level + len(levels) - 1
    inner = (sel[0], sel[1], sel[2], range(lshape[3]), range(lshape[4]))
    return low.compose(inner, f"pyramid level {low_level}"), low_level


def _window(
    box: tuple[int, int, int, int], t: int, chans: tuple[int, ...], z: int, size: int
) -> tuple[tuple[Any, ...], int]:
    """The strided selection of ``box`` in plane (t, z) with at most ``size`` samples per side, and its step."""
    y0, y1, x0, x1 = box
    step = max(1, math.ceil(max(y1 - y0, x1 - x0) / size))
    return ((t,), chans, (z,), range(y0, y1, step), range(x0, x1, step)), step


def _fit(
    shape: tuple[int, ...],
    itemsize: int,
    plane: tuple[int, tuple[int, ...], int],
    size: int,
    max_bytes: int,
    max_chunks: int,
    reads_of: Callable[[tuple[Any, ...]], ReadPlan],
) -> tuple[tuple[Any, ...], int, tuple[int, int, int, int], ReadPlan, int] | None:
    """The centred window of ``plane`` (t, channels, z) whose reads fit the budget, or None.

    Returns (selection, step, box, reads, bytes). The whole plane first, then a centred
    crop halved until the chunks it touches (``reads_of(selection)``) fit ``max_bytes``
    and ``max_chunks``.
    """
    _, _, _, Y, X = shape
    h, w = Y, X
    while True:
        box = ((Y - h) // 2, (Y - h) // 2 + h, (X - w) // 2, (X - w) // 2 + w)
        inner, step = _window(box, *plane, size)
        reads = reads_of(inner)
        cost = reads.elements_read() * itemsize
        if cost <= max_bytes and reads.chunks_read <= max_chunks:
            return inner, step, box, reads, cost
        if h == 1 and w == 1:
            return None
        h, w = max(1, h // 2), max(1, w // 2)


def sample(
    plan: OMEArrow,
    *,
    max_bytes: int = PREVIEW_MAX_BYTES,
    size: int = PREVIEW_SIZE,
    max_channels: int = MAX_CHANNELS,
    max_chunks: int = PREVIEW_MAX_CHUNKS,
    tcz: tuple[int, int, int] | None = None,
) -> Sample | None:
    """Read a bounded preview of one plane (all channels up to ``max_channels``).

    At most ``max_bytes`` of decoded chunks and ``max_chunks`` chunks are read. Returns
    None for an empty image or when even one chunk per channel exceeds the budget.
    ``tcz`` picks t and z (default: ``plan.tcz``'s t, the middle z).
    """
    if 0 in plan.shape:
        return None
    base, level = smallest_level(plan)
    T, C, Z, Y, X = base.shape
    t = min(max(int(tcz[0]), 0), T - 1) if tcz else min(max(plan.tcz[0], 0), T - 1)
    z = min(max(int(tcz[2]), 0), Z - 1) if tcz else Z // 2
    chans = tuple(range(min(C, max_channels)))
    views: dict[tuple[Any, ...], OMEArrow] = {}

    def reads_of(inner: tuple[Any, ...]) -> ReadPlan:
        views[inner] = base.compose(inner, "preview")
        return views[inner].read_plan

    fit = _fit(base.shape, base.dtype.itemsize, (t, chans, z), size, max_bytes, max_chunks, reads_of)
    if fit is None:
        return None
    inner, step, box, reads, cost = fit
    pixels = views[inner].to_numpy()[0, :, 0]
    crop = None if box == (0, Y, 0, X) else box
    return Sample(pixels, chans, t, z, level, step, crop, reads.chunks_read, cost, max_bytes, max_chunks)


def sample_array(
    array: da.Array,
    *,
    max_bytes: int = PREVIEW_MAX_BYTES,
    size: int = PREVIEW_SIZE,
    max_channels: int = MAX_CHANNELS,
    max_chunks: int = PREVIEW_MAX_CHUNKS,
) -> Sample | None:
    """:func:`sample` of a TCZYX dask array (t = 0, the middle z), on its own chunk grid.

    The same bounds as for a plan of the array: only the chunks the chosen window touches
    are computed (a writer samples the level it just wrote with ``da.from_zarr``).

    >>> import dask.array as da
    >>> found = sample_array(da.ones((1, 2, 3, 600, 600), "u1", chunks=(1, 1, 1, 300, 300)), size=200)
    >>> found.pixels.shape, found.z, found.step, found.chunks_read
    ((2, 200, 200), 1, 3, 8)
    """
    if 0 in array.shape:
        return None
    _, C, Z, _, _ = array.shape
    chans = tuple(range(min(C, max_channels)))

    def reads_of(inner: tuple[Any, ...]) -> ReadPlan:
        return lower(inner, array.chunks)

    shape = tuple(int(n) for n in array.shape)
    fit = _fit(shape, array.dtype.itemsize, (0, chans, Z // 2), size, max_bytes, max_chunks, reads_of)
    if fit is None:
        return None
    _, step, box, reads, cost = fit
    y0, y1, x0, x1 = box
    pixels = np.asarray(array[0, : len(chans), Z // 2, y0:y1:step, x0:x1:step].compute())
    crop = None if box == (0, shape[3], 0, shape[4]) else box
    return Sample(pixels, chans, 0, Z // 2, None, step, crop, reads.chunks_read, cost, max_bytes, max_chunks)


def channel_colors(channels: tuple[Channel, ...]) -> list[tuple[int, int, int]]:
    """RGB per channel from the metadata; a palette when colors are missing or all the same.

    One channel without a color is grey (white); several channels that all carry the
    same color (ome-arrow's default is white) get :data:`PALETTE` colors.
    """
    found = [None if ch.color_rgba is None else colors.rgba_to_rgb(ch.color_rgba) for ch in channels]
    given = [c for c in found if c is not None]
    if len(channels) == 1:
        return [found[0] or colors.default_color(0, 1)]
    if len(given) < len(found) or len(set(given)) == 1:
        return [colors.default_color(i, len(channels)) for i in range(len(channels))]
    return given


def robust_limits(values: np.ndarray, low: float = 0.5, high: float = 99.5) -> tuple[float, float]:
    """Percentile limits of the finite values, widened by 1 when flat.

    >>> robust_limits(np.arange(201.0), 0, 100)
    (0.0, 200.0)
    """
    finite = values[np.isfinite(values)] if values.dtype.kind in "fc" else values
    if not finite.size:
        return 0.0, 1.0
    lo, hi = (float(v) for v in np.percentile(finite, (low, high)))
    return (lo, hi) if hi > lo else (lo, lo + 1.0)


def composite(pixels: np.ndarray, colors: list[tuple[int, int, int]]) -> np.ndarray:
    """Additive color composite of (C, Y, X) pixels as uint8 (Y, X, 3)."""
    rgb = np.zeros((*pixels.shape[1:], 3), np.float64)
    for plane, color in zip(pixels, colors, strict=False):
        plane = np.real(plane).astype(np.float64)
        lo, hi = robust_limits(plane)
        scaled = np.nan_to_num(np.clip((plane - lo) / (hi - lo), 0, 1))
        rgb += scaled[..., None] * (np.asarray(color, np.float64) / 255.0)
    return (np.clip(rgb, 0, 1) * 255).astype(np.uint8)
