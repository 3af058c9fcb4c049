"""Interop with ome-arrow 0.1.0, both directions: every layout, dtypes, 2-D to 5-D shapes."""

from __future__ import annotations

import datetime as dt
import warnings

import numpy as np
import ome_arrow
import pyarrow.parquet as pq
import pytest
from ome_arrow.dataset import OMEArrowDataset, write_ome_arrow_dataset
from ome_arrow.export import to_numpy, to_ome_parquet
from ome_arrow.ingest import from_numpy, from_ome_parquet

from ome_arrow_dask import OMEArrow
from ome_arrow_dask.meta import Channel, PhysicalSize
from ome_arrow_dask.sources.base import MetaOverride

SHAPES = {
    "2D": ((13, 21), "YX"),
    "3D": ((3, 13, 21), "ZYX"),
    "4D": ((2, 2, 13, 21), "TCYX"),
    "5D": ((2, 2, 3, 13, 21), "TCZYX"),
}
DTYPES = ["uint8", "uint16", "int16", "float32"]


def _array(key, dtype, *, nonneg=False):
    shape, order = SHAPES[key]
    rng = np.random.default_rng(abs(hash((key, dtype))) % 2**32)
    if np.dtype(dtype).kind == "f":
        arr = rng.standard_normal(shape).astype(dtype) * 100
        arr = np.abs(np.round(arr)) if nonneg else arr
    else:
        info = np.iinfo(dtype)
        arr = rng.integers(0 if nonneg else info.min, min(info.max, 65535) + 1, shape).astype(dtype)
    return arr.astype(dtype), order


def _tczyx(arr, order):
    present = [a for a in "TCZYX" if a in order]
    moved = arr.transpose([order.index(a) for a in present])
    return moved[tuple(slice(None) if a in order else None for a in "TCZYX")]


def _ome_record(arr, order, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return from_numpy(arr, dim_order=order, clamp_to_uint16=False, chunk_shape=(2, 8, 8), **kwargs)


def _ome_read_file(path, dtype):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        record = from_ome_parquet(str(path))
        return to_numpy(record, dtype=np.dtype(record["pixels_meta"]["type"].as_py())).astype(dtype, copy=False)


# ---------------------------------------------------------------------- ome-arrow writes, we read
LAYOUTS = ["bytes", "bytes-zstd", "bytes-lz4", "list", "planes", "dataset", "export"]


@pytest.mark.parametrize("key", list(SHAPES))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_we_read_what_ome_arrow_writes(tmp_path, key, dtype, layout):
    uint16_only = layout in ("list", "planes")
    arr, order = _array(key, dtype, nonneg=uint16_only)
    expected = _tczyx(arr, order)
    out = tmp_path / "img.ome.parquet"
    names = [f"ch{i}" for i in range(expected.shape[1])]
    if layout == "dataset":
        record = _ome_record(arr, order, channel_names=names, chunk_encoding="bytes")
        write_ome_arrow_dataset([record], out, chunk_shape=(1, 2, 2, 8, 8))
    elif layout == "export":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ome_arrow.OMEArrow(_ome_record(arr, order, channel_names=names, chunk_encoding="bytes")).export(
                how="parquet", out=str(out), dtype=np.dtype(dtype)
            )
    else:
        encoding, _, codec = layout.partition("-")
        kwargs = {"build_chunks": False} if layout == "planes" else {"chunk_encoding": encoding}
        record = _ome_record(arr, order, channel_names=names, chunk_compression=codec or None, **kwargs)
        to_ome_parquet(record, str(out))
    img = OMEArrow.scan(out)
    assert img.dtype == np.dtype(dtype)
    assert img.meta.channel_names == tuple(names)
    np.testing.assert_array_equal(img.to_numpy(), expected)
    y, x = expected.shape[3:]
    np.testing.assert_array_equal(img.slice_lazy(3, x - 2, 5, y).to_numpy(), expected[..., 5:y, 3 : x - 2])


def test_physical_sizes_from_ome_arrow_records(tmp_path):
    arr, order = _array("3D", "uint16")
    record = _ome_record(arr, order, physical_size_x=0.325, physical_size_y=0.325, physical_size_z=1.5)
    to_ome_parquet(record, str(tmp_path / "x.parquet"))
    ps = OMEArrow.scan(tmp_path / "x.parquet").meta.physical_size
    assert (ps.x, ps.y, ps.z, ps.x_unit) == (0.325, 0.325, 1.5, "µm")


# ---------------------------------------------------------------------- we write, ome-arrow reads
def _ours(arr, order):
    img = OMEArrow(arr, dim_order=order)
    meta = img.meta.replace(
        channels=tuple(Channel(name=f"stain{i}") for i in range(img.shape[1])),
        physical_size=PhysicalSize(z=2.0, y=0.65, x=0.65, z_unit="µm", y_unit="µm", x_unit="µm"),
        id="img-7",
        name="cells",
        acquisition_datetime=dt.datetime(2024, 3, 4, 5, 6, 7, tzinfo=dt.UTC),
    )
    return OMEArrow(MetaOverride(img.source, meta))


def _same_meta(a, b):
    keys = ("channel_names", "physical_size", "id", "name", "acquisition_datetime", "dtype", "shape")
    return all(getattr(a, k) == getattr(b, k) for k in keys)


@pytest.mark.parametrize("key", list(SHAPES))
@pytest.mark.parametrize("dtype", DTYPES)
def test_ome_arrow_reads_our_dataset(tmp_path, key, dtype):
    arr, order = _array(key, dtype)
    expected = _tczyx(arr, order)
    img = _ours(arr, order)
    out = tmp_path / "copy.ome.parquet"
    assert img.export(how="parquet", out=out, chunk_shape=(1, 1, 2, 8, 8)) == out
    np.testing.assert_array_equal(OMEArrowDataset(out).read_image(), expected)
    assert OMEArrowDataset(out).read_image().dtype == np.dtype(dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        np.testing.assert_array_equal(ome_arrow.OMEArrow(str(out)).export("numpy", dtype=np.dtype(dtype)), expected)
    back = OMEArrow.scan(out)
    assert _same_meta(back.meta, img.meta)
    np.testing.assert_array_equal(back.to_numpy(), expected)


@pytest.mark.parametrize("key", list(SHAPES))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("payload", ["bytes", "list", "planes"])
def test_ome_arrow_reads_our_struct_file(tmp_path, key, dtype, payload):
    arr, order = _array(key, dtype, nonneg=payload != "bytes")
    expected = _tczyx(arr, order)
    img = _ours(arr, order)
    out = tmp_path / "one.parquet"
    extra = {"chunk_compression": "zstd"} if payload == "bytes" and dtype == "int16" else {}
    img.export(how="parquet", out=out, layout="struct", payload=payload, chunk_shape=(2, 8, 8), **extra)
    np.testing.assert_array_equal(_ome_read_file(out, dtype), expected)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = ome_arrow.OMEArrow(str(out))
        np.testing.assert_array_equal(theirs.export("numpy", dtype=np.dtype(dtype)), expected)
    back = OMEArrow.scan(out)
    assert _same_meta(back.meta, img.meta)
    np.testing.assert_array_equal(back.to_numpy(), expected)


def test_ome_arrow_slices_our_planes_and_list_files(tmp_path):
    arr, order = _array("5D", "uint16", nonneg=True)
    img = _ours(arr, order)
    img.export(how="parquet", out=tmp_path / "p.parquet", layout="struct", payload="planes")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        crop = ome_arrow.OMEArrow.scan(str(tmp_path / "p.parquet")).slice_lazy(2, 9, 1, 7).collect()
        np.testing.assert_array_equal(crop.export("numpy"), arr[..., 1:7, 2:9])


def test_struct_file_has_ome_arrow_metadata_and_one_row_group(tmp_path):
    arr, order = _array("5D", "float32")
    _ours(arr, order).export(how="parquet", out=tmp_path / "one.parquet", layout="struct")
    footer = pq.read_metadata(tmp_path / "one.parquet")
    assert footer.num_rows == 1 and footer.num_row_groups == 1
    meta = pq.read_schema(tmp_path / "one.parquet").metadata
    assert meta[b"ome.arrow.type"] == b"ome.arrow" and meta[b"ome.arrow.version"] == b"0.1.0"
