"""Writing OME-Zarr and OME-Arrow Parquet to an S3 server (moto on 127.0.0.1), crash-safe and resumable.

The protocol under test is :mod:`ome_arrow_dask.jobs.object_store`: job record first,
write-once data objects, done markers as objects, metadata and ``complete`` last, one
writer per output (a conditional lock object with a heartbeat), and overwrite only of
an output of ours.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import dask
import numpy as np
import pytest
import tifffile
import zarr

pytest.importorskip("moto.server")
pytest.importorskip("s3fs")

from killing import run_until_killed
from remote_servers import S3Server

from ome_arrow_dask import OMEArrow
from ome_arrow_dask.cli import main
from ome_arrow_dask.errors import (
    IncompleteOutputError,
    OmeArrowDaskError,
    OutputInUseError,
    OutputIsInputError,
)
from ome_arrow_dask.jobs import ObjectStoreLock, RemoteOutput
from ome_arrow_dask.storage import location
from ome_arrow_dask.writers import parquet as parquet_writer
from ome_arrow_dask.writers import zarr as zarr_writer

PATTERN = "img_t{t}_c{c}.tif"
CLI_OPTIONS = ["--pattern", PATTERN, "--chunks", "1,1,2,16,16", "--levels", "2", "--no-progress"]
ZARR_OPTIONS = {"chunks": (1, 1, 2, 16, 16), "levels": 2}


@pytest.fixture(scope="module")
def s3():
    """moto's S3 on 127.0.0.1 for this module, with the bucket ``out``."""
    import boto3

    server = S3Server()
    client = boto3.client("s3", endpoint_url=server.endpoint, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")  # fmt: skip
    client.create_bucket(Bucket="out")
    yield server
    server.stop()


@pytest.fixture
def url(request):
    """A fresh output prefix in the bucket, named after the test."""
    return f"s3://out/{request.node.name.replace('[', '-').rstrip(']')}"


def _objects(server: S3Server, prefix: str) -> dict[str, bytes]:
    """Every object below ``prefix`` (an ``s3://`` URL): relative key -> bytes."""
    fs = server.filesystem()
    root = prefix.removeprefix("s3://").rstrip("/")
    return {key[len(root) + 1 :]: fs.cat_file(key) for key in fs.find(root + "/")}


def _local_objects(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _assert_same_objects(got: dict[str, bytes], want: dict[str, bytes]) -> None:
    """Same keys; metadata equal as JSON (key order aside), every other object equal byte for byte."""
    assert sorted(got) == sorted(want)
    for key, data in want.items():
        if key.endswith((".json", ".zattrs", ".zgroup", ".zarray")):
            assert json.loads(got[key]) == json.loads(data), key
        else:
            assert got[key] == data, key


def _image(shape=(1, 2, 2, 40, 36), seed=0) -> np.ndarray:
    """Level 0 of (1, 1, 2, 16, 16) chunks: 1 x 2 x 1 x 3 x 3 = 18 units; level 1: 8 units."""
    return np.random.default_rng(seed).integers(0, 4000, size=shape, dtype=np.uint16)


# ---------------------------------------------------------------------- zarr
@pytest.mark.parametrize(
    "options",
    [
        {"chunks": (1, 1, 2, 16, 16), "levels": 2},
        {"chunks": (1, 1, 1, 16, 16), "shards": (1, 1, 2, 32, 32), "levels": 2},
        {"chunks": (1, 1, 2, 16, 16), "levels": 2, "version": "0.4"},
    ],
    ids=["v05", "v05-shards", "v04"],
)
def test_zarr_export_to_s3_equals_local_export(s3, url, tmp_path, options):
    data = _image()
    out = url + ".ome.zarr"
    local = tmp_path / "local.ome.zarr"
    OMEArrow(data).export("ome-zarr", out=out, storage_options=s3.options, **options)
    OMEArrow(data).export("ome-zarr", out=str(local), codec_pipeline="default", **options)  # zarrs packs shards
    # otherwise (same pixels, other bytes); remote outputs are always encoded by zarr-python's pipeline
    _assert_same_objects(_objects(s3, out), _local_objects(local))  # pixels, metadata, status "complete"
    assert not _objects(s3, out + ".progress") and not s3.filesystem().exists(out.removeprefix("s3://") + ".lock")
    assert zarr_writer.read_status(out, s3.options)["status"] == "complete"

    back = OMEArrow.scan(out, storage_options=s3.options)
    np.testing.assert_array_equal(back.to_numpy(), data)
    group = zarr.open_group(location(out, s3.options).zarr_store(), mode="r")  # zarr-python directly
    reference = zarr.open_group(str(local), mode="r")
    assert dict(group.attrs) == dict(reference.attrs)
    for level in ("0", "1"):
        np.testing.assert_array_equal(group[level][:], reference[level][:])


def test_zarr_on_s3_reads_in_ome_zarr_py(s3, url, tmp_path):
    from ome_zarr.io import ZarrLocation
    from ome_zarr.reader import Reader

    data = _image()
    out = url + ".ome.zarr"
    OMEArrow(data).export("ome-zarr", out=out, storage_options=s3.options, **ZARR_OPTIONS)
    OMEArrow(data).export("ome-zarr", out=str(tmp_path / "local.ome.zarr"), **ZARR_OPTIONS)
    remote = next(iter(Reader(ZarrLocation(location(out, s3.options).zarr_store()))()))
    local = next(iter(Reader(ZarrLocation(str(tmp_path / "local.ome.zarr")))()))
    assert remote.metadata["axes"] == local.metadata["axes"]
    assert remote.metadata["coordinateTransformations"] == local.metadata["coordinateTransformations"]
    assert len(remote.data) == 2
    for got, want in zip(remote.data, local.data, strict=True):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


class _Killed(BaseException):
    """Stands in for a kill: not an Exception, so nothing on the way catches it."""


def test_zarr_interrupted_is_refused_then_resumed(s3, url, monkeypatch):
    data = _image()
    out = url + ".ome.zarr"
    real = zarr_writer._store_unit
    stored = []

    def store_then_die(*args, **kwargs):
        if len(stored) == 7:
            raise _Killed
        stored.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(zarr_writer, "_store_unit", store_then_die)
    with pytest.raises(_Killed), dask.config.set(scheduler="synchronous"):  # exactly 7 units stored
        OMEArrow(data).export("ome-zarr", out=out, storage_options=s3.options, **ZARR_OPTIONS)
    monkeypatch.setattr(zarr_writer, "_store_unit", real)

    with pytest.raises(IncompleteOutputError, match="resume") as refused:
        OMEArrow.scan(out, storage_options=s3.options)
    assert out in str(refused.value)
    attrs = json.loads(_objects(s3, out)["zarr.json"])["attributes"]
    assert "multiscales" not in json.dumps(attrs) and attrs["ome_arrow_dask"]["status"] == "in_progress"
    with pytest.raises(OmeArrowDaskError, match="resume=True"):  # neither option: refused, named
        OMEArrow(data).export("ome-zarr", out=out, storage_options=s3.options, **ZARR_OPTIONS)

    s3.log.clear()
    OMEArrow(data).export("ome-zarr", out=out, storage_options=s3.options, resume=True, **ZARR_OPTIONS)
    chunk_puts = [p for m, p, _, _ in s3.log.snapshot() if m == "PUT" and "/c/" in p]
    assert len(chunk_puts) == 18 + 8 - 7  # only the units without a marker were written again
    np.testing.assert_array_equal(OMEArrow.scan(out, storage_options=s3.options).to_numpy(), data)


def test_zarr_resume_of_another_job_is_refused(s3, url):
    out = url + ".ome.zarr"
    OMEArrow(_image()).export("ome-zarr", out=out, storage_options=s3.options, **ZARR_OPTIONS)
    with pytest.raises(OmeArrowDaskError, match="fingerprint"):
        OMEArrow(_image(seed=1)).export("ome-zarr", out=out, storage_options=s3.options, resume=True, **ZARR_OPTIONS)


def test_zarr_crash_while_creating_then_resume(s3, url, monkeypatch):
    data = _image()
    out = url + ".ome.zarr"
    real_create = zarr.create_array
    calls = []

    def create_then_die(*args, **kwargs):
        calls.append(kwargs.get("name"))
        if len(calls) == 2:
            raise _Killed  # between the two level arrays
        return real_create(*args, **kwargs)

    monkeypatch.setattr(zarr, "create_array", create_then_die)
    with pytest.raises(_Killed):
        OMEArrow(data).export("ome-zarr", out=out, storage_options=s3.options, **ZARR_OPTIONS)
    monkeypatch.setattr(zarr, "create_array", real_create)
    assert "1/zarr.json" not in _objects(s3, out)
    with pytest.raises(IncompleteOutputError):
        OMEArrow.scan(out, storage_options=s3.options)
    OMEArrow(data).export("ome-zarr", out=out, storage_options=s3.options, resume=True, **ZARR_OPTIONS)
    np.testing.assert_array_equal(OMEArrow.scan(out, storage_options=s3.options).to_numpy(), data)


def test_zarr_verify_on_resume_rewrites_a_damaged_unit(s3, url, monkeypatch):
    data = _image()
    out = url + ".ome.zarr"
    real = zarr_writer._finalize
    monkeypatch.setattr(zarr_writer, "_finalize", lambda *a, **k: (_ for _ in ()).throw(_Killed()))
    with pytest.raises(_Killed):
        OMEArrow(data).export("ome-zarr", out=out, storage_options=s3.options, **ZARR_OPTIONS)
    monkeypatch.setattr(zarr_writer, "_finalize", real)
    fs = s3.filesystem()
    key = out.removeprefix("s3://") + "/0/c/0/1/0/1/1"
    fs.pipe_file(key, b"\0" * len(fs.cat_file(key)))  # same length, wrong bytes
    s3.log.clear()
    OMEArrow(data).export("ome-zarr", out=out, storage_options=s3.options, resume=True, verify=True, **ZARR_OPTIONS)
    assert [p for m, p, _, _ in s3.log.snapshot() if m == "PUT" and "/c/" in p] == ["/" + key]
    np.testing.assert_array_equal(OMEArrow.scan(out, storage_options=s3.options).to_numpy(), data)


# ---------------------------------------------------------------------- parquet
def test_parquet_export_to_s3_equals_local_export(s3, url, tmp_path):
    data = _image()
    out = url + ".ome.parquet"
    local = tmp_path / "local.ome.parquet"
    OMEArrow(data).export("parquet", out=out, storage_options=s3.options, chunk_shape=(1, 1, 2, 16, 16))
    OMEArrow(data).export("parquet", out=str(local), chunk_shape=(1, 1, 2, 16, 16))
    _assert_same_objects(_objects(s3, out), _local_objects(local))
    assert not _objects(s3, out + ".progress")
    np.testing.assert_array_equal(OMEArrow.scan(out, storage_options=s3.options).to_numpy(), data)

    single = url + "-struct.parquet"
    OMEArrow(data).export("parquet", out=single, storage_options=s3.options, layout="struct")
    np.testing.assert_array_equal(OMEArrow.scan(single, storage_options=s3.options).to_numpy(), data)


def test_parquet_interrupted_is_refused_then_resumed(s3, url, monkeypatch):
    data = _image()
    out = url + ".ome.parquet"
    options = {"storage_options": s3.options, "chunk_shape": (1, 1, 2, 16, 16)}
    real = parquet_writer._compact_parts_remote
    monkeypatch.setattr(parquet_writer, "_compact_parts_remote", lambda *a, **k: (_ for _ in ()).throw(_Killed()))
    with pytest.raises(_Killed):
        OMEArrow(data).export("parquet", out=out, **options)
    monkeypatch.setattr(parquet_writer, "_compact_parts_remote", real)
    assert not _objects(s3, out)  # nothing of the dataset exists before its parts are compacted
    with pytest.raises(IncompleteOutputError, match="resume") as refused:
        OMEArrow.scan(out, storage_options=s3.options)
    assert out in str(refused.value)

    s3.log.clear()
    OMEArrow(data).export("parquet", out=out, resume=True, **options)
    assert not [p for m, p, _, _ in s3.log.snapshot() if m == "PUT" and "/parts-" in p]  # every part was kept
    np.testing.assert_array_equal(OMEArrow.scan(out, storage_options=s3.options).to_numpy(), data)


def test_parquet_failed_compaction_leaves_no_chunks_object(s3, url, monkeypatch):
    data = _image()
    out = url + ".ome.parquet"
    calls = []
    real = parquet_writer._index_row

    def die_halfway(*args, **kwargs):
        calls.append(1)
        if len(calls) == 10:
            raise RuntimeError("disk on fire")
        return real(*args, **kwargs)

    monkeypatch.setattr(parquet_writer, "_index_row", die_halfway)
    with pytest.raises(RuntimeError, match="disk on fire"):
        OMEArrow(data).export("parquet", out=out, storage_options=s3.options, chunk_shape=(1, 1, 2, 16, 16))
    assert "chunks.parquet" not in _objects(s3, out)  # the upload was aborted, never completed


# ---------------------------------------------------------------------- one writer, ours only
def test_live_lock_refuses_a_second_writer(s3, url):
    out = url + ".ome.zarr"
    remote = RemoteOutput(location(out, s3.options))
    with ObjectStoreLock(remote, heartbeat=0):
        with pytest.raises(OutputInUseError, match=f"pid {os.getpid()}"):
            OMEArrow(_image()).export("ome-zarr", out=out, storage_options=s3.options, **ZARR_OPTIONS)
    assert not _objects(s3, out)  # refused before anything was written
    OMEArrow(_image()).export("ome-zarr", out=out, storage_options=s3.options, **ZARR_OPTIONS)  # released


def _put_lock(server: S3Server, out: str, owner: dict) -> None:
    server.filesystem().pipe_file(out.removeprefix("s3://") + ".lock", json.dumps(owner).encode())


def test_lock_of_a_dead_process_on_this_machine_is_taken_over(s3, url):
    from ome_arrow_dask.jobs.lock import _boot_id

    out = url + ".ome.zarr"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    _put_lock(s3, out, {"pid": dead.pid, "host": socket.gethostname(), "boot_id": _boot_id(), "job_id": "x"})
    OMEArrow(_image()).export("ome-zarr", out=out, storage_options=s3.options, **ZARR_OPTIONS)
    assert not s3.filesystem().exists(out.removeprefix("s3://") + ".lock")


def test_lock_of_another_machine_is_stale_only_after_its_heartbeat_stops(s3, url):
    out = url + ".ome.zarr"
    owner = {"pid": 1, "host": "elsewhere.example", "boot_id": "b", "started": "earlier", "job_id": "x"}
    _put_lock(s3, out, owner)
    remote = RemoteOutput(location(out, s3.options))
    with pytest.raises(OutputInUseError, match=r"elsewhere\.example.*stale after 2 s"):
        ObjectStoreLock(remote, stale_after=2, heartbeat=0).acquire()
    time.sleep(3.2)  # the store's clock counts whole seconds
    lock = ObjectStoreLock(remote, stale_after=2, heartbeat=0).acquire()
    assert lock.previous == owner
    lock.release()
    assert not s3.filesystem().exists(out.removeprefix("s3://") + ".lock")


def test_heartbeat_refreshes_the_lock_and_notices_a_takeover(s3, url):
    out = url + ".ome.zarr"
    key = out.removeprefix("s3://") + ".lock"
    lock = ObjectStoreLock(RemoteOutput(location(out, s3.options)), heartbeat=0.1).acquire()
    try:
        deadline = time.monotonic() + 10
        while json.loads(s3.filesystem().cat_file(key))["beat"] < 2:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        lock.check()
        _put_lock(s3, out, {"pid": 1, "host": "elsewhere.example", "job_id": "other"})  # another writer took over
        while lock.lost is None:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        with pytest.raises(OutputInUseError, match="took over"):
            lock.check()
    finally:
        lock.release()
    assert json.loads(s3.filesystem().cat_file(key))["job_id"] == "other"  # the other writer's lock stays


@pytest.mark.parametrize("how", ["ome-zarr", "parquet"])
def test_foreign_prefix_is_refused_even_with_overwrite(s3, url, how):
    out = url + (".ome.zarr" if how == "ome-zarr" else ".ome.parquet")
    fs = s3.filesystem()
    fs.pipe_file(out.removeprefix("s3://") + "/notes.txt", b"someone's data")
    with pytest.raises(OmeArrowDaskError, match="no ome-arrow-dask conversion recorded"):
        OMEArrow(_image()).export(how, out=out, storage_options=s3.options, overwrite=True)
    assert _objects(s3, out) == {"notes.txt": b"someone's data"}


def test_zarr_written_by_another_tool_is_foreign(s3, url):
    out = url + ".ome.zarr"
    zarr.create_array(location(out, s3.options).zarr_store(read_only=False), shape=(4,), dtype="u1")
    with pytest.raises(OmeArrowDaskError, match="also with overwrite=True"):
        OMEArrow(_image()).export("ome-zarr", out=out, storage_options=s3.options, overwrite=True, **ZARR_OPTIONS)


@pytest.mark.parametrize("how", ["ome-zarr", "parquet"])
def test_overwrite_of_our_output_replaces_its_prefix(s3, url, how):
    out = url + (".ome.zarr" if how == "ome-zarr" else ".ome.parquet")
    OMEArrow(_image()).export(how, out=out, storage_options=s3.options)
    with pytest.raises(OmeArrowDaskError, match="already exists: pass overwrite=True"):
        OMEArrow(_image(seed=2)).export(how, out=out, storage_options=s3.options)
    s3.filesystem().pipe_file(out.removeprefix("s3://") + "/0/stray", b"x")
    OMEArrow(_image(seed=2)).export(how, out=out, storage_options=s3.options, overwrite=True)
    assert "0/stray" not in _objects(s3, out)
    np.testing.assert_array_equal(OMEArrow.scan(out, storage_options=s3.options).to_numpy(), _image(seed=2))


def test_output_that_is_or_holds_the_input_is_refused(s3, url):
    source = url + "/in.ome.zarr"
    OMEArrow(_image()).export("ome-zarr", out=source, storage_options=s3.options, **ZARR_OPTIONS)
    before = _objects(s3, source)
    image = OMEArrow.scan(source, storage_options=s3.options)
    for out in (source, source + "/", source.replace("s3://", "s3a://"), source + "/inner.ome.zarr", url):
        with pytest.raises(OutputIsInputError, match="Choose another output URL"):
            image.export("ome-zarr", out=out, storage_options=s3.options, overwrite=True, **ZARR_OPTIONS)
    assert _objects(s3, source) == before


def test_remote_tiff_and_labels_are_refused_before_writing(s3, url):
    with pytest.raises(OmeArrowDaskError, match="writes local paths only"):
        OMEArrow(_image()).export("ome-tiff", out=url + ".ome.tiff", storage_options=s3.options)
    with pytest.raises(OmeArrowDaskError, match="labels="):
        OMEArrow(_image()).export("ome-zarr", out=url + ".ome.zarr", labels={"x": np.zeros((1, 1, 2, 40, 36), "u1")})


# ---------------------------------------------------------------------- real processes
@pytest.fixture
def stack(tmp_path):
    """2 T x 2 C files of ZYX (2, 48, 40) uint16: 36 + 16 write units over 2 levels."""
    rng = np.random.default_rng(11)
    folder = tmp_path / "raw"
    folder.mkdir()
    for t in range(2):
        for c in range(2):
            data = rng.integers(0, 4000, size=(2, 48, 40), dtype=np.uint16)
            tifffile.imwrite(folder / f"img_t{t}_c{c}.tif", data, metadata={"axes": "ZYX"})
    return folder


def _remote_flags(server: S3Server) -> list[str]:
    return ["--endpoint-url", server.endpoint, "--storage-option", "key=testing", "--storage-option",
            "secret=testing"]  # fmt: skip


def _marker_counter(server: S3Server, out: str):
    """Done-marker PUTs to ``out`` seen so far (scans only the requests logged since the last call)."""
    seen = {"at": 0, "n": 0}
    prefix = "/" + out.removeprefix("s3://") + ".progress/done-"

    def count() -> int:
        with server.log.lock:
            new = server.log.entries[seen["at"] :]
            seen["at"] += len(new)
        seen["n"] += sum(1 for m, p, _, _ in new if m == "PUT" and p.startswith(prefix))
        return seen["n"]

    return count


@pytest.mark.parametrize("kills", [1, pytest.param(3, marks=pytest.mark.slow)])
def test_cli_conversion_killed_at_random_points_resumes_to_identical_output(s3, url, stack, kills):
    out, reference = url + ".ome.zarr", url + "-reference.ome.zarr"
    assert main(["convert", str(stack), reference, *CLI_OPTIONS, *_remote_flags(s3)]) == 0
    cmd = [sys.executable, "-m", "ome_arrow_dask.cli", "convert", str(stack), out, *CLI_OPTIONS, *_remote_flags(s3)]
    count = _marker_counter(s3, out)
    points = sorted(np.random.default_rng(2024 + kills).choice(np.arange(2, 50), size=kills, replace=False))
    for k, target in enumerate(points):
        ended = run_until_killed(cmd + (["--resume"] if k else []), count, int(target))
        assert ended == "killed"
        with pytest.raises(IncompleteOutputError, match="--resume") as refused:
            OMEArrow.scan(out, storage_options=s3.options)
        assert out in str(refused.value)
        assert s3.filesystem().exists(out.removeprefix("s3://") + ".lock")  # the dead writer's lock stays...
    assert main(["convert", str(stack), out, *CLI_OPTIONS, *_remote_flags(s3), "--resume"]) == 0  # ...and is taken over
    _assert_same_objects(_objects(s3, out), _objects(s3, reference))
    assert not _objects(s3, out + ".progress")
    assert not s3.filesystem().exists(out.removeprefix("s3://") + ".lock")


def test_cli_parquet_conversion_killed_then_resumed(s3, url, stack):
    out, reference = url + ".ome.parquet", url + "-reference.ome.parquet"
    options = ["--pattern", PATTERN, "--chunks", "1,1,2,16,16", "--no-progress", *_remote_flags(s3)]
    assert main(["convert", str(stack), reference, *options]) == 0
    prefix = "/" + out.removeprefix("s3://") + ".progress/parts-"
    seen = {"at": 0, "n": 0}

    def parts() -> int:
        with s3.log.lock:
            new = s3.log.entries[seen["at"] :]
            seen["at"] += len(new)
        seen["n"] += sum(1 for m, p, _, _ in new if m == "PUT" and p.startswith(prefix))
        return seen["n"]

    cmd = [sys.executable, "-m", "ome_arrow_dask.cli", "convert", str(stack), out, *options]
    assert run_until_killed(cmd, parts, 17) == "killed"
    with pytest.raises(IncompleteOutputError, match="resume"):
        OMEArrow.scan(out, storage_options=s3.options)
    assert main(["convert", str(stack), out, *options, "--resume"]) == 0
    _assert_same_objects(_objects(s3, out), _objects(s3, reference))


@pytest.mark.slow
def test_local_cluster_with_processes_writes_to_s3(s3, url):
    distributed = pytest.importorskip("distributed")
    data = _image()
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster:
        with distributed.Client(cluster):
            OMEArrow(data).export("ome-zarr", out=url + ".ome.zarr", storage_options=s3.options, **ZARR_OPTIONS)
            OMEArrow(data).export("parquet", out=url + ".ome.parquet", storage_options=s3.options,
                                  chunk_shape=(1, 1, 2, 16, 16))  # fmt: skip
    for out in (url + ".ome.zarr", url + ".ome.parquet"):
        np.testing.assert_array_equal(OMEArrow.scan(out, storage_options=s3.options).to_numpy(), data)
