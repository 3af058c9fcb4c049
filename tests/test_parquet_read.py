"""Reading every OME-Arrow Parquet layout: source contract, column detection, laziness."""

from __future__ import annotations

import warnings

import numpy as np
import ome_arrow.dataset as ome_dataset
import ome_arrow.export as ome_export
import ome_arrow.ingest as ome_ingest
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from source_contract import SourceContract

from ome_arrow_dask import OMEArrow
from ome_arrow_dask.arrow_schema import OME_ARROW_BYTE_STRUCT, OME_ARROW_STRUCT
from ome_arrow_dask.sources import open_source
from ome_arrow_dask.sources import parquet as pqsrc
from ome_arrow_dask.sources._parquet_struct import clear_payload_cache

SHAPE = (2, 3, 5, 19, 23)


def _image(dtype=np.uint16, shape=SHAPE, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 60000 if np.dtype(dtype).itemsize > 1 else 250, shape).astype(dtype)


def _record(arr, **kwargs):
    kwargs.setdefault("chunk_shape", (2, 8, 8))
    kwargs.setdefault("clamp_to_uint16", False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ome_ingest.from_numpy(
            arr, dim_order="TCZYX", channel_names=["DNA", "ER", "Mito"][: arr.shape[1]], **kwargs
        )


def _single_row(path, arr, column="image", **kwargs):
    ome_export.to_ome_parquet(_record(arr, **kwargs), str(path), column_name=column)
    return str(path)


class TestBytesZstd(SourceContract):
    def make_source(self, tmp_path):
        arr = _image()
        path = _single_row(tmp_path / "b.ome.parquet", arr, chunk_encoding="bytes", chunk_compression="zstd")
        return pqsrc.open(path), arr


class TestBytesLz4Float(SourceContract):
    def make_source(self, tmp_path):
        arr = np.random.default_rng(1).standard_normal(SHAPE).astype(np.float32)
        path = _single_row(tmp_path / "b.parquet", arr, chunk_encoding="bytes", chunk_compression="lz4")
        return pqsrc.open(path), arr


class TestListChunks(SourceContract):
    def make_source(self, tmp_path):
        arr = _image()
        return pqsrc.open(_single_row(tmp_path / "l.parquet", arr, column="ome_arrow")), arr


class TestPlanesOnly(SourceContract):
    def make_source(self, tmp_path):
        arr = _image(np.uint8)
        return pqsrc.open(_single_row(tmp_path / "p.parquet", arr, build_chunks=False)), arr


def _legacy_file(path, arr):
    """A pre-0.1 record: no image_type, chunk_grid or chunks."""
    record = _record(arr, build_chunks=False).as_py()
    legacy_type = pa.struct([f for f in OME_ARROW_STRUCT if f.name not in ("image_type", "chunk_grid", "chunks")])
    legacy = {f.name: record[f.name] for f in legacy_type}
    pq.write_table(pa.table({"image": pa.array([legacy], type=legacy_type)}), path)
    return str(path)


class TestLegacy(SourceContract):
    def make_source(self, tmp_path):
        arr = _image()
        return pqsrc.open(_legacy_file(tmp_path / "legacy.parquet", arr)), arr


def _feature_table(path, images, row_group_size=2):
    records = [_record(a, chunk_encoding="bytes").as_py() for a in images]
    table = pa.table(
        {
            "Metadata_Well": [f"A{i:02d}" for i in range(len(images))],
            "Cells_Area": np.arange(len(images), dtype=np.float64),
            "Image_OMEArrow_DNA": pa.array(records, type=OME_ARROW_BYTE_STRUCT),
        }
    )
    pq.write_table(table, path, row_group_size=row_group_size)
    return str(path)


class TestMultiRowTable(SourceContract):
    def make_source(self, tmp_path):
        images = [_image(seed=i, shape=(1, 2, 3, 11, 13)) for i in range(5)]
        path = _feature_table(tmp_path / "profiles.parquet", images)
        return pqsrc.open(path, column_name="Image_OMEArrow_DNA", row_index=3), images[3]


class TestDataset(SourceContract):
    def make_source(self, tmp_path):
        arr = _image(np.int16) - 20000
        ome_dataset.write_ome_arrow_dataset([arr], tmp_path / "v.ome.parquet", chunk_shape=(1, 2, 2, 8, 8))
        return pqsrc.open(str(tmp_path / "v.ome.parquet")), arr


class TestDatasetNoIndexSeveralRowsPerGroup(SourceContract):
    def make_source(self, tmp_path):
        arr = _image(np.float32)
        ome_dataset.write_ome_arrow_dataset(
            [arr],
            tmp_path / "v.data",
            chunk_shape=(1, 1, 4, 8, 8),
            build_physical_index=False,
            chunk_rows_per_row_group=3,
        )
        return pqsrc.open(str(tmp_path / "v.data")), arr


class TestDatasetSecondImage(SourceContract):
    def make_source(self, tmp_path):
        a, b = _image(seed=1), _image(seed=2, shape=(1, 2, 3, 10, 30))
        records = [_record(a, image_id="img-A"), _record(b, image_id="img-B")]
        ome_dataset.write_ome_arrow_dataset(records, tmp_path / "two", chunk_shape=(1, 1, 2, 8, 8))
        return pqsrc.open(str(tmp_path / "two"), image_id="img-B"), b


# ---------------------------------------------------------------------- detection and options
@pytest.mark.parametrize("column", ["image", "ome_arrow", "pixels_struct"])
def test_struct_column_found_by_name_or_type(tmp_path, column):
    arr = _image(shape=(1, 1, 1, 9, 7))
    path = _single_row(tmp_path / "x.parquet", arr, column=column, chunk_encoding="bytes")
    img = OMEArrow.scan(path)
    assert img.source.column == column
    np.testing.assert_array_equal(img.to_numpy(), arr)


def test_list_payload_honours_pixels_meta_type(tmp_path):
    arr = _image(shape=(1, 1, 2, 9, 7)).astype(np.float32)
    path = _single_row(tmp_path / "f.parquet", arr)  # list<uint16> values, type "float32"
    img = OMEArrow.scan(path)
    assert img.dtype == np.float32
    np.testing.assert_array_equal(img.to_numpy(), arr)


def test_chunks_win_over_planes(tmp_path):
    arr = _image(shape=(1, 1, 2, 9, 7))
    record = _record(arr).as_py()
    for plane in record["planes"]:
        plane["pixels"] = [0] * len(plane["pixels"])
    pq.write_table(pa.table({"ome_arrow": pa.array([record], type=OME_ARROW_STRUCT)}), tmp_path / "x.parquet")
    img = OMEArrow.scan(tmp_path / "x.parquet")
    assert img.source.kind == "list"
    np.testing.assert_array_equal(img.to_numpy(), arr)


def test_scan_examples_from_the_issue(tmp_path):
    images = [_image(seed=i, shape=(1, 1, 2, 11, 13)) for i in range(20)]
    path = _feature_table(tmp_path / "profiles.parquet", images, row_group_size=4)
    img = OMEArrow.scan(path, column_name="Image_OMEArrow_DNA", row_index=17)
    np.testing.assert_array_equal(img.to_numpy(), images[17])
    a, b = _image(seed=1), _image(seed=2)
    ome_dataset.write_ome_arrow_dataset([_record(a, image_id="img-A"), _record(b, image_id="img-B")], tmp_path / "v/")
    img = OMEArrow.scan(str(tmp_path / "v") + "/", image_id="img-B")
    roi = img.slice_lazy(3, 17, 2, 12, z_indices=range(3)).collect()
    np.testing.assert_array_equal(roi.to_numpy(), b[:, :, 0:3, 2:12, 3:17])
    assert OMEArrow.scan(tmp_path / "v").meta.id == "img-A"


def test_probe_and_options(tmp_path):
    arr = _image(shape=(1, 1, 1, 5, 5))
    path = _single_row(tmp_path / "noext", arr)
    assert pqsrc.probe(path, level=3)
    assert not pqsrc.probe(str(tmp_path / "missing.parquet"))
    assert not pqsrc.probe(str(tmp_path))  # a plain directory
    assert isinstance(open_source(path), pqsrc.StructSource)
    with pytest.raises(TypeError):
        pqsrc.open(path, level=2)
    with pytest.raises(TypeError):
        pqsrc.open(path, image_id="x")


def test_row_index_out_of_range(tmp_path):
    path = _single_row(tmp_path / "x.parquet", _image(shape=(1, 1, 1, 5, 5)))
    with pytest.raises(ValueError, match=r"row_index 3 is out of range \[0, 1\)"):
        OMEArrow.scan(path, row_index=3)


def test_unknown_image_id(tmp_path):
    ome_dataset.write_ome_arrow_dataset([_record(_image(), image_id="img-A")], tmp_path / "d")
    with pytest.raises(ValueError, match=r"no image_id 'nope'.*'img-A'"):
        OMEArrow.scan(tmp_path / "d", image_id="nope")


def test_metadata_from_record(tmp_path):
    import datetime as dt

    arr = _image(shape=(1, 3, 2, 9, 7))
    when = dt.datetime(2024, 5, 6, 7, 8, 9, tzinfo=dt.UTC)
    path = _single_row(
        tmp_path / "m.parquet",
        arr,
        chunk_encoding="bytes",
        image_id="cell-7",
        name="well A1",
        acquisition_datetime=when,
        physical_size_x=0.65,
        physical_size_y=0.65,
        physical_size_z=2.5,
    )
    meta = OMEArrow.scan(path).meta
    assert meta.channel_names == ("DNA", "ER", "Mito")
    assert (meta.physical_size.x, meta.physical_size.z, meta.physical_size.x_unit) == (0.65, 2.5, "µm")
    assert (meta.id, meta.name, meta.acquisition_datetime) == ("cell-7", "well A1", when)


# ---------------------------------------------------------------------- laziness
@pytest.fixture
def read_spy(monkeypatch):
    calls = []
    real = pq.ParquetFile.read_row_group

    def spy(self, i, columns=None, **kwargs):
        calls.append((i, tuple(columns or ())))
        return real(self, i, columns=columns, **kwargs)

    real_many = pq.ParquetFile.read_row_groups

    def spy_many(self, row_groups, columns=None, **kwargs):  # one call, recorded per row group it reads
        calls.extend((i, tuple(columns or ())) for i in row_groups)
        return real_many(self, row_groups, columns=columns, **kwargs)

    monkeypatch.setattr(pq.ParquetFile, "read_row_group", spy)
    monkeypatch.setattr(pq.ParquetFile, "read_row_groups", spy_many)
    return calls


def test_dataset_crop_reads_only_its_row_groups(tmp_path, read_spy):
    arr = _image(shape=(1, 2, 4, 40, 40))
    ome_dataset.write_ome_arrow_dataset([arr], tmp_path / "d", chunk_shape=(1, 1, 2, 16, 16))
    img = OMEArrow.scan(tmp_path / "d")
    crop = img.slice_lazy(10, 30, 2, 14, c_indices=[1], z_indices=[3])
    assert read_spy == []  # scan reads no chunk rows at all
    assert "reads 2 of 36 row groups" in crop.explain()
    np.testing.assert_array_equal(crop.to_numpy(), arr[:, 1:2, 3:4, 2:14, 10:30])
    expected_groups = set(map(int, img.source.row_groups_for(crop.read_plan)[:, 1]))
    assert {i for i, _ in read_spy} == expected_groups and len(read_spy) == 2
    assert all(cols == ("chunk_id", "dtype", "pixel_bytes") for _, cols in read_spy)


def test_struct_scan_shape_explain_read_no_pixel_columns(tmp_path, read_spy):
    clear_payload_cache()
    arr = _image()
    path = _single_row(tmp_path / "b.parquet", arr, chunk_encoding="bytes")
    img = OMEArrow.scan(path)
    assert img.shape == arr.shape
    text = img.slice_lazy(0, 8, 0, 8).explain()
    assert "read once per process" in text and "zero-copy" in text
    assert len(read_spy) == 1
    assert not any(col.endswith("pixel_bytes") or ".pixels." in col for col in read_spy[0][1])
    np.testing.assert_array_equal(img.to_numpy(), arr)  # 36 chunks
    payload_reads = [cols for _, cols in read_spy[1:]]
    assert payload_reads == [("image.chunks.list.element.pixel_bytes",)]


def test_dataset_scan_reads_no_pixel_columns(tmp_path, read_spy, monkeypatch):
    ome_dataset.write_ome_arrow_dataset([_image()], tmp_path / "d", chunk_shape=(1, 1, 2, 8, 8))
    tables = []
    real = pq.read_table

    def spy(path, *args, columns=None, **kwargs):
        tables.append((str(path), columns))
        return real(path, *args, columns=columns, **kwargs)

    monkeypatch.setattr(pq, "read_table", spy)
    img = OMEArrow.scan(tmp_path / "d")
    img.explain()
    assert img.shape == SHAPE and read_spy == []
    assert not any("chunks.parquet" in p for p, _ in tables)
