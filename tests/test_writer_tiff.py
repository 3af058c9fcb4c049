"""OME-TIFF writer (issue 16): round trips through tifffile, our reader and ome-arrow 0.1.0;
tiles, compression, SubIFD pyramids, BigTIFF, crash safety, bounded memory and the CLI."""

from __future__ import annotations

import datetime
import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import dask.array as da
import numpy as np
import pytest
import tifffile

from ome_arrow_dask import OMEArrow
from ome_arrow_dask.cli import main
from ome_arrow_dask.errors import OmeArrowDaskError, OutputInUseError, OutputIsInputError
from ome_arrow_dask.jobs import JobLock
from ome_arrow_dask.meta import Channel, ImageMeta, PhysicalSize, regular_chunks
from ome_arrow_dask.sources.base import ArraySource
from ome_arrow_dask.writers import tiff as writer
from ome_arrow_dask.writers.zarr import downsample

CHANNELS = (
    Channel("DAPI", color_rgba=0x0000FFFF, emission_um=0.461),
    Channel("GFP", color_rgba=0x00FF00FF, excitation_um=0.488),
    Channel("RFP", color_rgba=0xFF0000FF, illumination="Epifluorescence"),
)
PHYSICAL = PhysicalSize(z=2.0, y=0.25, x=0.125, z_unit="micrometer", y_unit="µm", x_unit="nm")
WHEN = datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)


def _image(array: np.ndarray | da.Array, chunks=(1, 1, 2, 32, 64), **meta) -> OMEArrow:
    """A plan over ``array`` (TCZYX) carrying rich metadata."""
    full = ImageMeta(
        array.shape,
        array.dtype,
        regular_chunks(array.shape, chunks),
        channels=CHANNELS[: array.shape[1]] if array.shape[1] <= 3 else (),
        physical_size=PHYSICAL,
        name="cells",
        acquisition_datetime=WHEN,
    ).replace(**meta)
    return OMEArrow(ArraySource(array, "TCZYX", chunks=full.chunks, meta=full))


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".tmp" in p.name or p.name.endswith(".lock"))


@pytest.fixture
def data5d(rng) -> np.ndarray:
    return rng.integers(0, 60000, (2, 3, 4, 70, 53), dtype=np.uint16)


# ---------------------------------------------------------------------- round trips
def test_5d_round_trip_tifffile_ome_xml(data5d, tmp_path):
    out = tmp_path / "cells.ome.tiff"
    assert _image(data5d).export("ome-tiff", out=out) == out
    with tifffile.TiffFile(out) as tif:
        series = tif.series[0]
        assert (series.axes, series.shape, series.dtype) == ("TCZYX", data5d.shape, np.uint16)
        np.testing.assert_array_equal(series.asarray(), data5d)
        ome = tifffile.xml2dict(tif.ome_metadata)["OME"]["Image"]
        page = tif.pages[0]
        assert page.is_tiled and (page.tilelength, page.tilewidth) == (80, 64)  # 512x512 clipped to the image
        assert page.compression == tifffile.COMPRESSION.ADOBE_DEFLATE and page.predictor == 2
        assert not tif.is_bigtiff
    pixels = ome["Pixels"]
    assert ome["Name"] == "cells" and ome["AcquisitionDate"].startswith("2024-01-02T03:04:05")
    assert (pixels["SizeT"], pixels["SizeC"], pixels["SizeZ"], pixels["SizeY"], pixels["SizeX"]) == (2, 3, 4, 70, 53)
    assert (pixels["PhysicalSizeX"], pixels["PhysicalSizeXUnit"]) == (0.125, "nm")
    assert (pixels["PhysicalSizeY"], pixels["PhysicalSizeYUnit"]) == (0.25, "µm")
    assert (pixels["PhysicalSizeZ"], pixels["PhysicalSizeZUnit"]) == (2.0, "µm")  # "micrometer" -> OME symbol
    channels = pixels["Channel"]
    assert [c["Name"] for c in channels] == ["DAPI", "GFP", "RFP"]
    assert [c["Color"] for c in channels] == [0x0000FFFF, 0x00FF00FF, 0xFF0000FF - 2**32]  # OME: signed RGBA
    assert (channels[0]["EmissionWavelength"], channels[0]["EmissionWavelengthUnit"]) == (461.0, "nm")
    assert channels[2]["IlluminationType"] == "Epifluorescence"


def test_round_trip_our_reader(data5d, tmp_path):
    out = tmp_path / "cells.ome.tif"
    _image(data5d).export("ometiff", out=out)  # ome-arrow 0.1.0's spelling
    back = OMEArrow.scan(out)
    np.testing.assert_array_equal(back.to_numpy(), data5d)
    meta = back.meta
    assert (meta.shape, meta.dtype) == (data5d.shape, np.uint16)
    assert meta.channel_names == ("DAPI", "GFP", "RFP")
    assert [c.color_rgba for c in meta.channels] == [c.color_rgba for c in CHANNELS]
    assert meta.channels[0].emission_um == pytest.approx(0.461)
    assert meta.channels[1].excitation_um == pytest.approx(0.488)
    ps = meta.physical_size
    assert (ps.x, ps.y, ps.z, ps.x_unit, ps.y_unit, ps.z_unit) == (0.125, 0.25, 2.0, "nm", "µm", "µm")
    assert meta.name == "cells" and meta.acquisition_datetime == WHEN


def test_round_trip_ome_arrow(data5d, tmp_path):
    """ome-arrow 0.1.0 reads the file (through bioio's OME-TIFF reader); uint16 avoids its clamping."""
    ome_arrow = pytest.importorskip("ome_arrow")
    out = tmp_path / "cells.ome.tiff"
    _image(data5d).export("ome-tiff", out=out, levels=2)
    theirs = ome_arrow.OMEArrow(str(out))
    np.testing.assert_array_equal(theirs.export("numpy"), data5d)
    pm = theirs.data.as_py()["pixels_meta"]
    assert (pm["size_t"], pm["size_c"], pm["size_z"], pm["size_y"], pm["size_x"]) == (2, 3, 4, 70, 53)
    assert (pm["physical_size_y"], pm["physical_size_z"]) == (0.25, 2.0)


def test_ome_arrow_export_arguments(data5d, tmp_path):
    """A call written for ome-arrow's export(how="ome-tiff") works unchanged."""
    out = tmp_path / "compat.ome.tiff"
    _image(data5d).export(
        "ome-tiff",
        out=str(out),
        dim_order="TCZYX",
        compression="zlib",
        compression_level=6,
        tile=(32, 32),
        use_channel_colors=False,
    )
    with tifffile.TiffFile(out) as tif:
        np.testing.assert_array_equal(tif.series[0].asarray(), data5d)
        assert (tif.pages[0].tilelength, tif.pages[0].tilewidth) == (32, 32)
        assert "Color=" not in tif.ome_metadata
    with pytest.raises(OmeArrowDaskError, match="TCZYX"):
        _image(data5d).export("ome-tiff", out=tmp_path / "x.ome.tiff", dim_order="CZYXT")
    with pytest.raises(TypeError, match="tile=\\(Y, X\\)"):
        _image(data5d).export("ome-tiff", out=tmp_path / "x.ome.tiff", chunks=(1, 1, 1, 64, 64))


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "float32", "int8", "int16", "uint32", "int32", "float64"])
def test_2d_dtypes_kept(dtype, rng, tmp_path):
    data = (rng.random((37, 45)) * 200 - (100 if np.dtype(dtype).kind != "u" else 0)).astype(dtype)
    out = tmp_path / f"{dtype}.ome.tiff"
    OMEArrow(data).export("ome-tiff", out=out, tile=(16, 32))
    assert tifffile.imread(out).dtype == np.dtype(dtype)
    np.testing.assert_array_equal(tifffile.imread(out), data)
    back = OMEArrow.scan(out)
    assert back.shape == (1, 1, 1, 37, 45) and back.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(back.to_numpy()[0, 0, 0], data)


def test_bool_complex_and_float16(rng, tmp_path):
    mask = rng.random((2, 1, 1, 9, 7)) > 0.5
    OMEArrow(mask).export("ome-tiff", out=tmp_path / "mask.ome.tiff", levels=2)
    back = OMEArrow.scan(tmp_path / "mask.ome.tiff")
    assert back.dtype == np.bool_  # OME "bit"
    np.testing.assert_array_equal(back.to_numpy(), mask)
    cplx = (rng.random((8, 8)) + 1j * rng.random((8, 8))).astype(np.complex64)
    OMEArrow(cplx).export("ome-tiff", out=tmp_path / "c.ome.tiff")
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "c.ome.tiff"), cplx)
    half = rng.random((16, 16)).astype(np.float16)
    with pytest.warns(UserWarning, match="float16 pixels are written as float32"):
        OMEArrow(half).export("ome-tiff", out=tmp_path / "h.ome.tiff")
    back = tifffile.imread(tmp_path / "h.ome.tiff")
    assert back.dtype == np.float32 and np.array_equal(back, half.astype(np.float32))


def test_64bit_integers_refused_before_writing(tmp_path):
    with pytest.raises(OmeArrowDaskError, match=r"no 64-bit integer pixel type .*astype"):
        OMEArrow(np.zeros((4, 4), np.int64)).export("ome-tiff", out=tmp_path / "x.ome.tiff")
    assert list(tmp_path.iterdir()) == []


def test_unknown_unit_left_out_with_warning(tmp_path):
    image = _image(np.zeros((1, 1, 1, 8, 8), np.uint8), physical_size=PhysicalSize(x=3.0, x_unit="furlong"))
    with pytest.warns(UserWarning, match="along X .* 'furlong' is not an OME length unit"):
        image.export("ome-tiff", out=tmp_path / "u.ome.tiff")
    assert OMEArrow.scan(tmp_path / "u.ome.tiff").meta.physical_size.x is None


# ---------------------------------------------------------------------- pyramids, tiles, compression
def test_pyramid_subifds_mean(data5d, tmp_path):
    out = tmp_path / "pyr.ome.tiff"
    _image(data5d).export("ome-tiff", out=out, levels=3, tile=(32, 16))
    level1 = downsample(data5d, "mean")
    level2 = downsample(level1, "mean")
    with tifffile.TiffFile(out) as tif:
        levels = tif.series[0].levels
        assert [lv.shape for lv in levels] == [(2, 3, 4, 70, 53), (2, 3, 4, 35, 27), (2, 3, 4, 18, 14)]
        assert len(tif.pages) == 24 and len(tif.pages[0].subifds) == 2  # levels live in SubIFDs
        np.testing.assert_array_equal(levels[1].asarray(), level1)
        np.testing.assert_array_equal(levels[2].asarray(), level2)
        numerator, denominator = tif.pages[0].tags["XResolution"].value
    assert numerator / denominator == pytest.approx(1e4 / 0.125e-3, rel=1e-6)  # pixels per cm from 0.125 nm
    back = OMEArrow.scan(out, level=2)
    assert back.shape == level2.shape
    np.testing.assert_array_equal(back.to_numpy(), level2)


def test_pyramid_labels_nearest(rng, tmp_path):
    labels = rng.integers(0, 5, (1, 1, 1, 33, 31), dtype=np.uint16)
    out = tmp_path / "labels.ome.tiff"
    OMEArrow(labels, image_type="label").export("ome-tiff", out=out, levels=2)
    with tifffile.TiffFile(out) as tif:
        np.testing.assert_array_equal(tif.series[0].levels[1].asarray(), labels[0, 0, 0, ::2, ::2])


def test_banded_planes_and_z_groups_equal_whole(rng, tmp_path):
    """A plane above the buffer is streamed in tile-row bands; the pixels and levels stay exact."""
    data = rng.integers(0, 255, (1, 1, 3, 761, 1101), dtype=np.uint8)  # 0.8 MB planes, odd sizes
    image = _image(data, chunks=(1, 1, 3, 761, 1101))  # one chunk holds all planes
    out = tmp_path / "bands.ome.tiff"
    image.export("ome-tiff", out=out, levels=3, tile=(64, 128), buffer_bytes="1MiB")
    units = list(writer._units((1, 1, 3, 761, 1101), 1, (3,), 64, 2**19))
    assert len(units) > 3 and all(u[3] - u[2] == 1 for u in units)  # bands of one plane each
    with tifffile.TiffFile(out) as tif:
        levels = tif.series[0].levels
        np.testing.assert_array_equal(levels[0].asarray(), data[0, 0])
        np.testing.assert_array_equal(levels[1].asarray(), downsample(data, "mean")[0, 0])
        np.testing.assert_array_equal(levels[2].asarray(), downsample(downsample(data, "mean"), "mean")[0, 0])
    grouped = list(writer._units((1, 1, 7, 16, 16), 2, (4, 2, 1), 16, 5 * 512))  # 5 planes fit the budget
    assert [(u[2], u[3]) for u in grouped] == [(0, 4), (4, 7)]  # whole source Z chunks, gathered while they fit


@pytest.mark.parametrize(
    ("compression", "code"),
    [
        ("zlib", tifffile.COMPRESSION.ADOBE_DEFLATE),
        ("zstd", tifffile.COMPRESSION.ZSTD),
        ("lzw", tifffile.COMPRESSION.LZW),
        ("lzma", tifffile.COMPRESSION.LZMA),
        (None, tifffile.COMPRESSION.NONE),
    ],
)
def test_compressions(compression, code, rng, tmp_path):
    data = rng.integers(0, 1000, (1, 2, 1, 40, 50), dtype=np.uint16)
    out = tmp_path / "c.ome.tiff"
    OMEArrow(data).export("ome-tiff", out=out, compression=compression, tile=(16, 16), levels=2)
    with tifffile.TiffFile(out) as tif:
        assert tif.pages[0].compression == code
        assert tif.pages[0].predictor == (1 if compression is None else 2)
        np.testing.assert_array_equal(tif.series[0].asarray(), data[0, :, 0])


def test_invalid_options(tmp_path):
    image = OMEArrow(np.zeros((8, 8), np.uint8))
    for options, match in [
        ({"compression": "jpeg"}, "compression must be one of"),
        ({"tile": (20, 32)}, "multiple of 16"),
        ({"levels": 0}, "levels must be"),
        ({"compression": None, "compression_level": 3}, "compression_level needs a compression"),
    ]:
        with pytest.raises(OmeArrowDaskError, match=match):
            image.export("ome-tiff", out=tmp_path / "x.ome.tiff", **options)
    with pytest.raises(TypeError, match="does not take \\['resume'\\]"):
        image.export("ome-tiff", out=tmp_path / "x.ome.tiff", resume=True)
    assert list(tmp_path.iterdir()) == []


def test_bigtiff_automatic_from_estimate(monkeypatch, tmp_path):
    huge = OMEArrow(da.zeros((1, 1, 1, 70_000, 70_000), np.uint8, chunks=(1, 1, 1, 4096, 4096)))
    assert writer.plan(huge).bigtiff  # 4.9 GB: planned without reading a pixel
    assert not writer.plan(huge, bigtiff=False).bigtiff
    small = OMEArrow(np.arange(64, dtype=np.uint8).reshape(8, 8))
    assert not writer.plan(small).bigtiff
    monkeypatch.setattr(writer, "_CLASSIC_TIFF_LIMIT", 1000)  # as if the file could reach 4 GiB
    small.export("ome-tiff", out=tmp_path / "big.ome.tiff")
    small.export("ome-tiff", out=tmp_path / "forced.ome.tiff", bigtiff=True)
    for name in ("big", "forced"):
        with tifffile.TiffFile(tmp_path / f"{name}.ome.tiff") as tif:
            assert tif.is_bigtiff
            np.testing.assert_array_equal(tif.asarray(), small.to_numpy()[0, 0, 0])


# ---------------------------------------------------------------------- safety
def test_existing_output_refused_unless_overwrite(tmp_path):
    out = tmp_path / "x.ome.tiff"
    out.write_bytes(b"keep me")
    image = OMEArrow(np.ones((8, 8), np.uint8))
    with pytest.raises(OmeArrowDaskError, match="exists: pass overwrite=True"):
        image.export("ome-tiff", out=out)
    assert out.read_bytes() == b"keep me"
    image.export("ome-tiff", out=out, overwrite=True)
    np.testing.assert_array_equal(tifffile.imread(out), np.ones((8, 8)))
    with pytest.raises(OmeArrowDaskError, match="is a folder"):
        image.export("ome-tiff", out=tmp_path)


def test_output_is_input_and_locked_output_refused(tmp_path, data5d):
    src = tmp_path / "in.ome.tiff"
    _image(data5d).export("ome-tiff", out=src)
    before = src.read_bytes()
    with pytest.raises(OutputIsInputError):
        OMEArrow.scan(src).export("ome-tiff", out=src, overwrite=True)
    assert src.read_bytes() == before
    out = tmp_path / "busy.ome.tiff"
    with JobLock(out), pytest.raises(OutputInUseError):
        OMEArrow(np.zeros((8, 8), np.uint8)).export("ome-tiff", out=out)
    assert not out.exists()


def _failing_image(fail_at_plane: int) -> OMEArrow:
    def fill(block, block_info=None):
        if block_info[None]["chunk-location"][2] == fail_at_plane:
            raise RuntimeError("disk read failed")
        return np.full(block.shape, 7, np.uint16)

    lazy = da.zeros((1, 1, 6, 40, 40), np.uint16, chunks=(1, 1, 1, 40, 40)).map_blocks(fill, dtype=np.uint16)
    return OMEArrow(lazy)


def test_failure_mid_write_leaves_no_output_and_keeps_the_old_one(tmp_path):
    out = tmp_path / "x.ome.tiff"
    with pytest.raises(RuntimeError, match="disk read failed"):
        _failing_image(4).export("ome-tiff", out=out, levels=2)
    assert not out.exists() and _leftovers(tmp_path) == []  # temp file, pyramid spill and lock removed
    OMEArrow(np.ones((8, 8), np.uint8)).export("ome-tiff", out=out)
    with pytest.raises(RuntimeError, match="disk read failed"):
        _failing_image(4).export("ome-tiff", out=out, overwrite=True, levels=2)
    np.testing.assert_array_equal(tifffile.imread(out), np.ones((8, 8)))  # the old file is intact
    assert _leftovers(tmp_path) == []


SLOW_WRITER = textwrap.dedent(
    """
    import sys, time
    import dask, dask.array as da, numpy as np
    from ome_arrow_dask import OMEArrow

    def fill(block, block_info=None):
        time.sleep(0.05)
        return np.full(block.shape, block_info[None]["chunk-location"][2] % 200, np.uint16)

    lazy = da.zeros((1, 1, 400, 64, 64), np.uint16, chunks=(1, 1, 1, 64, 64)).map_blocks(fill, dtype=np.uint16)
    with dask.config.set(scheduler="synchronous"):
        OMEArrow(lazy).export("ome-tiff", out=sys.argv[1], levels=2)
    """
)


def test_sigkill_mid_write_then_next_run_cleans_up(tmp_path):
    out = tmp_path / "killed.ome.tiff"
    proc = subprocess.Popen([sys.executable, "-c", SLOW_WRITER, str(out)], stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            temps = [p for p in tmp_path.iterdir() if p.name.endswith(".tmp") and p.stat().st_size > 4096]
            if temps:
                break
            time.sleep(0.05)
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stderr.close()
    assert not out.exists()  # never a half-written file under the final name
    assert any(name.endswith(".tmp") for name in _leftovers(tmp_path))  # what a killed run leaves
    data = np.arange(256, dtype=np.uint16).reshape(16, 16)
    OMEArrow(data).export("ome-tiff", out=out, levels=2)  # takes over the dead job's lock and cleans up
    np.testing.assert_array_equal(tifffile.imread(out), data)
    assert _leftovers(tmp_path) == []


MEMORY_CHILD = textwrap.dedent(
    """
    import json, resource, sys
    import dask, dask.array as da, numpy as np, tifffile
    from ome_arrow_dask import OMEArrow
    import ome_arrow_dask.writers.tiff  # imported before the baseline

    mib, out = int(sys.argv[1]), sys.argv[2]
    y, x = 1024, 1024
    n_z = mib * 2**20 // (y * x * 2)
    base = np.arange(y * x, dtype=np.uint16).reshape(1, 1, 1, y, x)

    def fill(block, block_info=None):
        return base + np.uint16(block_info[None]["chunk-location"][2])

    lazy = da.zeros((1, 1, n_z, y, x), np.uint16, chunks=(1, 1, 1, y, x)).map_blocks(fill, dtype=np.uint16)
    image = OMEArrow(lazy)

    def peak_mib():
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / 2**20 if sys.platform == "darwin" else peak / 2**10

    before = peak_mib()
    with dask.config.set(scheduler="threads", num_workers=2):
        image.export("ome-tiff", out=out, levels=2)
    after = peak_mib()
    with tifffile.TiffFile(out) as tif:
        last = tif.pages[n_z - 1].asarray()
        ok = bool((last == base[0, 0, 0] + np.uint16(n_z - 1)).all()) and len(tif.pages) == n_z
    print(json.dumps({"before": before, "after": after, "image_mib": image.nbytes / 2**20, "ok": ok}))
    """
)


@pytest.mark.slow
def test_memory_bounded_for_a_200_mb_lazy_image(tmp_path):
    out = tmp_path / "big.ome.tiff"
    done = subprocess.run(
        [sys.executable, "-c", MEMORY_CHILD, "200", str(out)], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["ok"]
    growth = report["after"] - report["before"]
    # measured: about +30 MiB for 200 MiB of pixels (one plane and one compression buffer at a time)
    assert growth < 0.5 * report["image_mib"], report


# ---------------------------------------------------------------------- CLI
def test_cli_convert_to_ome_tiff(samples_dir, tmp_path, capsys):
    src = samples_dir / "ome-artificial-5d-datasets" / "multi-channel-z-series.ome.tiff"
    out = tmp_path / "out.ome.tiff"
    assert main(["convert", str(src), str(out), "--levels", "2", "--chunks", "1,1,1,64,128"]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    expected = OMEArrow.scan(src).to_numpy()
    with tifffile.TiffFile(out) as tif:
        page = tif.pages[0]
        assert (page.tilelength, page.tilewidth, page.compression) == (64, 128, tifffile.COMPRESSION.ADOBE_DEFLATE)
        assert len(tif.series[0].levels) == 2
    np.testing.assert_array_equal(OMEArrow.scan(out).to_numpy(), expected)
    assert OMEArrow.scan(out).meta.channel_names == OMEArrow.scan(src).meta.channel_names

    assert main(["convert", str(src), str(out)]) == 2
    assert "exists: pass --overwrite to replace it" in capsys.readouterr().err
    tif_out = tmp_path / "out.ome.tif"
    assert main(["convert", str(src), str(tif_out), "--compressor", "zstd", "--clevel", "5"]) == 0
    with tifffile.TiffFile(tif_out) as tif:
        assert tif.pages[0].compression == tifffile.COMPRESSION.ZSTD


def test_cli_tiff_dry_run_and_errors(samples_dir, tmp_path, capsys):
    src = samples_dir / "ome-artificial-5d-datasets" / "z-series.ome.tiff"
    out = tmp_path / "o.ome.tiff"
    assert main(["convert", str(src), str(out), "--levels", "3", "--dry-run"]) == 0
    text = capsys.readouterr().out
    assert "would write ome-tiff" in text and "level 2: shape (1, 1, 5, 42, 110) in SubIFD 1 (mean 2x)" in text
    assert not out.exists()
    for extra, message in [
        (["--resume"], "--resume and --verify apply to .zarr and .parquet outputs"),
        (["--chunks", "1,1,4,64,64"], "an OME-TIFF tile is one Y/X plane"),
        (["--chunks", "1,1,1,60,64"], "multiples of 16"),
        (["--compressor", "lz4"], "OME-TIFF takes zlib, zstd, lzw, lzma or none"),
        (["--shards", "1,1,1,64,64"], "--shards and --ngff apply to .zarr outputs only"),
    ]:
        assert main(["convert", str(src), str(out), *extra]) == 2, extra
        assert message in capsys.readouterr().err, extra
    assert not out.exists()
    assert main(["convert", str(src), str(tmp_path / "o.png")]) == 2
    assert ".ome.tiff" in capsys.readouterr().err


def test_cli_interrupt_message_says_run_again(tmp_path):
    from ome_arrow_dask.cli import _interrupted_message, build_parser

    argv = ["convert", "in.tif", str(tmp_path / "o.ome.tiff")]
    message = _interrupted_message(build_parser().parse_args(argv), argv)
    assert "nothing was written there" in message and "--resume" not in message
