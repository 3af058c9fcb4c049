"""Damaged zarr / OME-Zarr stores never read as data (issues 13, 21) and absent chunks follow the spec (issue 16).

Every store is generated small (a few KB): zarr v2 and v3, sharded and not, and our own
writer's crc32c (NGFF 0.5) and blosc-only (NGFF 0.4) stores, each with exactly one damage.
"""

from __future__ import annotations

import json
import os
import shutil
import warnings

import numpy as np
import pytest
import zarr

from ome_arrow_dask import OMEArrow
from ome_arrow_dask.errors import CorruptInputError, MissingDataWarning, UnsafePathError
from ome_arrow_dask.sources.zarr import ZarrSource


def _rand(shape, seed=0):
    """Random uint16: incompressible, so blosc stores the chunks uncompressed (memcpyed)."""
    return np.random.default_rng(seed).integers(0, 2**16, shape, dtype=np.uint16)


def _plain(tmp_path, name, *, fmt=3, shards=None, **kwargs):
    """A (4, 20, 20) uint16 array with (1, 10, 10) chunks; returns (path, data)."""
    data = _rand((4, 20, 20), seed=1)
    path = tmp_path / name
    arr = zarr.create_array(
        str(path), shape=data.shape, chunks=(1, 10, 10), shards=shards, dtype=data.dtype, zarr_format=fmt, **kwargs
    )
    arr[:] = data
    return path, data


def _ours(tmp_path, version, name="ours.ome.zarr"):
    """Our writer's store of a (1, 1, 2, 32, 32) image in (1, 1, 1, 16, 16) chunks; returns (path, data)."""
    data = _rand((1, 1, 2, 32, 32), seed=2)
    path = tmp_path / name
    OMEArrow(data).export("ome-zarr", out=str(path), version=version, chunks=(1, 1, 1, 16, 16))
    return path, data


def _chunk_file(path, version, coords=(0, 0, 1, 0, 0)):
    """The file of one level-0 chunk of our writer's store."""
    if version == "0.4":
        return path / "0" / os.path.join(*map(str, coords))
    return path / "0" / "c" / os.path.join(*map(str, coords))


def _edit_json(path, edit):
    doc = json.loads(path.read_text())
    edit(doc)
    path.write_text(json.dumps(doc))


# --------------------------------------------------------------------------- item 1: a chunk key that is a directory
def _dir_key_cases(tmp_path, case):
    if case == "v2":
        path, _ = _plain(tmp_path, "v2.zarr", fmt=2)
        return path, "1.0.1", path / "1.0.1"
    if case == "v3":
        path, _ = _plain(tmp_path, "v3.zarr")
        return path, "c/1/0/1", path / "c" / "1" / "0" / "1"
    if case == "sharded":
        path, _ = _plain(tmp_path, "sh.zarr", shards=(2, 20, 20))
        return path, "c/1/0/0", path / "c" / "1" / "0" / "0"
    path, _ = _ours(tmp_path, "0.5")
    return path, "0/c/0/0/1/0/0", _chunk_file(path, "0.5")


@pytest.mark.parametrize("case", ["v2", "v3", "sharded", "ours-crc32c"])
@pytest.mark.parametrize("missing", [None, "error", "fill", "zeros"])
def test_directory_chunk_key_is_corrupt_whatever_missing_says(tmp_path, case, missing):
    path, key, chunk = _dir_key_cases(tmp_path, case)
    chunk.unlink()
    chunk.mkdir()
    (chunk / "junk").write_bytes(b"x")
    img = OMEArrow.scan(path) if missing is None else OMEArrow.scan(path, missing=missing)
    with pytest.raises(CorruptInputError, match=rf"{path.name}.*{key}.*directory"):
        img.to_dask().compute()
    with pytest.raises(CorruptInputError, match=rf"{key}.*directory"):
        img.to_numpy()


def test_chunk_key_under_a_file_is_corrupt(tmp_path):
    path, _ = _plain(tmp_path, "v3.zarr")
    shutil.rmtree(path / "c" / "2")
    (path / "c" / "2").write_bytes(b"not a folder")
    with pytest.raises(CorruptInputError, match=r"c/2/\d/\d.*under a file"):
        OMEArrow.scan(path).to_dask().compute()


# --------------------------------------------------------------------------- item 2: truncated blosc chunks
def _read_paths(img):
    """Every way to read pixels: (name, thunk returning the TCZYX array or a view of it)."""
    return {
        "collect": lambda: img.collect().to_numpy(),
        "to_dask": lambda: img.to_dask().compute(),
        "tensor_view": lambda: img.tensor_view(layout="ZYX").to_numpy()[None, None],
        "small_box": lambda: img.slice_lazy(0, 32, 8, 24).to_numpy(),
        "cache": lambda: img.with_cache("1MiB").to_numpy(),
        "cache_dask": lambda: img.with_cache("1MiB").to_dask().compute(),
    }


def _expected(name, data):
    return data[:, :, :, 8:24, :] if name == "small_box" else data


def test_every_read_path_agrees_on_clean_and_truncated_stored_uncompressed_chunk(tmp_path):
    path, data = _ours(tmp_path, "0.4")
    chunk = _chunk_file(path, "0.4")
    raw = chunk.read_bytes()
    assert raw[2] & 0x2, "random uint16 should be stored uncompressed (blosc memcpyed flag)"
    img = OMEArrow.scan(path)
    for name, read in _read_paths(img).items():
        np.testing.assert_array_equal(read(), _expected(name, data), err_msg=name)

    chunk.write_bytes(raw[: len(raw) // 2])
    img = OMEArrow.scan(path)
    messages = set()
    for name, read in _read_paths(img).items():
        for _ in range(2):  # the same error on every read, never pixels
            with pytest.raises(CorruptInputError, match=r"ours\.ome\.zarr/0.*0/0/0/1/0/0.*truncated") as info:
                read()
            messages.add((name, str(info.value)))
    assert len({m for _, m in messages}) == 1, messages


@pytest.mark.parametrize("cut", [3, 15, 100, -1], ids=["in-header", "header-only", "middle", "last-byte"])
def test_truncated_blosc_chunk_v2_is_corrupt(tmp_path, cut):
    path, _ = _ours(tmp_path, "0.4")
    chunk = _chunk_file(path, "0.4")
    chunk.write_bytes(chunk.read_bytes()[:cut])
    with pytest.raises(CorruptInputError, match=r"0/0/0/1/0/0.*truncated"):
        OMEArrow.scan(path).to_dask().compute()


def test_truncated_blosc_chunk_v3_without_checksum_is_corrupt(tmp_path):
    from zarr.codecs import BloscCodec

    path, _ = _plain(tmp_path, "blosc3.zarr", compressors=BloscCodec(cname="lz4"))
    chunk = path / "c" / "1" / "1" / "0"
    chunk.write_bytes(chunk.read_bytes()[:-7])
    with pytest.raises(CorruptInputError, match=r"blosc3\.zarr.*c/1/1/0.*truncated"):
        OMEArrow.scan(path).to_numpy()


def test_blosc_header_declaring_another_decoded_size_is_corrupt(tmp_path):
    import numcodecs

    path, _ = _plain(tmp_path, "v2.zarr", fmt=2, compressors=numcodecs.Blosc(cname="lz4"))
    chunk = path / "2.1.0"
    raw = bytearray(chunk.read_bytes())
    raw[4:8] = (2**31).to_bytes(4, "little")  # nbytes: a 2 GiB decode of a 200-byte chunk
    chunk.write_bytes(bytes(raw))
    with pytest.raises(CorruptInputError, match=r"2\.1\.0.*2,147,483,648 decoded bytes"):
        OMEArrow.scan(path).to_dask().compute()


def test_truncated_shard_with_unchecksummed_index_is_corrupt(tmp_path):
    from zarr.codecs import BloscCodec, BytesCodec, ShardingCodec

    data = _rand((2, 16, 16), seed=3)
    path = tmp_path / "shard.zarr"
    sharding = ShardingCodec(
        chunk_shape=(1, 8, 8),
        codecs=[BytesCodec(), BloscCodec(cname="lz4")],
        index_codecs=[BytesCodec()],
        index_location="start",
    )
    arr = zarr.create_array(
        str(path), shape=data.shape, chunks=(2, 16, 16), dtype=data.dtype, serializer=sharding, compressors=None
    )
    arr[:] = data
    np.testing.assert_array_equal(OMEArrow.scan(path).to_numpy()[0, 0], data)
    shard = path / "c" / "0" / "0" / "0"
    shard.write_bytes(shard.read_bytes()[:-100])
    with pytest.raises(CorruptInputError, match=r"shard 'c/0/0/0' is truncated"):
        OMEArrow.scan(path).to_numpy()


# --------------------------------------------------------------------------- item 3: symlinks out of the store
@pytest.fixture
def outside(tmp_path):
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    return folder


def test_chunk_symlink_out_of_the_store_is_refused(tmp_path, outside):
    path, data = _plain(tmp_path, "v3.zarr")
    chunk = path / "c" / "1" / "0" / "0"
    target = outside / "secret"
    shutil.move(chunk, target)
    chunk.symlink_to(target)
    with pytest.raises(UnsafePathError, match=r"c/1/0/0.*symbolic link.*elsewhere/secret"):
        OMEArrow.scan(path).to_dask().compute()
    out = OMEArrow.scan(path, follow_symlinks=True).to_numpy()  # the opt-in
    np.testing.assert_array_equal(out[0, 0], data)


def test_chunk_folder_symlink_out_of_the_store_is_refused(tmp_path, outside):
    path, _ = _plain(tmp_path, "v3.zarr")
    shutil.move(path / "c" / "3", outside / "3")
    (path / "c" / "3").symlink_to(outside / "3")
    img = OMEArrow.scan(path)
    np.testing.assert_array_equal(img.slice_lazy(0, 20, 0, 20, z_indices=[0]).to_numpy().shape, (1, 1, 1, 20, 20))
    with pytest.raises(UnsafePathError, match=r"c/3/0/0.*elsewhere"):
        img.to_numpy()


def test_level_folder_symlink_out_of_the_store_is_refused(tmp_path, outside):
    path, data = _ours(tmp_path, "0.5")
    shutil.move(path / "0", outside / "level0")
    (path / "0").symlink_to(outside / "level0")
    with pytest.raises(UnsafePathError, match=r"ours\.ome\.zarr/0.*elsewhere/level0"):
        OMEArrow.scan(path)
    np.testing.assert_array_equal(OMEArrow.scan(path, follow_symlinks=True).to_numpy(), data)


def test_symlinks_inside_the_store_are_fine(tmp_path):
    path, data = _plain(tmp_path, "v3.zarr")
    chunk = path / "c" / "1" / "0" / "0"
    os.rename(chunk, path / "c" / "1" / "0" / "kept")
    chunk.symlink_to("kept")
    np.testing.assert_array_equal(OMEArrow.scan(path).to_numpy()[0, 0], data)


def test_symlinked_store_root_is_fine(tmp_path):
    path, data = _plain(tmp_path, "v3.zarr")
    link = tmp_path / "link.zarr"
    link.symlink_to(path)
    np.testing.assert_array_equal(OMEArrow.scan(link).to_numpy()[0, 0], data)


def test_dangling_chunk_symlink_is_corrupt(tmp_path):
    path, _ = _plain(tmp_path, "v3.zarr")
    chunk = path / "c" / "0" / "1" / "1"
    chunk.unlink()
    chunk.symlink_to(path / "c" / "nowhere")
    with pytest.raises(CorruptInputError, match=r"c/0/1/1"):
        OMEArrow.scan(path).to_numpy()


# --------------------------------------------------------------------------- item 4: fuzz findings
@pytest.mark.parametrize("fmt", [2, 3])
@pytest.mark.parametrize("field", ["chunks", "shape"])
def test_zero_chunk_or_axis_size_is_a_clear_error(tmp_path, fmt, field):
    path, _ = _plain(tmp_path, "bad.zarr", fmt=fmt)

    def edit(doc):
        if field == "shape":
            doc["shape"] = [4, 0, 20]
        elif fmt == 3:
            doc["chunk_grid"]["configuration"]["chunk_shape"] = [1, 0, 10]
        else:
            doc["chunks"] = [1, 0, 10]

    _edit_json(path / ("zarr.json" if fmt == 3 else ".zarray"), edit)
    match = r"bad\.zarr.*zero-size axis" if field == "shape" else r"bad\.zarr.*chunk shape.*zero"
    with pytest.raises(CorruptInputError, match=match):
        OMEArrow.scan(path)


def test_zero_shard_size_is_a_clear_error(tmp_path):
    path, _ = _plain(tmp_path, "bad.zarr", shards=(2, 20, 20))
    _edit_json(path / "zarr.json", lambda doc: doc["chunk_grid"]["configuration"].update(chunk_shape=[0, 20, 20]))
    with pytest.raises(CorruptInputError, match=r"bad\.zarr.*shard shape.*zero"):
        OMEArrow.scan(path)


def test_zattrs_that_is_a_list_names_the_file(tmp_path):
    path, _ = _ours(tmp_path, "0.4")
    (path / ".zattrs").write_text("[1, 2]")
    with pytest.raises(CorruptInputError, match=r"ours\.ome\.zarr.*\.zattrs"):
        OMEArrow.scan(path)


def _set(*keys, value):
    """Edit: set ``attributes.ome[...keys] = value`` in a NGFF 0.5 zarr.json."""

    def edit(doc):
        node = doc["attributes"]["ome"]
        for key in keys[:-1]:
            node = node[key]
        node[keys[-1]] = value

    return edit


WRONG_TYPES = {
    "ome": (lambda doc: doc["attributes"].update(ome=[1]), r"'ome' must be an object"),
    "datasets": (_set("multiscales", 0, "datasets", value={"0": 1}), r"multiscales\[0\]\.datasets must be a list"),
    "dataset": (_set("multiscales", 0, "datasets", 0, value=["0"]), r"datasets\[0\] is not an object"),
    "name": (_set("multiscales", 0, "name", value=[1]), r"multiscales\[0\]\.name must be a string"),
    "axis": (_set("multiscales", 0, "axes", 0, value=[1]), r"malformed axis entry"),
    "axis-type": (_set("multiscales", 0, "axes", 0, "type", value=7), r"axes\[0\]\.type must be a string"),
    "transforms": (
        _set("multiscales", 0, "datasets", 0, "coordinateTransformations", value={"type": "scale"}),
        r"datasets\[0\]\.coordinateTransformations must be a list",
    ),
    "transform": (
        _set("multiscales", 0, "datasets", 0, "coordinateTransformations", 0, value=[1.0]),
        r"coordinateTransformations\[0\] must be an object",
    ),
    "transform-type": (
        _set("multiscales", 0, "datasets", 0, "coordinateTransformations", 1, "type", value=None),
        r"coordinateTransformations\[1\]\.type is missing",
    ),
    "outer-transforms": (
        _set("multiscales", 0, "coordinateTransformations", value="scale"),
        r"multiscales\[0\]\.coordinateTransformations must be a list",
    ),
    "omero": (_set("omero", value=[1]), r"omero must be an object"),
    "channels": (_set("omero", "channels", value={"label": "x"}), r"omero\.channels must be a list"),
    "channel": (_set("omero", "channels", 0, value="C0"), r"omero\.channels\[0\] must be an object"),
    "label": (_set("omero", "channels", 0, "label", value=3), r"omero\.channels\[0\]\.label must be a string"),
    "color": (_set("omero", "channels", 0, "color", value=255), r"omero\.channels\[0\]\.color must be a string"),
    "status": (lambda doc: doc["attributes"].update(ome_arrow_dask=[1]), r"'ome_arrow_dask' must be an object"),
}


@pytest.mark.parametrize("field", sorted(WRONG_TYPES))
def test_wrong_type_metadata_field_names_the_file_and_field(tmp_path, field):
    path, _ = _ours(tmp_path, "0.5")
    edit, match = WRONG_TYPES[field]
    _edit_json(path / "zarr.json", edit)
    with pytest.raises(CorruptInputError, match=r"ours\.ome\.zarr.*" + match):
        OMEArrow.scan(path)


# --------------------------------------------------------------------------- item 5: absent chunks (issue 16)
def _sparse(tmp_path, fill_value=0, fmt=3):
    """An array written with zarr's default write_empty_chunks=False: the all-fill chunks are absent."""
    data = np.full((2, 20, 20), fill_value, np.uint16)
    data[1, 10:, 10:] = 5
    path = tmp_path / "sparse.zarr"
    arr = zarr.create_array(
        str(path), shape=data.shape, chunks=(1, 10, 10), dtype=data.dtype, fill_value=fill_value, zarr_format=fmt
    )
    arr[:] = data
    return path, data


@pytest.mark.parametrize("fmt", [2, 3])
@pytest.mark.parametrize("fill_value", [0, 7])
def test_absent_chunks_read_as_the_fill_value_by_default(tmp_path, fmt, fill_value):
    path, data = _sparse(tmp_path, fill_value, fmt)
    assert len([f for _, _, files in os.walk(path) for f in files if not f.startswith((".z", "zarr.json"))]) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the spec's reading: no warning
        np.testing.assert_array_equal(OMEArrow.scan(path).to_numpy()[0, 0], data)
        np.testing.assert_array_equal(OMEArrow.scan(path, missing="fill").to_dask().compute()[0, 0], data)
    with pytest.warns(MissingDataWarning, match=r"sparse\.zarr.*missing"):
        np.testing.assert_array_equal(OMEArrow.scan(path, missing="zeros").to_numpy()[0, 0], data)
    with pytest.raises(CorruptInputError, match=r"sparse\.zarr.*missing"):
        OMEArrow.scan(path, missing="error").to_numpy()


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_absent_chunk_of_our_complete_store_stays_an_error(tmp_path, version):
    """Our writer writes every chunk (write_empty_chunks=True) before marking the store complete."""
    path, data = _ours(tmp_path, version)
    chunk = _chunk_file(path, version)
    chunk.unlink()
    assert ZarrSource(path)._missing == "error"
    with pytest.raises(CorruptInputError, match=r"ours\.ome\.zarr/0.*missing"):
        OMEArrow.scan(path).to_numpy()
    out = OMEArrow.scan(path, missing="fill").to_numpy()
    assert (out[0, 0, 1, :16, :16] == 0).all()
    np.testing.assert_array_equal(out[0, 0, 0], data[0, 0, 0])


def test_missing_option_is_validated(tmp_path):
    path, _ = _sparse(tmp_path)
    with pytest.raises(ValueError, match=r"missing must be one of"):
        OMEArrow.scan(path, missing="ignore")
