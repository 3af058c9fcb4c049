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
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import OmeArrowDaskError
from .meta import Channel
from .sources.abilities import SupportsPyramidLevel

if TYPE_CHECKING:
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

PALETTE = ((0, 255, 0), (255, 0, 255), (0, 255, 255), (255, 0, 0), (0, 0, 255), (255, 255, 0), (255, 128, 0))
"""Channel colors when the metadata gives none (green, magenta, cyan, red, blue, yellow, orange)."""


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


def _strided(
    plan: OMEArrow, t: int, chans: tuple[int, ...], z: int, box: tuple[int, int, int, int], size: int
) -> tuple[OMEArrow, int]:
    y0, y1, x0, x1 = box
    step = max(1, math.ceil(max(y1 - y0, x1 - x0) / size))
    inner = ((t,), chans, (z,), range(y0, y1, step), range(x0, x1, step))
    return plan.compose(inner, "preview"), step


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
    itemsize = base.dtype.itemsize
    h, w = Y, X
    while True:
        box = ((Y - h) // 2, (Y - h) // 2 + h, (X - w) // 2, (X - w) // 2 + w)
        view, step = _strided(base, t, chans, z, box, size)
        reads = view.read_plan
        cost = reads.elements_read() * itemsize
        if cost <= max_bytes and reads.chunks_read <= max_chunks:
            break
        if h == 1 and w == 1:
            return None
        h, w = max(1, h // 2), max(1, w // 2)
    pixels = view.to_numpy()[0, :, 0]
    crop = None if (h, w) == (Y, X) else box
    return Sample(pixels, chans, t, z, level, step, crop, reads.chunks_read, cost, max_bytes, max_chunks)


def _rgb(channel: Channel) -> tuple[int, int, int] | None:
    value = channel.color_rgba
    if value is None:
        return None
    value &= 0xFFFFFFFF
    return (value >> 24) & 0xFF, (value >> 16) & 0xFF, (value >> 8) & 0xFF


def channel_colors(channels: tuple[Channel, ...]) -> list[tuple[int, int, int]]:
    """RGB per channel from the metadata; a palette when colors are missing or all the same.

    One channel without a color is grey (white); several channels that all carry the
    same color (ome-arrow's default is white) get :data:`PALETTE` colors.
    """
    colors = [_rgb(ch) for ch in channels]
    if len(channels) == 1:
        return [colors[0] or (255, 255, 255)]
    if any(c is None for c in colors) or len(set(colors)) == 1:
        return [PALETTE[i % len(PALETTE)] for i in range(len(channels))]
    return colors  # type: ignore[return-value]


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
