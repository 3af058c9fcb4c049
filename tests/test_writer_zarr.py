"""OME-Zarr writer: round trips, pyramids, NGFF metadata, refusal, crash and resume."""

from __future__ import annotations

import json
import os
from fractions import Fraction

import dask
import numpy as np
import pytest
import zarr
from counting import CountingSource

from ome_arrow_dask import OMEArrow
from ome_arrow_dask.errors import IncompleteOutputError, InputChangedError, OmeArrowDaskError
from ome_arrow_dask.meta import Channel, PhysicalSize
from ome_arrow_dask.sources.base import ArraySource, MetaOverride
from ome_arrow_dask.writers.zarr import ZarrWriteOptions, downsample, level_layouts, read_status


def _image(rng, shape=(2, 2, 3, 37, 41), dtype="u2"):
    data = rng.integers(0, 60000, size=shape).astype(dtype)
    source = ArraySource(data, "TCZYX", chunks=(1, 1, 2, 16, 16))
    meta = source.meta.replace(
        channels=(Channel("DAPI", color_rgba=0x0000FFFF), Channel("GFP", color_rgba=0x00FF00FF)),
        physical_size=PhysicalSize(z=2.0, y=0.5, x=0.5, z_unit="µm", y_unit="um", x_unit="micron"),
        name="cells",
    )
    return data, OMEArrow(MetaOverride(source, meta))


def _mean2(a: np.ndarray) -> np.ndarray:
    """Reference 2x mean in Y/X: odd edges average the pixels that exist."""
    ny, nx = a.shape[-2:]
    out = np.empty((*a.shape[:-2], -(-ny // 2), -(-nx // 2)))
    for i in range(out.shape[-2]):
        for j in range(out.shape[-1]):
            out[..., i, j] = a[..., 2 * i : 2 * i + 2, 2 * j : 2 * j + 2].astype(float).mean(axis=(-2, -1))
    return np.rint(out).astype(a.dtype)


@pytest.mark.parametrize("version", ["0.5", "0.4"])
def test_round_trip_and_pyramid(tmp_path, rng, version):
    data, image = _image(rng)
    out = str(tmp_path / "img.ome.zarr")
    assert image.export("ome-zarr", out=out, levels=3, chunks=(1, 1, 2, 16, 16), version=version) == out
    assert read_status(out)["status"] == "complete"
    assert not os.path.exists(out + ".progress")
    back = OMEArrow.scan(out)
    np.testing.assert_array_equal(back.to_numpy(), data)
    assert back.meta.channel_names == ("DAPI", "GFP")
    assert back.meta.physical_size.x == 0.5 and back.meta.physical_size.z_unit == "µm"
    group = zarr.open_group(out, mode="r")
    assert group["0"].metadata.zarr_format == (3 if version == "0.5" else 2)
    expected = data
    for k in range(3):
        np.testing.assert_array_equal(np.asarray(group[str(k)][:]), expected)
        expected = _mean2(expected)
    assert OMEArrow.scan(out, level=2).meta.physical_size.y == 2.0


def test_ngff_metadata_v05(tmp_path, rng):
    _, image = _image(rng)
    out = str(tmp_path / "img.ome.zarr")
    image.export("ome-zarr", out=out, levels=2)
    attrs = json.loads((tmp_path / "img.ome.zarr" / "zarr.json").read_text())["attributes"]
    ome = attrs["ome"]
    assert ome["version"] == "0.5"
    ms = ome["multiscales"][0]
    assert [a["name"] for a in ms["axes"]] == ["t", "c", "z", "y", "x"]
    assert [a.get("unit") for a in ms["axes"]] == [None, None, "micrometer", "micrometer", "micrometer"]
    assert ms["datasets"][1]["coordinateTransformations"][0]["scale"] == [1.0, 1.0, 2.0, 1.0, 1.0]
    assert [c["color"] for c in ome["omero"]["channels"]] == ["0000FF", "00FF00"]
    assert ome["omero"]["channels"][0]["window"]["max"] == 65535
    array_meta = json.loads((tmp_path / "img.ome.zarr" / "0" / "zarr.json").read_text())
    assert array_meta["dimension_names"] == ["t", "c", "z", "y", "x"]
    codecs = json.dumps(array_meta["codecs"])
    assert "zstd" in codecs and "bitshuffle" in codecs


@pytest.mark.parametrize("version", ["0.5", "0.4"])
def test_independent_reader_ome_zarr_py(tmp_path, rng, version):
    import ome_zarr  # noqa: F401
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Multiscales, Reader

    data, image = _image(rng)
    out = str(tmp_path / "img.ome.zarr")
    image.export("ome-zarr", out=out, levels=2, version=version)
    nodes = list(Reader(parse_url(out))())
    assert nodes and nodes[0].load(Multiscales) is not None
    assert [tuple(d.shape) for d in nodes[0].data] == [data.shape, (2, 2, 3, 19, 21)]
    np.testing.assert_array_equal(np.asarray(nodes[0].data[0]), data)
    assert nodes[0].metadata["channel_names"] == ["DAPI", "GFP"]


def test_labels_use_nearest(tmp_path, rng):
    labels = rng.integers(0, 5, size=(1, 1, 1, 9, 7)).astype("u4")
    image = OMEArrow(labels, image_type="label")
    out = str(tmp_path / "labels.zarr")
    image.export("ome-zarr", out=out, levels=2)
    np.testing.assert_array_equal(np.asarray(zarr.open_array(out, path="1")[:]), labels[..., ::2, ::2])


def test_downsample_float_and_bool():
    a = np.arange(6, dtype="f4").reshape(1, 1, 1, 2, 3)
    np.testing.assert_allclose(downsample(a, "mean")[0, 0, 0], [[2.0, 3.5]])
    assert downsample(np.ones((1, 1, 1, 3, 3), bool), "mean").dtype == bool


def test_shards_align_and_validate(tmp_path, rng):
    data, image = _image(rng)
    out = str(tmp_path / "sharded.zarr")
    image.export("ome-zarr", out=out, chunks=(1, 1, 1, 8, 8), shards=(1, 1, 2, 16, 16), levels=2)
    np.testing.assert_array_equal(OMEArrow.scan(out).to_numpy(), data)
    assert zarr.open_array(out, path="0").shards == (1, 1, 2, 16, 16)
    with pytest.raises(OmeArrowDaskError, match="multiples"):
        image.export("ome-zarr", out=str(tmp_path / "bad.zarr"), chunks=(1, 1, 1, 8, 8), shards=(1, 1, 1, 12, 8))
    with pytest.raises(OmeArrowDaskError, match="zarr v3"):
        ZarrWriteOptions(shards=(1, 1, 1, 8, 8), version="0.4")


def test_layout_clips_chunks_and_shards():
    opts = ZarrWriteOptions(chunks=(1, 1, 1, 64, 64), shards=(1, 1, 1, 256, 256), levels=3)
    layouts = level_layouts((1, 1, 1, 100, 300), opts)
    assert [lay.shape for lay in layouts] == [(1, 1, 1, 100, 300), (1, 1, 1, 50, 150), (1, 1, 1, 25, 75)]
    assert layouts[1].chunks == (1, 1, 1, 50, 64) and layouts[1].shards == (1, 1, 1, 50, 192)
    default = level_layouts((3, 2, 40, 1000, 100), ZarrWriteOptions())[0]
    assert default.chunks == (1, 1, 16, 512, 100)


def test_refuses_existing_output(tmp_path, rng):
    data, image = _image(rng, shape=(1, 2, 1, 16, 16))
    out = str(tmp_path / "img.zarr")
    image.export("ome-zarr", out=out)
    with pytest.raises(OmeArrowDaskError, match="already exists"):
        image.export("ome-zarr", out=out)
    image.export("ome-zarr", out=out, overwrite=True)
    image.export("ome-zarr", out=out, resume=True)  # complete + same fingerprint: nothing to do
    other = OMEArrow(data + 1)
    with pytest.raises(InputChangedError):
        other.export("ome-zarr", out=out, resume=True)
    folder = tmp_path / "not_zarr"
    folder.mkdir()
    (folder / "keep.txt").write_text("x")
    with pytest.raises(OmeArrowDaskError, match="not a zarr store"):
        image.export("ome-zarr", out=str(folder), overwrite=True)
    assert (folder / "keep.txt").exists()


class _Boom(RuntimeError):
    pass


def test_interrupted_write_then_resume(tmp_path, rng):
    data = rng.integers(0, 1000, size=(1, 2, 2, 32, 32)).astype("u2")
    chunks = (1, 1, 1, 16, 16)
    n_units = 2 * 2 * 2 * 2
    limit = 5

    def fail_after(coords):
        if failing.total_reads > limit:
            raise _Boom(f"injected failure reading {coords}")

    failing = CountingSource(data, chunks=chunks, on_read=fail_after)
    out = str(tmp_path / "img.zarr")
    with dask.config.set(scheduler="synchronous"), pytest.raises(_Boom):
        OMEArrow(failing).export("ome-zarr", out=out, chunks=chunks, levels=2)
    assert read_status(out)["status"] == "in_progress"
    assert "multiscales" not in json.dumps(zarr.open_group(out, mode="r").attrs.asdict())
    with pytest.raises(IncompleteOutputError, match="--resume"):  # our reader refuses a partial output
        OMEArrow.scan(out)
    marker_dir = tmp_path / "img.zarr.progress" / "0"
    done_before = {p.name: p.stat().st_mtime_ns for p in marker_dir.glob("*.done")}
    assert len(done_before) == limit
    with pytest.raises(OmeArrowDaskError, match="unfinished"):
        OMEArrow(CountingSource(data, chunks=chunks)).export("ome-zarr", out=out, chunks=chunks, levels=2)

    with pytest.raises(InputChangedError):  # other parameters: other fingerprint
        OMEArrow(CountingSource(data, chunks=chunks)).export("ome-zarr", out=out, chunks=chunks, resume=True)

    counting = CountingSource(data, chunks=chunks)
    # same pixels and parameters; a fresh source object has the same token
    OMEArrow(counting).export("ome-zarr", out=out, chunks=chunks, levels=2, resume=True)
    assert counting.total_reads == n_units - limit
    assert read_status(out)["status"] == "complete"
    np.testing.assert_array_equal(OMEArrow.scan(out).to_numpy(), data)
    np.testing.assert_array_equal(np.asarray(zarr.open_array(out, path="1")[:]), _mean2(data))
    assert not (tmp_path / "img.zarr.progress").exists()
    assert done_before  # markers of the first run were kept and not rewritten (checked via reads above)


def test_resume_does_not_rewrite_done_units(tmp_path, rng):
    data = rng.integers(0, 1000, size=(1, 1, 1, 32, 32)).astype("u2")
    chunks = (1, 1, 1, 16, 16)

    def fail_third(coords):
        if failing.total_reads == 3:
            raise _Boom("stop")

    failing = CountingSource(data, chunks=chunks, on_read=fail_third)
    out = str(tmp_path / "img.zarr")
    with dask.config.set(scheduler="synchronous"), pytest.raises(_Boom):
        OMEArrow(failing).export("ome-zarr", out=out, chunks=chunks)
    chunk_files = sorted((tmp_path / "img.zarr" / "0" / "c").rglob("*"))
    written = {p: p.stat().st_mtime_ns for p in chunk_files if p.is_file()}
    assert len(written) == 2
    OMEArrow(CountingSource(data, chunks=chunks)).export("ome-zarr", out=out, chunks=chunks, resume=True)
    for path, mtime in written.items():
        assert path.stat().st_mtime_ns == mtime
    np.testing.assert_array_equal(OMEArrow.scan(out).to_numpy(), data)


@pytest.mark.parametrize(("version", "module"), [("0.5", "v05"), ("0.4", "v04")])
def test_independent_validator_ome_zarr_models(tmp_path, rng, version, module):
    import importlib

    image_model = importlib.import_module(f"ome_zarr_models.{module}.image").Image
    _, image = _image(rng)
    out = str(tmp_path / "img.ome.zarr")
    image.export("ome-zarr", out=out, levels=3, version=version)
    model = image_model.from_zarr(zarr.open_group(out, mode="r"))
    multiscale = model.attributes.multiscales[0] if module == "v04" else model.attributes.ome.multiscales[0]
    assert [d.path for d in multiscale.datasets] == ["0", "1", "2"]
    assert [a.name for a in multiscale.axes] == ["t", "c", "z", "y", "x"]


def test_validator_rejects_a_broken_output(tmp_path, rng):
    """The validator is not a rubber stamp: a wrong axis count in our metadata fails it."""
    from ome_zarr_models.v05.image import Image

    _, image = _image(rng)
    out = str(tmp_path / "img.ome.zarr")
    image.export("ome-zarr", out=out, levels=1)
    group = zarr.open_group(out, mode="r+")
    attrs = group.attrs.asdict()
    attrs["ome"]["multiscales"][0]["axes"] = attrs["ome"]["multiscales"][0]["axes"][1:]
    group.attrs.put(attrs)
    with pytest.raises(ValueError):
        Image.from_zarr(zarr.open_group(out, mode="r"))


def test_v3_chunks_carry_a_crc32c_checksum(tmp_path, rng):
    _, image = _image(rng)
    out = tmp_path / "img.ome.zarr"
    image.export("ome-zarr", out=str(out))
    codecs = [c["name"] for c in json.loads((out / "0" / "zarr.json").read_text())["codecs"]]
    assert codecs == ["bytes", "blosc", "crc32c"]
    chunk = next(p for p in (out / "0" / "c").rglob("*") if p.is_file())
    raw = bytearray(chunk.read_bytes())
    raw[len(raw) // 2] ^= 0xFF  # one flipped byte
    chunk.write_bytes(bytes(raw))
    with pytest.raises(Exception, match=r"(?i)checksum|crc|corrupt"):
        OMEArrow.scan(out).to_numpy()


@pytest.mark.parametrize("dtype", ["u1", "i1", "u2", "i2", "u4", "i4"])
def test_integer_mean_rounds_half_to_even_at_the_dtype_extremes(rng, dtype):
    info = np.iinfo(dtype)
    block = rng.integers(info.min, info.max, size=(1, 2, 3, 9, 10), endpoint=True).astype(dtype)
    block[..., :2, :2] = info.max  # sums that overflow the dtype itself
    block[..., 2:4, 2:4] = [[0, 1], [0, 1]]  # 0.5: rounds to 0 (even)
    block[..., 4:6, 4:6] = [[1, 2], [1, 2]]  # 1.5: rounds to 2 (even)
    expected = _mean2(block)
    got = downsample(block, "mean")
    np.testing.assert_array_equal(got, expected)
    assert got[0, 0, 0, 1, 1] == 0 and got[0, 0, 0, 2, 2] == 2


@pytest.mark.parametrize("dtype", ["i8", "u8"])
def test_64_bit_integer_mean_is_exact_at_the_extremes(rng, dtype):
    info = np.iinfo(dtype)
    block = rng.integers(info.min, info.max, size=(1, 1, 2, 6, 8), endpoint=True, dtype=dtype)
    block[..., :2, :2] = info.max
    block[..., 2:4, :2] = info.min
    block[..., 4:6, :2] = [[2**62 + 1, 2**62], [2**62, 2**62 + 1]]  # mean 2**62 + 0.5 -> even: 2**62
    got = downsample(block, "mean")
    sums = [[sum(int(v) for v in block[0, 0, 0, 2 * i : 2 * i + 2, 2 * j : 2 * j + 2].ravel()) for j in range(4)]
            for i in range(3)]
    expected = [[round(Fraction(v, 4)) for v in row] for row in sums]  # exact rationals, half to even
    assert got[0, 0, 0].tolist() == expected
    assert got[0, 0, 0, 0, 0] == info.max and got[0, 0, 0, 1, 0] == info.min and got[0, 0, 0, 2, 0] == 2**62


def test_uint64_pyramid_exports(tmp_path):
    data = np.full((16, 16), 2**63 + 5, dtype="u8")
    out = str(tmp_path / "u8.ome.zarr")
    OMEArrow(data).export("ome-zarr", out=out, levels=2)
    assert np.asarray(zarr.open_array(out, path="1")[:]).ravel().tolist() == [2**63 + 5] * 64


@pytest.mark.parametrize(
    ("chunks", "reads_back"),
    [((1, 1, 2, 16, 16), False), ((1, 1, 2, 15, 9), True)],  # odd units straddle 2x2 windows: read back
)
def test_pyramid_levels_come_from_memory_when_units_bin_alone(tmp_path, rng, monkeypatch, chunks, reads_back):
    from ome_arrow_dask.writers import zarr as writer

    data = rng.integers(0, 60000, size=(1, 2, 3, 61, 47)).astype("u2")
    calls = []
    real = writer._downsample_unit
    monkeypatch.setattr(writer, "_downsample_unit", lambda *a: calls.append(a[2]) or real(*a))
    out = str(tmp_path / "p.ome.zarr")
    OMEArrow(data, dim_order="TCZYX").export("ome-zarr", out=out, chunks=chunks, levels=3)
    assert bool(calls) == reads_back
    expected = data
    for k in range(3):
        np.testing.assert_array_equal(np.asarray(zarr.open_array(out, path=str(k))[:]), expected)
        expected = _mean2(expected)
