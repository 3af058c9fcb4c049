"""OME-NGFF (0.1-0.5) metadata parsing for the zarr source, plus shared source helpers.

Pure Python: no zarr import. NGFF attributes are untrusted: dataset paths must be
child keys, scales must be finite and positive, and axes must match the array rank.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from typing import Any

from ..errors import CorruptInputError, OmeArrowDaskError, SelectionError, UnsafePathError
from ..meta import AXES, Channel, PhysicalSize
from ..units import unit_symbol

MAX_METADATA_BYTES = 16 * 2**20
"""Largest zarr metadata document (``zarr.json``, ``.zattrs``, ...) we let zarr parse."""

_METADATA_FILES = ("zarr.json", ".zattrs", ".zarray", ".zgroup")

_TYPE_TO_AXIS = {"time": "T", "channel": "C"}


def check_missing_option(missing: object) -> str:
    """Validate the ``missing=`` policy: ``"error"`` (default) or ``"zeros"``.

    >>> check_missing_option("zeros")
    'zeros'
    """
    if missing not in ("error", "zeros"):
        raise OmeArrowDaskError(f"missing must be 'error' or 'zeros', got {missing!r}")
    return str(missing)


def check_metadata_sizes(folder: str) -> None:
    """Refuse zarr metadata documents larger than :data:`MAX_METADATA_BYTES` in ``folder``."""
    for name in _METADATA_FILES:
        path = os.path.join(folder, name)
        if os.path.isfile(path) and os.path.getsize(path) > MAX_METADATA_BYTES:
            raise CorruptInputError(
                f"{path}: metadata of {os.path.getsize(path):,} bytes exceeds the limit {MAX_METADATA_BYTES:,}"
            )


def check_dataset_path(path: object, where: str) -> str:
    """Return a multiscales ``datasets[].path`` if it is a child key of the group.

    >>> check_dataset_path("scale0/image", "x.zarr")
    'scale0/image'
    >>> check_dataset_path("../other", "x.zarr")
    Traceback (most recent call last):
    ...
    ome_arrow_dask.errors.UnsafePathError: x.zarr: dataset path '../other' is not a child key of the group
    """
    if not isinstance(path, str) or not path:
        raise CorruptInputError(f"{where}: dataset path {path!r} is not a non-empty string")
    parts = path.split("/")
    if path.startswith("/") or "\\" in path or ":" in path or any(p in ("", ".", "..") for p in parts):
        raise UnsafePathError(f"{where}: dataset path {path!r} is not a child key of the group")
    return path


def typed_field(
    container: dict[str, Any],
    key: str,
    kinds: type | tuple[type, ...],
    where: str,
    field: str,
    *,
    required: bool = False,
) -> Any:
    """Return ``container[key]`` if it has one of the JSON ``kinds``; None when absent (or null).

    Untrusted metadata: a field of another type is a :class:`CorruptInputError` naming
    ``where`` (the file) and ``field`` (its path in the document); booleans never count
    as numbers.

    >>> typed_field({"name": "img"}, "name", str, "x.zarr/.zattrs", "multiscales[0].name")
    'img'
    >>> typed_field({"name": 3}, "name", str, "x.zarr/.zattrs", "multiscales[0].name")
    Traceback (most recent call last):
    ...
    ome_arrow_dask.errors.CorruptInputError: x.zarr/.zattrs: multiscales[0].name must be a string, got int (3)
    """
    value = container.get(key)
    if value is None:
        if required:
            raise CorruptInputError(f"{where}: {field} is missing")
        return None
    kinds = kinds if isinstance(kinds, tuple) else (kinds,)
    if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
        expected = " or ".join(_JSON_KIND.get(k, k.__name__) for k in kinds)
        shown = str(value)[:60]
        raise CorruptInputError(f"{where}: {field} must be {expected}, got {type(value).__name__} ({shown})")
    return value


_JSON_KIND = {str: "a string", list: "a list", dict: "an object", int: "an integer", float: "a number"}


def ngff_attrs(attrs: dict[str, Any], where: str = "zarr group") -> dict[str, Any] | None:
    """The dict holding ``multiscales``: ``attrs["ome"]`` (0.5) or ``attrs`` (0.1-0.4).

    ``where`` names the attributes' file in errors (an ``ome`` that is not an object).
    """
    if not isinstance(attrs, dict):
        raise CorruptInputError(f"{where}: attributes must be a JSON object, got {type(attrs).__name__}")
    ome = typed_field(attrs, "ome", dict, where, "'ome'")
    if ome is not None and "multiscales" in ome:
        return ome
    return attrs if "multiscales" in attrs else None


@dataclass(frozen=True)
class NgffLevel:
    """One resolution level of a multiscale image."""

    path: str
    names: tuple[str, ...]
    types: tuple[str | None, ...]
    units: tuple[str | None, ...]
    scale: tuple[float, ...] | None
    name: str | None
    n_levels: int
    base_scale: tuple[float, ...] | None = None
    """The scale of level 0 (when this is another level): 1.0 there without a unit means unknown."""


def _axes(multiscale: dict[str, Any], ndim: int | None, where: str) -> tuple[tuple, tuple, tuple]:
    axes = multiscale.get("axes")
    if axes is None:  # NGFF 0.1 / 0.2: always 5-D tczyx
        names: list[str] = list("tczyx")
        return tuple(names), (None,) * 5, (None,) * 5
    if not isinstance(axes, list) or not axes:
        raise CorruptInputError(f"{where}: multiscales axes must be a non-empty list, got {type(axes).__name__}")
    names, types, units = [], [], []
    for i, ax in enumerate(axes):
        if isinstance(ax, str):
            ax = {"name": ax}
        if not isinstance(ax, dict) or not isinstance(ax.get("name"), str):
            raise CorruptInputError(f"{where}: malformed axis entry {str(ax)[:80]!r}")
        names.append(ax["name"])
        types.append(typed_field(ax, "type", str, where, f"multiscales[0].axes[{i}].type"))
        units.append(typed_field(ax, "unit", str, where, f"multiscales[0].axes[{i}].unit"))
    return tuple(names), tuple(types), tuple(units)


def _scale_of(transforms: object, where: str) -> list[float] | None:
    if not isinstance(transforms, list):
        return None
    for tr in transforms:
        if isinstance(tr, dict) and tr.get("type") == "scale":
            scale = tr.get("scale")
            if not isinstance(scale, list) or not all(isinstance(v, (int, float)) for v in scale):
                raise CorruptInputError(f"{where}: scale transform {str(scale)[:80]} is not a list of numbers")
            return [float(v) for v in scale]
    return None


def _check_transforms(transforms: object, where: str, field: str) -> None:
    """``coordinateTransformations`` must be a list of objects, each with a string ``type``."""
    if transforms is None:
        return
    if not isinstance(transforms, list):
        raise CorruptInputError(f"{where}: {field} must be a list, got {type(transforms).__name__}")
    for i, transform in enumerate(transforms):
        if not isinstance(transform, dict):
            raise CorruptInputError(f"{where}: {field}[{i}] must be an object, got {type(transform).__name__}")
        typed_field(transform, "type", str, where, f"{field}[{i}].type", required=True)


def parse_multiscale(attrs: dict[str, Any], level: int, where: str) -> NgffLevel:
    """Pick the first multiscale and its ``level``-th dataset; validate what we use.

    ``where`` names the attributes file. Every field read must have its JSON type;
    another type is a :class:`CorruptInputError` naming the file and the field.
    """
    multiscales = attrs.get("multiscales")
    if not isinstance(multiscales, list) or not multiscales or not isinstance(multiscales[0], dict):
        raise CorruptInputError(f"{where}: 'multiscales' must be a non-empty list of objects")
    ms = multiscales[0]
    datasets = typed_field(ms, "datasets", list, where, "multiscales[0].datasets")
    if not datasets:
        raise CorruptInputError(f"{where}: multiscales has no datasets")
    if not 0 <= level < len(datasets):
        raise SelectionError(f"{where}: level {level} out of range; the image has {len(datasets)} levels")
    dataset = datasets[level]
    if not isinstance(dataset, dict):
        raise CorruptInputError(f"{where}: datasets[{level}] is not an object")
    typed_field(ms, "name", str, where, "multiscales[0].name")
    _check_transforms(ms.get("coordinateTransformations"), where, "multiscales[0].coordinateTransformations")
    _check_transforms(
        dataset.get("coordinateTransformations"), where, f"multiscales[0].datasets[{level}].coordinateTransformations"
    )
    names, types, units = _axes(ms, None, where)
    scale = _scale_of(dataset.get("coordinateTransformations"), where)
    outer = _scale_of(ms.get("coordinateTransformations"), where)
    if scale is not None and outer is not None and len(outer) == len(scale):
        scale = [a * b for a, b in zip(scale, outer, strict=True)]
    if scale is not None and len(scale) != len(names):
        raise CorruptInputError(f"{where}: scale {scale} has {len(scale)} entries for {len(names)} axes")
    base_scale = None
    if level > 0 and isinstance(datasets[0], dict):
        base_scale = _scale_of(datasets[0].get("coordinateTransformations"), where)
        if base_scale is not None and outer is not None and len(outer) == len(base_scale):
            base_scale = [a * b for a, b in zip(base_scale, outer, strict=True)]
        if base_scale is not None and len(base_scale) != len(names):
            base_scale = None
    return NgffLevel(
        path=check_dataset_path(dataset.get("path"), where),
        names=names,
        types=types,
        units=units,
        scale=tuple(scale) if scale is not None else None,
        name=ms.get("name") if isinstance(ms.get("name"), str) else None,
        n_levels=len(datasets),
        base_scale=tuple(base_scale) if base_scale is not None else None,
    )


def axes_to_targets(names: tuple[str, ...], types: tuple[str | None, ...], where: str) -> tuple[str, ...]:
    """Map NGFF axis names (else types) to TCZYX letters.

    >>> axes_to_targets(("t", "c", "z", "y", "x"), (None,) * 5, "x.zarr")
    ('T', 'C', 'Z', 'Y', 'X')
    >>> axes_to_targets(("time", "ch", "y", "x"), ("time", "channel", "space", "space"), "x.zarr")
    ('T', 'C', 'Y', 'X')
    """
    out = []
    for name, kind in zip(names, types, strict=True):
        letter = name.upper() if name.upper() in AXES else _TYPE_TO_AXIS.get(kind or "", "")
        if not letter:
            raise CorruptInputError(f"{where}: cannot map axis {name!r} (type {kind!r}) to TCZYX; pass dims=")
        out.append(letter)
    if len(set(out)) != len(out):
        raise CorruptInputError(f"{where}: axes {names} map to repeated TCZYX letters {out}")
    if "Y" not in out or "X" not in out:
        raise CorruptInputError(f"{where}: axes {names} have no y and x")
    return tuple(out)


def physical_size(targets: tuple[str, ...], level: NgffLevel, where: str) -> PhysicalSize:
    """Physical Z/Y/X sizes and units from the level's scale and the axes' units.

    NGFF requires a scale on every axis, so a writer that does not know the physical size
    writes ``1.0`` (ours also leaves the unit out). By this package's convention a scale of
    exactly ``1.0`` on an axis **without a unit** means unknown and is read as ``None``;
    any other scale without a unit stays a size without a unit, and ``1.0`` with a unit
    stays a known size. A lower pyramid level of such an axis (scale 2.0, 4.0, ... without
    a unit, level 0 at 1.0) is unknown too.

    >>> lvl = NgffLevel("0", ("z", "y", "x"), (None,) * 3, (None, None, "micrometer"), (1.0, 0.5, 1.0), None, 1)
    >>> ps = physical_size(("Z", "Y", "X"), lvl, "x.zarr")
    >>> (ps.z, ps.z_unit), (ps.y, ps.y_unit), (ps.x, ps.x_unit)
    ((None, None), (0.5, None), (1.0, 'µm'))
    """
    values: dict[str, Any] = {}
    for i, letter in enumerate(targets):
        if letter not in "ZYX":
            continue
        key = letter.lower()
        unit = unit_symbol(level.units[i]) if i < len(level.units) else None
        if level.scale is not None:
            value = level.scale[i]
            if not math.isfinite(value) or value <= 0:
                raise CorruptInputError(f"{where}: scale {value} along {level.names[i]!r} must be finite and positive")
            base = level.base_scale[i] if level.base_scale is not None else value
            if base != 1.0 or unit is not None:  # 1.0 without a unit (at level 0): unknown
                values[key] = value
        if unit is not None:
            values[f"{key}_unit"] = unit
    return PhysicalSize(**values)


def _rgba(color: object) -> int | None:
    """``"FF0000"`` (RRGGBB hex) to ome-arrow's uint32 RGBA.

    >>> hex(_rgba("00FF00"))
    '0xff00ff'
    """
    if not isinstance(color, str) or len(color) not in (6, 8):
        return None
    try:
        value = int(color, 16)
    except ValueError:
        return None
    return (value << 8) | 0xFF if len(color) == 6 else value


def omero_channels(attrs: dict[str, Any], n: int, where: str = "zarr group") -> tuple[Channel, ...]:
    """Channel names and colors from ``omero.channels`` when it lists exactly ``n``.

    ``omero``, ``channels``, each channel, its ``label`` and ``color`` must have their
    JSON types (else :class:`CorruptInputError` naming ``where`` and the field); a color
    string that is not RRGGBB(AA) hex is ignored.
    """
    omero = typed_field(attrs, "omero", dict, where, "omero")
    channels = typed_field(omero, "channels", list, where, "omero.channels") if omero is not None else None
    if channels is None or len(channels) != n:
        return ()
    out = []
    for i, ch in enumerate(channels):
        if not isinstance(ch, dict):
            raise CorruptInputError(f"{where}: omero.channels[{i}] must be an object, got {type(ch).__name__}")
        label = typed_field(ch, "label", str, where, f"omero.channels[{i}].label")
        color = typed_field(ch, "color", str, where, f"omero.channels[{i}].color")
        out.append(Channel(name=label or f"C{i}", id=f"ch-{i}", color_rgba=_rgba(color)))
    return tuple(out)


# ---------------------------------------------------------------------- group metadata files (no zarr import)
def read_json(path: str) -> Any:
    """Load one metadata document (size-limited); None when the file does not exist."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_METADATA_BYTES + 1)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise CorruptInputError(f"{path}: cannot read the metadata file ({exc})") from exc
    if len(data) > MAX_METADATA_BYTES:
        raise CorruptInputError(f"{path}: metadata larger than the limit {MAX_METADATA_BYTES:,} bytes")
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise CorruptInputError(f"{path}: metadata is not valid JSON ({exc})") from exc


def read_group_attrs(folder: str) -> tuple[dict[str, Any], str, int] | None:
    """(attributes, file read, zarr format) of the zarr group in ``folder``; None when there is none.

    Reads one file: ``zarr.json`` (v3), else ``.zattrs`` (v2; a group with no ``.zattrs``
    but a ``.zgroup`` has empty attributes).
    """
    v3 = os.path.join(folder, "zarr.json")
    doc = read_json(v3)
    if doc is not None:
        if not isinstance(doc, dict):
            raise CorruptInputError(f"{v3}: must be a JSON object, got {type(doc).__name__}")
        if doc.get("node_type") != "group":
            raise CorruptInputError(f"{v3}: expected a zarr group, found node_type {doc.get('node_type')!r}")
        attrs = typed_field(doc, "attributes", dict, v3, "attributes") or {}
        return attrs, v3, 3
    v2 = os.path.join(folder, ".zattrs")
    doc = read_json(v2)
    if doc is None:
        return ({}, os.path.join(folder, ".zgroup"), 2) if os.path.isfile(os.path.join(folder, ".zgroup")) else None
    if not isinstance(doc, dict):
        raise CorruptInputError(f"{v2}: attributes must be a JSON object, got {type(doc).__name__}")
    return doc, v2, 2
