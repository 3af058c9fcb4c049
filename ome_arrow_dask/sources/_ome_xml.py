"""OME-XML helpers for the TIFF source: sizes, physical sizes, channels, safe file refs.

Only the parts of the OME model a reader needs are parsed, with the standard library's
expat parser (no entity expansion beyond the built-in limits, no network access).
"""

from __future__ import annotations

import datetime as _dt
import math
import os
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass

import numpy as np

from .. import limits
from ..errors import CorruptInputError, ResourceLimitError, UnsafePathError
from ..meta import Channel, PhysicalSize

MAX_OME_XML_BYTES = 64 * 2**20
"""Largest OME-XML description parsed (a 100 MB string is refused)."""

MIN_IFD_BYTES = 16
"""Fewest bytes one TIFF IFD (one OME plane) can occupy; bounds the planes a file can hold."""

OME_PIXEL_TYPES: dict[str, tuple[np.dtype, ...]] = {
    "int8": (np.dtype("i1"),),
    "int16": (np.dtype("i2"),),
    "int32": (np.dtype("i4"),),
    "uint8": (np.dtype("u1"),),
    "uint16": (np.dtype("u2"),),
    "uint32": (np.dtype("u4"),),
    "float": (np.dtype("f4"),),
    "double": (np.dtype("f8"),),
    "complex": (np.dtype("c8"),),
    "double-complex": (np.dtype("c16"),),
    "bit": (np.dtype("?"), np.dtype("u1")),
}
"""OME ``Pixels Type`` values and the NumPy dtypes a TIFF reader may return for them."""

_OME_ROOT = re.compile(r"<(?:[A-Za-z_][\w.-]*:)?OME[\s/>]")

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
    pixel_type: str | None = None
    samples_per_pixel: int = 1

    @property
    def planes(self) -> int:
        """Number of TIFF planes (IFDs) the image needs: T * C * Z / SamplesPerPixel."""
        return self.sizes["T"] * self.sizes["Z"] * max(1, self.sizes["C"] // max(1, self.samples_per_pixel))

    @property
    def dtypes(self) -> tuple[np.dtype, ...]:
        """NumPy dtypes matching ``pixel_type`` (empty when the XML gives no ``Type``)."""
        return OME_PIXEL_TYPES.get(self.pixel_type or "", ())


def _local(tag: str) -> str:
    """Strip the ``{namespace}`` from an element tag.

    >>> _local("{http://www.openmicroscopy.org/Schemas/OME/2016-06}Image")
    'Image'
    """
    return tag.rsplit("}", 1)[-1]


def _children(elem: ET.Element, name: str) -> list[ET.Element]:
    return [child for child in elem if _local(child.tag) == name]


def looks_like_ome_xml(text: str | bytes | None) -> bool:
    """True for an image description that is (or was meant to be) an OME-XML document.

    Only the first 4 KiB are looked at: an XML document whose root is ``OME`` or which names
    the OME schema namespace. Truncated or otherwise damaged OME-XML still counts, so the
    reader can refuse it instead of silently reading the pages as a plain TIFF.

    >>> looks_like_ome_xml('<?xml version="1.0"?><OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06"><Ima')
    True
    >>> looks_like_ome_xml("ImageJ=1.11a images=3"), looks_like_ome_xml('{"shape": [3, 4]}')
    (False, False)
    """
    if not text:
        return False
    if isinstance(text, bytes):
        text = text[:4096].decode("utf-8", "replace")
    head = text[:4096].lstrip()
    if not head.startswith("<"):
        return False
    return bool(_OME_ROOT.search(head)) or "openmicroscopy.org/Schemas/OME" in head


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
    return _parse_image(images[index], index, where)


def is_binary_only(root: ET.Element) -> bool:
    """True when the OME-XML only points to a separate metadata file (``BinaryOnly``)."""
    return bool(_children(root, "BinaryOnly"))


def parse_images(root: ET.Element, where: str) -> list[OmeImage]:
    """Every ``Image`` with ``Pixels``, in document order (what tifffile calls series).

    Raises
    ------
    CorruptInputError
        For sizes that are not positive integers, an unknown ``Type``, or channels whose
        ``SamplesPerPixel`` do not add up to ``SizeC``.
    """
    images = [img for img in _children(root, "Image") if _children(img, "Pixels")]
    return [_parse_image(image, i, where) for i, image in enumerate(images)]


def check_declared_sizes(images: list[OmeImage], where: str, stored_bytes: int) -> None:
    """Refuse OME-XML sizes that the stored files cannot hold, before tifffile sees them.

    tifffile allocates per-plane lists from ``SizeT * SizeC * SizeZ`` while it builds the
    series (``SizeZ="1000000000"`` makes it allocate 7.6 GiB), so the XML's own claims are
    checked first: each plane needs an IFD of at least :data:`MIN_IFD_BYTES` bytes, no image
    may have more planes than :data:`~ome_arrow_dask.limits.MAX_CHUNKS`, and the declared
    pixel bytes go through :func:`~ome_arrow_dask.limits.check_declared_bytes`.
    ``stored_bytes`` is the size of the file plus the companion files its XML refers to.

    >>> img = OmeImage({"T": 1, "C": 1, "Z": 10**9, "Y": 8, "X": 8}, "XYZCT", PhysicalSize(), ())
    >>> check_declared_sizes([img], "a.ome.tif", 40_000)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ome_arrow_dask.errors.ResourceLimitError: a.ome.tif: OME-XML Image 0 declares 1,000,000,000 planes...
    """
    total_planes = 0
    for i, image in enumerate(images):
        planes = image.planes
        if planes > limits.MAX_CHUNKS:
            raise ResourceLimitError(
                f"{where}: OME-XML Image {i} declares {planes:,} planes (sizes {image.sizes}), more than the limit "
                f"{limits.MAX_CHUNKS:,} (ome_arrow_dask.limits.MAX_CHUNKS); the XML is damaged or the image too large"
            )
        itemsize = image.dtypes[0].itemsize if image.dtypes else 1
        declared = math.prod(image.sizes.values()) * itemsize
        limits.check_declared_bytes(f"{where} (OME-XML Image {i}, sizes {image.sizes})", declared, stored_bytes)
        total_planes += planes
    if total_planes * MIN_IFD_BYTES > stored_bytes:
        raise CorruptInputError(
            f"{where}: OME-XML declares {total_planes:,} planes but the file(s) hold only {stored_bytes:,} bytes, "
            f"too few for one TIFF IFD per plane; the OME-XML sizes are damaged"
        )


def _parse_image(image: ET.Element, index: int, where: str) -> OmeImage:
    pixels = _children(image, "Pixels")[0]
    try:
        sizes = {axis: int(pixels.attrib.get(f"Size{axis}", "1")) for axis in "TCZYX"}
    except ValueError as exc:
        raise CorruptInputError(f"{where}: OME-XML Image {index} Pixels sizes are not integers: {exc}") from exc
    if any(v < 1 for v in sizes.values()):
        raise CorruptInputError(f"{where}: OME-XML Image {index} Pixels sizes {sizes} must be positive")
    pixel_type = pixels.attrib.get("Type")
    if pixel_type is not None and pixel_type not in OME_PIXEL_TYPES:
        raise CorruptInputError(
            f"{where}: OME-XML Image {index} Pixels Type {pixel_type!r} is not an OME pixel type "
            f"({', '.join(OME_PIXEL_TYPES)})"
        )
    samples = _samples_per_pixel(pixels, sizes["C"], index, where)
    return OmeImage(
        sizes=sizes,
        dimension_order=pixels.attrib.get("DimensionOrder", "XYZCT"),
        physical_size=_physical_size(pixels),
        channels=_channels(pixels),
        id=image.attrib.get("ID"),
        name=image.attrib.get("Name"),
        acquisition_datetime=_datetime(image),
        pixel_type=pixel_type,
        samples_per_pixel=samples,
    )


def _samples_per_pixel(pixels: ET.Element, size_c: int, index: int, where: str) -> int:
    """The channels' common ``SamplesPerPixel``; their sum must be ``SizeC`` (OME schema rule)."""
    channels = _children(pixels, "Channel")
    if not channels:
        return 1
    try:
        samples = [int(ch.attrib.get("SamplesPerPixel", "1") or 1) for ch in channels]
    except ValueError as exc:
        raise CorruptInputError(f"{where}: OME-XML Image {index} Channel SamplesPerPixel is not an integer") from exc
    lazy = all(n == 1 for n in samples) and len(samples) < size_c  # Channel elements left out: tolerated
    if any(n < 1 for n in samples) or len(set(samples)) != 1 or (sum(samples) != size_c and not lazy):
        raise CorruptInputError(
            f"{where}: OME-XML Image {index} has {len(channels)} Channel elements with SamplesPerPixel {samples}, "
            f"which do not add up to SizeC={size_c} (or differ from each other)"
        )
    return samples[0]
