"""xarray export / import: lazy DataArrays with physical coordinates, channel names and OME attrs."""

from __future__ import annotations

import datetime as dt

import dask.array as da
import numpy as np
import pytest
from counting import CountingSource

from ome_arrow_dask import Channel, DimOrderError, InconsistentInputError, OMEArrow, PhysicalSize
from ome_arrow_dask.sources.base import MetaOverride

xr = pytest.importorskip("xarray")


def _described(data: np.ndarray) -> tuple[CountingSource, OMEArrow]:
    counting = CountingSource(data, chunks=(1, 1, 2, 4, 4))
    meta = counting.meta.replace(
        channels=(Channel("DAPI", id="ch-0", color_rgba=0x0000FFFF), Channel("GFP", id="ch-1", emission_um=0.51)),
        physical_size=PhysicalSize(z=2.0, y=0.25, x=0.25, z_unit="µm", y_unit="µm", x_unit="µm"),
        name="cells",
        id="img-1",
        image_type="image",
        acquisition_datetime=dt.datetime(2024, 5, 6, 7, 8, 9, tzinfo=dt.UTC),
    )
    return counting, OMEArrow(MetaOverride(counting, meta))


@pytest.fixture
def image() -> tuple[CountingSource, OMEArrow]:
    return _described(np.arange(2 * 2 * 3 * 8 * 8, dtype="u2").reshape(2, 2, 3, 8, 8))


def test_to_xarray_is_lazy_and_dask_backed(image) -> None:
    counting, img = image
    arr = img.to_xarray()
    assert isinstance(arr, xr.DataArray)
    assert isinstance(arr.data, da.Array)
    assert arr.dims == ("t", "c", "z", "y", "x")
    sub = arr.sel(c="GFP").isel(z=1, y=slice(0, 4))
    assert counting.total_reads == 0  # building, selecting by label and slicing read nothing
    np.testing.assert_array_equal(sub.values, img.to_numpy()[:, 1, 1, :4])
    assert counting.total_reads > 0


def test_to_xarray_coordinates_units_and_attrs(image) -> None:
    _, img = image
    arr = img.to_xarray()
    assert list(arr.coords["c"].values) == ["DAPI", "GFP"]
    np.testing.assert_allclose(arr.coords["x"].values, np.arange(8) * 0.25)
    np.testing.assert_allclose(arr.coords["z"].values, [0.0, 2.0, 4.0])
    assert arr.coords["y"].attrs["units"] == "µm"
    assert "t" not in arr.coords  # no time increment in the metadata: no invented coordinate
    assert arr.attrs["units"] == {"z": "µm", "y": "µm", "x": "µm"}
    assert arr.attrs["physical_size"] == {"z": 2.0, "y": 0.25, "x": 0.25}
    assert arr.attrs["name"] == "cells" and arr.name == "cells"
    assert arr.attrs["ome"]["pixels_meta"]["physical_size_x"] == 0.25
    assert arr.attrs["channels"][0]["color_rgba"] == 0x0000FFFF


def test_crop_keeps_physical_position(image) -> None:
    _, img = image
    arr = img.slice_lazy(2, 6, 4, 8).to_xarray()
    np.testing.assert_allclose(arr.coords["x"].values, np.arange(2, 6) * 0.25)
    np.testing.assert_allclose(arr.coords["y"].values, np.arange(4, 8) * 0.25)


def test_round_trip_reads_back_dims_sizes_channels(image) -> None:
    counting, img = image
    back = OMEArrow(img.to_xarray())
    assert counting.total_reads == 0  # importing a dask-backed DataArray stays lazy
    meta = back.meta
    assert meta.shape == img.meta.shape
    assert meta.channel_names == ("DAPI", "GFP")
    assert meta.channels[0].color_rgba == 0x0000FFFF
    assert meta.channels[1].emission_um == pytest.approx(0.51)
    assert meta.physical_size == img.meta.physical_size
    assert (meta.name, meta.id, meta.image_type) == ("cells", "img-1", "image")
    assert meta.acquisition_datetime == img.meta.acquisition_datetime
    np.testing.assert_array_equal(back.to_numpy(), img.to_numpy())


def test_single_pixel_axis_size_comes_from_attrs(image) -> None:
    _, img = image
    back = OMEArrow(img.slice_lazy(0, 8, 0, 8, z_indices=[1]).to_xarray())
    assert back.meta.physical_size.z == 2.0  # one z coordinate: spacing from attrs["physical_size"]


def test_unknown_size_has_no_coordinate_and_stays_unknown() -> None:
    img = OMEArrow(np.zeros((4, 6), "f4"))
    arr = img.to_xarray()
    assert "x" not in arr.coords and "y" not in arr.coords
    back = OMEArrow(arr)
    assert back.meta.physical_size.x is None and back.meta.physical_size.y is None


def test_foreign_data_array_any_dim_order() -> None:
    values = np.arange(3 * 4 * 5, dtype="u1").reshape(5, 4, 3)  # x, y, c
    arr = xr.DataArray(
        values,
        dims=("X", "Y", "C"),
        coords={"X": ("X", np.arange(5) * 0.5, {"units": "nm"}), "C": ["a", "b", "c"]},
    )
    img = OMEArrow(arr)
    assert img.shape == (1, 3, 1, 4, 5)
    assert img.meta.channel_names == ("a", "b", "c")
    assert (img.meta.physical_size.x, img.meta.physical_size.x_unit) == (0.5, "nm")
    np.testing.assert_array_equal(img.to_numpy()[0, :, 0], values.transpose(2, 1, 0))


def test_bad_dims_and_irregular_coordinates_are_refused() -> None:
    with pytest.raises(DimOrderError, match="rename"):
        OMEArrow(xr.DataArray(np.zeros((2, 3)), dims=("row", "col")))
    irregular = xr.DataArray(np.zeros((2, 3)), dims=("y", "x"), coords={"x": [0.0, 1.0, 5.0]})
    with pytest.raises(InconsistentInputError, match="drop_vars"):
        OMEArrow(irregular)
    with pytest.raises(Exception, match="dim_order"):
        OMEArrow(xr.DataArray(np.zeros((2, 3)), dims=("y", "x")), dim_order="YX")


def test_dataset_is_refused_with_a_hint() -> None:
    dataset = xr.Dataset({"nuclei": (("y", "x"), np.zeros((2, 3)))})
    with pytest.raises(TypeError, match=r"dataset\['nuclei'\]"):
        OMEArrow(dataset)
