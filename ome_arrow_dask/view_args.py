"""Pure translation of ome-arrow's ``tensor_view`` arguments into a relative selection.

``t``, ``z``, ``c`` take an int (negative wraps), a slice (step honoured) or a list
(order and duplicates kept); ``roi=(x, y, w, h)``; ``roi3d=(x, y, z, w, h, d)``;
``roi_nd`` with ``roi_type`` (half-open min/max, y before x); ``tile=(tile_y, tile_x)``
into the current chunk grid. Conflicting or out-of-range arguments raise
:class:`~ome_arrow_dask.errors.SelectionError`; nothing is ever silently clipped.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import accumulate
from typing import Any

from .errors import SelectionError
from .selection import AxisIndex, half_open_bounds, normalize_index

ROI_ND_AXES = {
    "2d": "YX",
    "2d_timelapse": "TYX",
    "3d": "ZYX",
    "4d": "TZYX",
}
"""Axes of each ``roi_type``; the tuple is their mins then their maxes."""


@dataclass(frozen=True)
class ViewArgs:
    """The selection arguments of ``tensor_view`` / ``select``, as given."""

    t: Any = None
    z: Any = None
    c: Any = None
    roi: Sequence[int] | None = None
    roi3d: Sequence[int] | None = None
    roi_nd: Sequence[int] | None = None
    roi_type: str | None = None
    tile: Sequence[int] | None = None


def _ints(values: Sequence[Any], name: str, count: int) -> tuple[int, ...]:
    if values is None or len(values) != count:
        raise SelectionError(f"{name} must have {count} integers, got {values!r}")
    try:
        return tuple(operator.index(v) for v in values)
    except TypeError as exc:
        raise SelectionError(f"{name} must hold integers, got {values!r}") from exc


def _roi_ranges(roi: Sequence[int], sizes: dict[str, int]) -> tuple[range, range]:
    x, y, w, h = _ints(roi, "roi (x, y, w, h)", 4)
    if w <= 0 or h <= 0 or x < 0 or y < 0 or x + w > sizes["X"] or y + h > sizes["Y"]:
        raise SelectionError(
            f"roi {tuple(roi)} (x, y, w, h) must have w, h > 0, x, y >= 0 and lie inside the "
            f"{sizes['X']} x {sizes['Y']} (X x Y) image"
        )
    return range(y, y + h), range(x, x + w)


def _tile_ranges(tile: Sequence[int], chunks: Sequence[Sequence[int]]) -> tuple[range, range]:
    ty, tx = _ints(tile, "tile (tile_y, tile_x)", 2)
    y_edges, x_edges = [0, *accumulate(chunks[3])], [0, *accumulate(chunks[4])]
    if not (0 <= ty < len(chunks[3]) and 0 <= tx < len(chunks[4])):
        raise SelectionError(
            f"tile {tuple(tile)} is outside the {len(chunks[3])} x {len(chunks[4])} chunk grid (tile_y, tile_x)"
        )
    return range(y_edges[ty], y_edges[ty + 1]), range(x_edges[tx], x_edges[tx + 1])


def _roi_nd_ranges(roi_nd: Sequence[int], roi_type: str | None, sizes: dict[str, int]) -> dict[str, range]:
    if roi_type is None:
        defaults = {4: "2d", 8: "4d"}
        if len(roi_nd) not in defaults:
            raise SelectionError(
                f"roi_nd with {len(roi_nd)} values is ambiguous: pass roi_type ('2d', '2d_timelapse', '3d', '4d')"
            )
        roi_type = defaults[len(roi_nd)]
    axes = ROI_ND_AXES.get(roi_type)
    if axes is None:
        raise SelectionError(f"unknown roi_type {roi_type!r}; expected one of {sorted(ROI_ND_AXES)}")
    values = _ints(roi_nd, f"roi_nd for roi_type {roi_type!r} (mins then maxes over {axes})", 2 * len(axes))
    n = len(axes)
    return {ax: half_open_bounds(values[i], values[i + n], sizes[ax], ax.lower()) for i, ax in enumerate(axes)}


def _check_conflicts(args: ViewArgs) -> None:
    # ome-arrow's wording first (code matching its messages keeps working), then ours
    if args.roi_type is not None and args.roi_nd is None:
        raise SelectionError("roi_type requires roi_nd.")
    if args.roi_nd is not None and (args.roi is not None or args.roi3d is not None or args.tile is not None):
        raise SelectionError("Provide only one of roi_nd, roi3d, roi, or tile.")
    if args.roi3d is not None and (args.roi is not None or args.tile is not None):
        raise SelectionError("Provide only one of roi3d, roi, or tile.")
    if args.roi3d is not None and args.z is not None:
        raise SelectionError("Provide either z or roi3d, not both: roi3d selects z itself.")
    if args.roi is not None and args.tile is not None:
        raise SelectionError("Provide either roi or tile, not both: they select the same axes.")


def _spatial(args: ViewArgs, sizes: dict[str, int], chunks: Sequence[Sequence[int]]) -> dict[str, Any]:
    """Return the Y/X (and Z/T for roi3d/roi_nd) indices the ROI arguments select."""
    if args.roi3d is not None:
        x, y, z, w, h, d = _ints(args.roi3d, "roi3d (x, y, z, w, h, d)", 6)
        y_range, x_range = _roi_ranges((x, y, w, h), sizes)
        if d <= 0:
            raise SelectionError(f"roi3d depth must be positive, got {d}")
        return {"Y": y_range, "X": x_range, "Z": half_open_bounds(z, z + d, sizes["Z"], "z")}
    if args.roi is not None:
        y_range, x_range = _roi_ranges(args.roi, sizes)
        return {"Y": y_range, "X": x_range}
    if args.tile is not None:
        y_range, x_range = _tile_ranges(args.tile, chunks)
        return {"Y": y_range, "X": x_range}
    if args.roi_nd is not None:
        ranges = _roi_nd_ranges(args.roi_nd, args.roi_type, sizes)
        for ax in ("T", "Z"):
            if ax in ranges and getattr(args, ax.lower()) is not None:
                raise SelectionError(f"roi_nd bounds along {ax} conflict with the explicit {ax.lower()}= argument")
        return ranges
    return {}


def view_selection(
    args: ViewArgs, shape: Sequence[int], chunks: Sequence[Sequence[int]]
) -> tuple[AxisIndex, AxisIndex, AxisIndex, AxisIndex, AxisIndex]:
    """Return the TCZYX selection (relative to ``shape``) that ``args`` describe.

    >>> view_selection(ViewArgs(t=0, roi=(1, 2, 3, 4)), (2, 1, 3, 8, 8), ((1, 1), (1,), (3,), (8,), (8,)))
    (range(0, 1), range(0, 1), range(0, 3), range(2, 6), range(1, 4))
    """
    _check_conflicts(args)
    sizes = dict(zip("TCZYX", (int(s) for s in shape), strict=True))
    chosen: dict[str, Any] = {ax: normalize_index(getattr(args, ax.lower()), sizes[ax], ax.lower()) for ax in "TCZ"}
    chosen.update(_spatial(args, sizes, chunks))
    for ax in "TCZ":
        if not len(chosen[ax]):
            raise SelectionError(f"{ax.lower()}={getattr(args, ax.lower())!r} selects no {ax} planes")
    return tuple(chosen.get(ax, range(sizes[ax])) for ax in "TCZYX")
