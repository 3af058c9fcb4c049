"""Build OME-NGFF 0.4 / 0.5 metadata (axes, multiscales, omero) from :class:`ImageMeta`.

Pure Python: no zarr import. Units are UDUNITS-2 names as NGFF requires
(``µm`` / ``um`` / ``micron`` -> ``micrometer``); unknown units are left out.

Unknown physical sizes: NGFF requires a scale on every axis, so an axis whose physical
size is unknown gets scale ``1.0`` and no ``unit`` (see :func:`base_scale`). Our NGFF
reader reads "scale 1.0 without unit" back as unknown (``None``); any other scale
without a unit stays a size without a unit.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..colors import default_color, rgb_hex, rgba_to_rgb
from ..errors import OmeArrowDaskError
from ..meta import ImageMeta
from ..units import udunits

NGFF_VERSIONS = ("0.4", "0.5")
"""NGFF versions this writer produces (0.4 on zarr v2, 0.5 on zarr v3)."""

AXIS_NAMES = ("t", "c", "z", "y", "x")

def check_version(version: str) -> str:
    """Validate the NGFF version string.

    >>> check_version("0.4")
    '0.4'
    """
    version = str(version)
    if version not in NGFF_VERSIONS:
        raise OmeArrowDaskError(f"NGFF version must be one of {NGFF_VERSIONS}, got {version!r}")
    return version


def axes(meta: ImageMeta) -> list[dict[str, Any]]:
    """NGFF ``axes`` for TCZYX, with space units from ``meta.physical_size``.

    An axis whose physical size is unknown gets no unit (even if a unit is recorded),
    so that its scale of 1.0 reads back as unknown (see :func:`base_scale`).
    """
    ps = meta.physical_size
    units = {
        axis: udunits(getattr(ps, f"{axis}_unit")) if _known_size(getattr(ps, axis)) is not None else None
        for axis in "zyx"
    }
    out: list[dict[str, Any]] = [{"name": "t", "type": "time"}, {"name": "c", "type": "channel"}]
    for name in "zyx":
        entry: dict[str, Any] = {"name": name, "type": "space"}
        if units[name] is not None:
            entry["unit"] = units[name]
        out.append(entry)
    return out


def base_scale(meta: ImageMeta) -> list[float]:
    """Level-0 TCZYX scale: physical sizes where known, else 1.0.

    An unknown size (None, or not a finite positive number) is written as ``1.0``, and
    :func:`axes` gives that axis no ``unit``: "1.0 without unit" is this package's mark
    for an unknown physical size, which its NGFF reader reads back as unknown. A known
    size of exactly 1.0 keeps its unit, so it stays known when the unit is one NGFF names.

    >>> from ome_arrow_dask.meta import ImageMeta, PhysicalSize
    >>> m = ImageMeta(shape=(1, 1, 1, 4, 4), dtype="u1", chunks=((1,), (1,), (1,), (4,), (4,)))
    >>> base_scale(m)
    [1.0, 1.0, 1.0, 1.0, 1.0]
    >>> base_scale(m.replace(physical_size=PhysicalSize(y=0.5, x=0.5, y_unit="µm", x_unit="µm")))
    [1.0, 1.0, 1.0, 0.5, 0.5]
    """
    ps = meta.physical_size
    return [1.0, 1.0, *(_known_size(v) or 1.0 for v in (ps.z, ps.y, ps.x))]


def _known_size(value: float | None) -> float | None:
    """``value`` as a float if it is a usable physical size (finite, positive), else None."""
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) and number > 0 else None


def level_transforms(meta: ImageMeta, level: int) -> list[dict[str, Any]]:
    """Scale and translation of pyramid ``level`` (Y/X binned by ``2**level``).

    The translation moves the first pixel's centre to the centre of the block of
    level-0 pixels it summarises: ``(2**level - 1) / 2`` level-0 pixels.

    >>> from ome_arrow_dask.meta import ImageMeta
    >>> m = ImageMeta(shape=(1, 1, 1, 4, 4), dtype="u1", chunks=((1,), (1,), (1,), (4,), (4,)))
    >>> level_transforms(m, 1)[0]["scale"], level_transforms(m, 1)[1]["translation"]
    ([1.0, 1.0, 1.0, 2.0, 2.0], [0.0, 0.0, 0.0, 0.5, 0.5])
    """
    scale = base_scale(meta)
    factor = 2**level
    shift = (factor - 1) / 2
    return [
        {"type": "scale", "scale": [*scale[:3], scale[3] * factor, scale[4] * factor]},
        {"type": "translation", "translation": [0.0, 0.0, 0.0, scale[3] * shift, scale[4] * shift]},
    ]


def _color_hex(rgba: int | None, index: int, n: int) -> str:
    """The ``omero`` color of channel ``index`` of ``n``: its own, else the preview's default (``colors``).

    >>> _color_hex(0x0000FFFF, 0, 2), _color_hex(None, 0, 2), _color_hex(None, 0, 1)
    ('0000FF', '00FF00', 'FFFFFF')
    """
    return rgb_hex(rgba_to_rgb(rgba) if rgba is not None else default_color(index, n))


def _window(dtype: np.dtype) -> dict[str, float]:
    if dtype.kind in "ui":
        info = np.iinfo(dtype)
        low, high = float(info.min), float(info.max)
    elif dtype.kind == "b":
        low, high = 0.0, 1.0
    else:
        low, high = 0.0, 1.0
    return {"min": low, "max": high, "start": low, "end": high}


def data_window(dtype: np.dtype, low: float, high: float) -> dict[str, float]:
    """An ``omero`` window showing ``low..high`` (the data written) within the dtype range.

    ``start`` / ``end`` are the display limits; ``min`` / ``max`` the slider range (the
    dtype range for integers, widened to the data for floats). A flat channel gets
    ``end = start + 1``.

    >>> data_window(np.dtype("uint16"), 19679, 20425)
    {'min': 0.0, 'max': 65535.0, 'start': 19679.0, 'end': 20425.0}
    """
    base = _window(dtype)
    start, end = float(low), float(high)
    if not end > start:
        end = start + 1.0
    return {"min": min(base["min"], start), "max": max(base["max"], end), "start": start, "end": end}


def omero(meta: ImageMeta, windows: list[dict[str, float]] | None = None) -> dict[str, Any]:
    """NGFF ``omero`` rendering block: channel labels, hex colors and windows.

    ``windows`` (one per channel, see :func:`data_window`) come from the data written;
    without them each window is the dtype range.
    """
    n = len(meta.channels)
    if windows is not None and len(windows) != n:
        windows = None
    channels = [
        {
            "label": ch.name,
            "color": _color_hex(ch.color_rgba, i, n),
            "window": windows[i] if windows is not None else _window(meta.dtype),
            "active": True,
            "coefficient": 1.0,
            "family": "linear",
            "inverted": False,
        }
        for i, ch in enumerate(meta.channels)
    ]
    rdefs = {"defaultT": 0, "defaultZ": meta.shape[2] // 2, "model": "color" if n > 1 else "greyscale"}
    return {"name": meta.name or "image", "channels": channels, "rdefs": rdefs}


def multiscales(meta: ImageMeta, paths: list[str], method: str, version: str) -> dict[str, Any]:
    """One NGFF ``multiscales`` entry for the given level paths."""
    entry: dict[str, Any] = {
        "name": meta.name or "image",
        "axes": axes(meta),
        "datasets": [
            {"path": path, "coordinateTransformations": level_transforms(meta, k)} for k, path in enumerate(paths)
        ],
        "type": method,
        "metadata": {"method": f"ome_arrow_dask 2x {method} in y/x", "version": "1"},
    }
    if version == "0.4":
        entry["version"] = "0.4"
    return entry


def group_attributes(
    meta: ImageMeta, paths: list[str], method: str, version: str, windows: list[dict[str, float]] | None = None
) -> dict[str, Any]:
    """The NGFF attributes of the image group (``ome`` key for 0.5, top-level for 0.4)."""
    ngff = {"multiscales": [multiscales(meta, paths, method, version)], "omero": omero(meta, windows)}
    if version == "0.5":
        return {"ome": {"version": "0.5", **ngff}}
    return ngff
