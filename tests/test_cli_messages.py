"""Messages a command line user can act on (issue 13).

Library errors speak Python (``overwrite=True``, ``missing="zeros"``, ``version='0.5'``);
the CLI must print the flags (``--overwrite``, ``--missing zeros``, ``--ngff 0.5``). Also:
an unreachable scheduler is named quickly, ``--workers 0`` is refused, and Ctrl-C says
how to resume.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile

import ome_arrow_dask
from ome_arrow_dask import OMEArrow
from ome_arrow_dask.cli import _CLI_WORDING, cli_message, main, resume_command

PYTHON_WORDS = re.compile(
    r"\b(overwrite|resume|verify|validate|follow_symlinks)=True|\b(missing|version|pattern|dims|level|scene|verify_inputs)="
    r"|\bchunk_shape\b|\(CLI |\(Python\)"
)
"""Python spellings of options that have a CLI flag; none may reach the CLI's output."""


@pytest.fixture
def tiff(tmp_path, rng):
    data = rng.integers(0, 4000, size=(2, 3, 16, 20)).astype("u2")  # C Z Y X
    path = tmp_path / "cells.ome.tif"
    tifffile.imwrite(path, data, ome=True, metadata={"axes": "CZYX"})
    return path, data[None]


def _err(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("error: "), err
    assert not PYTHON_WORDS.search(err), err
    return err


def _mark_in_progress(store: Path) -> None:
    """Turn a finished OME-Zarr (v3) into one our writer would see as interrupted."""
    meta_path = store / "zarr.json"
    meta = json.loads(meta_path.read_text())
    meta["attributes"]["ome_arrow_dask"]["status"] = "in_progress"
    meta_path.write_text(json.dumps(meta))


# ---------------------------------------------------------------- Python words -> flags


def test_existing_and_unfinished_zarr_name_the_flags(tiff, tmp_path, capsys):
    path, _ = tiff
    out = tmp_path / "o.ome.zarr"
    argv = ["convert", str(path), str(out), "--chunks", "1,1,1,8,8"]
    assert main(argv) == 0
    capsys.readouterr()
    assert main(argv) == 2
    assert "already exists: pass --overwrite to replace it" in _err(capsys)
    _mark_in_progress(out)
    assert main(argv) == 2
    assert "unfinished conversion: pass --resume to finish it or --overwrite to start again" in _err(capsys)
    assert main([*argv[:-1], "1,1,1,16,16", "--resume"]) == 2  # other options than the interrupted job
    assert "use --overwrite to start again" in _err(capsys)
    assert main(["info", str(out)]) == 2
    err = _err(capsys)
    assert "interrupted or is still running" in err and "resume=True" not in err
    assert "again with --resume, e.g. ome-arrow-dask convert <input> <this output> --resume" in err


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--shards", "1,1,1,16,16", "--ngff", "0.4"], "shards need zarr v3: use --ngff 0.5"),
        (["--verify"], "--verify checks the units of a resumed job: pass --resume"),
        (["--resume", "--overwrite"], "pass either --overwrite or --resume, not both"),
        (["--chunks", "0,1,1,8,8"], "--chunks must be 5 positive sizes"),
        (["--clevel", "12"], "--clevel must be 0..9"),
    ],
)
def test_zarr_option_errors_name_the_flags(tiff, tmp_path, capsys, extra, expected):
    path, _ = tiff
    assert main(["convert", str(path), str(tmp_path / "o.ome.zarr"), *extra]) == 2
    assert expected in _err(capsys)


def test_parquet_chunks_error_names_the_flag(tiff, tmp_path, capsys):
    path, _ = tiff
    assert main(["convert", str(path), str(tmp_path / "o.parquet"), "--chunks", "1,1,0,8,8"]) == 2
    assert "--chunks must be" in _err(capsys)


def test_interrupted_parquet_dataset_names_resume(tiff, tmp_path, capsys):
    path, _ = tiff
    out = tmp_path / "o.parquet"
    assert main(["convert", str(path), str(out)]) == 0
    (out / "_ome_arrow_dataset.json").unlink()
    Path(f"{out}.progress").mkdir()
    capsys.readouterr()
    assert main(["info", str(out)]) == 2
    assert "run it again with --resume" in _err(capsys)


def test_missing_pattern_files_name_missing_zeros(tmp_path, capsys):
    raw = tmp_path / "raw"
    raw.mkdir()
    for z in (0, 2):
        tifffile.imwrite(raw / f"img_z{z}.tif", np.full((8, 9), z + 1, "u2"))
    pattern = str(raw / "img_z<0-2>.tif")
    assert main(["info", pattern]) == 2
    assert "pass --missing zeros to fill them" in _err(capsys)
    with pytest.warns(ome_arrow_dask.errors.MissingDataWarning):
        assert main(["convert", pattern, str(tmp_path / "o.ome.zarr"), "--missing", "zeros"]) == 0
    planes = OMEArrow.scan(tmp_path / "o.ome.zarr").to_numpy()[0, 0, :, 0, 0]
    assert planes.tolist() == [1, 0, 3]


def test_missing_zarr_chunk_names_missing_zeros(tiff, tmp_path, capsys):
    path, data = tiff
    out = tmp_path / "o.ome.zarr"
    assert main(["convert", str(path), str(out), "--chunks", "1,1,1,8,8"]) == 0
    (out / "0" / "c" / "0" / "1" / "2" / "0" / "0").unlink()
    capsys.readouterr()
    assert main(["convert", str(out), str(tmp_path / "copy.ome.zarr")]) == 2
    assert re.search(r"chunk key '0/c/0/1/2/0/0' is missing; pass --missing (zeros|fill) to read it", _err(capsys))
    with pytest.warns(ome_arrow_dask.errors.MissingDataWarning):
        assert main(["convert", str(out), str(tmp_path / "copy.ome.zarr"), "--missing", "zeros", "--overwrite"]) == 0
    expected = data.copy()
    expected[0, 1, 2, :8, :8] = 0
    np.testing.assert_array_equal(OMEArrow.scan(tmp_path / "copy.ome.zarr").to_numpy(), expected)


def test_folder_without_pattern_suggests_the_flag(tmp_path, capsys):
    raw = tmp_path / "raw"
    raw.mkdir()
    for a in (1, 2):
        for b in (1, 2):
            tifffile.imwrite(raw / f"p{a}_q{b}.tif", np.zeros((4, 5), "u2"))
    assert main(["info", str(raw)]) == 2
    assert "--pattern" in _err(capsys)


def test_option_a_format_does_not_take_is_named_as_a_flag(tiff, tmp_path, capsys):
    path, _ = tiff
    out = tmp_path / "o.parquet"
    assert main(["convert", str(path), str(out)]) == 0
    capsys.readouterr()
    assert main(["info", str(out), "--missing", "zeros"]) == 2
    assert "cannot be opened with --missing" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("python", "cli"),
    [
        ("x: pass overwrite=True (CLI --overwrite) to replace it", "x: pass --overwrite to replace it"),
        ("run again with resume=True", "run again with --resume"),
        ("the tile shape is tile=(Y, X) (CLI --chunks 1,1,1,Y,X)", "the tile shape is --chunks 1,1,1,Y,X"),
        ('3 missing; pass missing="zeros" to fill them', "3 missing; pass --missing zeros to fill them"),
        ("tile 4: pass missing='zeros' to fill with zeros", "tile 4: pass --missing zeros to fill with zeros"),
        ("shards need zarr v3: use version='0.5'", "shards need zarr v3: use --ngff 0.5"),
        ("differs (validate=True checks all files at open)", "differs (--validate checks all files at open)"),
        ("cannot map TIFF axes 'QYX' to TCZYX; pass dims=", "cannot map TIFF axes 'QYX' to TCZYX; pass --dims"),
        ("refusing (pass follow_symlinks=True to read links)", "refusing (pass --follow-symlinks to read links)"),
        ("as a template: pattern='img_z{z}.tif'", "as a template: --pattern 'img_z{z}.tif'"),
        ("pass pattern= with a template", "pass --pattern with a template"),
        ("['level']; use pattern=, missing=, validate=", "['level']; use --pattern, --missing, --validate"),
        ("use pattern='...' (Python), --pattern '...' (CLI), or the glob", "use --pattern '...', or the glob"),
        ("levels must be >= 1, got 0", "--levels must be >= 1, got 0"),
        ("was started with verify_inputs='content' and", "was started with --verify-inputs content and"),
        ("chunk_shape T and C must be 1", "--chunks T and C must be 1"),
        # words that are not options stay as they are
        ("writers with write_empty_chunks=False omit them", "writers with write_empty_chunks=False omit them"),
        ("2 of 4 chunks are missing", "2 of 4 chunks are missing"),
    ],
)
def test_cli_message_translation(python, cli):
    assert cli_message(python) == cli


NOT_MESSAGES = {
    "ome-arrow-dask export: chunk_shape='X', about 'X' MB per chunk",  # Parquet metadata, not an error
}
"""Strings in the checked modules that match the Python spellings but never reach the CLI's output."""


def _library_strings(tree: ast.AST) -> list[str]:
    """String literals outside docstrings and doctests; f-string fields become ``'X'`` (as ``!r`` shows them)."""
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                skip.add(id(first.value))
        if isinstance(node, ast.JoinedStr):
            skip.update(id(v) for v in node.values)
    texts = []
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            texts.append("".join(v.value if isinstance(v, ast.Constant) else "'X'" for v in node.values))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
            texts.append(node.value)
    return [text for text in texts if ">>>" not in text]


def test_every_library_message_reaching_the_cli_is_translated():
    """Guard: a message of a reader or writer that spells an option in Python gets its flag."""
    package = Path(ome_arrow_dask.__file__).parent
    files = [*package.glob("sources/*.py"), *package.glob("writers/*.py"), package / "core.py", package / "limits.py"]
    offenders = [
        f"{file.name}: {text!r} -> {cli_message(text)!r}"
        for file in files
        for text in _library_strings(ast.parse(file.read_text(encoding="utf-8")))
        if text not in NOT_MESSAGES and PYTHON_WORDS.search(cli_message(text))
    ]
    assert _CLI_WORDING and not offenders, "\n".join(offenders)


# ---------------------------------------------------------------- scheduler and workers


def test_unreachable_scheduler_is_named_quickly(tiff, tmp_path, capsys):
    path, _ = tiff
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    address = f"tcp://127.0.0.1:{port}"
    out = tmp_path / "o.ome.zarr"
    start = time.monotonic()
    assert main(["convert", str(path), str(out), "--scheduler", address]) == 2
    assert time.monotonic() - start < 25  # was 30 s of connect timeout, then "unexpected OSError"
    err = _err(capsys)
    assert f"could not reach the dask scheduler at {address}" in err and "unexpected" not in err
    assert not out.exists()


@pytest.mark.parametrize("flag", [["--workers", "0"], ["--workers", "-2"], ["--workers", "x"], ["--levels", "0"]])
def test_non_positive_counts_are_refused(tiff, tmp_path, capsys, flag):
    path, _ = tiff
    assert main(["convert", str(path), str(tmp_path / "o.ome.zarr"), *flag]) == 2
    assert f"argument {flag[0]}: must be a positive integer" in capsys.readouterr().err
    assert not (tmp_path / "o.ome.zarr").exists()


# ---------------------------------------------------------------- Ctrl-C


def test_resume_command_replaces_overwrite():
    expected = "ome-arrow-dask convert 'a b.tif' o.zarr --resume"
    assert resume_command(["convert", "a b.tif", "o.zarr", "--overwrite"]) == expected
    assert resume_command(["convert", "a.tif", "o.zarr", "--resume"]) == "ome-arrow-dask convert a.tif o.zarr --resume"


def _units_written(out: str) -> int:
    progress = f"{out}.progress"
    names = [n for _, _, files in os.walk(progress) for n in files]
    return sum(n.endswith((".done", ".parquet")) for n in names)


@pytest.mark.slow
@pytest.mark.parametrize("out", ["run.ome.zarr", "run.parquet"])
def test_ctrl_c_says_how_to_resume_and_resume_finishes(tmp_path, out):
    data = np.random.default_rng(5).integers(0, 4000, size=(1, 12, 48, 48)).astype("u2")  # 432 units of 8x8
    tifffile.imwrite(tmp_path / "in.ome.tif", data, ome=True, metadata={"axes": "CZYX"})
    argv = ["convert", "in.ome.tif", out, "--chunks", "1,1,1,8,8", "--workers", "1"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "ome_arrow_dask.cli"]
    proc = subprocess.Popen([*command, *argv], cwd=tmp_path, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 120
    while _units_written(str(tmp_path / out)) < 3 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    if proc.poll() is not None:
        pytest.fail(f"the conversion ended before it could be interrupted: {proc.communicate()[1]}")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert f"interrupted: the conversion to {out} did not finish" in err
    resume = f"ome-arrow-dask convert in.ome.tif {out} --chunks 1,1,1,8,8 --workers 1 --resume"
    assert resume in err
    with pytest.raises(ome_arrow_dask.errors.OmeArrowDaskError):
        OMEArrow.scan(tmp_path / out).to_numpy()  # readers refuse the unfinished output

    done = subprocess.run([*command, *resume.split()[1:]], cwd=tmp_path, capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    clean = tmp_path / f"clean{Path(out).suffix}"
    assert main(["convert", str(tmp_path / "in.ome.tif"), str(clean), "--chunks", "1,1,1,8,8"]) == 0
    resumed = OMEArrow.scan(tmp_path / out)
    np.testing.assert_array_equal(resumed.to_numpy(), OMEArrow.scan(clean).to_numpy())
    np.testing.assert_array_equal(resumed.to_numpy(), data[None])
    assert resumed.chunks == OMEArrow.scan(clean).chunks
    assert not Path(f"{tmp_path / out}.progress").exists()
    shutil.rmtree(clean)


# ---------------------------------------------------------------- examples


def _load_example(name: str):
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "examples" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"example_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_llsm_example_keeps_its_output_and_resumes(tmp_path, monkeypatch, capsys):
    llsm = _load_example("llsm_to_zarr")
    monkeypatch.setattr(llsm, "STACK", (5, 16, 12))  # KB-sized stacks instead of 32 MiB ones
    argv = ["--gib", "1e-7", "--out", str(tmp_path)]  # one time point
    out = tmp_path / "run1.ome.zarr"
    assert llsm.run(argv) == 0
    first = OMEArrow.scan(out).to_numpy()
    assert llsm.run(argv) == 2  # an existing output is kept, never deleted
    assert "pass --overwrite to replace it" in capsys.readouterr().err
    np.testing.assert_array_equal(OMEArrow.scan(out).to_numpy(), first)
    _mark_in_progress(out)  # as an interrupted run leaves it
    assert llsm.run([*argv, "--resume"]) == 0
    assert "resumed" in capsys.readouterr().out
    np.testing.assert_array_equal(OMEArrow.scan(out).to_numpy(), first)
    assert llsm.run([*argv, "--overwrite"]) == 0
    np.testing.assert_array_equal(OMEArrow.scan(out).to_numpy(), first)


@pytest.mark.parametrize("fmt", ["tiff", "zarr"])
def test_convert_level_out_of_range_points_to_levels(tiff, tmp_path, capsys, fmt):
    """``convert a b.ome.zarr --level 3`` (meaning ``--levels 3``) says which flag writes a pyramid.

    Before: only "level 3 out of range; scene has 1 levels", which reads like a problem of the input.
    """
    path, _ = tiff
    if fmt == "zarr":
        assert main(["convert", str(path), str(tmp_path / "in.ome.zarr")]) == 0
        path = tmp_path / "in.ome.zarr"
        capsys.readouterr()
    out = tmp_path / "out.ome.zarr"
    assert main(["convert", str(path), str(out), "--level", "3"]) == 2
    err = _err(capsys)
    assert "level 3 out of range" in err and "--levels 3" in err
    assert not out.exists()
    assert main(["info", str(path), "--level", "3"]) == 2  # info has no --levels: no hint there
    assert "--levels" not in _err(capsys)


@pytest.mark.parametrize("out", ["o.ome.zarr", "o.parquet"])
def test_ctrl_c_before_anything_is_written_says_so(tiff, tmp_path, capsys, monkeypatch, out):
    """Ctrl-C while the input is still being opened leaves no output: no "chunks already written" claim.

    Before: "the chunks already written are kept and readers refuse the output" although
    nothing existed at ``out`` (``info`` then said "no such file or directory").
    """
    path, _ = tiff

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(OMEArrow, "export", interrupted)
    assert main(["convert", str(path), str(tmp_path / out)]) == 130
    err = capsys.readouterr().err
    assert "interrupted before anything was written" in err and "already written" not in err
    (tmp_path / f"{out}.progress").mkdir()  # the job had started writing: the --resume advice stays
    assert main(["convert", str(path), str(tmp_path / out)]) == 130
    assert "--resume" in capsys.readouterr().err


@pytest.mark.parametrize("suffix", [".ome.zarr", ".ome.tiff"])
def test_more_levels_than_the_image_can_halve_are_refused(tiff, tmp_path, capsys, suffix):
    path, _ = tiff  # 16 x 20: 20 -> 10 -> 5 -> 3 -> 2 -> 1 gives 6 levels
    out = tmp_path / f"o{suffix}"
    assert main(["convert", str(path), str(out), "--levels", "7"]) == 2
    assert "--levels must be at most 6 for a 16 x 20 image" in _err(capsys)
    assert not out.exists()
    assert main(["convert", str(path), str(out), "--levels", "6"]) == 0
