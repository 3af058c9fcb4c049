"""Units: byte counts for humans, and the physical length units shared by readers and writers.

One table of length units serves every format: OME-XML's ``UnitsLength`` symbols (what
:class:`~ome_arrow_dask.meta.PhysicalSize` carries), the spellings found in files and
user input, the UDUNITS-2 names OME-Zarr (NGFF) stores, and micrometres per unit for the
TIFF resolution tags.
"""

from __future__ import annotations

__all__ = [
    "OME_LENGTH_UNITS",
    "RESOLUTION_UNIT_UM",
    "UDUNITS_NAMES",
    "UM_PER_UNIT",
    "format_bytes",
    "ome_length_unit",
    "udunits",
    "unit_symbol",
]

OME_LENGTH_UNITS = (
    "Ym", "Zm", "Em", "Pm", "Tm", "Gm", "Mm", "km", "hm", "dam", "m", "dm", "cm", "mm", "µm", "nm", "pm", "fm",
    "am", "zm", "ym", "Å", "thou", "li", "in", "ft", "yd", "mi", "ua", "ly", "pc", "pt", "pixel", "reference frame",
)  # fmt: skip
"""OME ``UnitsLength`` symbols (the OME-XML schema's enumeration)."""

UDUNITS_NAMES = {
    "pm": "picometer",
    "Å": "angstrom",
    "nm": "nanometer",
    "µm": "micrometer",
    "mm": "millimeter",
    "cm": "centimeter",
    "m": "meter",
}
"""OME symbol -> UDUNITS-2 name, for the units OME-Zarr files are written with."""

_LENGTH_ALIASES = {
    "μm": "µm",  # Greek mu -> micro sign
    "um": "µm",
    "micron": "µm",
    "micrometer": "µm",
    "micrometre": "µm",
    "nanometer": "nm",
    "nanometre": "nm",
    "picometer": "pm",
    "angstrom": "Å",
    "millimeter": "mm",
    "millimetre": "mm",
    "centimeter": "cm",
    "centimetre": "cm",
    "meter": "m",
    "metre": "m",
    "inch": "in",
    "foot": "ft",
}
"""Other spellings of OME length units (names, ASCII, the Greek mu) -> OME symbol."""

_SYMBOL_OF_NGFF_NAME = {name: symbol for symbol, name in UDUNITS_NAMES.items()} | {"micron": "µm"}
"""NGFF unit name -> OME symbol, for reading OME-Zarr axes."""

UM_PER_UNIT = {"pm": 1e-6, "Å": 1e-4, "nm": 1e-3, "µm": 1.0, "mm": 1e3, "cm": 1e4, "m": 1e6}
"""Micrometres per OME length unit, for the TIFF resolution tags."""

RESOLUTION_UNIT_UM = {2: 25_400.0, 3: UM_PER_UNIT["cm"], 4: UM_PER_UNIT["mm"], 5: UM_PER_UNIT["µm"]}
"""Micrometres per TIFF ResolutionUnit: INCH, CENTIMETER, MILLIMETER, MICROMETER (NONE=1 has none)."""


def ome_length_unit(unit: str | None) -> str | None:
    """Map a length unit to its OME-XML symbol; None when it has none.

    >>> ome_length_unit("micrometer"), ome_length_unit("um"), ome_length_unit("nm"), ome_length_unit("furlong")
    ('µm', 'µm', 'nm', None)
    """
    if unit is None:
        return None
    text = unit.strip()
    text = _LENGTH_ALIASES.get(text, _LENGTH_ALIASES.get(text.lower(), text))
    return text if text in OME_LENGTH_UNITS else None


def udunits(unit: str | None) -> str | None:
    """Map a length unit (OME symbol or another spelling) to its UDUNITS-2 name; None when unknown.

    >>> udunits("µm"), udunits("um"), udunits("micrometre"), udunits("furlong")
    ('micrometer', 'micrometer', 'micrometer', None)
    """
    symbol = ome_length_unit(unit)
    return None if symbol is None else UDUNITS_NAMES.get(symbol)


def unit_symbol(unit: str | None) -> str | None:
    """NGFF unit name to the OME symbol ome-arrow uses (``micrometer`` -> ``µm``); other names unchanged.

    >>> unit_symbol("micrometer"), unit_symbol("micron"), unit_symbol("second"), unit_symbol(None)
    ('µm', 'µm', 'second', None)
    """
    return None if unit is None else _SYMBOL_OF_NGFF_NAME.get(unit, unit)


def format_bytes(n: int) -> str:
    """Human-readable byte count.

    >>> format_bytes(512), format_bytes(2 * 2**20), format_bytes(3 * 2**30 // 2)
    ('512 B', '2.0 MiB', '1.5 GiB')
    """
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")  # pragma: no cover
