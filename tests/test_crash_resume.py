"""Conversions killed at random points and resumed give the uninterrupted output, bit for bit.

The conversion runs as a real ``ome-arrow-dask convert`` process; the test SIGKILLs it
when a chosen number of units has been recorded (so every kill lands mid-job whatever
the machine's speed), then resumes. Also: a crash while the store is being created,
corrupted or deleted chunks caught by ``verify``, and a worker killed mid-job.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import dask
import numpy as np
import pytest
import tifffile
import zarr
from killing import run_until_killed

from ome_arrow_dask import OMEArrow
from ome_arrow_dask.cli import main
from ome_arrow_dask.errors import IncompleteOutputError, OmeArrowDaskError
from ome_arrow_dask.writers import zarr as zarr_writer
from ome_arrow_dask.writers.zarr import read_status

PATTERN = "img_t{t}_c{c}.tif"
CONVERT_OPTIONS = ["--pattern", PATTERN, "--chunks", "1,1,2,16,16", "--levels", "3", "--no-progress"]


@pytest.fixture
def stack(tmp_path):
    """3 T x 2 C files of ZYX (8, 80, 72) uint16: 720 + 180 + 120 write units over 3 levels."""
    rng = np.random.default_rng(7)
    folder = tmp_path / "raw"
    folder.mkdir()
    for t in range(3):
        for c in range(2):
            data = rng.integers(0, 4000, size=(8, 80, 72), dtype=np.uint16)
            tifffile.imwrite(folder / f"img_t{t}_c{c}.tif", data, metadata={"axes": "ZYX"})
    return folder


def _reference(stack: Path, tmp_path: Path) -> Path:
    out = tmp_path / "reference.ome.zarr"
    assert main(["convert", str(stack), str(out), *CONVERT_OPTIONS]) == 0
    return out


def _levels(out: Path) -> list[np.ndarray]:
    group = zarr.open_group(str(out), mode="r")
    return [np.asarray(group[str(k)][:]) for k in range(3)]


def _attrs(out: Path) -> dict:
    return json.loads((out / "zarr.json").read_text())["attributes"]


def _recorded(progress: Path) -> int:
    """Done-markers so far; 0 once the writer has removed the folder (it may vanish mid-listing)."""
    try:
        return sum(1 for _ in progress.glob("*/*.done"))
    except FileNotFoundError:
        return 0


def _convert_until(cmd: list[str], progress: Path, target: int, timeout: float = 120.0, count=None) -> str:
    """Run ``cmd``; SIGKILL it once ``target`` units are recorded. Return how it ended."""
    count = count or _recorded
    return run_until_killed(cmd, lambda: count(progress), target, timeout)


@pytest.mark.slow
def test_sigkill_at_ten_random_points_then_resume_equals_reference(stack, tmp_path):
    reference = _reference(stack, tmp_path)
    expected = _levels(reference)
    out = tmp_path / "run.ome.zarr"
    progress = Path(f"{out}.progress")
    cmd = [sys.executable, "-m", "ome_arrow_dask.cli", "convert", str(stack), str(out), *CONVERT_OPTIONS, "--resume"]
    total = 720 + 180 + 120
    rng = np.random.default_rng(2026)
    targets = [0, *sorted(int(k) for k in rng.choice(np.arange(1, total - 1), size=9, replace=False))]
    outcomes = []
    for target in targets:
        outcomes.append(_convert_until(cmd, progress, target))
        if out.exists() and read_status(out)["status"] == "in_progress":
            with pytest.raises(IncompleteOutputError):
                OMEArrow.scan(out)
    assert outcomes.count("killed") == 10, outcomes
    assert _convert_until(cmd, progress, total + 1) == "finished"

    assert read_status(out)["status"] == "complete"
    for got, want in zip(_levels(out), expected, strict=True):
        np.testing.assert_array_equal(got, want)
    assert _attrs(out) == _attrs(reference)
    assert not progress.exists()
    assert not list(out.rglob("*.partial"))
    assert not list(tmp_path.glob("*.creating-*"))


class _Killed(BaseException):
    """Stands in for a kill: not an Exception, so nothing on the way catches it."""


def test_crash_while_creating_the_store_leaves_no_output(stack, tmp_path, monkeypatch):
    out = tmp_path / "created.ome.zarr"
    real_create = zarr.create_array
    calls = []

    def create_then_die(*args, **kwargs):
        calls.append(kwargs.get("name"))
        if len(calls) == 2:
            raise _Killed  # between two array creations
        return real_create(*args, **kwargs)

    monkeypatch.setattr(zarr, "create_array", create_then_die)
    with pytest.raises(_Killed):
        OMEArrow.scan(stack, pattern=PATTERN).export("ome-zarr", out=str(out), levels=3)
    assert not out.exists()
    assert len(list(tmp_path.glob("created.ome.zarr.creating-*"))) == 1
    monkeypatch.setattr(zarr, "create_array", real_create)

    OMEArrow.scan(stack, pattern=PATTERN).export("ome-zarr", out=str(out), levels=3, resume=True)
    assert read_status(out)["status"] == "complete"
    assert not list(tmp_path.glob("created.ome.zarr.creating-*"))
    np.testing.assert_array_equal(OMEArrow.scan(out).to_numpy(), OMEArrow.scan(stack, pattern=PATTERN).to_numpy())


CHUNKS = (1, 1, 8, 40, 36)  # 3 x 2 x 1 x 2 x 2 = 24 units of level 0


def _interrupted(stack: Path, out: Path, monkeypatch, after_units: int) -> None:
    """Write until ``after_units`` units are stored, then fail the next one."""
    real_store = zarr_writer._store_unit
    stored = []

    def store_then_fail(*args, **kwargs):
        if len(stored) == after_units:
            raise _Killed
        stored.append(1)
        return real_store(*args, **kwargs)

    monkeypatch.setattr(zarr_writer, "_store_unit", store_then_fail)
    with dask.config.set(scheduler="synchronous"), pytest.raises(_Killed):
        OMEArrow.scan(stack, pattern=PATTERN).export("ome-zarr", out=str(out), chunks=CHUNKS)
    monkeypatch.setattr(zarr_writer, "_store_unit", real_store)


def _damage(out: Path) -> tuple[Path, Path]:
    chunk_files = sorted(p for p in (out / "0" / "c").rglob("*") if p.is_file())
    assert len(chunk_files) == 10
    corrupt, lost = chunk_files[0], chunk_files[1]
    corrupt.write_bytes(corrupt.read_bytes()[:-7] + b"garbage")
    lost.unlink()
    return corrupt, lost


def test_without_verify_damaged_units_are_trusted_and_reads_fail_loudly(stack, tmp_path, monkeypatch):
    out = tmp_path / "nv.ome.zarr"
    _interrupted(stack, out, monkeypatch, after_units=10)
    _damage(out)
    OMEArrow.scan(stack, pattern=PATTERN).export("ome-zarr", out=str(out), chunks=CHUNKS, resume=True)
    with pytest.raises(OmeArrowDaskError, match="chunk"):  # never silently wrong: lost or corrupt chunks raise
        OMEArrow.scan(out).to_numpy()


def test_verify_redoes_corrupted_and_deleted_units(stack, tmp_path, monkeypatch):
    out = tmp_path / "v.ome.zarr"
    _interrupted(stack, out, monkeypatch, after_units=10)
    _, lost = _damage(out)
    redone = []
    real_store = zarr_writer._store_unit
    monkeypatch.setattr(zarr_writer, "_store_unit", lambda *a, **k: redone.append(1) or real_store(*a, **k))
    OMEArrow.scan(stack, pattern=PATTERN).export("ome-zarr", out=str(out), chunks=CHUNKS, resume=True, verify=True)
    assert len(redone) == 24 - 10 + 2  # the 14 never written, plus the two damaged
    assert lost.exists()
    np.testing.assert_array_equal(OMEArrow.scan(out).to_numpy(), OMEArrow.scan(stack, pattern=PATTERN).to_numpy())


def test_resume_with_verify_from_the_cli_repairs_a_deleted_chunk(stack, tmp_path, monkeypatch):
    out = tmp_path / "cli.ome.zarr"
    _interrupted(stack, out, monkeypatch, after_units=6)
    victim = next(p for p in (out / "0" / "c").rglob("*") if p.is_file())
    victim.unlink()
    args = ["convert", str(stack), str(out), "--pattern", PATTERN, "--chunks", "1,1,8,40,36", "--resume", "--verify"]
    assert main(args) == 0
    assert victim.exists()
    np.testing.assert_array_equal(OMEArrow.scan(out).to_numpy(), OMEArrow.scan(stack, pattern=PATTERN).to_numpy())


def test_leftover_partial_files_are_removed_on_resume(stack, tmp_path, monkeypatch):
    out = tmp_path / "p.ome.zarr"
    _interrupted(stack, out, monkeypatch, after_units=3)
    leftover = out / "0" / "c" / "0" / "0" / "0" / "0" / f"1.{uuid.uuid4().hex}.partial"  # zarr's temp name
    leftover.parent.mkdir(parents=True, exist_ok=True)
    leftover.write_bytes(b"half a chunk")
    OMEArrow.scan(stack, pattern=PATTERN).export("ome-zarr", out=str(out), chunks=CHUNKS, resume=True)
    assert not leftover.exists()
    assert read_status(out)["status"] == "complete"


@pytest.mark.slow
def test_worker_killed_mid_job_gives_identical_output(stack, tmp_path):
    import distributed

    reference = _reference(stack, tmp_path)
    out = tmp_path / "dist.ome.zarr"
    progress = Path(f"{out}.progress")
    argv = ["convert", str(stack), str(out), *CONVERT_OPTIONS]
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        with distributed.Client(cluster) as client:
            pids = list(client.run(os.getpid).values())
        with ThreadPoolExecutor(1) as pool:  # the driver runs here, as the CLI would
            job = pool.submit(main, [*argv, "--scheduler", cluster.scheduler_address])
            deadline = time.monotonic() + 120
            while _recorded(progress) < 150 and time.monotonic() < deadline and not job.done():
                time.sleep(0.005)
            assert not job.done() and _recorded(progress) >= 150, "the conversion did not get going"
            os.kill(pids[0], signal.SIGKILL)  # the nanny restarts the worker; its tasks are rescheduled
            assert job.result(timeout=300) == 0
    assert read_status(out)["status"] == "complete"
    for got, want in zip(_levels(out), _levels(reference), strict=True):
        np.testing.assert_array_equal(got, want)


@pytest.mark.slow
def test_parquet_conversion_killed_three_times_then_resumed_equals_the_input(stack, tmp_path):
    import ome_arrow

    out = tmp_path / "run.parquet"
    parts = Path(f"{out}.progress") / "parts"
    options = ["--pattern", PATTERN, "--chunks", "1,1,2,16,16", "--no-progress", "--resume"]
    cmd = [sys.executable, "-m", "ome_arrow_dask.cli", "convert", str(stack), str(out), *options]
    total = 3 * 2 * 4 * 5 * 5
    outcomes = []
    for target in (40, 200, 480):
        outcomes.append(_convert_until(cmd, parts, target, count=lambda p: len(list(p.glob("part-*.parquet")))))
        with pytest.raises(IncompleteOutputError, match="--resume"):
            OMEArrow.scan(out)
    assert outcomes == ["killed"] * 3
    assert _convert_until(cmd, parts, total + 1, count=lambda p: 0) == "finished"
    expected = OMEArrow.scan(stack, pattern=PATTERN).to_numpy()
    np.testing.assert_array_equal(OMEArrow.scan(out).to_numpy(), expected)
    np.testing.assert_array_equal(np.asarray(ome_arrow.OMEArrow(str(out)).export("numpy", dtype="uint16")), expected)
    assert not parts.parent.exists()


def test_a_refused_write_deletes_nothing(tmp_path, rng):
    """Cleanup runs only for our own outputs: a user's folder and its temp-like files survive."""
    user = tmp_path / "userdir"
    (user / "sub").mkdir(parents=True)
    mine = user / "sub" / f"movie.{uuid.uuid4().hex}.partial"
    mine.write_bytes(b"not zarr")
    sibling = tmp_path / "userdir.creating-notmine"
    sibling.mkdir()
    with pytest.raises(OmeArrowDaskError, match="already exists"):
        OMEArrow(np.zeros((4, 4), "u1")).export("ome-zarr", out=str(user))
    assert mine.exists() and sibling.exists()


def test_export_creates_missing_parent_folders(tmp_path):
    out = tmp_path / "a" / "b" / "img.ome.zarr"
    OMEArrow(np.arange(16, dtype="u1").reshape(4, 4)).export("ome-zarr", out=str(out))
    np.testing.assert_array_equal(OMEArrow.scan(out).to_numpy()[0, 0, 0], np.arange(16).reshape(4, 4))


def test_verify_without_resume_is_refused(tmp_path):
    with pytest.raises(OmeArrowDaskError, match="resume"):
        OMEArrow(np.zeros((4, 4), "u1")).export("ome-zarr", out=str(tmp_path / "v.zarr"), verify=True)
