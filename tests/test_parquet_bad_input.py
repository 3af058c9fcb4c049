"""Bad OME-Arrow Parquet input: clear errors naming the file and the chunk (RELIABILITY 26-37)."""

from __future__ import annotations

import json
import warnings

import numpy as np
import ome_arrow.dataset as ome_dataset
import ome_arrow.ingest as ome_ingest
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ome_arrow_dask import OMEArrow
from ome_arrow_dask.arrow_schema import OME_ARROW_BYTE_STRUCT, OME_ARROW_STRUCT
from ome_arrow_dask.errors import CorruptInputError, IncompleteOutputError, OmeArrowDaskError, UnsafePathError

ARR = np.random.default_rng(3).integers(0, 5000, (1, 2, 3, 20, 24)).astype(np.uint16)


def _rec(encoding="bytes", **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ome_ingest.from_numpy(ARR, chunk_shape=(2, 8, 8), chunk_encoding=encoding, **kwargs).as_py()


def _write(path, record, struct=OME_ARROW_BYTE_STRUCT):
    pq.write_table(pa.table({"ome_arrow": pa.array([record], type=struct)}), path)
    return path


def _read(path, **kwargs):
    return OMEArrow.scan(path, **kwargs).to_numpy()


def test_truncated_file(tmp_path):
    path = tmp_path / "x.parquet"
    OMEArrow(ARR).export(how="parquet", out=path, layout="struct")
    data = path.read_bytes()
    for cut in (len(data) // 2, len(data) - 3):
        (tmp_path / "cut.parquet").write_bytes(data[:cut])
        with pytest.raises(CorruptInputError, match=r"cut.parquet"):
            _read(tmp_path / "cut.parquet")


def test_bit_flips_with_checksums_are_caught(tmp_path):
    OMEArrow(ARR).export(how="parquet", out=tmp_path / "d", chunk_shape=(1, 1, 3, 20, 24), compression=None)
    chunks = tmp_path / "d" / "chunks.parquet"
    data = bytearray(chunks.read_bytes())
    footer = pq.read_metadata(chunks)
    column = footer.row_group(1).column(13)  # pixel_bytes of chunk 1
    assert column.path_in_schema == "pixel_bytes"
    assert not column.has_dictionary_page
    data[column.data_page_offset + column.total_compressed_size - 100] ^= 0x01
    chunks.write_bytes(bytes(data))
    img = OMEArrow.scan(tmp_path / "d")
    np.testing.assert_array_equal(img.slice_lazy(0, 24, 0, 20, c_indices=[0]).to_numpy(), ARR[:, :1])
    with pytest.raises(CorruptInputError, match=r"chunks.parquet chunk_id 1 .*(CRC|checksum)"):
        img.to_numpy()


def test_footer_bit_flip(tmp_path):
    path = tmp_path / "x.parquet"
    OMEArrow(ARR).export(how="parquet", out=path, layout="struct")
    data = bytearray(path.read_bytes())
    data[-300] ^= 0xFF
    data[-100] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(OmeArrowDaskError):
        _read(path)


@pytest.mark.parametrize("encoding", ["bytes", "list"])
def test_size_x_claims_more_than_chunks_cover(tmp_path, encoding):
    record = _rec(encoding)
    record["pixels_meta"]["size_x"] = 128
    struct = OME_ARROW_BYTE_STRUCT if encoding == "bytes" else OME_ARROW_STRUCT
    path = _write(tmp_path / "x.parquet", record, struct)
    with pytest.raises(CorruptInputError, match=r"x.parquet.*chunks cover 2880 of 15360 pixels"):
        OMEArrow.scan(path)


def test_planes_relabelled_larger(tmp_path):
    record = _rec("list", build_chunks=False)
    record["pixels_meta"]["size_x"] = record["pixels_meta"]["size_y"] = 128
    path = _write(tmp_path / "x.parquet", record, OME_ARROW_STRUCT)
    with pytest.raises(CorruptInputError, match="planes cover 2880 of 98304 pixels"):
        OMEArrow.scan(path)


def test_size_t_larger_than_planes(tmp_path):
    record = _rec("list", build_chunks=False)
    record["pixels_meta"]["size_t"] = 1000
    path = _write(tmp_path / "x.parquet", record, OME_ARROW_STRUCT)
    with pytest.raises(CorruptInputError, match="planes cover"):
        OMEArrow.scan(path)


def test_huge_declared_size_refused_before_allocating(tmp_path):
    record = _rec("bytes")
    record["pixels_meta"].update(size_x=100000, size_y=100000)
    record["chunk_grid"].update(chunk_y=100000, chunk_x=100000)
    path = _write(tmp_path / "x.parquet", record)
    with pytest.raises(OmeArrowDaskError):
        OMEArrow.scan(path)


def test_duplicate_chunk_entries(tmp_path):
    record = _rec("bytes")
    record["chunks"][1] = dict(record["chunks"][0], pixel_bytes=b"\0" * len(record["chunks"][0]["pixel_bytes"]))
    path = _write(tmp_path / "x.parquet", record)
    with pytest.raises(CorruptInputError, match=r"chunk entry 1 at .* duplicates entry 0"):
        OMEArrow.scan(path)


def test_payload_length_mismatch(tmp_path):
    record = _rec("bytes")
    record["chunks"][4]["pixel_bytes"] = record["chunks"][4]["pixel_bytes"][:-2]
    path = _write(tmp_path / "x.parquet", record)
    img = OMEArrow.scan(path)
    with pytest.raises(CorruptInputError, match=r"x.parquet .*chunk 4 at .*payload is 254 bytes, expected 256"):
        img.to_numpy()


def test_compressed_payload_decoding_to_the_wrong_size(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        record = ome_ingest.from_numpy(
            ARR, chunk_shape=(2, 8, 8), chunk_encoding="bytes", chunk_compression="lz4"
        ).as_py()
    import pyarrow as _pa

    record["chunks"][0]["pixel_bytes"] = _pa.Codec("lz4").compress(b"\1" * 300, asbytes=True)
    record["chunks"][0]["compression"] = "lz4"
    path = _write(tmp_path / "x.parquet", record)
    with pytest.raises(CorruptInputError, match=r"chunk 0 .*lz4 payload decodes to 257\+ bytes, expected 256"):
        _read(path)


@pytest.mark.parametrize("bad", ["O", "V1000000000", "<M8[s]", "float128", "i4,i4"])
def test_untrusted_dtype_strings(tmp_path, bad):
    record = _rec("bytes")
    record["chunks"][2]["dtype"] = bad
    path = _write(tmp_path / "x.parquet", record)
    with pytest.raises(CorruptInputError, match=r"chunk 2: untrusted pixel dtype"):
        OMEArrow.scan(path)


def test_big_endian_dtype_string_is_normalised(tmp_path):
    record = _rec("bytes")
    for chunk in record["chunks"]:
        data = np.frombuffer(chunk["pixel_bytes"], "<u2").astype(">u2")
        chunk["pixel_bytes"], chunk["dtype"] = data.tobytes(), ">u2"
    path = _write(tmp_path / "x.parquet", record)
    img = OMEArrow.scan(path)
    assert img.dtype == np.dtype("uint16") and img.dtype.isnative
    out = img.to_numpy()
    assert out.dtype.isnative
    np.testing.assert_array_equal(out, ARR)


def test_unknown_chunk_compression(tmp_path):
    record = _rec("bytes")
    record["chunks"][0]["compression"] = "brotli"
    path = _write(tmp_path / "x.parquet", record)
    with pytest.raises(CorruptInputError, match="chunk 0: chunk compression 'brotli' is not supported"):
        OMEArrow.scan(path)


def _dataset(tmp_path):
    out = tmp_path / "d.ome.parquet"
    ome_dataset.write_ome_arrow_dataset([ARR], out, chunk_shape=(1, 1, 2, 8, 8))
    return out


def test_manifest_missing(tmp_path):
    out = _dataset(tmp_path)
    (out / "_ome_arrow_dataset.json").unlink()
    with pytest.raises(IncompleteOutputError, match=r"no _ome_arrow_dataset.json manifest"):
        OMEArrow.scan(out)


def test_chunk_count_mismatch(tmp_path):
    out = _dataset(tmp_path)
    manifest = json.loads((out / "_ome_arrow_dataset.json").read_text())
    manifest["chunk_count"] += 1
    (out / "_ome_arrow_dataset.json").write_text(json.dumps(manifest))
    with pytest.raises(IncompleteOutputError, match="chunk_count=37 but the dataset holds 36"):
        OMEArrow.scan(out)


def _rewrite_index(out, **changes):
    index = pq.read_table(out / "index.parquet")
    for name, values in changes.items():
        index = index.set_column(
            index.schema.get_field_index(name), name, pa.array(values, index.schema.field(name).type)
        )
    pq.write_table(index, out / "index.parquet")


@pytest.mark.parametrize("fragment", ["../../x.parquet", "/etc/passwd", "sub/../../chunks.parquet"])
def test_fragment_path_escaping(tmp_path, fragment):
    out = _dataset(tmp_path)
    n = pq.read_metadata(out / "index.parquet").num_rows
    _rewrite_index(out, fragment_path=[fragment] + ["chunks.parquet"] * (n - 1))
    with pytest.raises(UnsafePathError, match=r"fragment_path .* points outside the dataset directory"):
        OMEArrow.scan(out)


def test_dataset_duplicate_and_missing_chunks(tmp_path):
    out = _dataset(tmp_path)
    xs = pq.read_table(out / "index.parquet").column("x").to_pylist()
    assert xs[:2] == [0, 8]
    _rewrite_index(out, x=[0, 0, *xs[2:]])
    with pytest.raises(CorruptInputError, match=r"chunk entry 1 at \(t,c,z,y,x\)=\(0, 0, 0, 0, 0\) duplicates entry 0"):
        OMEArrow.scan(out)


def test_dataset_index_points_past_the_row_groups(tmp_path):
    out = _dataset(tmp_path)
    n = pq.read_metadata(out / "index.parquet").num_rows
    _rewrite_index(out, row_group_id=[*range(n - 1), 999])
    with pytest.raises(IncompleteOutputError, match="row group 999"):
        OMEArrow.scan(out)


def test_dataset_changed_after_open(tmp_path):
    out = _dataset(tmp_path)
    img = OMEArrow.scan(out)
    ome_dataset.write_ome_arrow_dataset([ARR[:, :, :, :, :20]], out, chunk_shape=(1, 1, 2, 8, 8))
    with pytest.raises(OmeArrowDaskError, match="changed"):
        img.to_numpy()
