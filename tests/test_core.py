"""OMEArrow plans: laziness (read counts), explain, errors, dtypes, distributed execution."""

from __future__ import annotations

import itertools
import pickle

import dask
import dask.array as da
import numpy as np
import pytest
from counting import CountingSource

from ome_arrow_dask import (
    DimOrderError,
    OMEArrow,
    OmeArrowDaskError,
    SelectionError,
    UnsupportedSourceError,
)
from ome_arrow_dask.sources.base import ArraySource


@pytest.fixture
def volume(rng):
    return rng.integers(0, 60000, size=(2, 3, 6, 64, 80), dtype=np.uint16)


@pytest.fixture
def counting(volume):
    return CountingSource(volume, chunks=(1, 1, 2, 16, 32))


def expected_chunks(selection, chunks):
    """Brute force: every chunk whose extent holds at least one selected index."""
    per_axis = []
    for index, sizes in zip(selection, chunks, strict=True):
        edges = np.cumsum((0, *sizes))
        per_axis.append(sorted({int(np.searchsorted(edges, i, side="right") - 1) for i in index}))
    return set(itertools.product(*per_axis))


def test_metadata_and_explain_read_no_pixels(counting):
    img = OMEArrow(counting)
    crop = img.slice_lazy(0, 40, 0, 30).slice_lazy(5, 35, 10, 20, z_indices=[0, 3], c_indices=[2])
    _ = (crop.shape, crop.dtype, crop.chunks, crop.nbytes, crop.meta, crop.info())
    text = crop.explain()
    crop.to_dask()  # building the graph reads nothing either
    want = len(expected_chunks(crop.selection, counting.meta.chunks))
    assert f"reads {want} of 216 chunks" in text
    assert counting.total_reads == 0


def test_collect_reads_exactly_the_intersected_chunks(counting, volume):
    crop = OMEArrow(counting).slice_lazy(10, 70, 20, 40, t_indices=[1], z_indices=[0, 5])
    want = expected_chunks(crop.selection, counting.meta.chunks)  # before collect(), which works in place
    result = crop.collect().to_numpy()
    np.testing.assert_array_equal(result, volume[1:2][:, :, [0, 5]][..., 20:40, 10:70])
    assert set(counting.reads) == want
    assert all(n == 1 for n in counting.reads.values())  # each chunk read once
    assert crop.read_plan.chunks_read == len(want)


def test_slice_lazy_composes_relative_coordinates(volume):
    img = OMEArrow(volume, dim_order="TCZYX")
    crop = img.slice_lazy(0, 60, 0, 50).slice_lazy(10, 30, 5, 25, z_indices=[1, 3])
    expected = volume[:, :, :, 0:50, 0:60][:, :, [1, 3], 5:25, 10:30]
    np.testing.assert_array_equal(crop.collect().to_numpy(), expected)
    # the source plan is unchanged (immutable)
    assert img.shape == volume.shape


def test_explain_golden():
    array = np.zeros((4, 64, 64), dtype=np.uint16)
    crop = OMEArrow(array, chunks=(1, 1, 2, 16, 16)).slice_lazy(0, 40, 0, 40).slice_lazy(8, 30, 4, 20, z_indices=[0, 2])
    assert crop.explain() == (
        "OMEArrow plan\n"
        "  source: in-memory numpy array (dim_order ZYX)\n"
        "    shape (1, 1, 4, 64, 64) uint16, chunk shape (1, 1, 2, 16, 16), 32 chunks\n"
        "  steps:\n"
        "    1. slice_lazy(x=0:40, y=0:40)\n"
        "    2. slice_lazy(x=8:30, y=4:20, z=[0, 2])\n"
        "  selection (source coordinates): t=0:1 c=0:1 z=[0, 2] y=4:20 x=8:30\n"
        "  result: shape (1, 1, 2, 16, 22) uint16, 1.4 KiB, 8 blocks\n"
        "  reads 8 of 32 chunks (8.0 KiB)"
    )


def test_output_blocks_follow_source_chunks(volume):
    crop = OMEArrow(volume, dim_order="TCZYX", chunks=(1, 1, 2, 16, 32)).slice_lazy(10, 70, 20, 40)
    assert crop.chunks[3:] == ((12, 8), (22, 32, 6))
    lazy = crop.to_dask()
    assert len(lazy.dask.layers) == 1  # one layer: one task per block, plus the source key
    assert lazy.npartitions == crop.read_plan.num_blocks


def test_task_names_are_deterministic(volume):
    a = OMEArrow(volume, dim_order="TCZYX").slice_lazy(1, 9, 2, 8).to_dask()
    b = OMEArrow(volume, dim_order="TCZYX").slice_lazy(1, 9, 2, 8).to_dask()
    c = OMEArrow(volume, dim_order="TCZYX").slice_lazy(1, 9, 2, 7).to_dask()
    assert a.name == b.name != c.name


@pytest.mark.parametrize(
    "dtype", ["uint8", "int8", "uint16", "int16", "uint32", "int32", "int64", "float16", "float32", "float64", "bool"]
)
def test_dtype_is_kept_exactly(dtype):
    array = (np.arange(2 * 5 * 7) - 20).reshape(2, 5, 7).astype(dtype)
    img = OMEArrow(array)
    assert img.dtype == np.dtype(dtype)
    out = img.slice_lazy(1, 6, 0, 4).collect().to_numpy()
    assert out.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(out[0, 0], array[:, 0:4, 1:6])


def test_big_endian_input_comes_out_native():
    array = np.arange(24, dtype=">u2").reshape(4, 6)
    out = OMEArrow(array).to_numpy()
    assert out.dtype == np.dtype("uint16") and out.dtype.isnative
    np.testing.assert_array_equal(out[0, 0, 0], array)


@pytest.mark.parametrize(
    ("shape", "dim_order", "expected_shape"),
    [
        ((6, 7), None, (1, 1, 1, 6, 7)),
        ((3, 6, 7), None, (1, 1, 3, 6, 7)),
        ((2, 3, 6, 7), None, (2, 3, 1, 6, 7)),
        ((2, 3, 4, 6, 7), None, (2, 3, 4, 6, 7)),
        ((6, 7, 3), "YXC", (1, 3, 1, 6, 7)),
        ((5, 6, 7), "BHW", (5, 1, 1, 6, 7)),
        ((4, 2, 6, 7), "ZCYX", (1, 2, 4, 6, 7)),
    ],
)
def test_dim_order_rules(shape, dim_order, expected_shape):
    array = np.arange(np.prod(shape), dtype=np.float32).reshape(shape)
    img = OMEArrow(array, dim_order=dim_order)
    assert img.shape == expected_shape
    order = dim_order or {2: "YX", 3: "ZYX", 4: "TCYX", 5: "TCZYX"}[len(shape)]
    order = order.replace("B", "T").replace("H", "Y").replace("W", "X")
    present = [ax for ax in "TCZYX" if ax in order]
    expected = array.transpose([order.index(ax) for ax in present]).reshape(expected_shape)
    np.testing.assert_array_equal(img.to_numpy(), expected)


@pytest.mark.parametrize(
    ("dim_order", "message"),
    [("ZY", "has 2 letters"), ("ZYQ", "unknown letters"), ("ZYY", "repeats"), ("TZC", "must contain Y and X")],
)
def test_bad_dim_order_is_a_clear_value_error(dim_order, message):
    with pytest.raises(DimOrderError, match=message):
        OMEArrow(np.zeros((2, 3, 4)), dim_order=dim_order)
    assert issubclass(DimOrderError, ValueError)


def test_six_dims_need_a_clear_error():
    with pytest.raises(DimOrderError, match="2-D to 5-D"):
        OMEArrow(np.zeros((1,) * 6))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((-1, 4, 0, 4), r"x bounds \[-1, 4\)"),
        ((0, 0, 0, 4), r"x bounds \[0, 0\)"),
        ((0, 99, 0, 4), r"x_max <= 80"),
        ((3, 2, 0, 4), "x_min < x_max"),
        ((0, 4, 5, 5), r"y bounds \[5, 5\)"),
        ((0, 4, 0, 65), "y_max <= 64"),
    ],
)
def test_bad_slice_bounds(volume, args, message):
    with pytest.raises(SelectionError, match=message):
        OMEArrow(volume, dim_order="TCZYX").slice_lazy(*args)


def test_bad_index_lists(volume):
    img = OMEArrow(volume, dim_order="TCZYX")
    with pytest.raises(SelectionError, match="z index 6 out of range"):
        img.slice_lazy(0, 4, 0, 4, z_indices=[0, 6])
    with pytest.raises(OmeArrowDaskError, match="c_indices is empty"):
        img.slice_lazy(0, 4, 0, 4, c_indices=[])
    with pytest.raises(SelectionError, match="out of range"):  # relative to the earlier crop
        img.slice_lazy(0, 4, 0, 4, z_indices=[1, 2]).slice_lazy(0, 2, 0, 2, z_indices=[2])


def test_index_lists_are_sorted_and_deduplicated_like_ome_arrow(volume):
    img = OMEArrow(volume, dim_order="TCZYX").slice_lazy(0, 4, 0, 4, z_indices=[4, 1, 1])
    np.testing.assert_array_equal(img.to_numpy(), volume[:, :, [1, 4], :4, :4])


def test_scan_unknown_and_missing_paths(tmp_path):
    junk = tmp_path / "notes.txt"
    junk.write_text("not an image")
    with pytest.raises(UnsupportedSourceError, match=r"notes\.txt"):
        OMEArrow.scan(junk)
    with pytest.raises(FileNotFoundError, match="nothing-here"):
        OMEArrow.scan(tmp_path / "nothing-here.xyz")


def test_dim_order_with_a_path_is_refused(tmp_path):
    with pytest.raises(OmeArrowDaskError, match="dim_order is supported only for array inputs"):
        OMEArrow(str(tmp_path / "x.tif"), dim_order="YX")


def test_dask_input_keeps_its_chunks_and_stays_lazy():
    calls = []

    def make(block_id=None):
        calls.append(block_id)
        return np.full((4, 8, 8), block_id[0], dtype=np.int16)

    lazy = da.map_blocks(make, chunks=((4, 4, 4), (8,), (8,)), dtype=np.int16, meta=np.empty((0, 0, 0), np.int16))
    img = OMEArrow(lazy)
    assert img.chunks == ((1,), (1,), (4, 4, 4), (8,), (8,))
    assert img.is_lazy and calls == []
    out = img.slice_lazy(0, 8, 0, 8, z_indices=[5]).to_numpy()
    assert out[0, 0, 0, 0, 0] == 1


def test_torch_input_is_zero_copy():
    import torch

    tensor = torch.arange(2 * 3 * 4, dtype=torch.int16).reshape(2, 3, 4)
    source = ArraySource(tensor)
    assert source.array.ctypes.data == tensor.data_ptr()
    np.testing.assert_array_equal(OMEArrow(tensor).to_numpy()[0, 0], tensor.numpy())


def test_is_lazy_and_collect(volume, counting):
    assert not OMEArrow(volume, dim_order="TCZYX").is_lazy
    plan = OMEArrow(volume, dim_order="TCZYX").slice_lazy(0, 4, 0, 4)
    assert not plan.is_lazy and plan.shape == (2, 3, 6, 4, 4)  # in memory, as ome-arrow's eager fallback
    collected = plan.collect()  # in place, as in ome-arrow
    assert collected is plan and not plan.is_lazy and collected.collect() is collected
    assert OMEArrow(counting).is_lazy is False or counting.total_reads == 0


def test_metadata_is_carried_through_selection_and_collect():
    from ome_arrow_dask import Channel, ImageMeta, PhysicalSize
    from ome_arrow_dask.meta import regular_chunks

    array = np.zeros((1, 3, 2, 8, 8), dtype=np.uint8)
    meta = ImageMeta(
        shape=array.shape,
        dtype=array.dtype,
        chunks=regular_chunks(array.shape, (1, 1, 1, 8, 8)),
        channels=(Channel("DNA"), Channel("Mito", color_rgba=0xFF0000FF), Channel("ER")),
        physical_size=PhysicalSize(z=2.0, y=0.5, x=0.5, z_unit="µm", y_unit="µm", x_unit="µm"),
        name="cells",
        image_type="image",
    )
    img = OMEArrow(ArraySource(array, "TCZYX", meta=meta)).slice_lazy(0, 4, 0, 4, c_indices=[2, 1])
    assert img.meta.channel_names == ("Mito", "ER")
    collected = img.collect()
    assert collected.meta.channel_names == ("Mito", "ER")
    assert collected.meta.physical_size.z == 2.0 and collected.meta.name == "cells"
    assert OMEArrow(img, image_type="label").meta.image_type == "label"


def test_info_and_html():
    img = OMEArrow(np.arange(3 * 20 * 30, dtype=np.uint16).reshape(3, 20, 30))
    info = img.info()
    assert info["type"] == "3D image (z-stack)" and info["shape"] == (1, 1, 3, 20, 30)
    assert info["channels"] == 1 and not info["is_multichannel"]
    html = img._repr_html_()
    assert "data:image/png;base64" in html and "(1, 1, 3, 20, 30)" in html


def test_html_skips_thumbnail_when_expensive(volume):
    counting = CountingSource(volume, chunks=(1, 1, 1, 4, 4))  # a plane spans 320 chunks
    html = OMEArrow(counting)._repr_html_()
    # issue 17: no longer skipped; a bounded preview (centre crop within the 256-chunk budget) that says so
    assert "centre crop" in html and "data:image/png;base64" in html and 0 < counting.total_reads <= 256


def test_export_numpy_keeps_dtype_and_casts_on_request():
    array = np.array([[-1.5, 2.25]], dtype=np.float32)
    img = OMEArrow(array)
    assert img.export("numpy").dtype == np.float32
    assert img.export("numpy", dtype=np.int16).dtype == np.int16
    with pytest.raises(OmeArrowDaskError, match="unknown export format"):
        img.export("bmp", out="x.bmp")


def test_plans_pickle_and_run_on_a_process_cluster(volume):
    import distributed

    crop = OMEArrow(volume, dim_order="TCZYX", chunks=(1, 1, 2, 16, 32)).slice_lazy(5, 75, 3, 60, z_indices=[0, 4])
    lazy = pickle.loads(pickle.dumps(crop.to_dask()))
    with (
        distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster,
        distributed.Client(cluster) as client,
    ):
        result = client.compute(lazy).result()
    np.testing.assert_array_equal(result, volume[:, :, [0, 4], 3:60, 5:75])


def test_threaded_and_sync_schedulers_agree(volume):
    lazy = OMEArrow(volume, dim_order="TCZYX", chunks=(1, 1, 3, 20, 20)).slice_lazy(3, 77, 1, 63).to_dask()
    with dask.config.set(scheduler="sync"):
        sync = lazy.compute()
    np.testing.assert_array_equal(sync, lazy.compute(scheduler="threads"))
