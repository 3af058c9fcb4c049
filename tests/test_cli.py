"""Command line: ``main([...])`` in-process, exit codes and outputs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile

from ome_arrow_dask import OMEArrow
from ome_arrow_dask.cli import main
from ome_arrow_dask.writers.zarr import read_status


@pytest.fixture
def tiff(tmp_path, rng):
    data = rng.integers(0, 4000, size=(2, 3, 40, 50)).astype("u2")  # C Z Y X
    path = tmp_path / "cells.ome.tif"
    tifffile.imwrite(path, data, ome=True, metadata={"axes": "CZYX", "PhysicalSizeX": 0.25, "PhysicalSizeY": 0.25})
    return path, data[None]


def test_info(tiff, capsys):
    path, _ = tiff
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "(1, 2, 3, 40, 50)" in out and "uint16" in out and "0.25" in out


def test_explain_selection(tiff, capsys):
    path, _ = tiff
    assert main(["explain", str(path), "--c", "1", "--z", "0", "--z", "2", "--roi", "5,10,20,8"]) == 0
    assert capsys.readouterr().out.strip()


def test_convert_zarr_round_trip(tiff, tmp_path, capsys):
    path, data = tiff
    out = tmp_path / "out.ome.zarr"
    argv = ["convert", str(path), str(out), "--chunks", "1,1,1,16,16", "--levels", "2", "--workers", "2"]
    assert main(argv) == 0
    np.testing.assert_array_equal(OMEArrow.scan(out).to_numpy(), data)
    assert read_status(out)["status"] == "complete"
    capsys.readouterr()
    assert main(argv) == 2
    assert "already exists" in capsys.readouterr().err
    assert main([*argv, "--overwrite", "--ngff", "0.4", "--scheduler", "synchronous"]) == 0
    assert main([*argv, "--ngff", "0.4", "--resume"]) == 0  # already complete: nothing to do


def test_convert_dry_run_writes_nothing(tiff, tmp_path, capsys):
    path, _ = tiff
    out = tmp_path / "plan.zarr"
    assert main(["convert", str(path), str(out), "--dry-run", "--levels", "2"]) == 0
    text = capsys.readouterr().out
    assert "level 1" in text and "write task" in text
    assert not out.exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["info", "/nonexistent/x.tif"], "no such file"),
        (["convert", "{src}", "{tmp}/out.n5"], "output format"),
        (["convert", "{src}", "{tmp}/o.zarr", "--shards", "1,1,1,7,7"], "multiples"),
        (["convert", "{src}", "{tmp}/o.zarr", "--scheduler", "bogus"], "--scheduler"),
    ],
)
def test_errors_exit_2(tiff, tmp_path, capsys, argv, message):
    path, _ = tiff
    argv = [a.format(src=path, tmp=tmp_path) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err


def test_usage_and_help(capsys):
    assert main(["convert", "only-one-arg"]) == 2
    assert main(["convert", "--help"]) == 0
    assert "example" in capsys.readouterr().out
    assert main(["convert", "a.tif", "b.zarr", "--chunks", "1,2"]) == 2


def test_convert_on_distributed_processes_with_progress(tiff, tmp_path, capsys):
    import distributed

    path, data = tiff
    out = tmp_path / "dist.ome.zarr"
    argv = ["convert", str(path), str(out), "--chunks", "1,1,1,16,16", "--progress"]
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        code = main([*argv, "--scheduler", cluster.scheduler_address])
    assert code == 0
    assert "100% Completed" in capsys.readouterr().out  # distributed's text progress bar
    np.testing.assert_array_equal(OMEArrow.scan(out).to_numpy(), data)


def test_convert_to_parquet_reads_back_in_ome_arrow(tiff, tmp_path, capsys):
    from ome_arrow import OMEArrowDataset

    path, data = tiff
    out = tmp_path / "copy.ome.parquet"
    assert main(["convert", str(path), str(out)]) == 0
    expected = data  # the pixels tifffile wrote, TCZYX
    np.testing.assert_array_equal(OMEArrowDataset(str(out)).read_image(), expected)
    np.testing.assert_array_equal(OMEArrow.scan(out).to_numpy(), expected)
    assert main(["convert", str(path), str(out)]) == 2
    assert "pass --overwrite" in capsys.readouterr().err
    assert main(["convert", str(path), str(out), "--overwrite"]) == 0


def test_convert_progress_and_compressor_options(tiff, tmp_path, capsys):
    path, data = tiff
    out = tmp_path / "lz4.ome.zarr"
    argv = ["convert", str(path), str(out), "--compressor", "lz4", "--clevel", "7", "--progress"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "100% Completed" in captured.out + captured.err  # dask's local progress bar
    blosc = next(c for c in json.loads((out / "0" / "zarr.json").read_text())["codecs"] if c["name"] == "blosc")
    assert (blosc["configuration"]["cname"], blosc["configuration"]["clevel"]) == ("lz4", 7)
    np.testing.assert_array_equal(OMEArrow.scan(out).to_numpy(), data)
    assert main(["convert", str(path), str(tmp_path / "x.ome.zarr"), "--clevel", "12"]) == 2
    assert "clevel must be 0..9" in capsys.readouterr().err


def test_explain_without_a_selection_lists_no_step(tiff, capsys):
    """``explain`` with no --t/--c/--z/--roi shows the whole image's plan, not a crop the user never asked for.

    Before: "steps: 1. slice_lazy(x=0:50, y=0:40)" was printed for a plain ``explain path``.
    """
    path, _ = tiff
    assert main(["explain", str(path)]) == 0
    out = capsys.readouterr().out
    assert "slice_lazy" not in out and "steps:" not in out
    assert "reads 6 of 6 chunks" in out
    assert main(["explain", str(path), "--roi", "0,0,50,40"]) == 0  # an explicit full-size crop is still a step
    assert "slice_lazy(x=0:50, y=0:40)" in capsys.readouterr().out


@pytest.mark.parametrize("name", ["p.ome.zarr", "p.ome.tiff"])
def test_info_lists_the_pyramid_levels(tmp_path, capsys, name):
    how = "ome-tiff" if name.endswith("tiff") else "ome-zarr"
    out = tmp_path / name
    OMEArrow(np.zeros((64, 40), "u2")).export(how, out=str(out), levels=3)
    assert main(["info", str(out)]) == 0
    assert "levels:        3 (64x40, 32x20, 16x10; open one with --level K)" in capsys.readouterr().out
    single = tmp_path / f"single-{name}"
    OMEArrow(np.zeros((64, 40), "u2")).export(how, out=str(single))
    assert main(["info", str(single)]) == 0
    assert "levels:" not in capsys.readouterr().out
