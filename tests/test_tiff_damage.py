"""Damaged TIFF / OME-TIFF input never reads as data (issues 13 and 21).

Each case is a small generated file with exactly one damage: ``tifffile.imwrite`` and then
a byte patch at a tag found with ``tifffile.TiffFile`` (or an edited OME-XML comment). The
cases that used to allocate gigabytes run in a subprocess under an address-space limit
and assert the specific error, never a time bound.
"""

from __future__ import annotations

import os
import re
import struct
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import tifffile

from ome_arrow_dask import OMEArrow
from ome_arrow_dask.errors import (
    CorruptInputError,
    IgnoredMetadataWarning,
)
from ome_arrow_dask.meta import PhysicalSize
from ome_arrow_dask.sources import _ome_xml
from ome_arrow_dask.sources.tiff import TiffSource, check_page_segments

MEMORY_LIMIT = int(1.5 * 2**30)
"""Address-space cap for the header-driven allocation cases (they used to take 2.2-7.6 GiB)."""


# --------------------------------------------------------------------------- helpers
def patch_tag(path: Path, name: str, value: int, *, page: int = 0, index: int = 0) -> None:
    """Overwrite value ``index`` of tag ``name`` of ``page`` in a little-endian classic TIFF.

    A single-valued tag is rewritten as one LONG (so values above 65535 fit); a multi-valued
    tag keeps its type and gets ``value`` at position ``index``.
    """
    with tifffile.TiffFile(path) as tif:
        tag = tif.pages[page].tags[name]
        code, count, dtype, entry, valueoffset = tag.code, tag.count, int(tag.dtype), tag.offset, tag.valueoffset
    with open(path, "r+b") as fh:
        if count == 1:
            fh.seek(entry)
            fh.write(struct.pack("<HHII", code, 4, 1, value))
        else:
            size, fmt = {3: (2, "<H"), 4: (4, "<I"), 16: (8, "<Q")}[dtype]
            fh.seek(valueoffset + index * size)
            fh.write(struct.pack(fmt, value))


def scan_in_subprocess(path: Path, **options: object) -> str:
    """Scan and compute ``path`` in a fresh interpreter under :data:`MEMORY_LIMIT`; its one-line outcome."""
    code = textwrap.dedent(
        f"""
        import resource, sys
        resource.setrlimit(resource.RLIMIT_AS, ({MEMORY_LIMIT}, {MEMORY_LIMIT}))
        from ome_arrow_dask import OMEArrow
        try:
            img = OMEArrow.scan(sys.argv[1], **{options!r})
            img.to_dask().compute(scheduler="sync")
        except BaseException as exc:
            print("RAISED", type(exc).__name__, exc)
        else:
            print("READ", img.shape)
        """
    )
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip()


# --------------------------------------------------------------------------- OME-XML (item 1)
OME_DATA = np.random.default_rng(0).integers(0, 255, (3, 2, 4, 16, 24), dtype=np.uint8)


def ome_file(tmp_path: Path, edit: object = None, name: str = "damaged.ome.tif") -> Path:
    """An OME-TIFF (T=3, C=2, Z=4, 16x24 uint8) whose OME-XML went through ``edit``."""
    path = tmp_path / name
    tifffile.imwrite(path, OME_DATA, ome=True, metadata={"axes": "TCZYX"})
    if edit is not None:
        xml = tifffile.tiffcomment(path)
        changed = edit(xml)  # type: ignore[operator]
        assert changed != xml
        tifffile.tiffcomment(path, comment=changed.encode())
    return path


OME_DAMAGE = {
    "truncated": (lambda x: x[: len(x) // 2], r"OME metadata unreadable"),
    "bytes_after": (lambda x: x + "garbage<", r"OME metadata unreadable"),
    "image_removed": (lambda x: re.sub(r"<Image .*</Image>", "", x), r"describes no Image"),
    "samples_per_pixel_3": (
        lambda x: x.replace('SamplesPerPixel="1"', 'SamplesPerPixel="3"', 1),
        r"SamplesPerPixel \[3, 1\].*SizeC=2",
    ),
    "type": (lambda x: x.replace('Type="uint8"', 'Type="uint16"'), r"Type is 'uint16' but the pages hold uint8"),
    "size_y": (lambda x: x.replace('SizeY="16"', 'SizeY="8"'), r"tifffile cannot use.*generic series"),
    "size_z": (lambda x: x.replace('SizeZ="4"', 'SizeZ="2"'), r"OME-XML disagrees with the pages.*12 frames"),
}


@pytest.mark.parametrize("damage", sorted(OME_DAMAGE))
def test_unusable_ome_xml_is_refused_not_collapsed_into_z(tmp_path, damage):
    edit, message = OME_DAMAGE[damage]
    path = ome_file(tmp_path, edit)
    with pytest.raises(CorruptInputError, match=rf"damaged\.ome\.tif.*{message}.*ome_xml='ignore'"):
        OMEArrow.scan(path)


@pytest.mark.parametrize("damage", sorted(OME_DAMAGE))
def test_ome_xml_ignore_reads_the_pages_and_warns(tmp_path, damage):
    path = ome_file(tmp_path, OME_DAMAGE[damage][0])
    with pytest.warns(IgnoredMetadataWarning, match=r"damaged\.ome\.tif.*ignored"):
        img = OMEArrow.scan(path, ome_xml="ignore")
    assert img.shape == (1, 1, 24, 16, 24)
    np.testing.assert_array_equal(img.to_dask().compute()[0, 0], OME_DATA.reshape(24, 16, 24))


def test_valid_ome_xml_still_gives_every_axis(tmp_path):
    img = OMEArrow.scan(ome_file(tmp_path))
    assert img.shape == (3, 2, 4, 16, 24)
    np.testing.assert_array_equal(img.to_dask().compute(), OME_DATA)


def test_ome_xml_option_is_validated(tmp_path):
    with pytest.raises(ValueError, match=r"ome_xml"):
        TiffSource(ome_file(tmp_path), ome_xml="maybe")


def test_every_axis_is_compared_not_only_the_plane_count():
    """T, C and Z collapsed into Z has the right product; the per-axis check refuses it."""
    ome = _ome_xml.OmeImage({"T": 3, "C": 2, "Z": 4, "Y": 16, "X": 24}, "XYZCT", PhysicalSize(), (), None, None)
    log = SimpleNamespace(messages=[])
    collapsed = SimpleNamespace(kind="ome", axes="ZYX", shape=(24, 16, 24), dtype=np.uint8)
    with pytest.raises(CorruptInputError, match=r"promises TCZYX \(3, 2, 4, 16, 24\).*\(1, 1, 24, 16, 24\)"):
        tiff_mod_check_ome_series(collapsed, ome, log)
    rgb = _ome_xml.OmeImage({"T": 1, "C": 3, "Z": 2, "Y": 16, "X": 24}, "XYZCT", PhysicalSize(), ())
    tiff_mod_check_ome_series(SimpleNamespace(kind="ome", axes="ZYXS", shape=(2, 16, 24, 3), dtype=np.uint8), rgb, log)


def tiff_mod_check_ome_series(series: object, ome: _ome_xml.OmeImage, log: object) -> None:
    from ome_arrow_dask.sources.tiff import _check_ome_series

    _check_ome_series(series, ome, log, "x.ome.tif")


def test_ome_xml_huge_size_z_is_refused_before_tifffile_allocates(tmp_path):
    path = ome_file(tmp_path, lambda x: x.replace('SizeZ="4"', 'SizeZ="1000000000"'), name="sizez.ome.tif")
    out = scan_in_subprocess(path)
    assert out.startswith("RAISED ResourceLimitError") and "sizez.ome.tif" in out and "6,000,000,000 planes" in out


# --------------------------------------------------------------------------- tifffile warnings (item 2)
def test_shaped_metadata_disagreeing_with_page_width_is_refused(tmp_path):
    path = tmp_path / "narrow.tif"
    data = np.ones((4, 64, 80), np.uint8)
    tifffile.imwrite(path, data, compression="zlib", photometric="minisblack")  # compressed: no byte-count check
    patch_tag(path, "ImageWidth", 8)
    with pytest.raises(CorruptInputError, match=r"narrow\.tif.*shaped series metadata does not match page shape"):
        OMEArrow.scan(path)


def test_imagej_frames_minus_one_is_refused(tmp_path):
    path = tmp_path / "frames.tif"
    tifffile.imwrite(path, np.ones((3, 16, 8), np.uint8), imagej=True, metadata={"axes": "TYX"})
    tifffile.tiffcomment(path, comment=tifffile.tiffcomment(path).replace("frames=3", "frames=-1").encode())
    with pytest.raises(CorruptInputError, match=r"frames\.tif.*ImageJ series metadata invalid"):
        OMEArrow.scan(path)


# --------------------------------------------------------------------------- byte counts (item 3)
@pytest.mark.parametrize("kwargs", [{"metadata": None}, {}], ids=["plain", "shaped"])
def test_uncompressed_width_edit_is_refused_not_read_narrower(tmp_path, kwargs):
    path = tmp_path / "width8.tif"
    tifffile.imwrite(path, np.ones((64, 80), np.uint8), photometric="minisblack", **kwargs)
    patch_tag(path, "ImageWidth", 8)
    with pytest.raises(CorruptInputError, match=r"width8\.tif \(page 0\).*holds 5,120 bytes.*needs 512"):
        OMEArrow.scan(path)


def test_uncompressed_page_length_edit_in_a_series_is_refused(tmp_path):
    path = tmp_path / "length.tif"
    tifffile.imwrite(path, np.ones((3, 64, 80), np.uint16), photometric="minisblack")
    patch_tag(path, "ImageLength", 32, page=1)
    # tifffile parses only page 0 of a contiguous shaped series: page 1 is checked before it is decoded
    with pytest.raises(CorruptInputError, match=r"length\.tif \(page 1.*ImageLength|length\.tif \(page 1.*shaped"):
        OMEArrow.scan(path).to_dask().compute()


@pytest.mark.parametrize(
    "data, kwargs",
    [
        (np.arange(37 * 13, dtype=np.uint16).reshape(37, 13), {"rowsperstrip": 8}),  # short last strip
        (np.arange(2 * 37 * 13, dtype=np.uint8).reshape(2, 37, 13), {"tile": (16, 16)}),  # edge tiles
        (np.random.default_rng(1).random((19, 13)) > 0.5, {}),  # 1-bit rows padded to bytes
        (np.ones((3, 20, 30), np.uint8), {"photometric": "rgb", "planarconfig": "separate", "rowsperstrip": 7}),
    ],
    ids=["strips", "tiles", "bilevel", "planar"],
)
def test_valid_uncompressed_layouts_pass_the_byte_count_check(tmp_path, data, kwargs):
    path = tmp_path / "ok.tif"
    tifffile.imwrite(path, data, **({"photometric": "minisblack"} | kwargs))
    out = OMEArrow.scan(path).to_dask().compute()
    assert out.size == data.size
    np.testing.assert_array_equal(out.ravel(), tifffile.imread(path).ravel())


# --------------------------------------------------------------------------- header-driven allocations (item 4)
def test_tiled_width_2_31_is_refused_before_building_a_grid(tmp_path):
    path = tmp_path / "wide.tif"
    tifffile.imwrite(path, np.ones((64, 64), np.uint8), tile=(16, 16))
    patch_tag(path, "ImageWidth", 2**31 - 1)
    out = scan_in_subprocess(path)
    assert out.startswith("RAISED ResourceLimitError") and "wide.tif" in out


def test_page_length_16m_in_a_small_file_is_refused_before_decoding(tmp_path):
    path = tmp_path / "tall.tif"
    tifffile.imwrite(path, np.ones((4, 64, 80), np.uint16), photometric="minisblack")
    patch_tag(path, "ImageLength", 16_777_280, page=1)
    out = scan_in_subprocess(path)
    assert out.startswith("RAISED ResourceLimitError") and "tall.tif (page 1)" in out


def test_tile_much_larger_than_its_image_is_refused(tmp_path):
    path = tmp_path / "bigtile.tif"
    tifffile.imwrite(path, np.ones((16, 16), np.uint16), tile=(16, 16), compression="zlib")
    patch_tag(path, "TileWidth", 40_000)
    patch_tag(path, "TileLength", 40_000)
    out = scan_in_subprocess(path)
    assert out.startswith("RAISED CorruptInputError") and "bigtile.tif" in out and "TileLength 40000" in out


def test_pyramid_levels_smaller_than_one_tile_still_read(tmp_path):
    """tifffile writes the full level's 256 tiles on a 19 x 19 level: valid, kept readable."""
    data = np.random.default_rng(2).integers(0, 255, (300, 300), dtype=np.uint8)
    path = tmp_path / "pyramid.ome.tif"
    with tifffile.TiffWriter(path) as tw:
        tw.write(data, subifds=1, tile=(256, 256))
        tw.write(data[::16, ::16], subfiletype=1, tile=(256, 256))
    out = OMEArrow.scan(path, level=1).to_dask().compute()
    np.testing.assert_array_equal(out[0, 0, 0], data[::16, ::16])


def test_check_page_segments_refuses_a_byte_count_past_the_end(tmp_path):
    path = tmp_path / "count.tif"
    tifffile.imwrite(path, np.ones((2, 16, 16), np.uint8), photometric="minisblack", compression="zlib")
    with tifffile.TiffFile(path) as tif:
        check_page_segments(str(path), tif.pages[1], os.path.getsize(path))  # valid: passes
    patch_tag(path, "StripByteCounts", 0xFFFFFFFF, page=1)
    with tifffile.TiffFile(path) as tif:
        page = tif.pages[1]
        with pytest.raises(CorruptInputError, match=r"count\.tif \(page 1\): segment 0 .*past the end of the file"):
            check_page_segments(str(path), page, os.path.getsize(path))
    out = scan_in_subprocess(path)
    assert out.startswith("RAISED CorruptInputError") and "count.tif" in out


# --------------------------------------------------------------------------- no readable image (items 5, 6)
def test_truncated_file_without_a_readable_ifd_says_so(tmp_path):
    path = tmp_path / "cut.tif"
    tifffile.imwrite(path, np.ones((64, 64), np.uint8))
    data = bytearray(path.read_bytes()[:200])
    data[4:8] = struct.pack("<I", 100_000)  # first IFD lies beyond the (truncated) end
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptInputError, match=r"cut\.tif: no readable image: the file is truncated"):
        OMEArrow.scan(path)


def test_ifd_with_zero_entries_is_refused_at_open(tmp_path):
    path = tmp_path / "empty_ifd.tif"
    tifffile.imwrite(path, np.ones((16, 16), np.uint8))
    with tifffile.TiffFile(path) as tif:
        offset = tif.pages.first.offset
    with open(path, "r+b") as fh:
        fh.seek(offset)
        fh.write(struct.pack("<HI", 0, 0))  # 0 entries, no next IFD
    with pytest.raises(CorruptInputError, match=r"empty_ifd\.tif \(page 0\): has no image data"):
        TiffSource(path)


# --------------------------------------------------------------------------- resolution tags (item 7, issue 16)
@pytest.mark.parametrize(
    "resolution, unit, expected",
    [
        ((72, 72), "INCH", (25_400 / 72, 25_400 / 72)),
        ((4, 2), "CENTIMETER", (10_000 / 2, 10_000 / 4)),
        ((1 / 0.25, 1 / 0.5), "MICROMETER", (0.5, 0.25)),
        ((72, 72), "NONE", (None, None)),
    ],
)
def test_plain_tiff_resolution_tags_give_physical_size(tmp_path, resolution, unit, expected):
    path = tmp_path / "res.tif"
    tifffile.imwrite(path, np.zeros((8, 8), np.uint8), resolution=resolution, resolutionunit=unit)
    ps = OMEArrow.scan(path).meta.physical_size
    assert (ps.y, ps.x) == pytest.approx(expected)
    assert ps.x_unit == ("µm" if expected[1] else None)


def test_resolution_agrees_with_ome_arrow(samples_dir):
    reader = pytest.importorskip("bioio_tifffile").Reader
    path = samples_dir / "examplehuman" / "AS_09125_050116030001_D03f00d0.tif"
    theirs = reader(str(path)).physical_pixel_sizes
    ps = OMEArrow.scan(path).meta.physical_size
    assert (ps.y, ps.x) == pytest.approx((theirs.Y, theirs.X))


def test_nonsense_resolution_gives_no_physical_size(tmp_path):
    path = tmp_path / "zero_res.tif"
    tifffile.imwrite(path, np.zeros((8, 8), np.uint8), resolution=(72, 72), resolutionunit="INCH")
    with tifffile.TiffFile(path) as tif:
        valueoffset = tif.pages.first.tags["XResolution"].valueoffset
    with open(path, "r+b") as fh:
        fh.seek(valueoffset)
        fh.write(struct.pack("<II", 0, 1))  # 0 pixels per inch
    ps = OMEArrow.scan(path).meta.physical_size
    assert ps.x is None and ps.y == pytest.approx(25_400 / 72)


def test_cli_names_the_ome_xml_flag_and_honours_it(tmp_path, capsys):
    from ome_arrow_dask.cli import main

    path = ome_file(tmp_path, OME_DAMAGE["truncated"][0])
    assert main(["info", str(path)]) != 0
    err = capsys.readouterr().err
    assert "damaged.ome.tif" in err and "--ome-xml ignore" in err and "ome_xml=" not in err
    with pytest.warns(IgnoredMetadataWarning):
        assert main(["info", str(path), "--ome-xml", "ignore"]) == 0
    assert "24" in capsys.readouterr().out
