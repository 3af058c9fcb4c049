"""The OME-Arrow record codec (``ome_arrow_dask.arrow.codec``): encode -> decode round trips, and ome-arrow agrees.

Every layout ome-arrow 0.1.0 writes (byte payload raw / zstd / lz4, list chunks with their
duplicate planes, planes only, the ``dtype_meta=`` all-uint16 byte layout, pre-0.1 records)
is decoded by our codec to the pixels ome-arrow itself reads, and every record our codec
encodes is read back identically by our decoder and by the real ``ome_arrow`` package.
"""

from __future__ import annotations

import datetime as dt
import warnings

import dask.array as da
import numpy as np
import ome_arrow
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ome_arrow.export import to_numpy
from ome_arrow.ingest import from_numpy

from ome_arrow_dask.arrow.codec import (
    check_payload,
    decode_entry,
    decode_record,
    encode_blocks,
    encode_record,
    iter_blocks,
    open_record,
    record_chunk_shape,
    record_from_dict,
)
from ome_arrow_dask.arrow.schema import OME_ARROW_BYTE_STRUCT, OME_ARROW_STRUCT
from ome_arrow_dask.errors import CorruptInputError, OmeArrowDaskError
from ome_arrow_dask.meta import Channel, ImageMeta, PhysicalSize, regular_chunks

SHAPE = (2, 2, 3, 13, 21)  # edge chunks on Z, Y and X with chunk (2, 8, 8)
CHUNK = (2, 8, 8)
PAYLOADS = ["bytes", "bytes-zstd", "bytes-lz4", "list", "planes"]
BYTE_DTYPES = ["bool", "uint8", "int8", "uint16", "int16", "uint32", "int32", "int64", "float32", "float64"]
LIST_DTYPES = ["uint8", "uint16", "int16", "int32", "float32"]  # values must fit uint16


def _pixels(dtype, *, uint16_values=False, shape=SHAPE, seed=0):
    rng = np.random.default_rng(seed)
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        return rng.integers(0, 2, shape).astype(bool)
    if uint16_values:
        high = 65535 if dtype.kind == "f" else min(np.iinfo(dtype).max, 65535)
        return rng.integers(0, high, shape, endpoint=True).astype(dtype)
    if dtype.kind == "f":
        return (rng.standard_normal(shape) * 1000).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(max(info.min, -(2**40)), min(info.max, 2**40), shape, endpoint=True).astype(dtype)


def _meta(array, chunk=(1, 1, 1, 4, 4)):
    channels = tuple(
        Channel(
            name=f"stain{i}",
            id=f"ch-{i}",
            color_rgba=0xFF00FFFF,
            emission_um=0.52,
            excitation_um=0.488,
            illumination="Epifluorescence",
        )
        for i in range(array.shape[1])
    )
    return ImageMeta(
        tuple(array.shape),
        array.dtype,
        regular_chunks(array.shape, chunk),
        channels=channels,
        physical_size=PhysicalSize(z=2.0, y=0.65, x=0.65, z_unit="µm", y_unit="µm", x_unit="µm"),
        id="img-7",
        name="cells",
        image_type="image",
        acquisition_datetime=dt.datetime(2024, 3, 4, 5, 6, 7, tzinfo=dt.UTC),
    )


def _encode(array, payload, chunk_shape=CHUNK):
    kind, _, codec = payload.partition("-")
    return encode_record(
        da.from_array(array, chunks=(1, 1, 2, 7, 9)),
        _meta(array),
        payload=kind,
        chunk_shape=chunk_shape,
        codec=codec or None,
    )


def _theirs(record_array):
    """What ome-arrow 0.1.0 reads from one of our records, in the declared dtype."""
    record = record_array[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return to_numpy(record, dtype=np.dtype(record["pixels_meta"]["type"].as_py()))


# ---------------------------------------------------------------------- we encode, we and ome-arrow decode
PAYLOAD_DTYPES = [(p, d) for p in PAYLOADS for d in (BYTE_DTYPES if p.startswith("bytes") else LIST_DTYPES)]


@pytest.mark.parametrize(("payload", "dtype"), PAYLOAD_DTYPES)
def test_round_trip_every_payload_and_dtype(payload, dtype):
    array = _pixels(dtype, uint16_values=not payload.startswith("bytes"))
    record = _encode(array, payload)
    assert record.type == (OME_ARROW_BYTE_STRUCT if payload.startswith("bytes") else OME_ARROW_STRUCT)
    meta, back = decode_record(record)
    assert back.dtype == array.dtype
    np.testing.assert_array_equal(back, array)
    expected = _meta(array)
    for key in ("shape", "dtype", "channels", "physical_size", "id", "name", "image_type", "acquisition_datetime"):
        assert getattr(meta, key) == getattr(expected, key), key
    if dtype != "bool":  # ome-arrow's to_numpy cannot cast to bool
        np.testing.assert_array_equal(_theirs(record), array)


@pytest.mark.parametrize(
    ("chunk_shape", "payload", "expected_chunk"),
    [
        (None, "bytes", (1, 1, 3, 13, 21)),  # default: min(Z, 16), min(Y, 512), min(X, 512)
        ((1, 1, 1), "bytes", (1, 1, 1, 1, 1)),
        ((1, 1, 2, 5, 7), "list", (1, 1, 2, 5, 7)),  # TCZYX with T = C = 1
        ((100, 100, 100), "bytes-zstd", (1, 1, 3, 13, 21)),  # clipped to the image
        ((2, 8, 8), "planes", (1, 1, 1, 13, 21)),  # planes are whole YX planes whatever was asked
    ],
)
def test_chunk_grid_round_trips(chunk_shape, payload, expected_chunk):
    array = _pixels("uint16", uint16_values=True)
    record = _encode(array, payload, chunk_shape)
    meta, back = decode_record(record)
    assert meta.chunks == regular_chunks(SHAPE, expected_chunk)
    np.testing.assert_array_equal(back, array)
    np.testing.assert_array_equal(_theirs(record), array)
    grid = record[0]["chunk_grid"].as_py()
    if payload == "planes":
        assert grid is None and len(record[0]["chunks"]) == 0 and len(record[0]["planes"]) == 2 * 2 * 3
    else:
        assert (grid["chunk_z"], grid["chunk_y"], grid["chunk_x"]) == expected_chunk[2:]
        assert (grid["order"], grid["chunk_t"], grid["chunk_c"], grid["chunk_order"]) == ("TCZYX", 1, 1, "ZYX")


def test_byte_chunks_are_compressed_only_when_asked():
    array = np.zeros((1, 1, 4, 32, 32), "uint16")
    raw, packed = _encode(array, "bytes"), _encode(array, "bytes-zstd")
    raw_chunks, packed_chunks = raw[0]["chunks"].as_py(), packed[0]["chunks"].as_py()
    assert {c["compression"] for c in raw_chunks} == {None}
    assert {c["compression"] for c in packed_chunks} == {"zstd"}
    assert packed_chunks[0]["pixel_bytes"][:4] == bytes.fromhex("28b52ffd")  # zstd frame magic, as ome-arrow writes
    assert sum(len(c["pixel_bytes"]) for c in packed_chunks) < sum(len(c["pixel_bytes"]) for c in raw_chunks)


def test_encode_blocks_from_numpy_equals_encode_record():
    array = _pixels("int16")
    meta = _meta(array)
    chunk = record_chunk_shape(SHAPE, "bytes", CHUNK)
    blocks = list(iter_blocks(array, chunk))
    assert [origin for origin, _ in blocks][:3] == [(0, 0, 0, 0, 0), (0, 0, 0, 0, 8), (0, 0, 0, 0, 16)]
    assert encode_blocks(meta, blocks, chunk).equals(encode_record(array, meta, chunk_shape=CHUNK))


def test_several_records_decode_row_by_row():
    first, second = _pixels("float32", seed=1), _pixels("float32", seed=2)
    records = pa.concat_arrays([_encode(first, "bytes"), _encode(second, "bytes-lz4")])
    np.testing.assert_array_equal(decode_record(records, 1)[1], second)
    np.testing.assert_array_equal(decode_record(records, 0)[1], first)
    with pytest.raises(OmeArrowDaskError, match="row_index 2 is out of range for 2 records"):
        decode_record(records, 2)


def test_raw_chunks_in_the_image_dtype_decode_as_views_of_the_buffer():
    array = _pixels("float32")
    layout, payload = open_record(_encode(array, "bytes"), 0, "test record")
    block = decode_entry(layout, payload, 0, (1, 1, 2, 8, 8), "chunk 0", copy=False)
    assert np.shares_memory(block, payload.values) and not block.flags.writeable
    np.testing.assert_array_equal(block, array[:1, :1, :2, :8, :8])
    assert not np.shares_memory(decode_entry(layout, payload, 0, (1, 1, 2, 8, 8), "chunk 0"), payload.values)


@pytest.mark.parametrize("payload", ["list", "planes"])
def test_list_payloads_refuse_values_uint16_cannot_hold(payload):
    array = np.full((1, 1, 1, 2, 2), -1, "int16")
    with pytest.raises(OmeArrowDaskError, match=r"int16 block at \(0, 0, 0, 0, 0\) holds values .* payload='bytes'"):
        encode_record(array, _meta(array), payload=payload)
    fractions = np.full((1, 1, 1, 2, 2), 0.5, "float32")
    with pytest.raises(OmeArrowDaskError, match=r"not integers in 0\.\.65535"):
        encode_record(fractions, _meta(fractions), payload=payload)


@pytest.mark.parametrize(
    ("payload", "codec", "message"),
    [
        ("pixels", None, "payload must be one of"),
        ("bytes", "gzip", "chunk_compression must be None, 'zstd' or 'lz4'"),
        ("list", "zstd", "applies to payload='bytes' only"),
    ],
)
def test_bad_payload_options(payload, codec, message):
    with pytest.raises(OmeArrowDaskError, match=message):
        check_payload(payload, codec)


def test_encode_refuses_metadata_of_another_shape():
    array = _pixels("uint8")
    with pytest.raises(OmeArrowDaskError, match="the array has shape \\(1, 2, 3, 13, 21\\), but the metadata says"):
        encode_record(array[:1], _meta(array))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    shape=st.tuples(*(st.integers(1, n) for n in (2, 3, 4, 9, 9))),
    chunk=st.tuples(*(st.integers(1, 9) for _ in range(3))),
    payload=st.sampled_from(PAYLOADS),
    dtype=st.sampled_from(["uint8", "int16", "float32", "uint16"]),
)
def test_round_trip_any_shape_and_chunk_grid(shape, chunk, payload, dtype):
    array = _pixels(dtype, uint16_values=not payload.startswith("bytes"), shape=shape)
    record = _encode(array, payload, chunk)
    meta, back = decode_record(record)
    np.testing.assert_array_equal(back, array)
    expected = record_chunk_shape(shape, payload.partition("-")[0], chunk)
    assert meta.chunks == regular_chunks(shape, expected)


# ---------------------------------------------------------------------- ome-arrow encodes, we decode what it reads
def _their_record(array, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scalar = from_numpy(array, dim_order="TCZYX", chunk_shape=CHUNK, channel_names=["a", "b"], **kwargs)
        return scalar, to_numpy(scalar, dtype=np.dtype(scalar["pixels_meta"]["type"].as_py()))


def _as_array(scalar):
    return pa.array([scalar.as_py()], type=scalar.type)


@pytest.mark.parametrize(
    ("dtype", "kwargs"),
    [
        ("uint16", {"chunk_encoding": "list"}),  # chunks and planes (the same pixels twice)
        ("uint8", {"chunk_encoding": "list", "clamp_to_uint16": False}),
        ("uint16", {"build_chunks": False}),  # planes only
        ("int16", {"chunk_encoding": "bytes", "clamp_to_uint16": False}),
        ("float32", {"chunk_encoding": "bytes", "clamp_to_uint16": False, "chunk_compression": "zstd"}),
        ("float64", {"chunk_encoding": "bytes", "clamp_to_uint16": False, "chunk_compression": "lz4"}),
        ("uint16", {"chunk_encoding": "bytes", "chunk_compression": "zstd"}),
    ],
)
def test_we_decode_what_ome_arrow_encodes(dtype, kwargs):
    array = _pixels(dtype, uint16_values=kwargs.get("chunk_encoding") != "bytes")
    scalar, theirs = _their_record(array, **kwargs)
    np.testing.assert_array_equal(theirs, array)  # the oracle reads its own record right
    meta, ours = decode_record(_as_array(scalar))
    assert ours.dtype == theirs.dtype == array.dtype
    np.testing.assert_array_equal(ours, theirs)
    assert meta.channel_names == ("a", "b")
    has_chunks = kwargs.get("build_chunks", True)
    assert meta.chunks == regular_chunks(SHAPE, (1, 1, *CHUNK) if has_chunks else (1, 1, 1, *SHAPE[3:]))


def test_ome_arrows_dtype_meta_layout_decodes_to_the_declared_type():
    array = _pixels("float32", uint16_values=True)
    scalar, theirs = _their_record(array, chunk_encoding="bytes", clamp_to_uint16=True, dtype_meta="float32")
    assert {c["dtype"] for c in scalar["chunks"].as_py()} == {"uint16"}
    meta, ours = decode_record(_as_array(scalar))
    assert meta.dtype == np.float32
    np.testing.assert_array_equal(ours, theirs)
    np.testing.assert_array_equal(ours, array)


def test_list_records_are_read_from_their_chunks_not_their_planes():
    array = _pixels("uint16", uint16_values=True)
    scalar, _ = _their_record(array, chunk_encoding="list")
    record = scalar.as_py()
    for plane in record["planes"]:
        plane["pixels"] = [0] * len(plane["pixels"])  # chunks win, in ome-arrow and here
    blanked = record_from_dict(record)
    np.testing.assert_array_equal(decode_record(blanked)[1], array)
    np.testing.assert_array_equal(_theirs(blanked), array)


def test_pre_chunk_legacy_records_decode_from_their_planes():
    array = _pixels("uint16", uint16_values=True)
    scalar, _ = _their_record(array, build_chunks=False)
    legacy_type = pa.struct([f for f in OME_ARROW_STRUCT if f.name not in ("image_type", "chunk_grid", "chunks")])
    legacy = pa.array([{f.name: scalar[f.name].as_py() for f in legacy_type}], type=legacy_type)
    meta, ours = decode_record(legacy)
    assert meta.dtype == np.uint16 and meta.image_type is None
    np.testing.assert_array_equal(ours, array)


def test_our_struct_types_are_ome_arrows():
    assert OME_ARROW_STRUCT.equals(ome_arrow.OME_ARROW_STRUCT)
    assert OME_ARROW_BYTE_STRUCT.equals(ome_arrow.OME_ARROW_BYTE_STRUCT)


def test_a_record_that_does_not_fit_the_struct_names_the_cause():
    with pytest.raises(CorruptInputError, match="does not fit the OME-Arrow struct"):
        record_from_dict({"pixels_meta": {"type": "uint16"}, "planes": [{"z": 0, "t": 0, "c": 0, "pixels": [-1]}]})
