"""OME-XML helpers for the TIFF source: sizes, physical sizes, channels, safe file refs.

Only the parts of the OME model a reader needs are parsed, with the standard library's
expat parser (no entity expansion beyond the built-in limits, no network access).
"""

from __future__ import annotations

import datetime as _dt
import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass

from ..errors import CorruptInputError, UnsafePathError
from ..meta import Channel, PhysicalSize

MAX_OME_XML_BYTES = 64 * 2**20
"""Largest OME-XML description parsed (a 100 MB string is refused)."""

_LENGTH_TO_UM = {"pm": 1e-6, "nm": 1e-3, "µm": 1.0, "um": 1.0, "mm": 1e3, "cm": 1e4, "m": 1e6}


@dataclass(frozen=True)
class OmeImage:
    """What one OME ``Image`` element says about its pixels."""

    sizes: dict[str, int]
    dimension_order: str
    physical_size: PhysicalSize
    channels: tuple[Channel, ...]
    id: str | None = None
    name: str | None = None
    acquisition_datetime: _dt.datetime | None = None


def _local(tag: str) -> str:
    """Strip the ``{namespace}`` from an element tag.

    >>> _local("{http://www.openmicroscopy.org/Schemas/OME/2016-06}Image")
    'Image'
    """
    return tag.rsplit("}", 1)[-1]


def _children(elem: ET.Element, name: str) -> list[ET.Element]:
    return [child for child in elem if _local(child.tag) == name]


def parse_root(xml: str, where: str) -> ET.Element:
    """Parse an OME-XML document, raising :class:`CorruptInputError` naming ``where``."""
    if len(xml) > MAX_OME_XML_BYTES:
        raise CorruptInputError(f"{where}: OME-XML of {len(xml):,} characters exceeds {MAX_OME_XML_BYTES:,}")
    try:
        return ET.fromstring(xml)
    except (ET.ParseError, RecursionError, ValueError) as exc:
        raise CorruptInputError(f"{where}: OME metadata unreadable: {exc}") from exc


def referenced_files(root: ET.Element) -> set[str]:
    """Every ``UUID FileName`` that ``TiffData`` elements point to."""
    return {
        elem.attrib["FileName"]
        for elem in root.iter()
        if _local(elem.tag) == "UUID" and elem.attrib.get("FileName") is not None
    }


def check_referenced_files(root: ET.Element, path: str) -> list[str]:
    """Refuse ``UUID FileName`` paths outside ``path``'s folder; return the resolved files.

    Raises
    ------
    UnsafePathError
        For absolute paths or paths that resolve outside the folder (``..``, symlinks).
    CorruptInputError
        When a referenced companion file does not exist.
    """
    folder = os.path.dirname(os.path.realpath(path))
    out, missing = [], []
    for name in sorted(referenced_files(root)):
        if os.path.isabs(name) or name.startswith(("\\", "/")) or ":" in name:
            raise UnsafePathError(f"{path}: OME-XML refers to {name!r}, an absolute path; refusing to open it")
        resolved = os.path.realpath(os.path.join(folder, name))
        if os.path.commonpath([folder, resolved]) != folder:
            raise UnsafePathError(f"{path}: OME-XML refers to {name!r}, which is outside {folder!r}; refusing")
        if not os.path.isfile(resolved):
            missing.append(name)
        out.append(resolved)
    if missing:
        raise CorruptInputError(f"{path}: OME-XML refers to missing companion files {missing}")
    return out


def _float(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        out = float(value)
    except ValueError:
        return None
    return out if out == out and abs(out) != float("inf") else None


def _wavelength_um(value: str | None, unit: str | None) -> float | None:
    number = _float(value)
    factor = _LENGTH_TO_UM.get(unit or "nm")
    return None if number is None or factor is None else number * factor


def _color(value: str | None) -> int | None:
    """OME colors are signed int32 RGBA; ome-arrow stores them as uint32.

    >>> hex(_color("-16776961"))
    '0xff0000ff'
    """
    if value is None:
        return None
    try:
        return int(value) & 0xFFFFFFFF
    except ValueError:
        return None


def _channels(pixels: ET.Element) -> tuple[Channel, ...]:
    out = []
    for i, ch in enumerate(_children(pixels, "Channel")):
        attrs = ch.attrib
        samples = int(attrs.get("SamplesPerPixel", "1") or 1)
        base = Channel(
            name=attrs.get("Name") or f"C{i}",
            id=attrs.get("ID"),
            color_rgba=_color(attrs.get("Color")),
            emission_um=_wavelength_um(attrs.get("EmissionWavelength"), attrs.get("EmissionWavelengthUnit")),
            excitation_um=_wavelength_um(attrs.get("ExcitationWavelength"), attrs.get("ExcitationWavelengthUnit")),
            illumination=attrs.get("IlluminationType"),
        )
        out.extend([base] * max(1, min(samples, 16)))
    return tuple(out)


def _physical_size(pixels: ET.Element) -> PhysicalSize:
    attrs = pixels.attrib

    def size(axis: str) -> tuple[float | None, str | None]:
        value = _float(attrs.get(f"PhysicalSize{axis}"))
        if value is None or value <= 0:
            return None, None
        return value, attrs.get(f"PhysicalSize{axis}Unit", "µm")

    (z, zu), (y, yu), (x, xu) = size("Z"), size("Y"), size("X")
    return PhysicalSize(z=z, y=y, x=x, z_unit=zu, y_unit=yu, x_unit=xu)


def _datetime(image: ET.Element) -> _dt.datetime | None:
    for elem in _children(image, "AcquisitionDate"):
        try:
            return _dt.datetime.fromisoformat((elem.text or "").strip().replace("Z", "+00:00"))
        except ValueError:
            return None
    return None


def parse_image(root: ET.Element, index: int, where: str) -> OmeImage | None:
    """Return the ``index``-th ``Image`` with ``Pixels``, or None if there is none."""
    images = [img for img in _children(root, "Image") if _children(img, "Pixels")]
    if not 0 <= index < len(images):
        return None
    image = images[index]
    pixels = _children(image, "Pixels")[0]
    try:
        sizes = {axis: int(pixels.attrib.get(f"Size{axis}", "1")) for axis in "TCZYX"}
    except ValueError as exc:
        raise CorruptInputError(f"{where}: OME-XML Pixels sizes are not integers: {exc}") from exc
    if any(v < 1 for v in sizes.values()):
        raise CorruptInputError(f"{where}: OME-XML Pixels sizes {sizes} must be positive")
    return OmeImage(
        sizes=sizes,
        dimension_order=pixels.attrib.get("DimensionOrder", "XYZCT"),
        physical_size=_physical_size(pixels),
        channels=_channels(pixels),
        id=image.attrib.get("ID"),
        name=image.attrib.get("Name"),
        acquisition_datetime=_datetime(image),
    )
