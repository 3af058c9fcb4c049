"""Arrow PyCapsule interop: tensors, OME-Arrow struct records and Pillow images, both directions."""

from __future__ import annotations

import json
import warnings

import duckdb
import numpy as np
import ome_arrow
import polars as pl
import pyarrow as pa
import pytest
from counting import CountingSource
from ome_arrow.export import to_numpy as ome_to_numpy
from ome_arrow.ingest import from_numpy as ome_from_numpy
from PIL import Image
from source_contract import SourceContract

from ome_arrow_dask import (
    ArraySource,
    CorruptInputError,
    DimOrderError,
    InconsistentInputError,
    OMEArrow,
    OmeArrowDaskError,
    SelectionError,
    UnsupportedSourceError,
)
from ome_arrow_dask.arrow.ingest import RecordSource
from ome_arrow_dask.arrow_schema import CHANNEL_NAMES_KEY, OME_ARROW_BYTE_STRUCT, OME_ARROW_STRUCT
from ome_arrow_dask.meta import Channel


def address(array: np.ndarray) -> int:
    return array.__array_interface__["data"][0]


def values_address(tensor: pa.Array) -> int:
    """Address of the first value of a fixed_shape_tensor / fixed-size-list array."""
    values = tensor.storage.flatten() if isinstance(tensor, pa.ExtensionArray) else tensor.flatten()
    return values.buffers()[1].address + values.offset * values.type.bit_width // 8


def chunk_bytes_address(record: pa.StructArray, entry: int = 0) -> int:
    data = record.field("chunks").flatten().field("pixel_bytes")
    offsets = np.frombuffer(data.buffers()[1], dtype=np.int64)[data.offset :]
    return data.buffers()[2].address + int(offsets[entry])


@pytest.fixture
def array(rng):
    return rng.integers(0, 4000, size=(2, 3, 4, 12, 10)).astype(np.uint16)


@pytest.fixture
def img(array):
    base = ArraySource(array, "TCZYX", chunks=(1, 1, 2, 6, 5))
    channels = tuple(Channel(name=n) for n in ("DNA", "ER", "Mito"))
    return OMEArrow(ArraySource(array, "TCZYX", chunks=base.meta.chunks, meta=base.meta.replace(channels=channels)))


def ome_record_numpy(scalar: pa.StructScalar) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ome_to_numpy(scalar, dtype=np.dtype(scalar["pixels_meta"]["type"].as_py()))


# ---------------------------------------------------------------------- TensorView -> fixed_shape_tensor
def test_tensor_view_is_a_zero_copy_fixed_shape_tensor(img, array):
    view = img.tensor_view(t=1, z=2)
    tensor = pa.array(view)
    assert isinstance(tensor.type, pa.FixedShapeTensorType)
    assert tensor.type.shape == [3, 12, 10] and tensor.type.dim_names == ["C", "Y", "X"]
    assert tensor.type.permutation is None and len(tensor) == 1
    np.testing.assert_array_equal(tensor.to_numpy_ndarray()[0], array[1, :, 2])
    assert values_address(tensor) == address(view.to_numpy())


def test_tensor_schema_names_channels_and_reads_nothing(array):
    counting = CountingSource(array, chunks=(1, 1, 2, 6, 5))
    view = OMEArrow(counting).tensor_view(t=0, z=0, c=[2, 0])
    field = pa.Field._import_from_c_capsule(view.__arrow_c_schema__())
    assert counting.total_reads == 0
    assert field.type.extension_name == "arrow.fixed_shape_tensor"
    assert json.loads(field.metadata[CHANNEL_NAMES_KEY]) == ["C2", "C0"]
    assert field.type.shape == [2, 12, 10]


def test_permuted_layout_is_exported_in_layout_order(img, array):
    view = img.tensor_view(t=0, z=1, layout="YXC")
    tensor = pa.array(view)
    assert tensor.type.dim_names == ["Y", "X", "C"] and tensor.type.permutation is None
    np.testing.assert_array_equal(tensor.to_numpy_ndarray()[0], array[0, :, 1].transpose(1, 2, 0))


@pytest.mark.parametrize("dtype", ["uint8", "int16", "uint32", "float32", "float64", "bool"])
def test_tensor_dtypes_round_trip(rng, dtype):
    data = (rng.standard_normal((3, 9, 7)) * 50).astype(dtype)
    view = OMEArrow(data, dim_order="ZYX").tensor_view(layout="ZYX")
    tensor = pa.array(view)
    assert tensor.type.value_type == pa.from_numpy_dtype(np.dtype(dtype))
    back = OMEArrow(tensor)
    assert back.dtype == np.dtype(dtype) and back.shape == (1, 1, 3, 9, 7)
    np.testing.assert_array_equal(back.to_numpy()[0, 0], data)


def test_complex_views_are_refused_with_the_fix(rng):
    view = OMEArrow(np.zeros((4, 4), np.complex64)).tensor_view()
    with pytest.raises(OmeArrowDaskError, match=r"no complex64 type.*cast"):
        pa.array(view)


def test_tensor_table_in_polars_and_duckdb(img, array):
    view = img.tensor_view(t=0, z=0)
    tensors = pa.table({"pixels": view})
    frame = pl.from_arrow(tensors)
    back = OMEArrow(frame.to_arrow()["pixels"])
    np.testing.assert_array_equal(back.to_numpy()[0, :, 0], array[0, :, 0])
    [(n_values, first)] = duckdb.sql("select array_length(pixels), pixels[1] from tensors").fetchall()
    assert (n_values, first) == (3 * 12 * 10, int(array[0, 0, 0, 0, 0]))


def test_tensor_view_round_trips_channel_names(img, array):
    back = OMEArrow(img.tensor_view(t=1, z=3))
    assert back.meta.channel_names == ("DNA", "ER", "Mito")
    np.testing.assert_array_equal(back.to_numpy()[0, :, 0], array[1, :, 3])


# ---------------------------------------------------------------------- tensors in
def test_import_fixed_shape_tensor_zero_copy(rng):
    yxc = rng.integers(0, 255, size=(12, 10, 3)).astype(np.uint8)
    tensor = pa.FixedShapeTensorArray.from_numpy_ndarray(yxc.reshape(1, 12, 10, 3))
    img = OMEArrow(tensor, dim_order="YXC")
    assert img.shape == (1, 3, 1, 12, 10) and not img.is_lazy
    out = img.to_numpy()
    np.testing.assert_array_equal(out[0, :, 0], yxc.transpose(2, 0, 1))
    assert address(out) == values_address(tensor)


def test_import_stacks_or_picks_tensor_rows(rng):
    stack = rng.integers(0, 100, size=(4, 6, 5)).astype(np.int16)
    tensor = pa.FixedShapeTensorArray.from_numpy_ndarray(stack)
    stacked = OMEArrow(tensor, dim_order="TYX")
    assert stacked.shape == (4, 1, 1, 6, 5)
    np.testing.assert_array_equal(stacked.to_numpy()[:, 0, 0], stack)
    picked = OMEArrow(tensor, dim_order="YX", row_index=2)
    np.testing.assert_array_equal(picked.to_numpy()[0, 0, 0], stack[2])
    with pytest.raises(SelectionError, match="4 tensors of shape \\(6, 5\\); pass row_index"):
        OMEArrow(tensor, dim_order="YX")
    with pytest.raises(SelectionError, match="out of range"):
        OMEArrow(tensor, dim_order="YX", row_index=4)


def test_import_polars_array_series(rng):
    planes = rng.integers(0, 255, size=(2, 5, 6)).astype(np.uint8)
    series = pl.Series("x", list(planes), dtype=pl.Array(pl.UInt8, (5, 6)))
    img = OMEArrow(series, dim_order="ZYX")
    np.testing.assert_array_equal(img.to_numpy()[0, 0], planes)


def test_tensor_import_errors_name_the_problem(rng):
    data = np.zeros((1, 2, 3), np.uint8)
    permuted = pa.FixedShapeTensorArray.from_numpy_ndarray(data.transpose(0, 2, 1))
    with pytest.raises(UnsupportedSourceError, match="permutation"):
        OMEArrow(permuted)
    with pytest.raises(UnsupportedSourceError, match="type string: expected an OME-Arrow struct array"):
        OMEArrow(pa.array(["a"]))
    with pytest.raises(UnsupportedSourceError, match=r"struct<a: int64>: a struct without .*'pixels_meta'.*scan_table"):
        OMEArrow(pa.array([{"a": 1}]))
    plane = pa.FixedShapeTensorArray.from_numpy_ndarray(np.zeros((1, 2, 3), np.uint8))
    with pytest.raises(DimOrderError, match="dim_order 'TCZYX' does not fit a tensor of shape \\(2, 3\\)"):
        OMEArrow(plane, dim_order="TCZYX")
    assert OMEArrow(plane, dim_order="ZYX").shape == (1, 1, 1, 2, 3)  # one more letter names the array axis
    named = pa.ExtensionArray.from_storage(
        pa.fixed_shape_tensor(pa.uint8(), [2, 3], dim_names=["height", "width"]),
        pa.FixedSizeListArray.from_arrays(pa.array(np.zeros(6, np.uint8)), 6),
    )
    with pytest.raises(DimOrderError, match="dim_names \\['height', 'width'\\] are not axis letters"):
        OMEArrow(named)
    assert OMEArrow(named, dim_order="YX").shape == (1, 1, 1, 2, 3)


def test_channel_metadata_must_match_the_channel_axis(img):
    view = img.tensor_view(t=0, z=0, layout="CYX")
    with pytest.raises(InconsistentInputError, match=r"names 3 channels.*gives C=1"):
        OMEArrow(view, dim_order="ZYX")


# ---------------------------------------------------------------------- OMEArrow -> struct record
def test_pa_table_holds_a_one_row_ome_arrow_record(img, array):
    table = pa.table({"image": img})
    assert table.num_rows == 1 and table.schema.field("image").type == OME_ARROW_BYTE_STRUCT
    record = table["image"].chunk(0)
    np.testing.assert_array_equal(ome_record_numpy(record[0]), array)
    assert record[0]["pixels_meta"]["type"].as_py() == "uint16"
    names = [c["name"] for c in record[0]["pixels_meta"]["channels"].as_py()]
    assert names == ["DNA", "ER", "Mito"]


def test_record_schema_reads_no_pixels(array):
    counting = CountingSource(array, chunks=(1, 1, 2, 6, 5))
    field = pa.Field._import_from_c_capsule(OMEArrow(counting).__arrow_c_schema__())
    assert counting.total_reads == 0
    assert field.type == OME_ARROW_BYTE_STRUCT and field.metadata[b"ome.arrow.type"] == b"ome.arrow"


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "int16", "float32"])
@pytest.mark.parametrize("payload", ["bytes", "list", "planes"])
def test_ome_arrow_reads_our_records(rng, dtype, payload):
    data = rng.integers(0, 250, size=(2, 2, 3, 9, 11)).astype(dtype)
    if payload == "bytes" and np.dtype(dtype).kind != "u":
        data = data - 100
    record = OMEArrow(data).to_arrow(payload=payload, chunk_shape=(2, 4, 8))
    np.testing.assert_array_equal(ome_record_numpy(record[0]), data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = ome_arrow.OMEArrow(record[0]).export("numpy", dtype=np.dtype(dtype))
    np.testing.assert_array_equal(theirs, data)
    np.testing.assert_array_equal(OMEArrow(record).to_numpy(), data)


def test_requested_list_schema_gives_the_list_payload(img, array):
    record = pa.array(img, type=OME_ARROW_STRUCT)
    assert record.type == OME_ARROW_STRUCT
    np.testing.assert_array_equal(ome_record_numpy(record[0]), array)


@pytest.mark.parametrize("encoding", ["list", "bytes", "bytes-zstd", "planes"])
def test_we_read_ome_arrow_records(rng, encoding):
    data = rng.integers(0, 60000, size=(2, 3, 2, 20, 17)).astype(np.uint16)
    kwargs = {"chunk_shape": (1, 8, 8)}
    if encoding.startswith("bytes"):
        kwargs.update(chunk_encoding="bytes", chunk_compression="zstd" if encoding.endswith("zstd") else None)
    if encoding == "planes":
        kwargs["build_chunks"] = False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scalar = ome_from_numpy(data, dim_order="TCZYX", channel_names=["a", "b", "c"], **kwargs)
        theirs = ome_arrow.OMEArrow(scalar)
    for given in (scalar, theirs.data):
        img = OMEArrow(given)
        assert img.meta.channel_names == ("a", "b", "c")
        np.testing.assert_array_equal(img.to_numpy(), data)
        crop = img.slice_lazy(3, 15, 2, 19, c_indices=[2])
        np.testing.assert_array_equal(crop.to_numpy(), data[:, 2:3, :, 2:19, 3:15])


def test_record_import_is_zero_copy(img, array):
    record = pa.array(img)
    back = OMEArrow(record)
    assert not back.is_lazy
    out = back.to_numpy()
    np.testing.assert_array_equal(out, array)
    assert address(out) == chunk_bytes_address(record)


def test_chunked_record_reads_chunks_as_buffer_views(img, array):
    record = img.to_arrow(chunk_shape=(2, 5, 4))  # several chunks per plane: no single run
    source = RecordSource(record)
    back = OMEArrow(record)
    assert back.is_lazy and back.chunks[3:] == ((5, 5, 2), (4, 4, 2))
    block = source.read_chunk((0, 0, 0, 0, 1))
    np.testing.assert_array_equal(block, array[:1, :1, 0:2, 0:5, 4:8])
    assert address(block) == chunk_bytes_address(record, entry=1)
    np.testing.assert_array_equal(back.to_numpy(), array)


def test_records_through_polars_and_duckdb(img, array):
    images = pa.table({"well": ["A01"], "image": img})
    frame = pl.from_arrow(images)
    np.testing.assert_array_equal(OMEArrow(frame.to_arrow()["image"]).to_numpy(), array)
    np.testing.assert_array_equal(OMEArrow(frame["image"]).to_numpy(), array)
    [row] = duckdb.sql(
        "select image.pixels_meta.type, image.pixels_meta.size_c, len(image.chunks), "
        "image.pixels_meta.channels[1].name from images"
    ).fetchall()
    assert row == ("uint16", 3, 2 * 3, "DNA")  # one chunk per (t, c)
    selected = pa.table(duckdb.sql("select image from images where well = 'A01'").arrow())
    np.testing.assert_array_equal(OMEArrow(selected["image"]).to_numpy(), array)


def test_multi_row_records_need_row_index(rng):
    images = [OMEArrow(rng.integers(0, 9, size=(5, 6)).astype(np.uint8)) for _ in range(3)]
    records = pa.concat_arrays([im.to_arrow() for im in images])
    with pytest.raises(SelectionError, match="3 rows; pass row_index"):
        OMEArrow(records)
    np.testing.assert_array_equal(OMEArrow(records, row_index=1).to_numpy(), images[1].to_numpy())


def test_bad_records_raise_clear_errors(img):
    record = img.to_arrow()
    with pytest.raises(DimOrderError, match="does not apply to OME-Arrow struct records"):
        OMEArrow(record, dim_order="TCZYX")
    claimed = record[0].as_py()
    claimed["pixels_meta"]["size_x"] = 20
    with pytest.raises(CorruptInputError, match="Arrow OME-Arrow record \\(row 0\\): chunks cover 2880 of 5760 pixels"):
        OMEArrow(pa.array([claimed], type=OME_ARROW_BYTE_STRUCT))
    bad_dtype = record[0].as_py()
    bad_dtype["chunks"][0]["dtype"] = "object"
    with pytest.raises(CorruptInputError, match="untrusted pixel dtype 'object'"):
        OMEArrow(pa.array([bad_dtype], type=OME_ARROW_BYTE_STRUCT))
    with pytest.raises(CorruptInputError, match="the record is null"):
        OMEArrow(pa.array([None], type=OME_ARROW_BYTE_STRUCT))
    truncated = record[0].as_py()
    truncated["chunks"][1]["pixel_bytes"] = truncated["chunks"][1]["pixel_bytes"][:-2]
    with pytest.raises(CorruptInputError, match="chunk 1 at \\(0, 1, 0, 0, 0\\): payload is 958 bytes, expected 960"):
        OMEArrow(pa.array([truncated], type=OME_ARROW_BYTE_STRUCT)).to_numpy()


# ---------------------------------------------------------------------- Pillow
PILLOW_MODES = {
    "L": ("uint8", ["L"]),
    "RGB": ("uint8", ["R", "G", "B"]),
    "RGBA": ("uint8", ["R", "G", "B", "A"]),
    "LA": ("uint8", ["L", "A"]),
    "I;16": ("uint16", ["I"]),
    "I": ("int32", ["I"]),
    "F": ("float32", ["F"]),
}


@pytest.mark.parametrize("mode", list(PILLOW_MODES))
def test_pillow_images_import_zero_copy(rng, mode):
    dtype, bands = PILLOW_MODES[mode]
    shape = (7, 9, len(bands)) if len(bands) > 1 else (7, 9)
    pixels = rng.integers(0, 250, size=shape).astype(dtype)
    image = Image.fromarray(pixels, mode=mode) if mode == "LA" else Image.fromarray(pixels)
    assert image.mode == mode
    img = OMEArrow(image)
    assert img.dtype == np.dtype(dtype) and img.meta.channel_names == tuple(bands)
    out = img.to_numpy()
    expected = pixels.transpose(2, 0, 1) if pixels.ndim == 3 else pixels[None]
    np.testing.assert_array_equal(out[0, :, 0], expected)
    exported = pa.array(image)
    multi_band = pa.types.is_fixed_size_list(exported.type)
    assert address(out) == (values_address(exported) if multi_band else exported.buffers()[1].address)


def test_rgb_tensor_round_trips_through_pillow(rng):
    rgba = rng.integers(0, 255, size=(5, 8, 4)).astype(np.uint8)
    view = OMEArrow(rgba, dim_order="YXC").tensor_view(layout="YXC")
    flat = pa.array(view).storage.flatten()
    image = Image.fromarrow(flat, "RGBA", (8, 5))
    np.testing.assert_array_equal(np.asarray(image), rgba)
    rgb = OMEArrow(image.convert("RGB"))
    np.testing.assert_array_equal(rgb.tensor_view(layout="YXC").to_numpy(), rgba[..., :3])


def test_pillow_multi_block_images_are_copied(rng):
    pixels = rng.integers(0, 255, size=(64, 64, 3)).astype(np.uint8)
    old = Image.core.get_block_size()
    Image.core.set_block_size(4096)
    try:
        image = Image.fromarray(pixels)
        with pytest.raises(ValueError, match="not contiguous"):
            pa.array(image)
        img = OMEArrow(image)
    finally:
        Image.core.set_block_size(old)
    np.testing.assert_array_equal(img.tensor_view(layout="YXC").to_numpy(), pixels)


def test_pillow_dim_order_is_fixed(rng):
    image = Image.fromarray(np.zeros((4, 5, 3), np.uint8))
    with pytest.raises(DimOrderError, match="'RGB' image is YXC; got dim_order 'CYX'"):
        OMEArrow(image, dim_order="CYX")


# ---------------------------------------------------------------------- the in-memory record source
class TestRecordSourceZstdChunks(SourceContract):
    def make_source(self, tmp_path):
        data = np.random.default_rng(3).integers(-500, 500, size=(2, 2, 5, 13, 11)).astype(np.int16)
        record = OMEArrow(data).to_arrow(chunk_shape=(2, 8, 4), chunk_compression="zstd")
        return RecordSource(record), data


class TestRecordSourceOmeArrowList(SourceContract):
    def make_source(self, tmp_path):
        data = np.random.default_rng(4).integers(0, 65535, size=(1, 3, 2, 9, 14)).astype(np.uint16)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            scalar = ome_from_numpy(data, dim_order="TCZYX", chunk_shape=(1, 4, 8))
        return RecordSource(pa.repeat(scalar, 1)), data


class TestRecordSourceRowOfATable(SourceContract):
    def make_source(self, tmp_path):
        rng = np.random.default_rng(5)
        images = [rng.random((1, 2, 1, 7, 6)).astype(np.float32) for _ in range(3)]
        records = pa.concat_arrays([OMEArrow(im).to_arrow(payload="bytes", chunk_shape=(1, 4, 4)) for im in images])
        return RecordSource(records, row_index=2), images[2]


def test_big_endian_view_exports_as_native_arrow():
    data = np.arange(12, dtype="f4").reshape(3, 4)
    view = OMEArrow(data).tensor_view(dtype=">f4")
    exported = pa.array(view)
    assert exported.type.value_type == pa.float32()
    np.testing.assert_array_equal(np.asarray(exported.storage.flatten()).reshape(3, 4), data)


def test_records_differing_only_in_chunk_dtype_do_not_share_a_token():
    signed = OMEArrow(np.array([[-1, 2]], dtype="i2")).to_arrow()
    unsigned = OMEArrow(np.array([[65535, 2]], dtype="u2")).to_arrow()
    a, b = OMEArrow(signed), OMEArrow(unsigned)
    assert a.source.token != b.source.token
    import dask

    got_a, got_b = dask.compute(a.to_dask(), b.to_dask())
    assert got_a.ravel().tolist() == [-1, 2] and got_b.ravel().tolist() == [65535, 2]
