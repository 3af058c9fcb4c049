"""Images as table rows (scan_table) and chunk streams queried by DuckDB / polars."""

from __future__ import annotations

import warnings

import duckdb
import numpy as np
import ome_arrow
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from counting import CountingSource
from ome_arrow.export import to_numpy as ome_to_numpy
from ome_arrow.ingest import from_numpy as ome_from_numpy
from ome_arrow.ingest import from_ome_parquet

from ome_arrow_dask import OMEArrow, OmeArrowDaskError, UnsupportedSourceError
from ome_arrow_dask.arrow_interop import ImageColumn, record_array
from ome_arrow_dask.sources._parquet_struct import clear_payload_cache

COLUMN = "Image_OMEArrow_DNA"
WELLS = ["A01", "B02", "C03", "D04", "E05"]


@pytest.fixture
def planes(rng):
    """One image per row; shapes and dtypes differ (the records hold them)."""
    shapes = [(2, 9, 11), (1, 13, 7), (3, 8, 8), (1, 5, 16), (2, 10, 10)]
    return [rng.integers(0, 3000, size=s).astype(np.uint16 if i % 2 else np.float32) for i, s in enumerate(shapes)]


def feature_table(records: pa.Array) -> pa.Table:
    n = len(records)
    return pa.table(
        {"Metadata_Well": WELLS[:n], "Cells_AreaShape_Area": np.arange(n, dtype=np.float64) * 10.5, COLUMN: records}
    )


@pytest.fixture
def table_path(tmp_path, planes):
    records = record_array([OMEArrow(p, dim_order="ZYX") for p in planes])
    path = tmp_path / "profiles.parquet"
    pq.write_table(feature_table(records), path, row_group_size=1)
    return path


@pytest.fixture
def row_group_reads(monkeypatch):
    """Row groups read through pyarrow.parquet; reading a whole table fails the test."""
    clear_payload_cache()
    calls: list[int] = []
    original = pq.ParquetFile.read_row_group

    def spy(self, i, *args, **kwargs):
        calls.append(int(i))
        return original(self, i, *args, **kwargs)

    def forbidden(*args, **kwargs):
        raise AssertionError("the whole table was read")

    monkeypatch.setattr(pq.ParquetFile, "read_row_group", spy)
    monkeypatch.setattr(pq.ParquetFile, "read", forbidden)
    monkeypatch.setattr(pq, "read_table", forbidden)
    return calls


# ---------------------------------------------------------------------- scan_table on Parquet
def test_scan_table_opens_only_the_rows_asked_for(table_path, planes, row_group_reads):
    column = OMEArrow.scan_table(table_path, column_name=COLUMN)
    assert isinstance(column, ImageColumn) and len(column) == 5 and column.column_name == COLUMN
    assert row_group_reads == []  # the footer says how many rows there are
    img = column[3]
    assert img.is_lazy and img.shape == (1, 1, 1, 5, 16)
    assert set(row_group_reads) == {3}  # metadata of row 3's row group
    np.testing.assert_array_equal(img.to_numpy()[0, 0], planes[3])
    assert set(row_group_reads) == {3}  # and its pixels


def test_iterating_reads_one_row_group_per_image(table_path, planes, row_group_reads):
    for i, img in enumerate(OMEArrow.scan_table(table_path, column_name=COLUMN)):
        assert set(row_group_reads) == {i}
        assert img.dtype == planes[i].dtype
        np.testing.assert_array_equal(img.to_numpy()[0, 0], planes[i])
        assert set(row_group_reads) == {i}
        row_group_reads.clear()


def test_rows_sharing_a_row_group(tmp_path, planes, row_group_reads):
    path = tmp_path / "grouped.parquet"
    pq.write_table(feature_table(record_array([OMEArrow(p, dim_order="ZYX") for p in planes])), path, row_group_size=2)
    column = OMEArrow.scan_table(path)  # the image column is found by type
    assert column.column_name == COLUMN
    np.testing.assert_array_equal(column[-2].to_numpy()[0, 0], planes[3])
    assert set(row_group_reads) == {1}


def test_selection_of_an_image_row_stays_lazy(table_path, planes, row_group_reads):
    crop = OMEArrow.scan_table(table_path, column_name=COLUMN)[0].slice_lazy(2, 9, 1, 8, z_indices=[1])
    np.testing.assert_array_equal(crop.to_numpy()[0, 0, 0], planes[0][1, 1:8, 2:9])
    assert set(row_group_reads) == {0}


def test_ome_arrow_reads_our_feature_table(table_path, planes):
    for i, expected in enumerate(planes):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            record = from_ome_parquet(str(table_path), column_name=COLUMN, row_index=i)
            got = ome_to_numpy(record, dtype=expected.dtype)
        np.testing.assert_array_equal(got[0, 0], expected)


def test_we_read_a_feature_table_of_ome_arrow_records(tmp_path, planes):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scalars = [
            ome_from_numpy(p, dim_order="ZYX", clamp_to_uint16=False, chunk_encoding="bytes", chunk_shape=(1, 4, 4))
            for p in planes
        ]
    records = pa.concat_arrays([pa.repeat(s, 1) for s in scalars])
    path = tmp_path / "theirs.parquet"
    pq.write_table(feature_table(records), path, row_group_size=1)
    column = OMEArrow.scan_table(path, column_name=COLUMN)
    for img, expected in zip(column, planes, strict=True):
        np.testing.assert_array_equal(img.to_numpy()[0, 0], expected)


# ---------------------------------------------------------------------- scan_table on in-memory tables
def test_scan_table_of_arrow_polars_and_duckdb_tables(planes):
    records = record_array([OMEArrow(p, dim_order="ZYX") for p in planes])
    profiles = feature_table(records)
    for data in (profiles, profiles.to_batches()[0], pl.from_arrow(profiles)):
        column = OMEArrow.scan_table(data, COLUMN)
        assert len(column) == 5
        np.testing.assert_array_equal(column[1].to_numpy()[0, 0], planes[1])
    picked = duckdb.sql(f"select {COLUMN} from profiles where Metadata_Well in ('B02', 'D04')").arrow()
    rows = OMEArrow.scan_table(picked)
    assert len(rows) == 2
    for img, expected in zip(rows, (planes[1], planes[3]), strict=True):
        np.testing.assert_array_equal(img.to_numpy()[0, 0], expected)


def test_in_memory_rows_are_zero_copy(planes):
    records = record_array([OMEArrow(p, dim_order="ZYX") for p in planes])
    img = OMEArrow.scan_table(feature_table(records), COLUMN)[2]
    data = records.field("chunks").flatten().field("pixel_bytes")
    first = data.buffers()[2].address + int(np.frombuffer(data.buffers()[1], np.int64)[2 + data.offset])
    out = img.to_numpy()
    assert out.__array_interface__["data"][0] == first  # row 2 holds one chunk: entry 2 of the column


def test_scan_table_errors_name_the_problem(table_path, tmp_path):
    with pytest.warns(UserWarning, match="Requested column 'Image_DNA' was not usable or not found. Auto-detected"):
        OMEArrow.scan_table(table_path, column_name="Image_DNA")  # ome-arrow's behaviour (issue 16)
    with pytest.raises(OmeArrowDaskError, match="column 'Metadata_Well' is not an OME-Arrow struct column"):
        OMEArrow.scan_table(table_path, column_name="Metadata_Well")
    column = OMEArrow.scan_table(table_path)
    with pytest.raises(IndexError, match="row 5 is out of range for 5 rows"):
        column[5]
    assert [img.shape[3] for img in column[1:3]] == [13, 8]
    with pytest.raises(UnsupportedSourceError, match="scan_table reads one Parquet table file"):
        OMEArrow.scan_table(tmp_path)
    with pytest.raises(TypeError, match="expects a Parquet path or an Arrow table"):
        OMEArrow.scan_table(42)
    with pytest.raises(OmeArrowDaskError, match="the table: no OME-Arrow struct column"):
        OMEArrow.scan_table(pa.table({"a": [1]}))


# ---------------------------------------------------------------------- chunk streams
@pytest.fixture
def array(rng):
    return rng.integers(0, 1000, size=(2, 2, 5, 16, 12)).astype(np.int16)


def test_duckdb_queries_chunks_without_reading_pixels(array):
    counting = CountingSource(array, chunks=(1, 1, 2, 8, 6))
    chunks = OMEArrow(counting).arrow_chunks()
    assert len(chunks) == 2 * 2 * 3 * 2 * 2
    [(n, voxels, edge)] = duckdb.sql(
        "select count(*), sum(shape_z * shape_y * shape_x), count(*) filter (where shape_z = 1) from chunks"
    ).fetchall()
    assert (n, voxels, edge) == (48, array.size, 16)
    frame = pl.DataFrame(chunks)  # a second consumer: every call starts a fresh stream
    assert frame.height == 48 and frame["chunk_id"].to_list() == list(range(48))
    assert counting.total_reads == 0


def test_chunk_rows_follow_the_plan(array):
    crop = OMEArrow(array, chunks=(1, 1, 2, 8, 6)).slice_lazy(3, 12, 0, 10, t_indices=[1])
    table = crop.arrow_chunks().read_all()
    assert table.schema.metadata[b"ome.arrow.layout"] == b"chunk-stream"
    assert set(table["t"].to_pylist()) == {0}
    assert sorted(set(table["x"].to_pylist())) == [0, 3] and sorted(set(table["shape_x"].to_pylist())) == [3, 6]
    assert sorted(set(zip(table["y"].to_pylist(), table["shape_y"].to_pylist(), strict=True))) == [(0, 8), (8, 2)]


def test_chunk_pixels_are_read_per_batch(array):
    counting = CountingSource(array, chunks=(1, 1, 5, 16, 12))
    stream = OMEArrow(counting).arrow_chunks(pixels=True, batch_size=1)
    reader = stream.reader()
    first = reader.read_next_batch()
    assert counting.total_reads == 1 and first.num_rows == 1
    rest = pa.Table.from_batches(list(reader))
    assert counting.total_reads == 4
    for row in [*first.to_pylist(), *rest.to_pylist()]:
        shape = tuple(row[f"shape_{a}"] for a in "tczyx")
        block = np.frombuffer(row["pixel_bytes"], dtype=row["dtype"]).reshape(shape)
        np.testing.assert_array_equal(block, array[row["t"] : row["t"] + 1, row["c"] : row["c"] + 1])


def test_chunk_stream_errors():
    with pytest.raises(OmeArrowDaskError, match="batch_size must be positive, got 0"):
        OMEArrow(np.zeros((4, 4))).arrow_chunks(batch_size=0)


def test_ome_arrow_reads_a_struct_record_written_as_a_single_row_file(tmp_path, array):
    """pa.table({"image": img}) written by pyarrow is a file ome-arrow opens."""
    path = tmp_path / "one.parquet"
    pq.write_table(pa.table({"image": OMEArrow(array)}), path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = ome_arrow.OMEArrow(str(path)).export("numpy", dtype=np.int16)
    np.testing.assert_array_equal(theirs, array)
