"""Review fixes of the object-store writer: killed overwrites, credentials on command lines, PID namespaces.

- A remote overwrite killed after its job record (or after deleting only the old chunks)
  and then resumed writes the new image exactly: :meth:`RemoteOutput.clear` deletes every
  metadata document first, and ``_create_remote`` never writes through another array's
  metadata.
- ``--storage-option key=... secret=...`` never reaches a lock (object or file), a refusal
  message or a log.
- A lock owner in another PID namespace (a container sharing the kernel) is not judged by
  its pid.
"""

from __future__ import annotations

import json
import logging
import os
import sys

import numpy as np
import pytest

pytest.importorskip("moto.server")
pytest.importorskip("s3fs")

from remote_servers import S3Server

from ome_arrow_dask import OMEArrow
from ome_arrow_dask.errors import OutputInUseError
from ome_arrow_dask.jobs import JobLock, ObjectStoreLock, RemoteOutput, object_store
from ome_arrow_dask.jobs import lock as lock_module
from ome_arrow_dask.jobs.redact import redacted_argv, redacted_command
from ome_arrow_dask.storage import Location, location

SECRET = "TOPSECRET-Q9x7"
KEY_ID = "AKIAEXAMPLE-Z3"
A = np.full((64, 64), 7, "u1")
B = np.arange(64 * 64, dtype="u2").reshape(64, 64) + 1000


@pytest.fixture(scope="module")
def s3():
    """moto's S3 on 127.0.0.1 for this module, with the bucket ``rev``."""
    import boto3

    server = S3Server()
    client = boto3.client("s3", endpoint_url=server.endpoint, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")  # fmt: skip
    client.create_bucket(Bucket="rev")
    yield server
    server.stop()


def _url(request: pytest.FixtureRequest) -> str:
    return f"s3://rev/{request.node.name.replace('[', '-').replace(']', '')}.ome.zarr"


def _write_a(url: str, options: dict, version: str = "0.5") -> None:
    OMEArrow(A).export("ome-zarr", out=url, storage_options=options, chunks=(1, 1, 1, 32, 32), version=version)


def _resume_b(url: str, options: dict, version: str = "0.5") -> None:
    OMEArrow(B).export(
        "ome-zarr", out=url, storage_options=options, resume=True, chunks=(1, 1, 1, 16, 16), version=version
    )


def _assert_b(url: str, options: dict) -> None:
    img = OMEArrow.scan(url, storage_options=options)
    got = img.to_numpy().reshape(64, 64)
    assert got.dtype == B.dtype
    assert img.meta.chunks[-2:] == ((16,) * 4, (16,) * 4)
    np.testing.assert_array_equal(got, B)


# ---------------------------------------------------------------- killed overwrite, then resume
@pytest.mark.parametrize("versions", [("0.5", "0.5"), ("0.4", "0.5"), ("0.5", "0.4")], ids=["v3", "v2-v3", "v3-v2"])
def test_overwrite_killed_right_after_job_record_resumes_the_new_image(s3, request, monkeypatch, versions):
    """Killed after the new job record only: the old group (complete, other fingerprint) and arrays remain."""
    url, options = _url(request), s3.options
    _write_a(url, options, versions[0])

    def killed(self, record, status_keys=()):
        self.write_job_record(record)
        raise KeyboardInterrupt("killed")

    with monkeypatch.context() as patch:
        patch.setattr(RemoteOutput, "clear", killed)
        with pytest.raises(KeyboardInterrupt):
            OMEArrow(B).export(
                "ome-zarr", out=url, storage_options=options, overwrite=True, chunks=(1, 1, 1, 16, 16),
                version=versions[1],
            )  # fmt: skip
    _resume_b(url, options, versions[1])
    _assert_b(url, options)


def test_overwrite_killed_after_deleting_only_chunks_resumes_the_new_image(s3, request, monkeypatch):
    """The old level metadata (``0/zarr.json``: uint8, 32x32 chunks) survives; the resume must not write through it."""
    url, options = _url(request), s3.options
    _write_a(url, options)

    def killed(self, record, status_keys=()):
        self.write_job_record(record)
        self.loc.delete_many(list(status_keys))
        self.progress.delete_many([k for k in self.progress.find() if k != "job.json"])
        self.loc.delete_many([k for k in self.loc.find() if "/c/" in k])
        raise KeyboardInterrupt("killed")

    with monkeypatch.context() as patch:
        patch.setattr(RemoteOutput, "clear", killed)
        with pytest.raises(KeyboardInterrupt):
            OMEArrow(B).export("ome-zarr", out=url, storage_options=options, overwrite=True, chunks=(1, 1, 1, 16, 16))
    assert "0/zarr.json" in RemoteOutput(location(url, options)).loc.find()  # the stale metadata is there
    _resume_b(url, options)
    _assert_b(url, options)


def test_clear_deletes_every_metadata_document_in_its_first_batch(s3, request, monkeypatch):
    """Killed after clear's first DELETE batch: no metadata document is left, the old chunks still are."""
    url, options = _url(request), s3.options
    _write_a(url, options)
    original = Location.delete_many
    calls = []

    def delete_many(self, keys):
        original(self, keys)
        calls.append(list(keys))
        raise KeyboardInterrupt("killed after the first batch")

    with monkeypatch.context() as patch:
        patch.setattr(Location, "delete_many", delete_many)
        with pytest.raises(KeyboardInterrupt):
            OMEArrow(B).export("ome-zarr", out=url, storage_options=options, overwrite=True, chunks=(1, 1, 1, 16, 16))
    assert calls and "zarr.json" in calls[0] and "0/zarr.json" in calls[0]
    left = RemoteOutput(location(url, options)).loc.find()
    assert not [k for k in left if k.rpartition("/")[2] in object_store.METADATA_NAMES]
    assert [k for k in left if "/c/" in k]  # data objects go only after the markers
    _resume_b(url, options)
    _assert_b(url, options)


# ---------------------------------------------------------------- credentials
def test_redacted_argv_masks_secrets_and_url_credentials():
    argv = [
        "ome-arrow-dask", "convert", "https://user:pw@host/a.tif?X-Amz-Signature=abc#frag", "s3://b/o.zarr",
        "--storage-option", f"key={KEY_ID}", f"--storage-option=secret={SECRET}",
        "--storage-option", "endpoint_url=http://u:p@h:9000", "--storage-option", 'client_kwargs={"a": 1}',
        f"session_token={SECRET}", f"--token={SECRET}", "--levels", "2",
    ]  # fmt: skip
    shown = redacted_argv(argv)
    text = " ".join(shown)
    for secret in (SECRET, KEY_ID, "pw", "X-Amz-Signature", "frag", "u:p@", '"a"'):
        assert secret not in text
    assert shown[2] == "https://host/a.tif"
    assert shown[3] == "s3://b/o.zarr"
    assert shown[4:8] == ["--storage-option", "key=***", "--storage-option=secret=***", "--storage-option"]
    assert shown[8] == "endpoint_url=http://h:9000"
    assert shown[-4:] == ["session_token=***", "--token=***", "--levels", "2"]
    assert redacted_command(["-c", "x"]) is None


def test_credentials_never_reach_the_lock_object_refusal_or_log(s3, request, monkeypatch, caplog):
    url = _url(request)
    options = {**s3.options}
    monkeypatch.setattr(sys, "argv", [
        "ome-arrow-dask", "convert", "in.tif", url, "--storage-option", f"key={KEY_ID}",
        "--storage-option", f"secret={SECRET}",
    ])  # fmt: skip
    remote = RemoteOutput(location(url, options))
    caplog.set_level(logging.DEBUG, logger="ome_arrow_dask")
    with ObjectStoreLock(remote, heartbeat=0):
        raw = remote.lock.read_bytes().decode()
        assert SECRET not in raw and KEY_ID not in raw
        assert "secret=***" in json.loads(raw)["command"]
        with pytest.raises(OutputInUseError) as refused:
            ObjectStoreLock(remote, heartbeat=0).acquire()
    assert SECRET not in str(refused.value) and KEY_ID not in str(refused.value)
    assert "secret=***" in str(refused.value)
    assert SECRET not in caplog.text and KEY_ID not in caplog.text


def test_a_lock_recorded_with_secrets_is_masked_in_the_refusal():
    """A lock written by an older version (command unmasked) is masked when the refusal names it."""
    owner = {"pid": 1, "host": "h", "command": f"ome-arrow-dask convert a s3://b/o --storage-option secret={SECRET}"}
    text = lock_module._describe_owner(owner)
    assert SECRET not in text and "secret=***" in text


def test_local_lock_file_holds_no_credentials(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["ome-arrow-dask", "convert", "s3://b/in.zarr", str(tmp_path / "o.zarr"),
                                      "--storage-option", f"secret={SECRET}"])  # fmt: skip
    with JobLock(tmp_path / "o.zarr") as held:
        text = held.path.read_text()
        assert SECRET not in text and "secret=***" in text
        with pytest.raises(OutputInUseError) as refused:
            JobLock(tmp_path / "o.zarr").acquire()
    assert SECRET not in str(refused.value)


# ---------------------------------------------------------------- PID namespaces
def _owner(pid_ns: str | None, *, alive: bool) -> dict:
    """A lock owner on this host and boot: this very process (alive) or one whose start time differs (dead)."""
    pid = os.getpid()
    start = lock_module._process_start(pid)
    return {
        "pid": pid,
        "host": lock_module.socket.gethostname(),
        "boot_id": lock_module._boot_id() or "boot",
        "pid_ns": pid_ns,
        "process_start": start if alive else (start or 0) + 12345,
    }


@pytest.fixture
def this_machine(monkeypatch):
    """Pin the boot id and PID namespace (a test machine without ``/proc`` still runs the rule)."""
    monkeypatch.setattr(lock_module, "_boot_id", lambda: "boot")
    monkeypatch.setattr(lock_module, "_pid_namespace", lambda: "pid:[4026531836]")
    monkeypatch.setattr(lock_module, "_process_start", lambda pid: 100 if pid == os.getpid() else None)


def test_pid_liveness_decides_only_in_this_pid_namespace(this_machine):
    lock = ObjectStoreLock(RemoteOutput(location("s3://rev/ns.zarr", {"anon": True})), stale_after=60)
    here = "pid:[4026531836]"
    assert lock._stale(_owner(here, alive=False), age=1.0)  # our namespace, pid gone: stale at once
    assert not lock._stale(_owner(here, alive=True), age=1000.0)  # ours and running: never stale
    other = "pid:[4026532999]"  # another container on the same kernel: its pid means nothing here
    assert not lock._stale(_owner(other, alive=False), age=1.0)  # fresh heartbeat: alive
    assert lock._stale(_owner(other, alive=False), age=61.0)  # heartbeat too old: stale
    assert not lock._stale(_owner(None, alive=False), age=1.0)  # namespace unknown there: the heartbeat decides
    legacy = _owner(here, alive=False)
    del legacy["pid_ns"]  # a lock written before the namespace was recorded: host and boot decide, as before
    assert lock._stale(legacy, age=1.0)


def test_local_fallback_assumes_an_owner_in_another_pid_namespace_runs(this_machine):
    assert not lock_module._owner_alive(_owner("pid:[4026531836]", alive=False))
    assert lock_module._owner_alive(_owner("pid:[4026532999]", alive=False))
    assert lock_module._owner_alive(_owner(None, alive=False))


def test_locks_record_the_pid_namespace(tmp_path, this_machine):
    with JobLock(tmp_path / "o.zarr") as held:
        assert json.loads(held.path.read_text())["pid_ns"] == "pid:[4026531836]"
    body = json.loads(ObjectStoreLock(RemoteOutput(location("s3://rev/ns.zarr", {"anon": True})))._body())
    assert body["pid_ns"] == "pid:[4026531836]"
