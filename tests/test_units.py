"""One table of length units for every reader and writer, and PatternError in errors.py."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import tifffile

import ome_arrow_dask
from ome_arrow_dask import OMEArrow, PhysicalSize, units
from ome_arrow_dask.sources import _ngff, patterns
from ome_arrow_dask.sources import tiff as tiff_source
from ome_arrow_dask.writers import _ngff_meta
from ome_arrow_dask.writers import tiff as tiff_writer

# What each of the three former tables answered (before they became one).
OLD_UDUNITS = {
    "µm": "micrometer", "μm": "micrometer", "um": "micrometer", "micron": "micrometer", "micrometer": "micrometer",
    "nm": "nanometer", "nanometer": "nanometer", "pm": "picometer", "picometer": "picometer", "Å": "angstrom",
    "angstrom": "angstrom", "mm": "millimeter", "millimeter": "millimeter", "cm": "centimeter",
    "centimeter": "centimeter", "m": "meter", "meter": "meter",
}  # fmt: skip
OLD_UNIT_SYMBOLS = {
    "angstrom": "Å", "picometer": "pm", "nanometer": "nm", "micrometer": "µm", "micron": "µm", "millimeter": "mm",
    "centimeter": "cm", "meter": "m",
}  # fmt: skip


def test_readers_and_writers_use_the_one_table():
    assert _ngff_meta.udunits is units.udunits
    assert _ngff.unit_symbol is units.unit_symbol
    assert tiff_writer.ome_length_unit is units.ome_length_unit
    assert tiff_writer.UM_PER_UNIT is units.UM_PER_UNIT
    assert tiff_source.RESOLUTION_UNIT_UM is units.RESOLUTION_UNIT_UM


@pytest.mark.parametrize("unit", sorted(OLD_UDUNITS))
def test_udunits_answers_as_before(unit):
    assert units.udunits(unit) == OLD_UDUNITS[unit]
    assert units.udunits(f" {unit} ") == OLD_UDUNITS[unit]


@pytest.mark.parametrize("unit", ["micrometre", "Micron", "nanometre", "millimetre", "centimetre", "metre"])
def test_udunits_knows_every_spelling_the_tiff_writer_knows(unit):
    """The OME-Zarr writer used to drop these units (scale without a unit); the OME-TIFF writer kept them."""
    assert units.udunits(unit) == units.UDUNITS_NAMES[units.ome_length_unit(unit)]


@pytest.mark.parametrize("unit", ["furlong", "", "MM", "second", None, "km", "in", "pixel"])
def test_udunits_unknown_is_none(unit):
    assert units.udunits(unit) is None


@pytest.mark.parametrize("name", [*sorted(OLD_UNIT_SYMBOLS), "second", "kilometer", "inch", "um"])
def test_unit_symbol_answers_as_before(name):
    assert units.unit_symbol(name) == OLD_UNIT_SYMBOLS.get(name, name)


def test_tables_agree():
    for symbol, name in units.UDUNITS_NAMES.items():
        assert symbol in units.OME_LENGTH_UNITS
        assert symbol in units.UM_PER_UNIT
        assert units.unit_symbol(name) == symbol  # NGFF read and write are inverse
        assert units.udunits(units.unit_symbol(name)) == name
        assert units.ome_length_unit(name) == symbol
    assert set(units.UM_PER_UNIT) <= set(units.OME_LENGTH_UNITS)
    assert units.RESOLUTION_UNIT_UM == {2: 25_400.0, 3: 10_000.0, 4: 1_000.0, 5: 1.0}


def test_zarr_writer_keeps_a_spelled_unit(tmp_path):
    img = OMEArrow(np.zeros((1, 1, 1, 8, 8), np.uint8))
    meta = img.meta.replace(physical_size=PhysicalSize(y=0.5, x=0.5, y_unit="micrometre", x_unit="micrometre"))
    from ome_arrow_dask.sources.base import MetaOverride

    out = OMEArrow(MetaOverride(img.source, meta)).export("ome-zarr", out=tmp_path / "a.ome.zarr")
    back = OMEArrow.scan(out).meta.physical_size
    assert (back.y, back.x, back.y_unit, back.x_unit) == (0.5, 0.5, "µm", "µm")


def test_tiff_resolution_units_read_as_before(tmp_path):
    path = tmp_path / "mm.tif"
    tifffile.imwrite(path, np.zeros((4, 4), np.uint8), resolution=(2, 4), resolutionunit="MILLIMETER")
    ps = OMEArrow.scan(path).meta.physical_size
    assert (ps.y, ps.x, ps.y_unit) == (250.0, 500.0, "µm")


def test_pattern_error_lives_in_errors_and_keeps_its_old_name():
    assert patterns.PatternError is ome_arrow_dask.errors.PatternError is ome_arrow_dask.PatternError
    assert issubclass(ome_arrow_dask.PatternError, ome_arrow_dask.OmeArrowDaskError)
    with pytest.raises(ome_arrow_dask.PatternError):
        patterns.compile_template("img_{q}.tif")
    error = pickle.loads(pickle.dumps(ome_arrow_dask.PatternError("bad pattern")))
    assert type(error) is ome_arrow_dask.PatternError and str(error) == "bad pattern"
