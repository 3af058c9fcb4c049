"""OME-Zarr / zarr source: contract over three writers, metadata, chunk-level reads, bad input."""

from __future__ import annotations

import json
import os
import pickle

import numpy as np
import pytest
import zarr
from source_contract import SourceContract

from ome_arrow_dask import OMEArrow
from ome_arrow_dask.errors import (
    CorruptInputError,
    MissingDataWarning,
    ResourceLimitError,
    SelectionError,
    UnsafePathError,
)
from ome_arrow_dask.sources import open_source
from ome_arrow_dask.sources import zarr as zarr_mod
from ome_arrow_dask.sources.zarr import ZarrSource


def _rand(shape, dtype=np.uint16, seed=0):
    return np.random.default_rng(seed).integers(1, 1000, shape).astype(dtype)


WINDOW = {"start": 0, "end": 1000, "min": 0, "max": 1000}


def write_ome_zarr_py(path, data, *, version: str, axes="tczyx", scale_factors=(2,)):
    """Write with ome-zarr-py (NGFF 0.4 = zarr v2, 0.5 = zarr v3), with omero channels."""
    from ome_zarr.format import FormatV04, FormatV05
    from ome_zarr.writer import write_image

    fmt = FormatV04() if version == "0.4" else FormatV05()
    group = zarr.open_group(str(path), mode="w", zarr_format=fmt.zarr_format)
    n_c = data.shape[axes.index("c")] if "c" in axes else 1
    write_image(
        data,
        group,
        scale_factors=list(scale_factors),
        fmt=fmt,
        axes=list(axes),
        scale={"z": 2.0, "y": 0.5, "x": 0.25} if "z" in axes else {"y": 0.5, "x": 0.25},
        axes_units={"z": "micrometer", "y": "micrometer", "x": "micrometer"},
        storage_options={"chunks": tuple(min(s, 16) for s in data.shape)},
        omero={"channels": [{"label": f"ch{i}", "color": "00FF00", "window": WINDOW} for i in range(n_c)]},
    )
    return path


# --------------------------------------------------------------------------- contract
class TestOmeZarrPy04(SourceContract):
    def make_source(self, tmp_path):
        data = _rand((2, 2, 3, 40, 36))
        path = write_ome_zarr_py(tmp_path / "v04.ome.zarr", data, version="0.4")
        return ZarrSource(path), data


class TestOmeZarrPy05Level1(SourceContract):
    def make_source(self, tmp_path):
        data = _rand((2, 30, 36), dtype=np.float32, seed=1)
        path = write_ome_zarr_py(tmp_path / "v05.ome.zarr", data, version="0.5", axes="cyx")
        source = ZarrSource(path, level=1)
        level1 = zarr.open_group(str(path), mode="r").attrs["ome"]["multiscales"][0]["datasets"][1]["path"]
        expected = zarr.open_array(str(path / level1), mode="r")[:]
        return source, expected[:, None, None].transpose(1, 0, 2, 3, 4)


class TestOmeArrowWriter(SourceContract):
    def make_source(self, tmp_path):
        from ome_arrow import from_numpy
        from ome_arrow.export import to_ome_zarr

        data = _rand((1, 2, 5, 24, 20), seed=2)
        record = from_numpy(data, dim_order="TCZYX", physical_size_x=0.3, physical_size_z=1.2, chunk_shape=None)
        path = tmp_path / "oa.ome.zarr"
        to_ome_zarr(record, str(path), chunks=(1, 1, 2, 16, 8))
        return ZarrSource(path), data


class TestPlainOddChunks(SourceContract):
    def make_source(self, tmp_path):
        data = _rand((7, 33, 29), dtype=np.int16, seed=3) - 500
        arr = zarr.create_array(
            str(tmp_path / "plain.zarr"),
            shape=data.shape,
            chunks=(3, 7, 5),
            dtype=data.dtype,
            dimension_names=["z", "y", "x"],
        )
        arr[:] = data
        return open_source(tmp_path / "plain.zarr"), data[None, None]


class TestShardedInnerChunks(SourceContract):
    def make_source(self, tmp_path):
        data = _rand((2, 40, 50), dtype=np.uint8, seed=4)
        arr = zarr.create_array(
            str(tmp_path / "sharded.zarr"),
            shape=data.shape,
            chunks=(1, 10, 10),
            shards=(2, 20, 30),
            dtype=data.dtype,
            dimension_names=["c", "y", "x"],
        )
        arr[:] = data
        source = ZarrSource(tmp_path / "sharded.zarr")
        assert source.meta.chunks[3:] == ((10,) * 4, (10,) * 5)
        return source, data[None, :, None]


class TestV2BigEndianDims(SourceContract):
    def make_source(self, tmp_path):
        data = _rand((3, 2, 20, 18), dtype=">u2", seed=5)
        arr = zarr.create_array(
            str(tmp_path / "be.zarr"), shape=data.shape, chunks=(2, 1, 9, 7), dtype=">u2", zarr_format=2
        )
        arr[:] = data
        source = ZarrSource(tmp_path / "be.zarr", dims="ZTYX")
        assert source.meta.dtype == np.dtype("uint16")
        return source, data.transpose(1, 0, 2, 3)[:, None].astype("u2")


# --------------------------------------------------------------------------- metadata
@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_ome_zarr_py_scales_units_channels(tmp_path, version):
    data = _rand((1, 2, 4, 32, 32))
    path = write_ome_zarr_py(tmp_path / "img.ome.zarr", data, version=version)
    img = OMEArrow.scan(path)
    ps = img.meta.physical_size
    assert (ps.z, ps.y, ps.x) == pytest.approx((2.0, 0.5, 0.25))
    assert ps.x_unit == "µm"
    assert img.meta.channel_names == ("ch0", "ch1")
    assert img.meta.channels[0].color_rgba == 0x00FF00FF
    level1 = OMEArrow.scan(path, level=1)
    assert level1.meta.shape == (1, 2, 4, 16, 16)
    assert level1.meta.physical_size.x == pytest.approx(0.5)
    np.testing.assert_array_equal(img.to_dask().compute(), data)


def test_ome_arrow_writer_metadata(tmp_path):
    source, _ = TestOmeArrowWriter().make_source(tmp_path)
    ps = source.meta.physical_size
    assert (ps.z, ps.x) == pytest.approx((1.2, 0.3))
    assert ps.x_unit == "µm"
    assert source.meta.chunks[2:] == ((2, 2, 1), (16, 8), (8, 8, 4))


def test_nested_dataset_paths_are_followed(tmp_path):
    root = zarr.open_group(str(tmp_path / "nested.zarr"), mode="w", zarr_format=3)
    data = _rand((6, 10), seed=6)
    root.create_array("scale0/image", shape=data.shape, chunks=(3, 4), dtype=data.dtype)[:] = data
    root.attrs["ome"] = {
        "version": "0.5",
        "multiscales": [
            {
                "axes": [{"name": "y", "type": "space", "unit": "nanometer"}, {"name": "x", "type": "space"}],
                "datasets": [
                    {"path": "scale0/image", "coordinateTransformations": [{"type": "scale", "scale": [5, 7]}]}
                ],
            }
        ],
    }
    img = OMEArrow.scan(tmp_path / "nested.zarr")
    assert img.meta.shape == (1, 1, 1, 6, 10)
    assert (img.meta.physical_size.y, img.meta.physical_size.y_unit) == (5.0, "nm")
    np.testing.assert_array_equal(img.to_dask().compute()[0, 0, 0], data)


def test_options_and_probe(tmp_path):
    TestPlainOddChunks().make_source(tmp_path)
    assert zarr_mod.probe(str(tmp_path / "plain.zarr"), whatever=1)
    assert not zarr_mod.probe(str(tmp_path))
    with pytest.raises(TypeError, match=r"scene"):
        zarr_mod.open(str(tmp_path / "plain.zarr"), scene=1)
    with pytest.raises(SelectionError, match=r"level 2"):
        ZarrSource(tmp_path / "plain.zarr", level=2)


# --------------------------------------------------------------------------- laziness
def test_crop_reads_only_touched_chunks(tmp_path, monkeypatch):
    data = _rand((1, 1, 2, 64, 64), seed=7)
    path = write_ome_zarr_py(tmp_path / "crop.ome.zarr", data, version="0.5")
    calls: list = []
    original = ZarrSource.read_chunk

    def counting(self, coords):
        calls.append(tuple(coords))
        return original(self, coords)

    monkeypatch.setattr(ZarrSource, "read_chunk", counting)
    img = OMEArrow.scan(path)
    assert img.meta.numblocks == (1, 1, 1, 4, 4)
    assert calls == []
    out = img.slice_lazy(20, 40, 50, 60).to_dask().compute()
    np.testing.assert_array_equal(out, data[:, :, :, 50:60, 20:40])
    assert sorted(set(calls)) == [(0, 0, 0, 3, 1), (0, 0, 0, 3, 2)]


def test_pickles_after_reading(tmp_path):
    source, expected = TestShardedInnerChunks().make_source(tmp_path)
    source.read_chunk((0, 0, 0, 0, 0))
    clone = pickle.loads(pickle.dumps(source))
    np.testing.assert_array_equal(clone.read_chunk((0, 1, 0, 3, 4)), expected[:, 1:2, :, 30:40, 40:50])


# --------------------------------------------------------------------------- bad input
def _plain(tmp_path, name="bad.zarr", **kwargs):
    data = _rand((4, 20, 20), seed=8)
    arr = zarr.create_array(str(tmp_path / name), shape=data.shape, chunks=(1, 10, 10), dtype=data.dtype, **kwargs)
    arr[:] = data
    return tmp_path / name, data


def test_missing_chunk_errors_when_strict_and_fills_by_default(tmp_path):
    """Absent = fill value by default (Zarr spec); missing="error" is the strict mode."""
    path, data = _plain(tmp_path)
    os.remove(path / "c" / "1" / "0" / "0")
    img = OMEArrow.scan(path, missing="error")
    np.testing.assert_array_equal(img.slice_lazy(0, 20, 0, 20, z_indices=[0]).to_dask().compute()[0, 0, 0], data[0])
    with pytest.raises(CorruptInputError, match=r"bad\.zarr.*c/1/0/0.*missing"):
        img.to_dask().compute()
    default = OMEArrow.scan(path).to_dask().compute()[0, 0]
    assert (default[1, :10, :10] == 0).all()
    with pytest.warns(MissingDataWarning, match=r"c/1/0/0"):
        out = OMEArrow.scan(path, missing="zeros").to_dask().compute()[0, 0]
    assert (out[1, :10, :10] == 0).all()
    np.testing.assert_array_equal(out[1, 10:], data[1, 10:])


@pytest.mark.parametrize("garbage", [b"x" * 100, b"", "half"], ids=["random", "zero-bytes", "truncated"])
def test_corrupt_chunk_names_array_and_key(tmp_path, garbage):
    path, _ = _plain(tmp_path)
    chunk = path / "c" / "2" / "1" / "0"
    if garbage == "half":
        garbage = chunk.read_bytes()[: len(chunk.read_bytes()) // 2]
    chunk.write_bytes(garbage)
    with pytest.raises(CorruptInputError, match=r"bad\.zarr.*c/2/1/0"):
        OMEArrow.scan(path).to_dask().compute()


def test_zero_byte_shard_is_corrupt(tmp_path):
    path, _ = _plain(tmp_path, shards=(2, 20, 20))
    (path / "c" / "1" / "0" / "0").write_bytes(b"")
    img = OMEArrow.scan(path)
    with pytest.raises(CorruptInputError, match=r"c/1/0/0.*zero-byte"):
        img.to_dask().compute()
    with pytest.raises(CorruptInputError, match=r"c/1/0/0"):
        img.slice_lazy(0, 5, 0, 5, z_indices=[2]).to_dask().compute()


def _edit_json(path, edit):
    doc = json.loads(path.read_text())
    edit(doc)
    path.write_text(json.dumps(doc))


def test_absurd_chunk_count_is_refused(tmp_path):
    zarr.create_array(str(tmp_path / "big.zarr"), shape=(10**12, 10**12), chunks=(1, 1), dtype="u1")
    with pytest.raises(ResourceLimitError, match=r"big\.zarr.*chunks"):
        OMEArrow.scan(tmp_path / "big.zarr")


@pytest.mark.parametrize("fmt", [2, 3])
def test_zero_chunk_size_is_refused(tmp_path, fmt):
    path, _ = _plain(tmp_path, zarr_format=fmt)

    def zero(doc):
        if fmt == 3:
            doc["chunk_grid"]["configuration"]["chunk_shape"] = [0, 10, 10]
        else:
            doc["chunks"] = [0, 10, 10]

    _edit_json(path / ("zarr.json" if fmt == 3 else ".zarray"), zero)
    with pytest.raises((ResourceLimitError, CorruptInputError), match=r"bad\.zarr"):
        OMEArrow.scan(path)


def _ngff_store(tmp_path, multiscale_edit):
    path = write_ome_zarr_py(tmp_path / "evil.ome.zarr", _rand((8, 8), seed=9), version="0.5", axes="yx")
    _edit_json(path / "zarr.json", lambda doc: multiscale_edit(doc["attributes"]["ome"]["multiscales"][0]))
    return path


@pytest.mark.parametrize("dataset_path", ["../other", "/abs/path", "0/../../x"])
def test_dataset_path_traversal_is_refused(tmp_path, dataset_path):
    def edit(ms):
        ms["datasets"][0]["path"] = dataset_path

    with pytest.raises(UnsafePathError, match=r"evil.ome.zarr"):
        OMEArrow.scan(_ngff_store(tmp_path, edit))


@pytest.mark.parametrize("bad", [0, -1.0, "nan"], ids=["zero", "negative", "nan"])
def test_bad_scale_is_refused(tmp_path, bad):
    def edit(ms):
        ms["datasets"][0]["coordinateTransformations"][0]["scale"] = [float(bad), 1.0]

    with pytest.raises(CorruptInputError, match=r"evil.ome.zarr.*scale"):
        OMEArrow.scan(_ngff_store(tmp_path, edit))


def test_axes_count_mismatch_is_refused(tmp_path):
    def edit(ms):
        ms["axes"].insert(0, {"name": "z", "type": "space"})
        ms["datasets"][0]["coordinateTransformations"][0]["scale"].insert(0, 1.0)

    with pytest.raises(CorruptInputError, match=r"evil.ome.zarr.*axes"):
        OMEArrow.scan(_ngff_store(tmp_path, edit))


def test_huge_metadata_document_is_refused(tmp_path, monkeypatch):
    from ome_arrow_dask.sources import _ngff

    path, _ = _plain(tmp_path)
    monkeypatch.setattr(_ngff, "MAX_METADATA_BYTES", 100)
    with pytest.raises(CorruptInputError, match=r"zarr.json.*exceeds"):
        OMEArrow.scan(path)


def test_object_dtype_is_refused(tmp_path):
    path = tmp_path / "obj.zarr"
    path.mkdir()
    meta = {"zarr_format": 2, "shape": [4], "chunks": [2], "dtype": "|O", "compressor": None, "fill_value": None}
    meta.update(order="C", filters=[{"id": "pickle"}])
    (path / ".zarray").write_text(json.dumps(meta))
    with pytest.raises(CorruptInputError, match=r"obj.zarr"):
        OMEArrow.scan(path)


# --------------------------------------------------------------------------- small reads
def test_small_crop_is_one_zarr_call_and_equals_numpy(tmp_path, monkeypatch):
    """collect() of a small crop reads its chunks in one zarr call, in this thread, no dask."""
    from ome_arrow_dask import core

    data = _rand((1, 2, 3, 64, 64), seed=11)
    path = write_ome_zarr_py(tmp_path / "small.ome.zarr", data, version="0.5")
    img = OMEArrow.scan(path)
    calls = []
    original = zarr.Array.__getitem__
    monkeypatch.setattr(zarr.Array, "__getitem__", lambda self, key: calls.append(key) or original(self, key))
    monkeypatch.setattr(core, "build_array", lambda *a, **k: pytest.fail("a dask graph was built for a small read"))
    crop = img.slice_lazy(10, 40, 5, 50, c_indices=[1], z_indices=[1, 2])
    assert crop.read_plan.chunks_read == 4 * 3  # 16-pixel chunks in Y and X; C and Z in one chunk
    got = crop.collect().to_numpy()
    np.testing.assert_array_equal(got, data[:, 1:2, 1:3, 5:50, 10:40])
    assert len(calls) == 1


def test_small_crop_with_a_missing_chunk_still_names_it(tmp_path):
    path, data = _plain(tmp_path)
    os.remove(path / "c" / "1" / "1" / "0")
    img = OMEArrow.scan(path, missing="error")
    with pytest.raises(CorruptInputError, match=r"bad\.zarr.*c/1/1/0.*missing"):
        img.slice_lazy(0, 20, 0, 20, z_indices=[1]).collect()
    np.testing.assert_array_equal(img.slice_lazy(0, 20, 0, 20, z_indices=[2]).to_numpy()[0, 0, 0], data[2])


def test_scattered_selection_reads_chunk_by_chunk(tmp_path, monkeypatch):
    """Index lists that skip chunks are not read as one bounding box (no unneeded chunks)."""
    path, data = _plain(tmp_path)
    calls = []
    original = ZarrSource.read_chunk_box
    monkeypatch.setattr(ZarrSource, "read_chunk_box", lambda s, a, b: calls.append((a, b)) or original(s, a, b))
    got = OMEArrow.scan(path).slice_lazy(0, 20, 0, 5, z_indices=[0, 3]).to_numpy()
    np.testing.assert_array_equal(got[0, 0], data[[0, 3], :5, :])
    assert all(b[2] - a[2] == 1 for a, b in calls)  # never a box spanning z chunks 1 and 2


def test_image_type_override_keeps_the_one_call_crop(tmp_path, monkeypatch):
    path, data = _plain(tmp_path)
    calls = []
    original = ZarrSource.read_chunk_box
    monkeypatch.setattr(ZarrSource, "read_chunk_box", lambda s, a, b: calls.append((a, b)) or original(s, a, b))
    got = OMEArrow.scan(path, image_type="label").slice_lazy(3, 17, 2, 19, z_indices=[1, 2]).to_numpy()
    np.testing.assert_array_equal(got[0, 0], data[1:3, 2:19, 3:17])
    assert len(calls) == 1
