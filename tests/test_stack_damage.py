"""Pattern stacks on damaged or inconsistent folders (issues 13 and 21).

Plate (HCS) names infer channels, files whose axes differ are refused, empty IFDs and
absurd strip byte counts are refused before any allocation, relative folders work on a
``tcp://`` cluster whose worker runs elsewhere, a folder without a pattern says how to
pass one, and writers check every header before any output exists.
"""

from __future__ import annotations

import os
import shutil
import socket
import struct
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import tifffile

from ome_arrow_dask import OMEArrow
from ome_arrow_dask.cache import CachedSource
from ome_arrow_dask.cli import main
from ome_arrow_dask.errors import (
    CorruptInputError,
    InconsistentInputError,
    InputChangedError,
    InputUnreachableError,
    UnsupportedSourceError,
)
from ome_arrow_dask.sources.base import MetaOverride, validate_before_write
from ome_arrow_dask.sources.patterns import PatternError, grid_for, hcs_fields

EXAMPLEHUMAN = "AS_09125_050116030001_D03f00d{c}.tif"


def write_planes(folder: Path, n: int = 5, shape: tuple[int, ...] = (6, 8), **kwargs: object) -> list[np.ndarray]:
    """``img_z{k}.tif`` for k < n, each a distinct uint16 plane; return the planes."""
    folder.mkdir(parents=True, exist_ok=True)
    planes = [np.arange(np.prod(shape), dtype="u2").reshape(shape) + 100 * k for k in range(n)]
    for k, plane in enumerate(planes):
        tifffile.imwrite(folder / f"img_z{k}.tif", plane, photometric="minisblack", **kwargs)
    return planes


def patch_tag(path: Path, tag: str, value: int) -> None:
    """Overwrite one inline LONG/SHORT tag value of the first page in place."""
    with tifffile.TiffFile(path) as tif:
        item = tif.pages.first.tags[tag]
        offset, fmt = item.valueoffset, {3: "<H", 4: "<I"}[int(item.dtype)]
    data = bytearray(path.read_bytes())
    data[offset : offset + struct.calcsize(fmt)] = struct.pack(fmt, value)
    path.write_bytes(bytes(data))


# --------------------------------------------------------------------------- 1. plate names
def test_examplehuman_glob_infers_three_channels(samples_dir):
    folder = samples_dir / "examplehuman"
    img = OMEArrow.scan(str(folder / "*.tif"))
    assert img.shape == (1, 3, 1, 512, 512)
    assert [ch.name for ch in img.meta.channels] == ["d0", "d1", "d2"]
    data = img.to_numpy(scheduler="sync")
    for c in range(3):
        np.testing.assert_array_equal(data[0, c, 0], tifffile.imread(folder / EXAMPLEHUMAN.format(c=c)))
    lines = img.explain()
    assert "d# -> C" in lines and "well D03" in lines and "site f00" in lines


def test_plate_copy_with_two_sites_is_refused_with_a_one_site_glob(samples_dir, tmp_path):
    """A generated copy: two sites x three wavelengths; sites are separate images, not Z or T."""
    src = samples_dir / "examplehuman"
    for site in (0, 1):
        for c in range(3):
            shutil.copy(src / EXAMPLEHUMAN.format(c=c), tmp_path / f"AS_09125_050116030001_D03f0{site}d{c}.tif")
    with pytest.raises(PatternError, match=r"site f#d \(2 values\).*'AS_09125_050116030001_D03f00d\*\.tif'"):
        OMEArrow.scan(str(tmp_path / "*.tif"))
    img = OMEArrow.scan(str(tmp_path / "AS_09125_050116030001_D03f01d*.tif"))
    assert img.shape == (1, 3, 1, 512, 512)
    np.testing.assert_array_equal(
        img.to_numpy(scheduler="sync")[0, 2, 0], tifffile.imread(src / EXAMPLEHUMAN.format(c=2))
    )


def test_metaxpress_names_wavelength_is_c_and_sites_are_refused():
    names = [f"Plate_A01_s1_w{w}.tif" for w in (1, 2)]
    _, grid = grid_for("*.tif", names)
    assert grid.shape == (1, 2, 1, 1, 1) and grid.channel_names() == ("w1", "w2")
    with pytest.raises(PatternError, match=r"vary in site s# \(2 values\).*'Plate_A01_s1_w\*\.tif'"):
        grid_for("*.tif", [f"Plate_A01_s{s}_w{w}.tif" for s in (1, 2) for w in (1, 2)])
    # names that only look alike are not plate names: C is a channel letter, z a plane
    assert hcs_fields(("img_C", "_z", ".tif")) == {}
    _, grid = grid_for("*.tif", [f"img_C{c}_z{z}.tif" for c in (1, 2) for z in (0, 1)])
    assert grid.shape == (1, 2, 2, 1, 1)


# --------------------------------------------------------------------------- 2. axes
def test_files_with_other_axes_but_same_shape_are_refused_naming_both(tmp_path):
    """First file CYX, the other ZYX, both (4, 32, 32): never assembled as (2, 4, 1, 32, 32)."""
    d = tmp_path / "d"
    d.mkdir()
    tifffile.imwrite(d / "img_t0.tif", np.ones((4, 32, 32), "u2"), metadata={"axes": "CYX"}, photometric="minisblack")
    tifffile.imwrite(d / "img_t1.tif", np.ones((4, 32, 32), "u2"), metadata={"axes": "ZYX"}, photometric="minisblack")
    img = OMEArrow.scan(d, pattern="img_t{t}.tif")
    assert img.shape == (2, 4, 1, 32, 32)  # the first file's layout, as documented
    first = img.source.read_chunk((0, 0, 0, 0, 0))  # the first file itself reads
    np.testing.assert_array_equal(first, np.ones((1, 4, 1, 32, 32)))
    both = r"img_t1\.tif: shape \(4, 32, 32\) uint16 \(axes ZYX\) differs from the first file .*img_t0\.tif.*CYX"
    with pytest.raises(InconsistentInputError, match=both):
        img.to_numpy(scheduler="sync")
    with pytest.raises(InconsistentInputError, match=both):  # page-wise reads check axes too
        img.source.read_region((1, 0, 0, 0, 0), (slice(0, 1), slice(0, 1), slice(0, 1), slice(0, 32), slice(0, 32)))
    with pytest.raises(InconsistentInputError, match=r"img_t1\.tif: .*\(axes ZYX\).*"):
        OMEArrow.scan(d, pattern="img_t{t}.tif", validate=True)
    with pytest.raises(InconsistentInputError, match=r"first file img_t0\.tif: .*\(axes CYX\)"):
        OMEArrow.scan(d, pattern="img_t{t}.tif", validate=True)


def test_axes_that_land_on_the_same_axis_are_accepted(tmp_path):
    """ZYX written with shaped metadata and a plain multi-page file (QYX/IYX) are one layout."""
    d = tmp_path / "d"
    d.mkdir()
    a, b = np.full((3, 4, 5), 1, "u2"), np.full((3, 4, 5), 2, "u2")
    tifffile.imwrite(d / "s_t0.tif", a, metadata={"axes": "ZYX"}, photometric="minisblack")
    tifffile.imwrite(d / "s_t1.tif", b, metadata=None, photometric="minisblack")
    with tifffile.TiffFile(d / "s_t1.tif") as tif:
        assert tif.series[0].axes != "ZYX"
    img = OMEArrow.scan(d, pattern="s_t{t}.tif", validate=True)
    np.testing.assert_array_equal(img.to_numpy(scheduler="sync")[:, 0], np.stack([a, b]))


# --------------------------------------------------------------------------- 3. damaged headers
def write_empty_ifd(path: Path) -> None:
    """A TIFF whose first IFD has 0 entries."""
    path.write_bytes(b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", 0) + struct.pack("<I", 0))


def test_first_file_with_an_empty_ifd_is_refused_at_scan(tmp_path):
    write_planes(tmp_path / "d", 3)
    write_empty_ifd(tmp_path / "d" / "img_z0.tif")
    with pytest.raises(CorruptInputError, match=r"img_z0\.tif: the TIFF header describes no image"):
        OMEArrow.scan(tmp_path / "d", pattern="img_z{z}.tif")


def test_other_file_with_an_empty_ifd_is_refused_by_validate(tmp_path):
    write_planes(tmp_path / "d", 3)
    write_empty_ifd(tmp_path / "d" / "img_z1.tif")
    with pytest.raises(CorruptInputError, match=r"img_z1\.tif: the TIFF header describes no image"):
        OMEArrow.scan(tmp_path / "d", pattern="img_z{z}.tif", validate=True)
    img = OMEArrow.scan(tmp_path / "d", pattern="img_z{z}.tif")
    with pytest.raises(InconsistentInputError, match=r"img_z1\.tif: shape \(\)"):
        img.to_numpy(scheduler="sync")


@pytest.mark.parametrize("compression", [None, "zlib"])
def test_huge_strip_byte_count_is_refused_before_allocating(tmp_path, compression):
    """StripByteCounts = 0xFFFFFFFF in one file of the stack: an error naming it, no 4 GiB buffer."""
    write_planes(tmp_path / "d", 3, compression=compression)
    img = OMEArrow.scan(tmp_path / "d", pattern="img_z{z}.tif")
    bad = tmp_path / "d" / "img_z1.tif"
    stat = bad.stat()
    patch_tag(bad, "StripByteCounts", 0xFFFFFFFF)
    os.utime(bad, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same size and mtime: as if damaged before the scan
    past_the_end = r"img_z1\.tif \(page 0\): segment 0 .* ends past the end of the file"
    tracemalloc.start()
    try:
        with pytest.raises(CorruptInputError, match=past_the_end):
            img.source.read_chunk((0, 0, 1, 0, 0))
        with pytest.raises(CorruptInputError, match=past_the_end):
            img.source.validate_inputs()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 32 * 2**20
    with pytest.raises(CorruptInputError, match=r"img_z1\.tif"):  # and at scan when it is the first file
        OMEArrow.scan(tmp_path / "d", pattern="img_z{z}.tif", validate=True)


def test_missing_strip_is_refused_not_read_as_zeros(tmp_path):
    """StripByteCounts = 0: tifffile would decode the plane as zeros; a stack refuses it."""
    write_planes(tmp_path / "d", 3)
    bad = tmp_path / "d" / "img_z2.tif"
    patch_tag(bad, "StripByteCounts", 0)
    img = OMEArrow.scan(tmp_path / "d", pattern="img_z{z}.tif")
    with pytest.raises(CorruptInputError, match=r"img_z2\.tif \(page 0\): segment 0 is missing"):
        img.to_numpy(scheduler="sync")
    with pytest.raises(CorruptInputError, match=r"img_z2\.tif \(page 0\): segment 0 is missing"):
        img.source.validate_inputs()


# --------------------------------------------------------------------------- 4. deleted vs unreachable
def test_deleted_file_and_vanished_folder_are_told_apart(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_planes(tmp_path / "raw", 3)
    img = OMEArrow.scan("raw/img_z{z}.tif")
    assert os.path.isabs(img.source.root)
    os.remove(tmp_path / "raw" / "img_z1.tif")
    with pytest.raises(InputChangedError, match=r"raw/img_z1\.tif was deleted after the pattern was scanned"):
        img.source.read_chunk((0, 0, 1, 0, 0))
    os.rename(tmp_path / "raw", tmp_path / "moved")
    with pytest.raises(InputUnreachableError, match=rf"not reachable from host .*pid {os.getpid()} at {tmp_path}/raw/"):
        img.source.read_chunk((0, 0, 0, 0, 0))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def tcp_cluster(tmp_path):
    """A real ``dask scheduler`` + ``dask worker`` on 127.0.0.1, the worker in another working directory."""
    pytest.importorskip("distributed")
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    worker_cwd = tmp_path / "worker-cwd"
    worker_cwd.mkdir()
    common = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    scheduler = subprocess.Popen(
        [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", str(port),
         "--no-dashboard"], cwd=tmp_path, **common,
    )  # fmt: skip
    worker = subprocess.Popen(
        [sys.executable, "-m", "distributed.cli.dask_worker", address, "--nworkers", "1", "--nthreads", "1",
         "--no-dashboard", "--host", "127.0.0.1"], cwd=worker_cwd, **common,
    )  # fmt: skip
    try:
        yield address
    finally:
        for proc in (worker, scheduler):
            proc.terminate()
        for proc in (worker, scheduler):
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.mark.slow
def test_relative_pattern_folder_on_a_tcp_cluster_with_another_cwd(tcp_cluster, tmp_path, monkeypatch):
    from distributed import Client

    job = tmp_path / "job"
    planes = write_planes(job / "raw", 3)
    monkeypatch.chdir(job)
    deadline = time.monotonic() + 60
    with Client(tcp_cluster, timeout=60) as client:
        client.wait_for_workers(1, timeout=max(1.0, deadline - time.monotonic()))
        assert client.run(os.getcwd) != {0: str(job)}
        assert all(cwd != str(job) for cwd in client.run(os.getcwd).values())
        img = OMEArrow.scan("raw/img_z{z}.tif")
        np.testing.assert_array_equal(img.to_numpy()[0, 0], np.stack(planes))
        os.remove(job / "raw" / "img_z2.tif")
        with pytest.raises(InputChangedError, match=r"img_z2\.tif was deleted"):
            img.to_numpy()
        tifffile.imwrite(job / "raw" / "img_z2.tif", planes[2], photometric="minisblack")
        img = OMEArrow.scan("raw/img_z{z}.tif")  # a new scan: new fingerprints, new task keys
        os.rename(job / "raw", job / "gone")
        with pytest.raises(InputUnreachableError, match=rf"not reachable from dask worker tcp://.* at {job}/raw/"):
            img.to_numpy()


# --------------------------------------------------------------------------- 5. folder without a pattern
def test_folder_without_pattern_suggests_pattern_and_shows_inference(samples_dir, capsys):
    folder = samples_dir / "examplehuman"
    with pytest.raises(UnsupportedSourceError) as info:
        OMEArrow.scan(str(folder))
    text = str(info.value)
    assert "pattern=" in text and "--pattern" in text and f"{folder}/*.tif" in text
    assert "d# -> C (3 values" in text and "pattern='AS_09125_050116030001_D03f00d{c}.tif'" in text
    assert "convert the file" not in text
    assert main(["info", str(folder)]) != 0
    err = capsys.readouterr().err
    assert "--pattern" in err and "d# -> C" in err


def test_folder_hint_reports_why_inference_fails(tmp_path):
    write_planes(tmp_path / "d", 2)
    tifffile.imwrite(tmp_path / "d" / "other_name.tif", np.zeros((6, 8), "u2"))
    with pytest.raises(UnsupportedSourceError, match=r"--pattern .*Inference on '\*\.tif' fails: cannot infer axes"):
        OMEArrow.scan(str(tmp_path / "d"))


# --------------------------------------------------------------------------- 6. check before writing
@pytest.fixture
def bad_middle(tmp_path):
    """Seven planes, the middle one of another shape; the image is scanned without validate."""
    folder = tmp_path / "raw"
    write_planes(folder, 7)
    tifffile.imwrite(folder / "img_z3.tif", np.zeros((6, 9), "u2"), photometric="minisblack")
    return folder


@pytest.mark.parametrize(("how", "name"), [("ome-zarr", "out.ome.zarr"), ("parquet", "out.parquet")])
def test_api_export_fails_before_any_output_exists(bad_middle, tmp_path, how, name):
    img = OMEArrow.scan(bad_middle, pattern="img_z{z}.tif")
    out = tmp_path / name
    with pytest.raises(InconsistentInputError, match=r"img_z3\.tif: shape \(6, 9\)"):
        img.export(how, out=str(out))
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(name)]  # no progress or temp folders either


@pytest.mark.parametrize("name", ["out.ome.zarr", "out.parquet"])
def test_cli_convert_fails_before_any_output_exists(bad_middle, tmp_path, capsys, name):
    out = tmp_path / name
    assert main(["convert", str(bad_middle), str(out), "--pattern", "img_z{z}.tif", "--scheduler", "synchronous"]) != 0
    assert "img_z3.tif" in capsys.readouterr().err
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(name)]


def test_validate_before_write_looks_through_wrappers(bad_middle):
    img = OMEArrow.scan(bad_middle, pattern="img_z{z}.tif")
    wrapped = CachedSource(MetaOverride(img.source, img.source.meta.replace(name="renamed")))
    with pytest.raises(InconsistentInputError, match=r"img_z3\.tif"):
        validate_before_write(wrapped)
    validate_before_write(object())  # a source without the hook: nothing to check


def test_validate_inputs_names_a_file_changed_since_the_scan(tmp_path):
    planes = write_planes(tmp_path / "d", 3)
    img = OMEArrow.scan(tmp_path / "d", pattern="img_z{z}.tif")
    img.source.validate_inputs()  # clean input passes
    tifffile.imwrite(tmp_path / "d" / "img_z2.tif", np.vstack([planes[2], planes[2]]), photometric="minisblack")
    with pytest.raises(InputChangedError, match=r"img_z2\.tif changed after the pattern was scanned"):
        img.source.validate_inputs()


# --------------------------------------------------------------------------- a folder named like a file
@pytest.mark.parametrize("position", [0, 4, 2])
@pytest.mark.parametrize("pattern", ["img_z{z}.tif", "img_z*.tif", "img_z<0-4>.tif"])
def test_folder_named_like_a_plane_is_refused_naming_it(tmp_path, position, pattern):
    """A folder called like the first or last file was skipped: the open template read Z=4 instead of 5."""
    folder = tmp_path / "planes"
    write_planes(folder, 5)
    (folder / f"img_z{position}.tif").unlink()
    (folder / f"img_z{position}.tif").mkdir()
    (folder / f"img_z{position}.tif" / "inner.tif").write_bytes(b"II*\x00")
    message = rf"1 entry in .*planes match the pattern .*img_z{position}\.tif is a folder"
    with pytest.raises(InconsistentInputError, match=message):
        OMEArrow.scan(str(folder), pattern=pattern)


def test_broken_symlink_named_like_a_plane_is_refused(tmp_path):
    folder = tmp_path / "planes"
    write_planes(folder, 5)
    (folder / "img_z4.tif").unlink()
    os.symlink(tmp_path / "gone.tif", folder / "img_z4.tif")
    with pytest.raises(InconsistentInputError, match=r"img_z4\.tif is a symlink to .*gone\.tif.*missing"):
        OMEArrow.scan(str(folder), pattern="img_z{z}.tif")


def test_folders_that_do_not_match_the_pattern_are_ignored(tmp_path):
    folder = tmp_path / "planes"
    planes = write_planes(folder, 3)
    (folder / "img_z3.tif.bak").mkdir()
    (folder / "thumbs").mkdir()
    img = OMEArrow.scan(str(folder), pattern="img_z{z}.tif")
    assert img.shape == (1, 1, 3, 6, 8)
    np.testing.assert_array_equal(img.to_numpy()[0, 0], np.stack(planes))
