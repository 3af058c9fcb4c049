"""Relative paths on a real ``tcp://`` cluster whose worker runs in another directory.

A ``dask scheduler`` and a ``dask worker`` run as subprocesses on 127.0.0.1; the worker's
working directory is not the job's, so every path that reaches a task must already be
absolute (issue 13: "Failed to open local file 'tcp.parquet.progress/parts/...'").
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile

from ome_arrow_dask import OMEArrow

pytestmark = pytest.mark.slow

DASK = shutil.which("dask", path=os.path.dirname(sys.executable)) or shutil.which("dask")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """Scheduler + one worker (cwd: its own empty folder); yields the scheduler address."""
    if DASK is None:
        pytest.skip("the dask command line is not installed")
    from distributed import Client

    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    logs = tmp_path_factory.mktemp("cluster_logs")
    worker_dir = tmp_path_factory.mktemp("worker_cwd")
    with open(logs / "scheduler.log", "w") as scheduler_log, open(logs / "worker.log", "w") as worker_log:
        scheduler = subprocess.Popen(
            [DASK, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
            stdout=scheduler_log,
            stderr=subprocess.STDOUT,
        )
        worker = None
        try:
            worker = subprocess.Popen(
                [DASK, "worker", address, "--no-dashboard", "--nworkers", "1", "--nthreads", "2"],
                cwd=worker_dir,
                stdout=worker_log,
                stderr=subprocess.STDOUT,
            )
            deadline = time.monotonic() + 60
            while True:
                try:
                    with Client(address, timeout="5s") as client:
                        client.wait_for_workers(1, timeout=60)
                    break
                except OSError:
                    if time.monotonic() > deadline or scheduler.poll() is not None:
                        raise
                    time.sleep(0.5)
            yield address
        finally:
            if worker is not None:
                _stop(worker)
            _stop(scheduler)


@pytest.fixture
def job_dir(tmp_path):
    """The job's working folder with a small OME-TIFF ``in.ome.tiff``; returns (folder, TCZYX data)."""
    data = np.random.default_rng(3).integers(0, 4000, size=(2, 3, 20, 24)).astype("u2")  # C Z Y X
    tifffile.imwrite(tmp_path / "in.ome.tiff", data, ome=True, metadata={"axes": "CZYX"})
    return tmp_path, data[None]


def _convert(cwd: Path, *argv: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "ome_arrow_dask.cli", "convert", *argv]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("out", ["out.parquet", "out.ome.zarr"])
def test_relative_output_on_a_tcp_cluster(cluster, job_dir, out):
    folder, data = job_dir
    done = _convert(folder, "in.ome.tiff", out, "--chunks", "1,1,1,16,16", "--scheduler", cluster)
    assert done.returncode == 0, done.stderr
    np.testing.assert_array_equal(OMEArrow.scan(folder / out).to_numpy(), data)


def test_relative_input_on_a_tcp_cluster(cluster, job_dir):
    folder, data = job_dir
    assert _convert(folder, "in.ome.tiff", "copy.parquet").returncode == 0  # written locally
    done = _convert(folder, "copy.parquet", "back.ome.zarr", "--scheduler", cluster)
    assert done.returncode == 0, done.stderr
    np.testing.assert_array_equal(OMEArrow.scan(folder / "back.ome.zarr").to_numpy(), data)


def test_python_export_resolves_a_relative_output(cluster, job_dir, monkeypatch):
    from distributed import Client

    folder, data = job_dir
    monkeypatch.chdir(folder)
    with Client(cluster, timeout="5s"):
        img = OMEArrow.scan("in.ome.tiff")
        assert img.export("parquet", out="api.parquet", chunk_shape=(1, 1, 1, 16, 16)) == "api.parquet"
    np.testing.assert_array_equal(OMEArrow.scan(folder / "api.parquet").to_numpy(), data)
