"""Writing OME-Arrow Parquet: streaming, layout details, crash safety, option errors."""

from __future__ import annotations

import json

import dask
import dask.array as da
import numpy as np
import pyarrow.parquet as pq
import pytest
from counting import CountingSource

from ome_arrow_dask import OMEArrow
from ome_arrow_dask.errors import IncompleteOutputError, InputChangedError, OmeArrowDaskError
from ome_arrow_dask.writers import parquet as writer

ARR = np.random.default_rng(5).integers(0, 4000, (2, 2, 5, 40, 36)).astype(np.uint16)


def test_dataset_one_row_group_per_chunk_and_manifest(tmp_path):
    out = tmp_path / "v.ome.parquet"
    OMEArrow(ARR).export(how="parquet", out=out, chunk_shape=(1, 1, 2, 16, 16))
    n_chunks = 2 * 2 * 3 * 3 * 3
    footer = pq.read_metadata(out / "chunks.parquet")
    assert footer.num_row_groups == footer.num_rows == n_chunks
    manifest = json.loads((out / "_ome_arrow_dataset.json").read_text())
    assert manifest["chunk_count"] == n_chunks and manifest["image_count"] == 1
    assert manifest["choice"]["chunk_shape"] == [1, 1, 2, 16, 16]
    assert manifest["files"]["chunks.parquet"]["num_row_groups"] == n_chunks
    assert sorted(p.name for p in out.iterdir()) == [
        "_ome_arrow_dataset.json",
        "chunks.parquet",
        "images.parquet",
        "index.parquet",
    ]
    chunk_ids = pq.read_table(out / "index.parquet").column("chunk_id").to_pylist()
    assert chunk_ids == list(range(n_chunks))


def test_default_chunk_shape_and_dtype_preserved(tmp_path):
    arr = np.random.default_rng(0).standard_normal((1, 1, 20, 600, 40)).astype(np.float32)
    out = tmp_path / "d"
    OMEArrow(arr).export(how="parquet", out=out)
    img = OMEArrow.scan(out)
    assert img.dtype == np.float32
    assert tuple(max(c) for c in img.source.meta.chunks) == (1, 1, 16, 512, 40)
    np.testing.assert_array_equal(img.to_numpy(), arr)


def test_one_task_per_chunk_each_writing_one_block(tmp_path, monkeypatch):
    sizes = []
    real = writer._store_part

    def spy(block, *args):
        sizes.append(block.nbytes)
        return real(block, *args)

    monkeypatch.setattr(writer, "_store_part", spy)
    lazy = da.from_array(ARR, chunks=(1, 1, 5, 40, 36))
    OMEArrow(lazy).export(how="parquet", out=tmp_path / "d", chunk_shape=(1, 1, 1, 20, 18))
    assert len(sizes) == 2 * 2 * 5 * 2 * 2 and max(sizes) == 20 * 18 * 2
    np.testing.assert_array_equal(OMEArrow.scan(tmp_path / "d").to_numpy(), ARR)
    assert not (tmp_path / "d.progress").exists()
    footer = pq.read_metadata(tmp_path / "d" / "chunks.parquet")
    assert footer.num_row_groups == len(sizes)
    assert footer.row_group(0).column(footer.num_columns - 1).compression == "ZSTD"  # compressed once, at compaction


class _Killed(BaseException):
    pass


def _interrupt_after(monkeypatch, n_parts):
    real = writer._store_part
    stored = []

    def store(*args):
        if len(stored) == n_parts:
            raise _Killed
        stored.append(1)
        return real(*args)

    monkeypatch.setattr(writer, "_store_part", store)
    return real


def test_interrupted_dataset_write_resumes_with_only_the_missing_chunks(tmp_path, monkeypatch):
    out = tmp_path / "d"
    chunk = (1, 1, 5, 20, 18)
    real = _interrupt_after(monkeypatch, 7)
    with dask.config.set(scheduler="synchronous"), pytest.raises(_Killed):
        OMEArrow(CountingSource(ARR, chunks=chunk)).export(how="parquet", out=out, chunk_shape=chunk)
    with pytest.raises(IncompleteOutputError, match="--resume"):  # no manifest: our reader refuses it
        OMEArrow.scan(out)
    assert len(list((tmp_path / "d.progress" / "parts").glob("part-*.parquet"))) == 7
    monkeypatch.setattr(writer, "_store_part", real)

    with pytest.raises(InputChangedError):  # other options: other fingerprint
        OMEArrow(CountingSource(ARR, chunks=chunk)).export(
            how="parquet", out=out, chunk_shape=chunk, compression="lz4", resume=True
        )
    _interrupt_after(monkeypatch, 0)  # the refused resume must not have discarded the parts
    monkeypatch.setattr(writer, "_store_part", real)
    counting = CountingSource(ARR, chunks=chunk)
    OMEArrow(counting).export(how="parquet", out=out, chunk_shape=chunk, resume=True)
    assert counting.total_reads == 2 * 2 * 1 * 2 * 2 - 7
    np.testing.assert_array_equal(OMEArrow.scan(out).to_numpy(), ARR)
    assert not (tmp_path / "d.progress").exists()


def test_a_half_written_part_is_redone(tmp_path, monkeypatch):
    out = tmp_path / "d"
    chunk = (1, 1, 5, 20, 18)
    _interrupt_after(monkeypatch, 3)
    with pytest.raises(_Killed):
        OMEArrow(ARR).export(how="parquet", out=out, chunk_shape=chunk)
    monkeypatch.undo()
    part = sorted((tmp_path / "d.progress" / "parts").glob("part-*.parquet"))[0]
    part.write_bytes(part.read_bytes()[:40])  # torn (cannot happen with rename, but a disk can lie)
    (part.parent / "part-000000099.parquet.abc.tmp").write_bytes(b"leftover")
    OMEArrow(ARR).export(how="parquet", out=out, chunk_shape=chunk, resume=True)
    np.testing.assert_array_equal(OMEArrow.scan(out).to_numpy(), ARR)


def test_rewrite_replaces_a_dataset_and_leaves_no_temporaries(tmp_path):
    out = tmp_path / "d"
    OMEArrow(ARR).export(how="parquet", out=out)
    with pytest.raises(OmeArrowDaskError, match=r"already exists: pass overwrite=True"):
        OMEArrow(ARR[:1]).export(how="parquet", out=out)  # an existing output is never replaced unasked
    assert OMEArrow.scan(out).shape == ARR.shape
    OMEArrow(ARR[:1]).export(how="parquet", out=out, overwrite=True)
    assert OMEArrow.scan(out).shape == (1, *ARR.shape[1:])
    assert not list(tmp_path.rglob("*.tmp"))


def test_interrupted_write_is_incomplete(tmp_path, monkeypatch):
    out = tmp_path / "d"
    OMEArrow(ARR).export(how="parquet", out=out)

    def boom(*args, **kwargs):
        raise RuntimeError("killed")

    monkeypatch.setattr(writer, "_write_manifest", boom)
    with pytest.raises(RuntimeError, match="killed"):
        OMEArrow(ARR).export(how="parquet", out=out, overwrite=True)
    with pytest.raises(IncompleteOutputError):
        OMEArrow.scan(out)


def test_refuses_to_write_into_a_foreign_directory(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(OmeArrowDaskError, match="not an OME-Arrow dataset"):
        OMEArrow(ARR).export(how="parquet", out=tmp_path)
    assert not (tmp_path.parent / f"{tmp_path.name}.progress").exists()  # refused before touching anything


def test_page_checksums_are_written(tmp_path):
    out = tmp_path / "one.parquet"
    OMEArrow(ARR).export(how="parquet", out=out, layout="struct", compression=None)
    data = bytearray(out.read_bytes())
    column = next(
        pq.read_metadata(out).row_group(0).column(i)
        for i in range(pq.read_metadata(out).num_columns)
        if pq.read_metadata(out).row_group(0).column(i).path_in_schema.endswith("pixel_bytes")
    )
    data[column.data_page_offset + column.total_compressed_size // 2] ^= 0x04
    out.write_bytes(bytes(data))
    with pytest.raises(OmeArrowDaskError, match=r"CRC|checksum"):
        OMEArrow.scan(out).to_numpy()


@pytest.mark.parametrize(
    "values",
    [np.array([0.5, 1.0]), np.array([-1, 3]), np.array([70000, 1]), np.array([np.nan, 1.0])],
)
def test_list_payload_needs_uint16_values(tmp_path, values):
    arr = np.resize(values, (4, 4)).astype(values.dtype)
    with pytest.raises(OmeArrowDaskError, match="payloads 'list' and 'planes' store pixels as uint16"):
        OMEArrow(arr).export(how="parquet", out=tmp_path / "x.parquet", layout="struct", payload="list")
    assert not (tmp_path / "x.parquet").exists()


def test_list_payload_accepts_integral_floats(tmp_path):
    arr = np.arange(20, dtype=np.float32).reshape(4, 5)
    OMEArrow(arr).export(how="parquet", out=tmp_path / "x.parquet", layout="struct", payload="list")
    img = OMEArrow.scan(tmp_path / "x.parquet")
    assert img.dtype == np.float32
    np.testing.assert_array_equal(img.to_numpy()[0, 0, 0], arr)


def test_struct_lz4_and_custom_column(tmp_path):
    out = tmp_path / "one.parquet"
    OMEArrow(ARR).export(how="parquet", out=out, layout="struct", chunk_compression="lz4", column_name="img")
    img = OMEArrow.scan(out)
    assert img.source.column == "img"
    np.testing.assert_array_equal(img.to_numpy(), ARR)


def test_selection_is_written(tmp_path):
    crop = OMEArrow(ARR).slice_lazy(3, 30, 7, 33, z_indices=[1, 4])
    crop.export(how="parquet", out=tmp_path / "c")
    np.testing.assert_array_equal(OMEArrow.scan(tmp_path / "c").to_numpy(), ARR[:, :, [1, 4], 7:33, 3:30])


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"layout": "zarr"}, OmeArrowDaskError),
        ({"payload": "list"}, TypeError),
        ({"layout": "struct", "payload": "png"}, OmeArrowDaskError),
        ({"layout": "struct", "chunk_compression": "gzip"}, OmeArrowDaskError),
        ({"layout": "struct", "chunk_shape": (2, 1, 1, 8, 8)}, OmeArrowDaskError),
        ({"chunk_shape": (0, 8, 8)}, OmeArrowDaskError),
    ],
)
def test_bad_options(tmp_path, options, error):
    with pytest.raises(error):
        OMEArrow(ARR).export(how="parquet", out=tmp_path / "x", **options)


def test_struct_file_is_not_replaced_unasked(tmp_path):
    out = tmp_path / "one.parquet"
    OMEArrow(ARR).export(how="parquet", out=out, layout="struct")
    before = out.read_bytes()
    with pytest.raises(OmeArrowDaskError, match=r"already exists: pass overwrite=True"):
        OMEArrow(ARR[:1]).export(how="parquet", out=out, layout="struct")
    assert out.read_bytes() == before
    OMEArrow(ARR[:1]).export(how="parquet", out=out, layout="struct", overwrite=True)
    assert OMEArrow.scan(out).shape == (1, *ARR.shape[1:])
    empty = tmp_path / "empty"
    empty.mkdir()
    OMEArrow(ARR).export(how="parquet", out=empty)  # an empty folder is not an output to protect
    assert OMEArrow.scan(empty).shape == ARR.shape
