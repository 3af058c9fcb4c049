"""Damaged OME-Arrow Parquet metadata: every failure is one of our errors naming the file (issues 13, 21, 16).

Files come from our writer and from ome-arrow 0.1.0, then get the exact damage a fuzzer
found: struct fields retyped to text with bad values, columns dropped, bytes that are not
UTF-8, pixel types that contradict the stored chunks, an interrupted OME-Zarr beside a
``.progress`` folder.
"""

from __future__ import annotations

import json
import random
import warnings

import dask.array as da
import numpy as np
import ome_arrow.dataset as ome_dataset
import ome_arrow.export as ome_export
import ome_arrow.ingest as ome_ingest
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ome_arrow_dask import OMEArrow
from ome_arrow_dask.cli import main
from ome_arrow_dask.errors import CorruptInputError, IncompleteOutputError, OmeArrowDaskError
from ome_arrow_dask.sources import parquet as parquet_source
from ome_arrow_dask.sources._parquet_struct import clear_payload_cache

ARR = (np.arange(2 * 3 * 8 * 8) * 7 % 5000).astype(np.uint16).reshape(1, 2, 3, 8, 8)


def _quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def _ours(path, arr=ARR, **options):
    OMEArrow(arr).export(how="parquet", out=path, layout="struct", **options)
    return path


def _ome_arrow_list(path, arr=ARR):
    record = _quiet(ome_ingest.from_numpy, arr, chunk_shape=(2, 8, 8), chunk_encoding="list")
    ome_export.to_ome_parquet(record, str(path), column_name="image")
    return path


def _retype(arrow_type: pa.DataType, path: list[str], new: pa.DataType) -> pa.DataType:
    """``arrow_type`` with the field at ``path`` (``[]`` steps into a list) replaced by ``new``."""
    if not path:
        return new
    head, *rest = path
    if head == "[]":
        return pa.list_(_retype(arrow_type.value_type, rest, new))
    return pa.struct([pa.field(f.name, _retype(f.type, rest, new)) if f.name == head else f for f in arrow_type])


def _rewrite_record(path, field_path: list[str], value, new_type: pa.DataType | None = pa.string()):  # noqa: B008
    """Set ``field_path`` of the record (every list element) to ``value``, retyping the field."""
    table = pq.read_table(path)
    column = table.column_names[0]
    record = table.column(column).to_pylist()[0]
    targets = [record]
    for key in field_path[:-1]:
        targets = [item for target in targets for item in (target if key == "[]" else [target[key]])]
    for target in targets:
        target[field_path[-1]] = value
    arrow_type = table.schema.field(column).type
    if new_type is not None:
        arrow_type = _retype(arrow_type, field_path, new_type)
    pq.write_table(pa.table({column: pa.array([record], type=arrow_type)}), path)
    return path


WRITERS = {"ours": _ours, "ome-arrow": _ome_arrow_list}

RECORD_DAMAGE = [
    (["pixels_meta", "size_t"], "1e3", pa.string(), r"pixels_meta\.size_t must be an integer, got '1e3'"),
    (["pixels_meta", "size_x"], "abc", pa.string(), r"pixels_meta\.size_x must be an integer, got 'abc'"),
    (["pixels_meta", "size_y"], -3, None, r"pixels_meta\.size_y must be an integer >= 1, got -3"),
    (["pixels_meta", "channels", "[]", "color_rgba"], "abc", pa.string(), r"channels\[0\]\.color_rgba .* 'abc'"),
    (["pixels_meta", "channels", "[]", "color_rgba"], "Infinity", pa.string(), r"color_rgba .*'Infinity'"),
    (["pixels_meta", "channels", "[]", "color_rgba"], float("inf"), pa.float64(), r"color_rgba .*got inf"),
    (["pixels_meta", "channels", "[]", "emission_um"], "x", pa.string(), r"emission_um must be a finite number"),
    (["pixels_meta", "physical_size_x"], "x", pa.string(), r"physical_size_x must be a finite number, got 'x'"),
    (["chunk_grid", "chunk_x"], "x", pa.string(), r"chunk_grid\.chunk_x must be an integer, got 'x'"),
    (["chunks", "[]", "x"], "0", pa.string(), r"chunks\.x has type string, expected integers"),
]


@pytest.mark.parametrize("writer", sorted(WRITERS))
@pytest.mark.parametrize(("field_path", "value", "new_type", "message"), RECORD_DAMAGE)
def test_struct_metadata_of_the_wrong_type(tmp_path, writer, field_path, value, new_type, message):
    path = _rewrite_record(WRITERS[writer](tmp_path / "x.parquet"), field_path, value, new_type)
    with pytest.raises(CorruptInputError, match=rf"x\.parquet .*{message}"):
        OMEArrow.scan(path).to_numpy()


def test_struct_payload_of_the_wrong_type(tmp_path):
    path = _rewrite_record(_ours(tmp_path / "x.parquet"), ["chunks", "[]", "pixel_bytes"], None, pa.int32())
    with pytest.raises(CorruptInputError, match=r"x\.parquet .*chunks\.pixel_bytes has type int32, expected binary"):
        OMEArrow.scan(path)


def _unicode_damage(path, old: bytes, new: bytes, occurrence: int | None = None):
    """Replace every (or the ``occurrence``-th, 0-based or negative) ``old`` in the file's bytes by ``new``."""
    data = path.read_bytes()
    starts = [i for i in range(len(data)) if data.startswith(old, i)]
    assert starts
    if occurrence is None:
        path.write_bytes(data.replace(old, new))
    else:
        i = starts[occurrence]
        path.write_bytes(data[:i] + new + data[i + len(old) :])
    return path


def test_struct_string_value_that_is_not_utf8(tmp_path):
    path = _ours(tmp_path / "x.parquet")
    table = pq.read_table(path)
    record = table.column(0).to_pylist()[0]
    record["name"] = "QQQQQQQQ"
    plain = {"compression": "none", "use_dictionary": False, "write_statistics": False}
    pq.write_table(pa.table({"ome_arrow": pa.array([record], type=table.schema.field(0).type)}), path, **plain)
    _unicode_damage(path, b"QQQQQQQQ", b"Q\xff\xfeQQQQQ")
    with pytest.raises(CorruptInputError, match=r"x\.parquet .*field 'name' holds a damaged value \(UnicodeDecode"):
        OMEArrow.scan(path)


@pytest.mark.parametrize(
    ("file", "name", "occurrence"),
    [
        ("x.parquet", b"illumination", 0),  # the schema element
        ("x.parquet", b"illumination", -1),  # the column chunk's path_in_schema
        ("x.parquet", b"pixels_meta", None),
        ("d/images.parquet", b"image_type", 0),
        ("d/index.parquet", b"fragment_path", 0),
        ("d/chunks.parquet", b"pixel_bytes", 0),
    ],
)
def test_footer_column_name_that_is_not_utf8(tmp_path, file, name, occurrence):
    _ours(tmp_path / "x.parquet")
    OMEArrow(ARR).export(how="parquet", out=tmp_path / "d")
    _unicode_damage(tmp_path / file, name, b"\xff" + name[1:], occurrence)
    target = tmp_path / file.split("/")[0]
    with pytest.raises(CorruptInputError, match=rf"{file.split('/')[-1]}.*UnicodeDecodeError"):
        OMEArrow.scan(target).to_numpy()


def _bit_flips(path, target, seed, n=25):
    """Flip one bit in the footer region ``n`` times; every failure must be ours and name the file."""
    rng = random.Random(seed)
    original = path.read_bytes()
    for _ in range(n):
        data = bytearray(original)
        data[rng.randrange(max(0, len(data) - 400), len(data))] ^= 1 << rng.randrange(8)
        path.write_bytes(bytes(data))
        clear_payload_cache()
        try:
            out = OMEArrow.scan(target).to_numpy()
        except OmeArrowDaskError as exc:
            assert path.name in str(exc) or str(target) in str(exc), str(exc)
        else:
            assert out.shape == ARR.shape
    path.write_bytes(original)


def test_footer_bit_flips_give_our_errors(tmp_path):
    _bit_flips(_ours(tmp_path / "x.parquet", compression=None), tmp_path / "x.parquet", seed=1)
    _bit_flips(_ome_arrow_list(tmp_path / "o.parquet"), tmp_path / "o.parquet", seed=2)
    out = tmp_path / "d"
    OMEArrow(ARR).export(how="parquet", out=out)
    for seed, name in enumerate(("images.parquet", "index.parquet", "chunks.parquet")):
        _bit_flips(out / name, out, seed=seed)


# ---------------------------------------------------------------------- datasets
def _dataset(tmp_path, writer="ours", arr=ARR):
    out = tmp_path / "d.ome.parquet"
    if writer == "ours":
        OMEArrow(arr).export(how="parquet", out=out)
    else:
        ome_dataset.write_ome_arrow_dataset([arr], out, chunk_shape=(1, 1, 2, 8, 8))
    return out


def _rewrite_table(path, **columns):
    """Replace (or, with ``None``, drop) columns of a dataset table."""
    table = pq.read_table(path)
    for name, values in columns.items():
        if name in table.column_names:
            table = table.drop_columns([name])
        if values is not None:
            table = table.append_column(name, pa.array(values))
    pq.write_table(table, path, row_group_size=1)  # chunks.parquet keeps one chunk per row group


DATASET_DAMAGE = [
    ({"size_x": ["abc"]}, r"images\.parquet: row 'image-00000' column size_x must be an integer, got 'abc'"),
    ({"size_t": ["1e3"]}, r"images\.parquet: row 'image-00000' column size_t must be an integer, got '1e3'"),
    ({"chunk_y": [-8]}, r"images\.parquet: row 'image-00000' column chunk_y must be an integer >= 1, got -8"),
    ({"physical_size_x": ["x"]}, r"images\.parquet: row 'image-00000' column physical_size_x must be a finite"),
    (
        {"channels_json": [json.dumps([{"color_rgba": "abc"}, {}])]},
        r"images\.parquet: row 'image-00000' channels_json\[0\]\.color_rgba must be an integer, got 'abc'",
    ),
    ({"channels_json": ['[{"color_rgba": Infinity}, {}]']}, r"channels_json\[0\]\.color_rgba .*got inf"),
    ({"channels_json": ['[{"emission_um": "x"}, {}]']}, r"channels_json\[0\]\.emission_um must be a finite number"),
]


@pytest.mark.parametrize("writer", ["ours", "ome-arrow"])
@pytest.mark.parametrize(("columns", "message"), DATASET_DAMAGE)
def test_dataset_images_row_of_the_wrong_type(tmp_path, writer, columns, message):
    out = _dataset(tmp_path, writer)
    _rewrite_table(out / "images.parquet", **columns)
    with pytest.raises(CorruptInputError, match=rf"d\.ome\.parquet.*{message}"):
        OMEArrow.scan(out)


@pytest.mark.parametrize("table", ["images.parquet", "index.parquet"])
def test_dataset_table_without_image_id(tmp_path, table):
    out = _dataset(tmp_path)
    _rewrite_table(out / table, image_id=None)
    with pytest.raises(CorruptInputError, match=rf"d\.ome\.parquet/{table}: no 'image_id' column"):
        OMEArrow.scan(out)


def test_dataset_without_index_and_chunks_without_image_id(tmp_path):
    out = _dataset(tmp_path)
    (out / "index.parquet").unlink()
    _rewrite_table(out / "chunks.parquet", image_id=None)
    with pytest.raises(CorruptInputError, match=r"chunks\.parquet"):
        OMEArrow.scan(out)


def test_dataset_index_coordinates_of_the_wrong_type(tmp_path):
    out = _dataset(tmp_path)
    xs = pq.read_table(out / "index.parquet").column("x").to_pylist()
    _rewrite_table(out / "index.parquet", x=[str(v) for v in xs])
    with pytest.raises(CorruptInputError, match=r"index\.parquet: column 'x' has type string, expected integers"):
        OMEArrow.scan(out)


def test_dataset_chunks_without_the_dtype_column(tmp_path):
    out = _dataset(tmp_path)
    _rewrite_table(out / "chunks.parquet", dtype=None)
    img = OMEArrow.scan(out)
    with pytest.raises(CorruptInputError, match=r"chunks\.parquet chunk_id 0 .*no column\(s\) \['dtype'\]"):
        img.to_numpy()


def test_dataset_manifest_nested_too_deep(tmp_path):
    out = _dataset(tmp_path)
    (out / "_ome_arrow_dataset.json").write_text("[" * 100000 + "]" * 100000)
    with pytest.raises(CorruptInputError, match=r"_ome_arrow_dataset\.json: not valid JSON"):
        OMEArrow.scan(out)


# ---------------------------------------------------------------------- declared vs stored pixel type
BIG = np.full((1, 1, 1, 8, 8), 300, dtype=np.uint16)


@pytest.mark.parametrize("writer", sorted(WRITERS))
def test_struct_declared_type_narrower_than_the_chunks(tmp_path, writer):
    path = _rewrite_record(WRITERS[writer](tmp_path / "x.parquet", BIG), ["pixels_meta", "type"], "uint8", None)
    img = OMEArrow.scan(path)
    assert img.dtype == np.uint8
    with pytest.raises(CorruptInputError, match=r"x\.parquet.*are uint16 but pixels_meta\.type declares uint8.*300"):
        img.to_numpy()  # was read as 44 (300 wrapped around)


def test_struct_declared_float32_over_float64_chunks(tmp_path):
    arr = np.full((1, 1, 1, 8, 8), 0.1, dtype=np.float64)
    path = _rewrite_record(_ours(tmp_path / "x.parquet", arr), ["pixels_meta", "type"], "float32", None)
    with pytest.raises(CorruptInputError, match=r"stored pixels are float64 but pixels_meta\.type declares float32"):
        OMEArrow.scan(path).to_numpy()


def test_dataset_declared_type_narrower_than_the_chunks(tmp_path):
    out = _dataset(tmp_path, arr=BIG)
    _rewrite_table(out / "images.parquet", dtype=["uint8"])
    img = OMEArrow.scan(out)
    message = r"chunks\.parquet chunk_id 0 .*own dtype is uint16 but images\.parquet declares uint8"
    with pytest.raises(CorruptInputError, match=message):
        img.to_numpy()


def test_lossless_type_conversions_still_read(tmp_path):
    small = (np.arange(64) % 250).astype(np.uint8).reshape(1, 1, 1, 8, 8)
    # ome-arrow's dtype_meta= keeps uint16 chunks under a uint8 declaration
    record = _quiet(ome_ingest.from_numpy, small, chunk_shape=(1, 8, 8), chunk_encoding="bytes", dtype_meta="uint8")
    assert record.as_py()["chunks"][0]["dtype"] == "uint16"
    ome_export.to_ome_parquet(record, str(tmp_path / "meta.parquet"))
    img = OMEArrow.scan(tmp_path / "meta.parquet")
    assert img.dtype == np.uint8
    np.testing.assert_array_equal(img.to_numpy(), small)
    # list payloads are list<uint16> whatever the declared type
    floats = small.astype(np.float32)
    record = _quiet(ome_ingest.from_numpy, floats, chunk_shape=(1, 8, 8), clamp_to_uint16=False)
    ome_export.to_ome_parquet(record, str(tmp_path / "list.parquet"))
    img = OMEArrow.scan(tmp_path / "list.parquet")
    assert img.dtype == np.float32
    np.testing.assert_array_equal(img.to_numpy(), floats)
    # a dataset declaring uint8 over uint16 chunks is refused even where the values fit: its chunks carry
    # their own dtype (test_dataset_chunk_dtype_disagreeing_is_refused_even_when_values_fit)


# ---------------------------------------------------------------------- an interrupted OME-Zarr is not Parquet
def _crash(block, block_info=None):
    if block_info[0]["chunk-location"][2] == 1:
        raise RuntimeError("simulated crash")
    return block


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_interrupted_ome_zarr_is_reported_as_ome_zarr(tmp_path, version, capsys):
    out = tmp_path / "run.ome.zarr"
    arr = da.zeros((1, 1, 2, 8, 8), dtype=np.uint16, chunks=(1, 1, 1, 8, 8)).map_blocks(_crash, dtype=np.uint16)
    with pytest.raises(RuntimeError, match="simulated crash"):
        OMEArrow(arr).export(how="ome-zarr", out=out, version=version, chunks=(1, 1, 1, 8, 8))
    assert out.is_dir() and (tmp_path / "run.ome.zarr.progress").is_dir()
    assert not parquet_source.probe(str(out))
    with pytest.raises(IncompleteOutputError) as info:
        OMEArrow.scan(out)
    message = str(info.value)
    assert "OME-Zarr" in message and "--resume" in message
    assert "_ome_arrow_dataset.json" not in message and "OME-Arrow dataset" not in message
    assert main(["info", str(out)]) == 2
    err = capsys.readouterr().err
    assert "OME-Zarr" in err and "--resume" in err and "_ome_arrow_dataset.json" not in err


def test_parquet_probe_never_claims_a_zarr_folder(tmp_path):
    for name, marker in (("a.zarr", None), ("plain", "zarr.json"), ("v2", ".zgroup"), ("v2attrs", ".zattrs")):
        folder = tmp_path / name
        folder.mkdir()
        (tmp_path / f"{name}.progress").mkdir()
        if marker:
            (folder / marker).write_text("{}")
        assert not parquet_source.probe(str(folder)), name
    # an interrupted Parquet dataset is still claimed, and named as one
    out = _dataset(tmp_path)
    (out / "_ome_arrow_dataset.json").unlink()
    (tmp_path / "d.ome.parquet.progress").mkdir()
    assert parquet_source.probe(str(out))
    with pytest.raises(IncompleteOutputError, match=r"no _ome_arrow_dataset\.json manifest.*--resume"):
        OMEArrow.scan(out)


# ---------------------------------------------------------------------- requested column missing (issue 16)
def test_missing_requested_column_warns_and_auto_detects(tmp_path):
    path = _ours(tmp_path / "x.parquet", column_name="img")
    expected = (
        r"Requested column 'nope' was not usable or not found\. Auto-detected OME-Arrow column 'img'\. "
        r"\(.*x\.parquet: no column 'nope', reading 'img' instead\)"
    )
    with pytest.warns(UserWarning, match=expected):
        img = OMEArrow.scan(path, column_name="nope")
    np.testing.assert_array_equal(img.to_numpy(), ARR)
    with pytest.warns(UserWarning, match=r"Requested column 'ome_arrow' was not usable or not found"):
        OMEArrow.scan(path)  # nothing requested: ome-arrow's default column 'ome_arrow' is, as ome-arrow warns
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        OMEArrow.scan(path, column_name="img")  # the column that exists: no warning
    pq.write_table(pa.table({"a": [1]}), tmp_path / "plain.parquet")
    with pytest.raises(OmeArrowDaskError, match=r"plain\.parquet: no column 'nope'.*auto-detection failed"):
        OMEArrow.scan(tmp_path / "plain.parquet", column_name="nope")


# ---------------------------------------------------------------------- chunks with their own dtype (issue 21)
def _set_chunk_dtype(path, index: int, value: str):
    """Edit the ``dtype`` field of byte chunk ``index`` only (the pixel bytes stay as they are)."""
    table = pq.read_table(path)
    column = table.column_names[0]
    record = table.column(column).to_pylist()[0]
    record["chunks"][index]["dtype"] = value
    pq.write_table(pa.table({column: pa.array([record], type=table.schema.field(column).type)}), path)
    return path


def _ome_arrow_bytes(path, arr, **options):
    record = _quiet(ome_ingest.from_numpy, arr, chunk_shape=(2, 8, 8), chunk_encoding="bytes", **options)
    ome_export.to_ome_parquet(record, str(path), column_name="image")
    return path


SMALL = (np.arange(2 * 3 * 8 * 8) % 200).reshape(1, 2, 3, 8, 8)


@pytest.mark.parametrize(
    ("make", "declared", "stored"),
    [
        (lambda p: _ours(p, SMALL.astype(np.uint8)), "uint16", "uint8"),  # widening: was read silently
        (lambda p: _ours(p, SMALL.astype(np.float32)), "float64", "float32"),
        (lambda p: _ours(p, SMALL.astype(np.int16), chunk_compression="zstd"), "int32", "int16"),
        (lambda p: _ome_arrow_bytes(p, SMALL.astype(np.int32), clamp_to_uint16=False), "float64", "int32"),
        (lambda p: _ome_arrow_bytes(p, SMALL.astype(np.uint8), clamp_to_uint16=False), "int8", "uint8"),
    ],
)
def test_struct_declared_type_disagreeing_with_the_chunk_dtype_is_refused(tmp_path, make, declared, stored):
    """Byte chunks say what they hold: a pixels_meta.type edited to another type is refused at scan,
    even where every value would fit the declared type (it was read, cast, without a word)."""
    path = _rewrite_record(make(tmp_path / "x.parquet"), ["pixels_meta", "type"], declared, None)
    message = rf"x\.parquet .*chunk 0 at \(t,c,z,y,x\)=\(0, 0, 0, 0, 0\): the stored pixels are {stored} but "
    with pytest.raises(CorruptInputError, match=message + rf"pixels_meta\.type declares {declared}"):
        OMEArrow.scan(path)


@pytest.mark.parametrize("value", ["int16", "uint8", "float32"])
def test_struct_one_chunk_dtype_edited_is_refused(tmp_path, value):
    """One chunk of uint16 pixels re-labelled int16 (same size: it decoded, and values < 32768 fit back)."""
    path = _set_chunk_dtype(_ours(tmp_path / "x.parquet", chunk_shape=(2, 8, 8)), 1, value)
    with pytest.raises(CorruptInputError, match=rf"chunk 1 at .*stored pixels are {value} but pixels_meta\.type "):
        OMEArrow.scan(path)


@pytest.mark.parametrize(
    ("dtype", "values"),
    [
        ("uint8", SMALL),
        ("int8", SMALL - 100),  # negatives clamped to 0 by ome-arrow's clamp_to_uint16
        ("float32", SMALL / 4),  # fractions cut by the uint16 cast
        ("uint32", SMALL * 300),  # values past 65535 clamped
        ("float64", SMALL + 0.5),
    ],
)
@pytest.mark.parametrize("compression", [None, "zstd"])
def test_ome_arrow_dtype_meta_layout_still_reads(tmp_path, dtype, values, compression):
    """ome-arrow 0.1.0's own layout: clamp_to_uint16=True stores uint16 byte chunks, dtype_meta= declares
    the original type; all chunks uint16 under another declaration is honoured (value-checked cast)."""
    arr = values.astype(dtype)
    path = _ome_arrow_bytes(tmp_path / "m.parquet", arr, dtype_meta=dtype, chunk_compression=compression)
    chunks = pq.read_table(path).column("image").to_pylist()[0]["chunks"]
    assert {c["dtype"] for c in chunks} == {"uint16"}  # the layout is what this test says it is
    img = OMEArrow.scan(path)
    assert img.dtype == np.dtype(dtype)
    expected = np.clip(arr, 0, 65535).astype(np.uint16).astype(dtype)  # what ome-arrow stored
    np.testing.assert_array_equal(img.to_numpy(), expected)
    np.testing.assert_array_equal(img.to_dask()[:, :, 1:, 2:5].compute(), expected[:, :, 1:, 2:5])


def test_ome_arrow_dtype_meta_layout_with_a_value_that_does_not_fit_is_refused(tmp_path):
    """The exception honours the declaration, never wraps: uint16 300 under dtype_meta='uint8' is refused."""
    arr = np.full((1, 1, 2, 8, 8), 300, dtype=np.uint16)
    path = _ome_arrow_bytes(tmp_path / "m.parquet", arr, dtype_meta="uint8")
    with pytest.raises(CorruptInputError, match=r"m\.parquet.*are uint16 but pixels_meta\.type declares uint8.*300"):
        OMEArrow.scan(path).to_numpy()


@pytest.mark.parametrize("writer", ["ours", "ome-arrow"])
@pytest.mark.parametrize("declared", ["uint8", "uint32", "int16", "float64"])
def test_dataset_chunk_dtype_disagreeing_is_refused_even_when_values_fit(tmp_path, writer, declared):
    """Dataset chunks carry their own dtype column: images.parquet declaring another type is refused on
    read (uint16 values < 200 declared uint8 / uint32 were cast silently), naming file, chunk, image, types."""
    out = _dataset(tmp_path, writer, arr=SMALL.astype(np.uint16))
    _rewrite_table(out / "images.parquet", dtype=[declared])
    img = OMEArrow.scan(out)
    message = (
        rf"d\.ome\.parquet/chunks\.parquet chunk_id \d+ .*the chunk's own dtype is uint16 but images\.parquet "
        rf"declares {declared} for image 'image-00000'"
    )
    with pytest.raises(CorruptInputError, match=message):
        img.to_numpy()


def test_dataset_chunks_dtype_column_edited_is_refused(tmp_path):
    """The other side: chunks.parquet's dtype column edited (int16 over uint16 bytes decoded before)."""
    out = _dataset(tmp_path, arr=SMALL.astype(np.uint16))
    table = pq.read_table(out / "chunks.parquet")
    _rewrite_table(out / "chunks.parquet", dtype=["int16"] * table.num_rows)
    with pytest.raises(CorruptInputError, match=r"own dtype is int16 but images\.parquet declares uint16"):
        OMEArrow.scan(out).to_numpy()


def test_fuzz_classifier_accepts_a_recast_only_without_an_own_dtype_and_with_equal_values():
    """tests/fuzzing/classify.py: a parquet_dtype_disagree read passes only for list<uint16> / planes payloads
    or ome-arrow's all-uint16 byte chunks, in the new type, with the unmutated values; never for datasets."""
    from fuzzing.classify import FAILURES, classify

    read = {"status": "ok", "shape": [1, 1, 1, 8, 8], "dtype": "float32", "values": "abc", "warnings": []}
    names = {"x.parquet"}

    def outcome(params, result=read, baseline="abc"):
        return classify(result, kind="parquet_dtype_disagree", baseline_shape=[1, 1, 1, 8, 8], names=names,
                        params={"old": "uint16", "new": "float32", **params}, baseline_values=baseline)[0]

    assert outcome({"payload": "list"}) == outcome({"payload": "planes"}) == "ok_recast"
    assert outcome({"payload": "bytes", "stored_dtypes": ["uint16"]}) == "ok_recast"
    for refused in ({"payload": "bytes", "stored_dtypes": ["float32"]}, {"payload": "dataset"}, {}):
        assert outcome(refused) == "ok_undetected" and "ok_undetected" in FAILURES
    assert outcome({"payload": "list"}, baseline="other") == "ok_undetected"  # values changed
    assert outcome({"payload": "list"}, baseline=None) == "ok_undetected"  # no control to compare with
    assert outcome({"payload": "list"}, result={**read, "dtype": "uint16"}) == "ok_undetected"
