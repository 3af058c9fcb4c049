"""TIFF / OME-TIFF / ImageJ source: contract, metadata, chunk-level reads and bad input."""

from __future__ import annotations

import os
import pickle
import random
import struct
from pathlib import Path

import numpy as np
import pytest
import tifffile
from source_contract import SourceContract

from ome_arrow_dask import OMEArrow
from ome_arrow_dask.errors import (
    CorruptInputError,
    InputChangedError,
    MissingDataWarning,
    OmeArrowDaskError,
    ResourceLimitError,
    SelectionError,
    UnsafePathError,
)
from ome_arrow_dask.sources import open_source
from ome_arrow_dask.sources import tiff as tiff_mod
from ome_arrow_dask.sources.tiff import TiffSource

SAMPLE_NAMES = [
    "single-channel.ome.tiff",
    "multi-channel.ome.tiff",
    "z-series.ome.tiff",
    "time-series.ome.tif",
    "multi-channel-z-series.ome.tiff",
    "multi-channel-time-series.ome.tiff",
    "4D-series.ome.tiff",
]


def to5d(arr: np.ndarray, axes: str) -> np.ndarray:
    """Oracle: put letters of ``axes`` (a subset of TCZYX) in TCZYX order, add singletons."""
    assert set(axes) <= set("TCZYX"), axes
    present = [a for a in "TCZYX" if a in axes]
    out = arr.transpose([axes.index(a) for a in present])
    return out[tuple(slice(None) if a in axes else None for a in "TCZYX")]


def sample_oracle(path: Path) -> np.ndarray:
    with tifffile.TiffFile(path) as tif:
        axes = tif.series[0].axes
    return to5d(tifffile.imread(path), axes)


# --------------------------------------------------------------------------- contract
class TestSamples(SourceContract):
    @pytest.fixture(params=SAMPLE_NAMES)
    def pair(self, request, samples_dir):
        path = samples_dir / "ome-artificial-5d-datasets" / request.param
        return TiffSource(path), sample_oracle(path)


class TestTiledBigEndian(SourceContract):
    def make_source(self, tmp_path):
        data = np.random.default_rng(0).integers(0, 60000, (2, 3, 70, 90), dtype=np.uint16)
        path = tmp_path / "tiled_be.tif"
        tifffile.imwrite(
            path, data.astype(">u2"), tile=(32, 32), byteorder=">", photometric="minisblack", metadata={"axes": "TCYX"}
        )
        return TiffSource(path), to5d(data, "TCYX")


class TestImageJHyperstack(SourceContract):
    def make_source(self, tmp_path):
        data = np.random.default_rng(1).random((3, 4, 2, 20, 30), dtype=np.float32)
        path = tmp_path / "hyper.tif"
        tifffile.imwrite(
            path,
            data,
            imagej=True,
            resolution=(1 / 0.5, 1 / 0.5),
            metadata={"axes": "TZCYX", "spacing": 2.0, "unit": "um"},
        )
        return TiffSource(path), to5d(data, "TZCYX")


class TestSecondScene(SourceContract):
    def make_source(self, tmp_path):
        rng = np.random.default_rng(2)
        first = rng.integers(-100, 100, (4, 16, 16), dtype=np.int16)
        second = rng.integers(-100, 100, (3, 24, 40), dtype=np.int16)
        path = tmp_path / "multi.ome.tif"
        with tifffile.TiffWriter(path, ome=True) as tw:
            tw.write(first, metadata={"axes": "ZYX"})
            tw.write(second, metadata={"axes": "CYX", "Channel": {"Name": ["a", "b", "c"]}}, tile=(16, 16))
        source = TiffSource(path, scene=1)
        assert source.meta.channel_names == ("a", "b", "c")
        return source, to5d(second, "CYX")


class TestPyramidLevel(SourceContract):
    def make_source(self, tmp_path):
        full = np.random.default_rng(3).integers(0, 255, (2, 128, 96), dtype=np.uint8)
        level1 = full[:, ::2, ::2].copy()
        path = tmp_path / "pyramid.ome.tif"
        meta = {"axes": "CYX", "PhysicalSizeX": 0.25, "PhysicalSizeY": 0.25}
        with tifffile.TiffWriter(path) as tw:
            tw.write(full, subifds=1, tile=(32, 32), metadata=meta)
            tw.write(level1, subfiletype=1, tile=(32, 32))
        source = TiffSource(path, level=1)
        assert source.meta.physical_size.x == pytest.approx(0.5)
        return source, to5d(level1, "CYX")


class TestRgbContig(SourceContract):
    def make_source(self, tmp_path):
        data = np.random.default_rng(4).integers(0, 255, (3, 40, 50, 3), dtype=np.uint8)
        path = tmp_path / "rgb.tif"
        tifffile.imwrite(path, data, photometric="rgb", tile=(16, 16))
        return TiffSource(path), to5d(data, "ZYXC")


class TestRgbPlanarStrips(SourceContract):
    def make_source(self, tmp_path):
        data = np.random.default_rng(5).integers(0, 255, (2, 3, 33, 17), dtype=np.uint8)
        path = tmp_path / "rgbp.tif"
        tifffile.imwrite(path, data, photometric="rgb", planarconfig="separate", rowsperstrip=8, compression="zlib")
        return TiffSource(path), to5d(data, "ZCYX")


class TestPlainPages(SourceContract):
    def make_source(self, tmp_path):
        data = np.random.default_rng(6).integers(-5, 5, (5, 21, 13), dtype=np.int8)
        path = tmp_path / "plain.tif"
        with tifffile.TiffWriter(path) as tw:
            for plane in data:
                tw.write(plane, metadata=None, contiguous=False)
        source = open_source(path)
        return source, to5d(data, "ZYX")


# --------------------------------------------------------------------------- metadata
def test_samples_scan_equal_tifffile_with_axes(samples_dir):
    for name in SAMPLE_NAMES:
        path = samples_dir / "ome-artificial-5d-datasets" / name
        img = OMEArrow.scan(path)
        out = img.to_dask().compute()
        assert out.dtype == np.int8 and out.min() == -1
        np.testing.assert_array_equal(out, sample_oracle(path))
    img = OMEArrow.scan(samples_dir / "ome-artificial-5d-datasets" / "multi-channel-time-series.ome.tiff")
    assert img.meta.shape == (7, 3, 1, 167, 439)
    assert img.meta.chunks[:3] == ((1,) * 7, (1, 1, 1), (1,))


def test_ome_metadata_physical_sizes_and_channel_names(tmp_path):
    data = np.zeros((2, 3, 8, 8), np.uint16)
    path = tmp_path / "meta.ome.tif"
    meta = {
        "axes": "ZCYX",
        "PhysicalSizeX": 0.1,
        "PhysicalSizeY": 0.2,
        "PhysicalSizeZ": 1.5,
        "Channel": {"Name": ["DAPI", "GFP", "RFP"]},
        "Name": "my image",
    }
    tifffile.imwrite(path, data, ome=True, metadata=meta)
    img = OMEArrow.scan(path)
    assert img.meta.channel_names == ("DAPI", "GFP", "RFP")
    ps = img.meta.physical_size
    assert (ps.x, ps.y, ps.z) == pytest.approx((0.1, 0.2, 1.5))
    assert ps.x_unit == "µm"
    assert img.meta.shape == (1, 3, 2, 8, 8)
    assert img.meta.name == "my image"


def test_imagej_physical_sizes(tmp_path):
    source, _ = TestImageJHyperstack().make_source(tmp_path)
    ps = source.meta.physical_size
    assert (ps.x, ps.y, ps.z) == pytest.approx((0.5, 0.5, 2.0))
    assert ps.z_unit == "µm"
    assert source.meta.shape == (3, 2, 4, 20, 30)


def test_dims_option_overrides_axes(tmp_path):
    data = np.arange(4 * 6 * 5, dtype=np.uint16).reshape(4, 6, 5)
    path = tmp_path / "t.tif"
    tifffile.imwrite(path, data, metadata=None, photometric="minisblack")
    img = OMEArrow.scan(path, dims="TYX")
    assert img.meta.shape == (4, 1, 1, 6, 5)
    np.testing.assert_array_equal(img.to_dask().compute(), to5d(data, "TYX"))


def test_options(tmp_path, samples_dir):
    path = samples_dir / "ome-artificial-5d-datasets" / "z-series.ome.tiff"
    assert tiff_mod.probe(str(path), anything=1)
    assert not tiff_mod.probe(str(tmp_path))
    with pytest.raises(TypeError, match=r"unknown_option"):
        tiff_mod.open(str(path), unknown_option=1)
    with pytest.raises(SelectionError, match=r"scene 3"):
        TiffSource(path, scene=3)
    with pytest.raises(SelectionError, match=r"level 1"):
        TiffSource(path, level=1)


def test_magic_bytes_probe_without_suffix(tmp_path):
    path = tmp_path / "image.data"
    tifffile.imwrite(path, np.ones((4, 4), np.uint8))
    assert tiff_mod.probe(str(path))
    (tmp_path / "text.data").write_text("hello")
    assert not tiff_mod.probe(str(tmp_path / "text.data"))


# --------------------------------------------------------------------------- laziness
def _count_reads(monkeypatch) -> list:
    calls: list = []
    original = TiffSource.read_chunk

    def counting(self, coords):
        calls.append(tuple(coords))
        return original(self, coords)

    monkeypatch.setattr(TiffSource, "read_chunk", counting)
    return calls


def test_crop_reads_only_touched_tiles(tmp_path, monkeypatch):
    data = np.random.default_rng(7).integers(0, 1000, (3, 256, 256), dtype=np.uint16)
    path = tmp_path / "big.ome.tif"
    tifffile.imwrite(path, data, tile=(64, 64), ome=True, metadata={"axes": "ZYX"})
    calls = _count_reads(monkeypatch)
    img = OMEArrow.scan(path)
    assert img.meta.numblocks == (1, 1, 3, 4, 4)
    assert calls == []  # opening reads no pixels
    out = img.slice_lazy(70, 130, 10, 60, z_indices=[1]).to_dask().compute()
    np.testing.assert_array_equal(out[0, 0, 0], data[1, 10:60, 70:130])
    assert sorted(set(calls)) == [(0, 0, 1, 0, 1), (0, 0, 1, 0, 2)]


def test_source_pickles_after_reading(tmp_path):
    source, expected = TestTiledBigEndian().make_source(tmp_path)
    source.read_chunk((0, 0, 0, 0, 0))  # caches an open TiffFile
    clone = pickle.loads(pickle.dumps(source))
    np.testing.assert_array_equal(clone.read_chunk((1, 2, 0, 2, 2)), expected[1:2, 2:3, :, 64:70, 64:90])


# --------------------------------------------------------------------------- bad input
def _truncate(path: Path, fraction: float) -> None:
    size = os.path.getsize(path)
    with open(path, "r+b") as fh:
        fh.truncate(int(size * fraction))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"compression": "zlib"},
        {"tile": (32, 32)},
        {"ome": True, "compression": "zlib"},
        {"imagej": True},
        {"metadata": None},
    ],
    ids=["zlib", "tiled", "ome", "imagej", "plain"],
)
def test_truncated_multipage_is_not_one_plane(tmp_path, kwargs):
    data = np.random.default_rng(8).integers(0, 1000, (8, 128, 128), dtype=np.uint16)
    path = tmp_path / "cut.tif"
    tifffile.imwrite(path, data, **kwargs)
    _truncate(path, 0.5)
    with pytest.raises(CorruptInputError, match=r"cut.tif"):
        img = OMEArrow.scan(path)
        img.to_dask().compute()  # only reached if open did not notice


@pytest.mark.parametrize("kwargs", [{}, {"compression": "zlib"}, {"tile": (64, 64)}], ids=["raw", "zlib", "tiled"])
def test_truncated_single_page_raises_on_read(tmp_path, kwargs):
    data = np.random.default_rng(9).integers(0, 60000, (256, 256), dtype=np.uint16)
    path = tmp_path / "single.tif"
    tifffile.imwrite(path, data, **kwargs)
    _truncate(path, 0.6)
    with pytest.raises(CorruptInputError, match=r"single.tif"):
        OMEArrow.scan(path).to_dask().compute()
    if "tile" in kwargs:  # a ROI over intact tiles still reads
        roi = OMEArrow.scan(path).slice_lazy(0, 64, 0, 64).to_dask().compute()
        np.testing.assert_array_equal(roi[0, 0, 0], data[:64, :64])


def _patch_tag(path: Path, code: int, value: int) -> None:
    """Rewrite a classic-TIFF tag of the first page as LONG ``value`` (little-endian file)."""
    with tifffile.TiffFile(path) as tif:
        offset = tif.pages.first.tags[code].offset
    with open(path, "r+b") as fh:
        fh.seek(offset + 2)
        fh.write(struct.pack("<HII", 4, 1, value))


@pytest.mark.parametrize("tile", [None, (16, 16)])
def test_header_claiming_huge_size_is_refused(tmp_path, tile):
    path = tmp_path / "huge.tif"
    tifffile.imwrite(path, np.ones((64, 64), np.uint16), tile=tile)
    _patch_tag(path, 256, 100_000)
    _patch_tag(path, 257, 100_000)
    with pytest.raises(ResourceLimitError, match=r"huge.tif"):
        OMEArrow.scan(path)


def test_ome_uuid_filename_outside_folder_is_refused(tmp_path):
    (tmp_path / "secret").mkdir()
    tifffile.imwrite(tmp_path / "secret" / "secret.tif", np.full((8, 8), 7, np.uint8))
    inner = tmp_path / "data"
    inner.mkdir()
    for name, target in [("rel.ome.tif", "../secret/secret.tif"), ("abs.ome.tif", "/etc/passwd")]:
        path = inner / name
        tifffile.imwrite(path, np.zeros((2, 8, 8), np.uint8), ome=True, metadata={"axes": "ZYX"})
        xml = tifffile.tiffcomment(path)
        xml = xml.replace(
            '<TiffData IFD="0" PlaneCount="2"/>',
            f'<TiffData IFD="0" PlaneCount="1"><UUID FileName="{target}">urn:uuid:1</UUID></TiffData>'
            '<TiffData IFD="1" FirstZ="1" PlaneCount="1"/>',
        )
        assert target in xml
        tifffile.tiffcomment(path, comment=xml.encode())
        with pytest.raises(UnsafePathError, match=name):
            OMEArrow.scan(path)


def test_ome_missing_companion_file(tmp_path):
    path = tmp_path / "main.ome.tif"
    tifffile.imwrite(path, np.zeros((2, 8, 8), np.uint8), ome=True, metadata={"axes": "ZYX"})
    xml = tifffile.tiffcomment(path).replace(
        '<TiffData IFD="0" PlaneCount="2"/>',
        '<TiffData IFD="0" PlaneCount="1"/><TiffData IFD="0" FirstZ="1" PlaneCount="1">'
        '<UUID FileName="gone.ome.tif">urn:uuid:2</UUID></TiffData>',
    )
    tifffile.tiffcomment(path, comment=xml.encode())
    with pytest.raises(CorruptInputError, match=r"gone\.ome\.tif"):
        OMEArrow.scan(path)


def _zero_tile_offset(path: Path, index: int) -> None:
    with tifffile.TiffFile(path) as tif:
        tag = tif.pages.first.tags["TileOffsets"]
        start = tag.valueoffset
    with open(path, "r+b") as fh:
        fh.seek(start + 4 * index)
        fh.write(struct.pack("<I", 0))


def test_missing_tile_errors_or_fills_with_opt_in(tmp_path):
    data = np.random.default_rng(10).integers(1, 1000, (64, 64), dtype=np.uint16)
    path = tmp_path / "holes.tif"
    tifffile.imwrite(path, data, tile=(32, 32))
    _zero_tile_offset(path, 3)
    img = OMEArrow.scan(path)
    np.testing.assert_array_equal(img.slice_lazy(0, 32, 0, 32).to_dask().compute()[0, 0, 0], data[:32, :32])
    with pytest.raises(CorruptInputError, match=r"holes.tif.*tile \(1, 1\) is missing"):
        img.to_dask().compute()
    with pytest.warns(MissingDataWarning, match=r"holes.tif"):
        out = OMEArrow.scan(path, missing="zeros").to_dask().compute()[0, 0, 0]
    assert (out[32:, 32:] == 0).all()
    np.testing.assert_array_equal(out[:32], data[:32])


def test_circular_ifd_chain_terminates(tmp_path):
    path = tmp_path / "loop.tif"
    tifffile.imwrite(path, np.ones((3, 8, 8), np.uint8), metadata=None, contiguous=False, photometric="minisblack")
    with tifffile.TiffFile(path) as tif:
        last = tif.pages[-1]
        next_pointer = last.offset + 2 + 12 * len(last.tags)
        first = tif.pages.first.offset
    with open(path, "r+b") as fh:
        fh.seek(next_pointer)
        fh.write(struct.pack("<I", first))
    with pytest.raises(CorruptInputError, match=r"loop.tif"):
        OMEArrow.scan(path)


def test_file_changed_after_open(tmp_path):
    data = np.ones((4, 64, 64), np.uint16)
    path = tmp_path / "changing.tif"
    tifffile.imwrite(path, data, photometric="minisblack")
    img = OMEArrow.scan(path)
    _truncate(path, 0.5)
    with pytest.raises((InputChangedError, CorruptInputError), match=r"changing.tif"):
        img.to_dask().compute()


def test_fuzzed_tiffs_raise_only_our_errors(tmp_path):
    base = tmp_path / "base.ome.tif"
    data = np.random.default_rng(11).integers(0, 255, (2, 32, 32), dtype=np.uint8)
    tifffile.imwrite(base, data, tile=(16, 16), compression="zlib", ome=True, metadata={"axes": "ZYX"})
    original = base.read_bytes()
    rnd = random.Random(12)
    outcomes = {"ok": 0, "error": 0}
    for i in range(300):
        mutated = bytearray(original)
        for _ in range(rnd.randint(1, 8)):
            mutated[rnd.randrange(len(mutated))] = rnd.randrange(256)
        path = tmp_path / f"fuzz{i}.tif"
        path.write_bytes(bytes(mutated))
        try:
            source = TiffSource(path)
            if source.meta.nbytes < 2**24:
                OMEArrow(source).to_dask().compute(scheduler="sync")
            outcomes["ok"] += 1
        except OmeArrowDaskError:
            outcomes["error"] += 1
    assert outcomes["error"] > 0 and outcomes["ok"] > 0
