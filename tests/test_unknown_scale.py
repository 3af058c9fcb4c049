"""An unknown physical size stays unknown through OME-Zarr and Parquet (issue 13).

NGFF requires a scale on every axis. Convention (writers/_ngff_meta.py, sources/_ngff.py):
an unknown size is written as scale 1.0 with no unit, and "1.0 without unit" reads back
as unknown (None). Any other scale without a unit stays a size without a unit, and 1.0
with a unit stays a known size. Before the fix, an image without a physical size read
back from OME-Zarr with a physical size of 1.0.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from ome_arrow_dask import OMEArrow
from ome_arrow_dask.meta import PhysicalSize
from ome_arrow_dask.sources.base import MetaOverride

UNKNOWN = PhysicalSize()
ARR = np.arange(1 * 2 * 3 * 12 * 10, dtype=np.uint16).reshape(1, 2, 3, 12, 10)


def _with(physical: PhysicalSize) -> OMEArrow:
    image = OMEArrow(ARR)
    return OMEArrow(MetaOverride(image.source, image.meta.replace(physical_size=physical)))


def _ngff_axes_and_scale(out) -> tuple[list[dict], list[float]]:
    ms = json.loads((out / "zarr.json").read_text())["attributes"]["ome"]["multiscales"][0]
    transforms = ms["datasets"][0]["coordinateTransformations"]
    return ms["axes"], next(t["scale"] for t in transforms if t["type"] == "scale")


@pytest.mark.parametrize("levels", [1, 2])
def test_zarr_unknown_size_stays_unknown(tmp_path, levels):
    image = OMEArrow(ARR)
    assert image.meta.physical_size == UNKNOWN
    out = tmp_path / "u.ome.zarr"
    image.export("ome-zarr", out=out, levels=levels)
    axes, scale = _ngff_axes_and_scale(out)
    assert scale == [1.0] * 5  # NGFF needs a scale ...
    assert all("unit" not in axis for axis in axes)  # ... and no unit marks it as unknown
    back = OMEArrow.scan(out)
    assert back.meta.physical_size == UNKNOWN
    np.testing.assert_array_equal(back.to_numpy(), ARR)


def test_zarr_known_sizes_stay_known(tmp_path):
    known = PhysicalSize(z=2.0, y=0.5, x=0.5, z_unit="µm", y_unit="µm", x_unit="µm")
    out = tmp_path / "k.ome.zarr"
    _with(known).export("ome-zarr", out=out)
    assert OMEArrow.scan(out).meta.physical_size == known


def test_zarr_size_one_with_unit_stays_known(tmp_path):
    one = PhysicalSize(z=1.0, y=1.0, x=1.0, z_unit="µm", y_unit="nm", x_unit="nm")
    out = tmp_path / "one.ome.zarr"
    _with(one).export("ome-zarr", out=out)
    assert OMEArrow.scan(out).meta.physical_size == one


def test_zarr_size_without_unit_that_is_not_one_stays(tmp_path):
    unitless = PhysicalSize(z=3.0, y=0.5, x=0.25)
    out = tmp_path / "nounit.ome.zarr"
    _with(unitless).export("ome-zarr", out=out)
    assert OMEArrow.scan(out).meta.physical_size == unitless


def test_zarr_mixed_known_and_unknown_axes(tmp_path):
    # Z unknown though a unit is recorded: no unit is written for it, so it reads back unknown.
    mixed = PhysicalSize(z=None, y=0.5, x=0.5, z_unit="µm", y_unit="µm", x_unit="µm")
    out = tmp_path / "mixed.ome.zarr"
    _with(mixed).export("ome-zarr", out=out)
    axes, scale = _ngff_axes_and_scale(out)
    assert scale == [1.0, 1.0, 1.0, 0.5, 0.5]
    assert [a.get("unit") for a in axes] == [None, None, None, "micrometer", "micrometer"]
    assert OMEArrow.scan(out).meta.physical_size == PhysicalSize(y=0.5, x=0.5, y_unit="µm", x_unit="µm")


@pytest.mark.parametrize("layout", ["dataset", "struct"])
@pytest.mark.parametrize(
    "physical",
    [UNKNOWN, PhysicalSize(z=2.0, y=0.5, x=0.5, z_unit="µm", y_unit="µm", x_unit="µm")],
    ids=["unknown", "0.5um"],
)
def test_parquet_round_trip_keeps_known_and_unknown(tmp_path, layout, physical):
    out = tmp_path / ("p.ome.parquet" if layout == "dataset" else "p.parquet")
    _with(physical).export(how="parquet", out=out, layout=layout)
    back = OMEArrow.scan(out).meta.physical_size
    assert (back.z, back.y, back.x) == (physical.z, physical.y, physical.x)  # null sizes stay null
    if layout == "dataset" or physical != UNKNOWN:
        assert back == physical
    # (the struct layout's pixels_meta gives every axis a unit, "µm" by default, as ome-arrow does)


def test_parquet_then_zarr_unknown_stays_unknown(tmp_path):
    OMEArrow(ARR).export(how="parquet", out=tmp_path / "a.ome.parquet")
    OMEArrow.scan(tmp_path / "a.ome.parquet").export("ome-zarr", out=tmp_path / "b.ome.zarr")
    assert OMEArrow.scan(tmp_path / "b.ome.zarr").meta.physical_size == UNKNOWN


@pytest.mark.parametrize("version", ["0.5", "0.4"])
def test_zarr_lower_levels_of_an_unknown_size_stay_unknown(tmp_path, version):
    """Level k of an unknown size is written as scale 2**k without a unit; it reads as unknown too.

    Before: level 0 read as unknown but level 1 as y=2.0, x=2.0 (no unit), although nothing
    about the pixel size is known (the OME-TIFF written from the same image says None).
    """
    out = tmp_path / "u.ome.zarr"
    OMEArrow(ARR).export("ome-zarr", out=out, levels=3, version=version)
    for level in range(3):
        assert OMEArrow.scan(out, level=level).meta.physical_size == UNKNOWN
    known = PhysicalSize(z=2.0, y=0.5, x=0.5, z_unit="µm", y_unit="µm", x_unit="µm")
    out_known = tmp_path / "k.ome.zarr"
    _with(known).export("ome-zarr", out=out_known, levels=2, version=version)
    assert OMEArrow.scan(out_known, level=1).meta.physical_size == PhysicalSize(
        z=2.0, y=1.0, x=1.0, z_unit="µm", y_unit="µm", x_unit="µm"
    )
    unitless = PhysicalSize(z=3.0, y=0.5, x=0.5)  # level 0 at 0.5 without a unit: level 1 is 1.0, a size
    out_unitless = tmp_path / "n.ome.zarr"
    _with(unitless).export("ome-zarr", out=out_unitless, levels=2, version=version)
    assert OMEArrow.scan(out_unitless, level=1).meta.physical_size == PhysicalSize(z=3.0, y=1.0, x=1.0)
