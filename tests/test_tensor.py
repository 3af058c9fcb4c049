"""Tensor views: layouts, strides, DLPack (zero-copy), iterators, prefetch, errors."""

from __future__ import annotations

import importlib.util
import threading

import numpy as np
import pytest
import torch
from counting import CountingSource

from ome_arrow_dask import LayoutError, LazyTensorView, OMEArrow, SelectionError, TensorView
from ome_arrow_dask.errors import OmeArrowDaskError


@pytest.fixture
def array(rng):
    return rng.integers(-1000, 1000, size=(4, 3, 5, 24, 32)).astype(np.int16)


@pytest.fixture
def img(array):
    return OMEArrow(array, dim_order="TCZYX", chunks=(1, 1, 2, 8, 16))


def canonical(a):
    """TCZYX -> ome-arrow's TZCYX tensor order."""
    return a.transpose(0, 2, 1, 3, 4)


def test_default_layouts_follow_ome_arrow(img, array):
    one = img.tensor_view(t=1, z=2)
    assert one.layout == "CHW" and one.shape == (3, 24, 32)
    np.testing.assert_array_equal(one.to_numpy(), array[1, :, 2])
    many = img.tensor_view(t=1)
    assert many.layout == "TZCHW" and many.shape == (1, 5, 3, 24, 32)
    np.testing.assert_array_equal(many.to_numpy(), canonical(array[1:2]))


def test_issue_example_view(img, array):
    view = img.tensor_view(t=0, z=slice(0, 8), roi=(4, 6, 12, 10), layout="ZCYX")
    expected = array[0, :, 0:5, 6:16, 4:16].transpose(1, 0, 2, 3)
    assert view.shape == expected.shape and view.dtype == np.int16
    np.testing.assert_array_equal(view.to_numpy(), expected)


@pytest.mark.parametrize("layout", ["YXC", "CHW", "HWC", "XYC", "TZCYX", "CZTYX", "ZCYX"])
def test_layout_strides_match_numpy_and_need_no_compute(layout, array):
    counting = CountingSource(array, chunks=(1, 1, 2, 8, 16))
    view = OMEArrow(counting).tensor_view(t=2, z=[1] if "Z" not in layout else [1, 3], layout=layout)
    shape, strides = view.shape, view.strides
    assert counting.total_reads == 0
    out = view.to_numpy()
    assert out.shape == shape and out.strides == strides
    assert view.to_numpy(contiguous=True).flags.c_contiguous


def test_ome_arrow_strides_example():
    # OME_ARROW_COMPAT.md 1.4: layout "YXC" on a 37 x 53 uint16 image gives strides (106, 2, 3922).
    view = OMEArrow(np.zeros((2, 37, 53), np.uint16), dim_order="CYX").tensor_view(layout="YXC")
    assert view.strides == (106, 2, 3922)


def test_torch_from_dlpack_shares_memory(img):
    view = img.tensor_view(t=0, z=slice(0, 4), roi=(0, 0, 16, 8), layout="ZCYX")
    tensor = torch.from_dlpack(view)
    assert tensor.data_ptr() == view.to_numpy().ctypes.data
    assert tuple(tensor.shape) == view.shape
    tensor[0, 0, 0, 0] = 1234  # writes through: same memory
    assert view.to_numpy()[0, 0, 0, 0] == 1234


def test_permuted_layout_dlpack_is_a_strided_alias(img):
    view = img.tensor_view(t=0, z=0, layout="YXC")
    tensor = torch.from_dlpack(view)
    assert tensor.data_ptr() == view.to_numpy().ctypes.data
    assert tensor.stride() == tuple(s // 2 for s in view.strides)


def test_each_dlpack_call_is_a_fresh_capsule(img):
    view = img.tensor_view(t=0, z=0)
    first, second = torch.from_dlpack(view), torch.from_dlpack(view)
    assert first.data_ptr() == second.data_ptr()
    export = view.to_dlpack()
    a, b = np.from_dlpack(export), np.from_dlpack(export)
    np.testing.assert_array_equal(a, b)
    assert view.__dlpack_device__() == (1, 0)


def test_arrow_mode_is_a_flat_zero_copy_export(img, array):
    view = img.tensor_view(t=1, z=1, c=0)
    export = view.to_dlpack(mode="arrow")
    flat = np.from_dlpack(export)
    assert flat.ndim == 1 and flat.ctypes.data == view.to_numpy().ctypes.data
    np.testing.assert_array_equal(flat.reshape(view.shape), array[1, 0:1, 1])


def test_to_torch_and_to_jax(img, array):
    view = img.tensor_view(t=3, z=4)
    np.testing.assert_array_equal(view.to_torch().numpy(), array[3, :, 4])
    if importlib.util.find_spec("jax") is None:
        with pytest.raises(ImportError, match="ome-arrow-dask\\[jax\\]"):
            view.to_jax()
    else:
        np.testing.assert_array_equal(np.asarray(view.to_jax()), array[3, :, 4])


def test_cuda_without_cupy_says_how_to_install(img):
    if importlib.util.find_spec("cupy") is not None:
        pytest.skip("cupy is installed here: the GPU tests cover device exports")
    with pytest.raises(ImportError, match="ome-arrow-dask\\[gpu\\]"):
        img.tensor_view(t=0, z=0).to_dlpack(device="cuda")
    with pytest.raises(ImportError, match="ome-arrow-dask\\[gpu\\]"):
        img.to_device("cuda")


def test_lazy_view_collects_once(array):
    counting = CountingSource(array, chunks=(1, 1, 5, 24, 32))
    plan = OMEArrow(counting).slice_lazy(0, 10, 0, 10)
    view = LazyTensorView(plan, t=0, c=1)  # an in-memory plan gets a TensorView from tensor_view()
    assert counting.total_reads == 0
    collected = view.collect()
    assert isinstance(collected, TensorView) and view.collect() is collected
    np.testing.assert_array_equal(view.to_numpy(), canonical(array[0:1, 1:2, :, 0:10, 0:10]))
    assert counting.total_reads == 1


def test_select_composes_and_with_layout_keeps_selection(img, array):
    view = img.tensor_view(t=[3, 1, 0], roi=(4, 4, 20, 16), layout="TZCYX")
    sub = view.select(t=[2, 0], roi=(1, 2, 5, 3))  # relative to the view
    expected = canonical(array[[0, 3]][..., 4:20, 4:24][..., 2:5, 1:6])
    np.testing.assert_array_equal(sub.to_numpy(), expected)
    assert view.shape == (3, 5, 3, 16, 20)  # the parent is unchanged
    np.testing.assert_array_equal(sub.with_layout("ZTCYX").to_numpy(), expected.transpose(1, 0, 2, 3, 4))


def test_t_indices_keep_order_and_duplicates(img, array):
    view = img.tensor_view(t=[1, 1, 0], z=0, c=0, layout="TYX")
    np.testing.assert_array_equal(view.to_numpy(), array[[1, 1, 0], 0, 0])


def test_roi3d_roi_nd_and_tile(img, array):
    np.testing.assert_array_equal(
        img.tensor_view(t=0, roi3d=(2, 3, 1, 5, 4, 3), layout="ZCYX").to_numpy(),
        array[0, :, 1:4, 3:7, 2:7].transpose(1, 0, 2, 3),
    )
    np.testing.assert_array_equal(
        img.tensor_view(roi_nd=(1, 2, 3, 3, 9, 12), roi_type="3d", t=0, layout="ZCYX").to_numpy(),
        array[0, :, 1:3, 2:9, 3:12].transpose(1, 0, 2, 3),
    )
    np.testing.assert_array_equal(
        img.tensor_view(roi_nd=(1, 0, 2, 3, 3, 5, 9, 12), c=0, layout="TZYX").to_numpy(),
        array[1:3, 0, 0:5, 2:9, 3:12],
    )
    tile = img.tensor_view(t=0, z=0, tile=(2, 1))  # chunks are 8 x 16: the last tile of each axis
    np.testing.assert_array_equal(tile.to_numpy(), array[0, :, 0, 16:24, 16:32])


def test_channel_policy_first(img, array):
    with pytest.raises(LayoutError, match="channel_policy='first'"):
        img.tensor_view(t=0, z=0, layout="YX").to_numpy()  # raised when used, as in ome-arrow
    view = img.tensor_view(t=0, z=0, c=[2, 1], layout="YX", channel_policy="first")
    assert view.shape == (24, 32)
    np.testing.assert_array_equal(view.to_numpy(), array[0, 2, 0])


def test_dtype_cast(img, array):
    view = img.tensor_view(t=0, z=0, dtype="float32")
    assert view.dtype == np.float32 and view.to_numpy().dtype == np.float32
    np.testing.assert_array_equal(view.to_numpy(), array[0, :, 0].astype(np.float32))


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"layout": "TZQ"}, LayoutError, "unknown letters"),
        ({"layout": "YYX"}, LayoutError, "repeats"),
        ({"t": 4}, SelectionError, "t index 4 out of range"),
        ({"z": [0, 9]}, SelectionError, "z index 9 out of range"),
        ({"z": slice(3, 3)}, SelectionError, "selects no Z planes"),
        ({"roi": (0, 0, 0, 5)}, SelectionError, "w, h > 0"),
        ({"roi": (-1, 0, 4, 4)}, SelectionError, "x, y >= 0"),
        ({"roi": (30, 0, 4, 4)}, SelectionError, "inside the 32 x 24"),
        ({"roi_nd": (0, 0, 0, 1, 1, 1)}, SelectionError, "pass roi_type"),
        ({"roi_type": "2d"}, SelectionError, "roi_type requires roi_nd"),
        ({"roi3d": (0, 0, 0, 2, 2, 2), "z": 0}, SelectionError, "Provide either z or roi3d"),
        ({"roi_nd": (0, 0, 0, 1, 1, 1), "roi_type": "3d", "z": 1}, SelectionError, "conflict"),
        ({"tile": (3, 0)}, SelectionError, "outside the 3 x 2 chunk grid"),
        ({"scene": 1}, SelectionError, "scene=1"),
        ({"channel_policy": "mean", "layout": "TZCYX"}, LayoutError, "channel_policy"),
    ],
)
def test_bad_view_arguments(img, kwargs, error, message):
    with pytest.raises(error, match=message):
        img.tensor_view(**kwargs)
    assert issubclass(error, ValueError)


def test_iter_dlpack_batches_follow_t_and_shuffle_is_seeded(img, array):
    view = img.tensor_view(z=1, c=0, layout="TYX")
    batches = [torch.from_dlpack(cap).numpy() for cap in view.iter_dlpack(batch_size=3)]
    assert [b.shape[0] for b in batches] == [3, 1]
    np.testing.assert_array_equal(np.concatenate(batches), array[:, 0, 1])

    def order(seed):
        return [
            tuple(int(v) for v in np.from_dlpack(cap)[:, 0, 0])
            for cap in view.iter_dlpack(batch_size=1, shuffle=True, seed=seed)
        ]

    firsts = {tuple(int(v) for v in array[t : t + 1, 0, 1, 0, 0]): t for t in range(4)}
    assert order(7) == order(7)
    assert sorted(firsts[o] for o in order(7)) == [0, 1, 2, 3]


def test_iter_dlpack_tiles_cover_the_roi(img, array):
    view = img.tensor_view(t=0, z=0, roi=(2, 1, 30, 20), layout="CYX")
    tiles = [np.from_dlpack(cap) for cap in view.iter_dlpack(tile_size=(8, 16))]
    assert [t.shape for t in tiles] == [(3, 8, 16), (3, 8, 14)] * 2 + [(3, 4, 16), (3, 4, 14)]
    top = np.concatenate(tiles[0:2], axis=2)
    np.testing.assert_array_equal(top, array[0, :, 0, 1:9, 2:32])


def test_iter_tiles_3d(img, array):
    view = img.tensor_view(t=[0, 2], c=1, layout="TZCYX")
    tiles = list(view.iter_tiles_3d(tile_size=(2, 12, 32)))
    assert len(tiles) == 2 * 3 * 2
    first = np.from_dlpack(tiles[0])
    assert first.shape == (1, 2, 1, 12, 32)
    np.testing.assert_array_equal(first, canonical(array[0:1, 1:2, 0:2, 0:12]))
    total = sum(int(np.from_dlpack(t).astype(np.int64).sum()) for t in tiles)
    assert total == int(array[[0, 2], 1].astype(np.int64).sum())


def test_prefetch_computes_the_next_batch_while_the_consumer_works(array):
    """The consumer holds batch 0 and waits; batch 1 must be read meanwhile (no timing)."""
    second_batch_read = threading.Event()

    def on_read(coords):
        if coords[0] == 1:
            second_batch_read.set()

    counting = CountingSource(array, chunks=(1, 3, 5, 24, 32), on_read=on_read)
    view = OMEArrow(counting).tensor_view(layout="TZCYX")
    iterator = view.iter_dlpack(batch_size=1, prefetch=1)
    next(iterator)
    assert second_batch_read.wait(timeout=30), "prefetch=1 did not start reading the next batch"
    rest = [np.from_dlpack(cap) for cap in iterator]
    np.testing.assert_array_equal(rest[-1], canonical(array[3:4]))


def test_without_prefetch_nothing_is_read_ahead(array):
    counting = CountingSource(array, chunks=(1, 3, 5, 24, 32))
    iterator = OMEArrow(counting).tensor_view(layout="TZCYX").iter_dlpack(batch_size=1, prefetch=0)
    next(iterator)
    assert set(counting.reads) == {(0, 0, 0, 0, 0)}
    with pytest.raises(OmeArrowDaskError, match="prefetch must be >= 0"):
        next(OMEArrow(counting).tensor_view().iter_dlpack(prefetch=-1))
