"""map_blocks against whole-array scipy.ndimage / numpy oracles."""

from __future__ import annotations

import itertools

import dask
import dask.array as da
import numpy as np
import pytest
from counting import CountingSource
from scipy import ndimage as ndi

from ome_arrow_dask import OMEArrow
from ome_arrow_dask.blocks import Block, map_blocks, normalize_halo
from ome_arrow_dask.errors import DimOrderError, InconsistentInputError, OmeArrowDaskError, SelectionError
from ome_arrow_dask.meta import Channel, ImageMeta, PhysicalSize, regular_chunks
from ome_arrow_dask.sources.base import ArraySource

SHAPE = (1, 2, 8, 19, 22)
CHUNKS = (1, 2, 3, 7, 8)  # irregular last blocks on Z, Y, X; halos cross every block edge

# dask boundary -> scipy.ndimage mode (and cval) giving the same padding
BOUNDARY_TO_SCIPY = [
    ("reflect", {"mode": "reflect"}),
    ("periodic", {"mode": "wrap"}),
    ("nearest", {"mode": "nearest"}),
    (0, {"mode": "constant", "cval": 0.0}),
    (2.5, {"mode": "constant", "cval": 2.5}),
]


@pytest.fixture
def data(rng) -> np.ndarray:
    return rng.random(SHAPE)


@pytest.fixture
def img(data) -> OMEArrow:
    return OMEArrow(data, dim_order="TCZYX", chunks=CHUNKS)


def _per_tc(flt, a: np.ndarray, **mode) -> np.ndarray:
    """Apply a ZYX filter to every (t, c) volume."""
    return np.stack([np.stack([flt(a[t, c], **mode) for c in range(a.shape[1])]) for t in range(a.shape[0])])


def _filters():
    # (name, whole-array filter taking scipy mode kwargs, halo that covers its footprint)
    return [
        ("gaussian", lambda a, **m: ndi.gaussian_filter(a, (0, 0, 0.5, 1.0, 0.75), **m), (0, 0, 2, 4, 3)),
        ("uniform", lambda a, **m: ndi.uniform_filter(a, (1, 1, 3, 5, 7), **m), (0, 0, 1, 2, 3)),
        ("maximum", lambda a, **m: ndi.maximum_filter(a, (1, 1, 3, 3, 5), **m), (0, 0, 1, 1, 2)),
        ("laplace_per_plane", lambda a, **m: _per_tc(ndi.laplace, a, **m), (0, 0, 1, 1, 1)),
    ]


@pytest.mark.parametrize(("boundary", "scipy_mode"), BOUNDARY_TO_SCIPY, ids=lambda v: str(v))
@pytest.mark.parametrize(("name", "flt", "halo"), _filters(), ids=[f[0] for f in _filters()])
def test_filters_equal_whole_array_scipy(img, data, boundary, scipy_mode, name, flt, halo):
    def fill(block: Block) -> None:
        block.data[...] = flt(block.inputs[0], **scipy_mode)[block.halo]

    out = map_blocks(fill, img, halo=halo, boundary=boundary)
    np.testing.assert_allclose(out.to_numpy(), flt(data, **scipy_mode), rtol=1e-12, atol=1e-12, err_msg=name)


@pytest.mark.parametrize(("boundary", "scipy_mode"), BOUNDARY_TO_SCIPY[:2], ids=lambda v: str(v))
def test_halo_along_t_and_c(rng, boundary, scipy_mode):
    data = rng.random((2, 3, 4, 6, 7))
    img = OMEArrow(data, dim_order="TCZYX", chunks=(1, 2, 2, 3, 4))
    size = (3, 3, 1, 1, 3)
    out = map_blocks(
        lambda b: ndi.uniform_filter(b.inputs[0], size, **scipy_mode), img, halo=(1, 1, 0, 0, 1), boundary=boundary
    )
    np.testing.assert_allclose(out.to_numpy(), ndi.uniform_filter(data, size, **scipy_mode), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("scipy_mode", ["reflect", "mirror", "nearest", "constant"])
def test_boundary_none_leaves_the_edges_to_func(img, data, scipy_mode):
    # No padding at the image edges: an edge block starts at the edge, so scipy's own mode applies there.
    sigma = (0, 0, 0.75, 1.0, 1.5)
    out = map_blocks(
        lambda b: ndi.gaussian_filter(b.inputs[0], sigma, mode=scipy_mode), img, halo=(0, 0, 3, 4, 6), boundary="none"
    )
    np.testing.assert_allclose(
        out.to_numpy(), ndi.gaussian_filter(data, sigma, mode=scipy_mode), rtol=1e-12, atol=1e-12
    )


def test_block_index_min_max_halo_and_inputs(img, data):
    seen: list[Block] = []

    def record(block: Block) -> None:
        seen.append(block)
        np.testing.assert_array_equal(block.inputs[0][block.halo], data[block.slices])
        block.data[...] = np.ravel_multi_index(tuple(np.indices(block.dim)[d] + block.min[d] for d in range(5)), SHAPE)

    halo = {"z": 2, "y": 3, "x": 1}
    out = map_blocks(record, img, halo=halo, dtype="int64")
    with dask.config.set(scheduler="sync"):
        np.testing.assert_array_equal(out.to_numpy(), np.arange(data.size).reshape(SHAPE))
    starts = [np.cumsum((0, *c))[:-1] for c in img.chunks]
    expected = {
        idx: (
            tuple(int(starts[d][i]) for d, i in enumerate(idx)),
            tuple(int(starts[d][i] + img.chunks[d][i] - 1) for d, i in enumerate(idx)),
        )
        for idx in itertools.product(*(range(len(c)) for c in img.chunks))
    }
    assert {b.index: (b.min, b.max) for b in seen} == expected
    assert len(seen) == len(expected)
    depth = normalize_halo(halo)
    for b in seen:
        assert b.data.shape == b.dim
        assert b.inputs[0].shape == tuple(s + 2 * h for s, h in zip(b.dim, depth, strict=True))
        assert b.halo == tuple(slice(h, h + s) for h, s in zip(depth, b.dim, strict=True))


def test_several_inputs_with_different_chunkings(rng, img, data):
    b_data = rng.random(SHAPE)
    c_data = rng.random(SHAPE).astype(np.float32)
    b = da.from_array(b_data, chunks=(2, 1, 5, 8, 11))
    sigma = (0, 0, 0.5, 1.0, 1.0)

    def dog(block: Block) -> np.ndarray:
        x, y, z = block.inputs
        return ndi.gaussian_filter(x, sigma) - ndi.gaussian_filter(y, sigma) * z

    out = map_blocks(dog, img, b, c_data, halo=(0, 0, 2, 4, 4))
    expected = ndi.gaussian_filter(data, sigma) - ndi.gaussian_filter(b_data, sigma) * c_data
    assert out.chunks == img.chunks  # the output grid follows the first input
    np.testing.assert_allclose(out.to_numpy(), expected, rtol=1e-6)


def test_no_halo_difference_of_two_images(rng, img, data):
    other = OMEArrow(rng.random(SHAPE), dim_order="TCZYX", chunks=(1, 2, 9, 10, 10))
    out = map_blocks(lambda b: b.inputs[0] - b.inputs[1], img, other)
    np.testing.assert_array_equal(out.to_numpy(), data - other.to_numpy())


def test_halo_larger_than_blocks_regrids_and_matches(data):
    img = OMEArrow(data, dim_order="TCZYX", chunks=(1, 1, 2, 3, 3))
    sigma = (0, 0, 1.0, 2.0, 1.5)  # radii 4, 8, 6 > block sizes
    out = map_blocks(lambda b: ndi.gaussian_filter(b.inputs[0], sigma), img, halo=(0, 0, 4, 8, 6))
    for axis, h in zip(out.chunks[2:], (4, 8, 6), strict=True):
        assert min(axis) >= h
    np.testing.assert_allclose(out.to_numpy(), ndi.gaussian_filter(data, sigma), rtol=1e-12, atol=1e-12)


def test_block_shape_sets_the_output_grid(img, data):
    out = map_blocks(lambda b: b.inputs[0][b.halo] * 2, img, halo=(0, 0, 1, 1, 1), block_shape=(1, 2, 5, 10, -1))
    assert out.chunks == ((1,), (2,), (5, 3), (10, 9), (22,))
    np.testing.assert_array_equal(out.to_numpy(), data * 2)


def test_metadata_from_the_first_omearrow_input(data):
    meta = ImageMeta(
        shape=SHAPE,
        dtype=data.dtype,
        chunks=regular_chunks(SHAPE, SHAPE),
        channels=(Channel(name="DAPI"), Channel(name="GFP")),
        physical_size=PhysicalSize(z=2.0, y=0.5, x=0.5, z_unit="µm", y_unit="µm", x_unit="µm"),
        name="cells",
    )
    img = OMEArrow(ArraySource(data, "TCZYX", meta=meta))
    out = map_blocks(lambda b: b.inputs[1] > 0.5, data, img, dtype=np.uint8)
    assert out.meta.channel_names == ("DAPI", "GFP")
    assert out.meta.physical_size == meta.physical_size
    assert out.meta.name == "cells"
    assert out.dtype == np.uint8
    assert out.is_lazy
    np.testing.assert_array_equal(out.to_numpy(), (data > 0.5).astype(np.uint8))


def test_lazy_until_computed(data):
    source = CountingSource(data, chunks=CHUNKS)
    out = map_blocks(lambda b: ndi.uniform_filter(b.inputs[0], (1, 1, 3, 3, 3)), OMEArrow(source), halo=(0, 0, 1, 1, 1))
    assert out.shape == SHAPE and out.dtype == data.dtype and out.is_lazy
    out.explain()
    assert source.total_reads == 0
    np.testing.assert_allclose(out.to_numpy(), ndi.uniform_filter(data, (1, 1, 3, 3, 3)), rtol=1e-12)


def test_reads_each_source_chunk_once(data):
    source = CountingSource(data, chunks=CHUNKS)
    out = map_blocks(lambda b: ndi.uniform_filter(b.inputs[0], (1, 1, 3, 3, 3)), OMEArrow(source), halo=(0, 0, 1, 1, 1))
    out.to_numpy()
    assert set(source.reads.values()) == {1}
    assert len(source.reads) == np.prod([len(c) for c in source.meta.chunks])


def test_inputs_are_read_only(data):
    original = data.copy()

    def vandal(block: Block) -> None:
        block.inputs[0][...] = 0

    out = map_blocks(vandal, data)
    with pytest.raises(ValueError, match="read-only"):
        out.to_numpy()
    np.testing.assert_array_equal(data, original)


def test_wrong_return_shape_names_the_block(img):
    out = map_blocks(lambda b: np.zeros((1, 1, 1, 1, 1)), img, halo=(0, 0, 1, 1, 1))
    with pytest.raises(OmeArrowDaskError, match=r"block \(0, 0, 0, 0, 0\)"):
        out.to_dask().blocks[0, 0, 0, 0, 0].compute(scheduler="sync")


def test_shape_mismatch_names_the_shapes(img):
    with pytest.raises(InconsistentInputError, match=r"\(1, 2, 8, 19, 22\).*\(1, 2, 8, 19, 21\)"):
        map_blocks(lambda b: None, img, np.zeros((1, 2, 8, 19, 21)))


def test_input_errors(img):
    with pytest.raises(DimOrderError, match="5-D TCZYX"):
        map_blocks(lambda b: None, np.zeros((4, 4)))
    with pytest.raises(OmeArrowDaskError, match="at least one input"):
        map_blocks(lambda b: None)
    with pytest.raises(OmeArrowDaskError, match="boundary 'mirror'"):
        map_blocks(lambda b: None, img, boundary="mirror")
    with pytest.raises(SelectionError, match="larger than the image"):
        map_blocks(lambda b: None, img, halo={"z": 10})
    with pytest.raises(OmeArrowDaskError, match="block_shape"):
        map_blocks(lambda b: None, img, block_shape=(1, 2, 3))


@pytest.mark.parametrize("halo", [(1, 2, 3), 4, (0, 0, -1, 0, 0), {"q": 1}, (0, 0, 1.5, 0, 0), (0, 0, True, 0, 0)])
def test_bad_halo_raises(img, halo):
    with pytest.raises(SelectionError, match="halo"):
        map_blocks(lambda b: None, img, halo=halo)


def test_halo_dict_equals_tuple(img):
    def fill(b: Block) -> np.ndarray:
        return ndi.uniform_filter(b.inputs[0], (1, 1, 3, 5, 3))

    by_dict = map_blocks(fill, img, halo={"Z": 1, "y": 2, "x": 1}).to_numpy()
    by_tuple = map_blocks(fill, img, halo=(0, 0, 1, 2, 1)).to_numpy()
    np.testing.assert_array_equal(by_dict, by_tuple)


def test_export_to_ome_zarr_round_trip(tmp_path, img, data):
    sigma = (0, 0, 1.0, 1.0, 1.0)
    out = map_blocks(lambda b: ndi.gaussian_filter(b.inputs[0], sigma), img, halo=(0, 0, 4, 4, 4), dtype="float32")
    path = out.export(how="ome-zarr", out=tmp_path / "smoothed.ome.zarr")
    back = OMEArrow.scan(path).to_numpy()
    np.testing.assert_allclose(back, ndi.gaussian_filter(data, sigma).astype(np.float32), rtol=1e-6)


def test_public_api_wiring(data):
    from ome_arrow_dask import map_blocks as public_map_blocks

    source = CountingSource(data, chunks=CHUNKS)
    img = OMEArrow(source).with_cache(max_bytes="64MiB")
    out = public_map_blocks(lambda b: ndi.gaussian_filter(b.inputs[0], (0, 0, 1, 1, 1)), img, halo=(0, 0, 4, 4, 4))
    expected = ndi.gaussian_filter(data, (0, 0, 1, 1, 1))
    np.testing.assert_allclose(out.to_numpy(), expected, rtol=1e-12, atol=1e-12)
    reads = source.total_reads
    np.testing.assert_allclose(out.to_numpy(), expected, rtol=1e-12, atol=1e-12)
    assert source.total_reads == reads  # the second pass came from the cache
    info = img.source.cache_info()
    assert info.misses == reads and info.hits == reads


@pytest.mark.parametrize("value", [0.7, -3, 300])
def test_constant_boundary_the_input_dtype_cannot_hold_is_padded_exactly(value):
    image = np.full((1, 1, 1, 3, 3), 10, "uint8")
    out = map_blocks(
        lambda b: ndi.uniform_filter(b.inputs[0].astype("f8"), (1, 1, 1, 3, 3))[b.halo],
        image,
        halo={"y": 1, "x": 1},
        boundary=value,
        dtype="f8",
    ).to_numpy()
    expected = ndi.uniform_filter(image.astype("f8"), (1, 1, 1, 3, 3), mode="constant", cval=value)
    np.testing.assert_allclose(out, expected, rtol=1e-12)
