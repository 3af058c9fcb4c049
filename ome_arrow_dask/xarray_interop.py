"""xarray export and import: ``OMEArrow.to_xarray()`` and ``OMEArrow(data_array)``.

:func:`to_xarray` wraps the plan's lazy dask array (nothing is read) in a
``xarray.DataArray`` with dims ``("t", "c", "z", "y", "x")``:

* ``c`` carries the channel names as coordinate values;
* ``z``, ``y``, ``x`` carry physical positions (pixel index in the source times the
  physical size) when the size is known, with the unit in the coordinate's
  ``attrs["units"]``; an axis whose size is unknown gets no coordinate;
* ``attrs`` carry the OME descriptors: ``name``, ``id``, ``image_type``,
  ``acquisition_datetime`` (ISO 8601), ``physical_size`` and ``units`` (per axis),
  ``channels`` (one dict per channel) and ``ome``, the OME-Arrow record metadata as
  ome-arrow writes it.

:func:`source_from_xarray` reads such a DataArray back (any order and subset of the
dims ``t c z y x``, upper or lower case): physical sizes from the coordinate spacing
(else ``attrs["physical_size"]``), units from the coordinates' ``units`` (else
``attrs["units"]``), channel names from the ``c`` coordinate. xarray is imported here
only, and only when a function needs it.
"""

from __future__ import annotations

import datetime as _dt
import math
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import DimOrderError, InconsistentInputError
from .meta import AXES, Channel, PhysicalSize
from .sources.base import ArraySource

if TYPE_CHECKING:
    from .core import OMEArrow

DIMS = tuple(ax.lower() for ax in AXES)
"""Dimension names of exported DataArrays."""

_CHANNEL_FIELDS = ("id", "color_rgba", "emission_um", "excitation_um", "illumination")


def _xarray() -> Any:
    """Import xarray or raise ``ImportError`` saying how to install it."""
    try:
        import xarray
    except ImportError as exc:
        raise ImportError(
            "OMEArrow.to_xarray() / OMEArrow(DataArray) need xarray, which is not installed: "
            "pip install 'ome-arrow-dask[xarray]' (or pip install xarray)"
        ) from exc
    return xarray


def is_data_array(obj: object) -> bool:
    """True for an ``xarray.DataArray`` (checked without importing xarray)."""
    module = sys.modules.get("xarray")
    return module is not None and isinstance(obj, module.DataArray)


def is_xarray(obj: object) -> bool:
    """True for an ``xarray.DataArray`` or ``xarray.Dataset`` (checked without importing xarray)."""
    module = sys.modules.get("xarray")
    return module is not None and isinstance(obj, (module.DataArray, module.Dataset))


def _channel_dict(channel: Channel) -> dict[str, Any]:
    out: dict[str, Any] = {"name": channel.name}
    out.update({key: getattr(channel, key) for key in _CHANNEL_FIELDS if getattr(channel, key) is not None})
    return out


def to_xarray(plan: OMEArrow) -> Any:
    """Return ``plan`` as a lazy ``xarray.DataArray`` (dims ``t c z y x``; reads no pixels).

    Parameters
    ----------
    plan
        The image plan; its selection decides the coordinates (source pixel index times
        the physical size, so a crop keeps its physical position).

    Returns
    -------
    xarray.DataArray
        Backed by ``plan.to_dask()``; see the module docstring for coordinates and attrs.
    """
    xr = _xarray()
    meta = plan.meta
    size = meta.physical_size
    coords: dict[str, Any] = {"c": ("c", np.array(meta.channel_names, dtype=object))}
    physical: dict[str, float] = {}
    units: dict[str, str] = {}
    for axis in "zyx":
        value, unit = getattr(size, axis), getattr(size, f"{axis}_unit")
        if unit is not None:
            units[axis] = unit
        if value is None:
            continue
        physical[axis] = float(value)
        index = np.asarray(plan.selection[AXES.index(axis.upper())], dtype=np.float64)
        coords[axis] = xr.Variable(axis, index * float(value), attrs={"units": unit} if unit else {})
    attrs: dict[str, Any] = {
        key: getattr(meta, key) for key in ("name", "id", "image_type") if getattr(meta, key) is not None
    }
    if meta.acquisition_datetime is not None:
        attrs["acquisition_datetime"] = meta.acquisition_datetime.isoformat()
    attrs["physical_size"] = physical
    attrs["units"] = units
    attrs["channels"] = [_channel_dict(ch) for ch in meta.channels]
    from .arrow.schema import record_from_meta  # pyarrow: imported when an xarray export needs it

    attrs["ome"] = record_from_meta(meta)
    return xr.DataArray(plan.to_dask(), dims=DIMS, coords=coords, name=meta.name, attrs=attrs)


def _spacing(values: np.ndarray, dim: str, where: str) -> float | None:
    """The uniform step of a 1-D numeric coordinate (None with fewer than two values)."""
    if values.size < 2:
        return None
    if values.dtype.kind not in "iuf":
        raise InconsistentInputError(
            f"{where}: coordinate {dim!r} has {values.dtype} values; physical positions must be numbers "
            f"(drop it with data_array.drop_vars({dim!r}) to treat the size as unknown)"
        )
    steps = np.diff(values.astype(np.float64))
    step = float(steps.mean())
    if not math.isfinite(step) or step <= 0 or not np.allclose(steps, step, rtol=1e-6, atol=0):
        raise InconsistentInputError(
            f"{where}: coordinate {dim!r} is not evenly spaced and increasing (steps {steps[:4].tolist()}...); "
            f"OME physical sizes need a regular grid: drop it with data_array.drop_vars({dim!r}) or resample"
        )
    return step


def _dim_order(dims: tuple[Any, ...], where: str) -> str:
    letters = "".join(str(d).upper() for d in dims)
    if any(len(str(d)) != 1 for d in dims) or not set(letters) <= set(AXES):
        raise DimOrderError(
            f"{where}: dims {dims} are not TCZYX letters; rename them first, e.g. "
            "data_array.rename({'time': 't', 'channel': 'c'})"
        )
    return letters


def _channels(data_array: Any, size_c: int, dims: dict[str, str]) -> tuple[Channel, ...]:
    """Channel names from the ``c`` coordinate, other fields from ``attrs['channels']``."""
    entries = data_array.attrs.get("channels")
    entries = entries if isinstance(entries, list) and len(entries) == size_c else [{}] * size_c
    c_dim = dims.get("C")
    names: list[str | None] = [None] * size_c
    if c_dim is not None and c_dim in data_array.coords:
        names = [str(v) for v in np.asarray(data_array.coords[c_dim].values).tolist()]
    out = []
    for i, (name, entry) in enumerate(zip(names, entries, strict=True)):
        entry = entry if isinstance(entry, Mapping) else {}
        fields = {key: entry[key] for key in _CHANNEL_FIELDS if entry.get(key) is not None}
        stored = entry.get("name")
        fallback = stored if isinstance(stored, str) else f"C{i}"
        out.append(Channel(name=name if name is not None else fallback, **fields))
    return tuple(out)


def _physical_size(data_array: Any, dims: dict[str, str], where: str) -> PhysicalSize:
    attr_sizes = data_array.attrs.get("physical_size")
    attr_sizes = attr_sizes if isinstance(attr_sizes, Mapping) else {}
    attr_units = data_array.attrs.get("units")
    attr_units = attr_units if isinstance(attr_units, Mapping) else {}
    values: dict[str, Any] = {}
    for axis in "zyx":
        dim = dims.get(axis.upper())
        value: float | None = None
        unit = attr_units.get(axis)
        if dim is not None and dim in data_array.coords:
            coord = data_array.coords[dim]
            value = _spacing(np.asarray(coord.values), dim, where)
            unit = coord.attrs.get("units", unit)
        if value is None and isinstance(attr_sizes.get(axis), (int, float)):
            value = float(attr_sizes[axis])
        values[axis] = value
        values[f"{axis}_unit"] = str(unit) if unit is not None else None
    return PhysicalSize(**values)


def source_from_xarray(data_array: Any, *, chunks: Any = None) -> ArraySource:
    """Build an :class:`~ome_arrow_dask.sources.ArraySource` from a ``DataArray`` (no pixels read).

    Parameters
    ----------
    data_array
        A DataArray whose dims are a subset of ``t c z y x`` (any order, any case; y and x
        required). Dask-backed arrays stay lazy.
    chunks
        Optional dask-style TCZYX chunks (as for array inputs).

    Raises
    ------
    DimOrderError
        When a dim is not one of the TCZYX letters.
    InconsistentInputError
        When a z / y / x coordinate is not numeric and evenly spaced.
    """
    if not is_data_array(data_array):
        names = list(getattr(data_array, "data_vars", {}))
        raise TypeError(
            f"OMEArrow takes one image: an xarray.DataArray, not a Dataset; pick a variable, e.g. "
            f"OMEArrow(dataset[{names[0] if names else 'name'!r}]) (variables: {names})"
        )
    where = f"xarray.DataArray {data_array.name!r}" if data_array.name is not None else "xarray.DataArray"
    order = _dim_order(tuple(data_array.dims), where)
    dims = {letter: str(dim) for letter, dim in zip(order, data_array.dims, strict=True)}
    source = ArraySource(data_array.data, order, chunks=chunks)
    meta = source.meta
    attrs = data_array.attrs
    stamp = attrs.get("acquisition_datetime")
    when = None
    if isinstance(stamp, str):
        try:
            when = _dt.datetime.fromisoformat(stamp)
        except ValueError:
            when = None
    elif isinstance(stamp, _dt.datetime):
        when = stamp
    text = {key: attrs.get(key) if isinstance(attrs.get(key), str) else None for key in ("id", "image_type")}
    name = attrs.get("name") if isinstance(attrs.get("name"), str) else data_array.name
    described = meta.replace(
        channels=_channels(data_array, meta.shape[1], dims),
        physical_size=_physical_size(data_array, dims, where),
        name=str(name) if name is not None else None,
        acquisition_datetime=when,
        **text,
    )
    return ArraySource(source.array, "TCZYX", chunks=meta.chunks, meta=described)
