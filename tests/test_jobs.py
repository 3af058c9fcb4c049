"""The jobs package: the create / overwrite / resume decision, fingerprints, commits; every writer shares them."""

from __future__ import annotations

import os
from pathlib import Path

import dask
import numpy as np
import pytest
import tifffile

from ome_arrow_dask import OMEArrow
from ome_arrow_dask.errors import (
    IncompleteOutputError,
    InputChangedError,
    OmeArrowDaskError,
    OutputInUseError,
)
from ome_arrow_dask.jobs import (
    LOCAL,
    STATUS_KEY,
    Committer,
    Existing,
    JobLock,
    WriteIdentity,
    WriteInput,
    atomic_write_text,
    commit,
    decide,
    exists_message,
    input_records,
    job_fingerprint,
    read_job_record,
    records_digest,
    tmp_path,
    write_job_record,
)
from ome_arrow_dask.writers import as_write_input
from ome_arrow_dask.writers import parquet as parquet_writer
from ome_arrow_dask.writers import tiff as tiff_writer
from ome_arrow_dask.writers import zarr as zarr_writer
from ome_arrow_dask.writers.zarr import read_status

ARR = np.arange(2 * 16 * 16, dtype="u2").reshape(1, 2, 1, 16, 16)
IN_PROGRESS = {"status": "in_progress", "fingerprint": "f" * 64}
COMPLETE = {"status": "complete", "fingerprint": "f" * 64}


def _decide(existing, *, overwrite=False, resume=False, fingerprint="f" * 64, **kwargs):
    return decide("out.zarr", overwrite=overwrite, resume=resume, fingerprint=fingerprint, existing=existing, **kwargs)


# ---------------------------------------------------------------------- the decision
@pytest.mark.parametrize("kind", ["absent", "empty"])
@pytest.mark.parametrize(("overwrite", "resume"), [(False, False), (True, False), (False, True)])
def test_nothing_there_is_created(kind, overwrite, resume):
    decision = _decide(Existing(kind), overwrite=overwrite, resume=resume)
    assert decision.mode == "create" and decision.fresh and decision.out == "out.zarr"


@pytest.mark.parametrize("status", [None, IN_PROGRESS, COMPLETE])
def test_overwrite_replaces_any_output(status):
    decision = _decide(Existing.output(status), overwrite=True)
    assert decision.mode == "overwrite" and decision.fresh


def test_an_output_without_options_is_refused_with_one_wording():
    with pytest.raises(OmeArrowDaskError) as info:
        _decide(Existing.output(COMPLETE))
    assert str(info.value) == exists_message("out.zarr")
    assert str(info.value) == "out.zarr already exists: pass overwrite=True (CLI --overwrite) to replace it"


def test_an_unfinished_output_without_options_names_resume():
    with pytest.raises(OmeArrowDaskError, match=r"holds an unfinished conversion: pass resume=True .* or overwrite"):
        _decide(Existing.output(IN_PROGRESS))
    with pytest.raises(OmeArrowDaskError, match="holds an unfinished plate conversion"):
        _decide(Existing.output(IN_PROGRESS), noun="plate conversion")


def test_resume_finishes_the_same_job_and_a_complete_one_is_done():
    resumed = _decide(Existing.output(IN_PROGRESS), resume=True)
    assert resumed.mode == "resume" and not resumed.fresh
    assert _decide(Existing.output(COMPLETE), resume=True).mode == "done"


@pytest.mark.parametrize("status", [IN_PROGRESS, COMPLETE])
def test_resume_of_another_job_is_refused(status):
    with pytest.raises(InputChangedError, match=r"another input or with other parameters .*overwrite=True"):
        _decide(Existing.output(status), resume=True, fingerprint="0" * 64)


def test_resume_with_changed_inputs_names_the_changed_files():
    record = {"fingerprint": "f" * 64, "verify_inputs": "stat", "inputs": {"/data/a.tif": "1", "/data/b.tif": "2"}}
    existing = Existing.output(IN_PROGRESS, record)
    with pytest.raises(InputChangedError, match=r"input changed .*: /data/b\.tif; resuming would mix"):
        _decide(existing, resume=True, fingerprint="0" * 64, inputs={"/data/a.tif": "1", "/data/b.tif": "3"})
    with pytest.raises(OmeArrowDaskError, match="verify_inputs='stat'"):  # another input check than the recorded one
        _decide(existing, resume=True, fingerprint="0" * 64, inputs={}, verify_inputs="content")


def test_resume_of_an_output_without_a_record_of_ours_is_refused():
    for status in (None, {"status": "complete"}):  # another tool's store; a status without fingerprint
        with pytest.raises(OmeArrowDaskError, match="already exists: pass overwrite=True"):
            _decide(Existing.output(status), resume=True)


def test_resume_of_a_damaged_job_record_is_refused_as_incomplete():
    existing = Existing("output", "in_progress", damaged="out.zarr.progress/job.json: damaged")
    with pytest.raises(IncompleteOutputError, match="damaged"):
        _decide(existing, resume=True)
    assert _decide(existing, overwrite=True).mode == "overwrite"


@pytest.mark.parametrize(("overwrite", "resume"), [(False, False), (True, False), (False, True)])
def test_a_foreign_path_is_refused_whatever_the_options(overwrite, resume):
    existing = Existing.foreign("already exists and is not a zarr store; refusing")
    with pytest.raises(OmeArrowDaskError, match=r"^out\.zarr already exists and is not a zarr store; refusing$"):
        _decide(existing, overwrite=overwrite, resume=resume)


def test_overwrite_and_resume_together_are_refused():
    with pytest.raises(OmeArrowDaskError, match="not both"):
        _decide(Existing("absent"), overwrite=True, resume=True)


# ---------------------------------------------------------------------- fingerprints
def test_job_fingerprint_is_canonical():
    assert job_fingerprint({"a": 1, "b": [1, 2]}) == job_fingerprint({"b": [1, 2], "a": 1})
    assert job_fingerprint({"a": 1}) != job_fingerprint({"a": 2})
    assert len(job_fingerprint({})) == 64


def test_input_records_catch_a_rewrite_with_its_mtime_restored(tmp_path):
    src = tmp_path / "a.bin"
    src.write_bytes(b"\x00" * 64)
    stat, content = input_records([str(src)]), input_records([str(src)], "content")
    st = os.stat(src)
    src.write_bytes(b"\x01" * 64)  # same size
    os.utime(src, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert input_records([str(src)]) != stat  # the inode change time moved
    assert input_records([str(src)], "content") != content
    src.write_bytes(b"\x00" * 64)
    assert input_records([str(src)], "content") == content  # identical bytes are accepted by the content check
    assert records_digest(stat, "stat") != records_digest(stat, "content")


def test_remote_inputs_are_recorded_by_their_token():
    record = input_records(["s3://bucket/a.zarr"])["s3://bucket/a.zarr"]
    assert "ETag" in record


def test_the_identity_token_is_the_plan_token(tmp_path):
    src = tmp_path / "a.tif"
    tifffile.imwrite(src, ARR[0, 0, 0])
    a, b = as_write_input(OMEArrow.scan(src)), as_write_input(OMEArrow.scan(src))
    assert a.identity.token == b.identity.token and a.identity.input_paths == (str(src),)
    assert as_write_input(OMEArrow.scan(src).slice_lazy(0, 8, 0, 8)).identity.token != a.identity.token


# ---------------------------------------------------------------------- commits and records
def test_commit_renames_the_temp_file_whole(tmp_path):
    final = tmp_path / "f.txt"
    tmp = tmp_path_for(final)
    tmp.write_text("new")
    commit(tmp, final)
    assert final.read_text() == "new" and not tmp.exists()
    assert isinstance(LOCAL, Committer)


def tmp_path_for(final: Path) -> Path:
    tmp = tmp_path(final)
    assert tmp.parent == final.parent and tmp.name.startswith(final.name) and tmp.name.endswith(".tmp")
    return tmp


def test_a_failed_atomic_write_keeps_the_old_file_and_no_temp(tmp_path, monkeypatch):
    target = tmp_path / "job.json"
    atomic_write_text(target, "old")

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_text(target, "new")
    monkeypatch.undo()
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["job.json"]


def test_job_records_round_trip_and_a_damaged_one_names_its_file(tmp_path):
    out = tmp_path / "o.ome.zarr"
    assert read_job_record(out) is None
    write_job_record(out, {"fingerprint": "f", "inputs": {}})
    assert read_job_record(out) == {"fingerprint": "f", "inputs": {}}
    (tmp_path / "o.ome.zarr.progress" / "job.json").write_text("[1, 2]")
    with pytest.raises(IncompleteOutputError, match=r"o\.ome\.zarr\.progress/job\.json: .*damaged"):
        read_job_record(out)


# ---------------------------------------------------------------------- every writer decides the same way
WRITERS = {
    "zarr": (zarr_writer.write, "img.ome.zarr", {}),
    "parquet": (parquet_writer.write, "img.ome.parquet", {}),
    "parquet-struct": (parquet_writer.write, "img.parquet", {"layout": "struct"}),
    "tiff": (tiff_writer.write, "img.ome.tiff", {}),
}


@pytest.mark.parametrize("name", sorted(WRITERS))
def test_every_writer_refuses_an_existing_output_with_the_same_words(tmp_path, name):
    write, out_name, extra = WRITERS[name]
    out = str(tmp_path / out_name)
    write(OMEArrow(ARR), out, **extra)
    with pytest.raises(OmeArrowDaskError) as info:
        write(OMEArrow(ARR + 1), out, **extra)
    assert str(info.value) == exists_message(out)
    write(OMEArrow(ARR + 1), out, overwrite=True, **extra)
    np.testing.assert_array_equal(OMEArrow.scan(out).to_numpy(), ARR + 1)


@pytest.mark.parametrize("name", ["zarr", "parquet"])
def test_folder_writers_refuse_a_foreign_folder_even_with_overwrite(tmp_path, name):
    write, _, extra = WRITERS[name]
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep")
    for overwrite in (False, True):
        with pytest.raises(OmeArrowDaskError, match=r"already exists and is not .*also with overwrite=True"):
            write(OMEArrow(ARR), str(folder), overwrite=overwrite, **extra)
    assert (folder / "notes.txt").read_text() == "keep" and not Path(f"{folder}.progress").exists()


@pytest.mark.parametrize("name", ["zarr", "parquet"])
def test_folder_writers_write_into_an_empty_folder(tmp_path, name):
    write, _, extra = WRITERS[name]
    folder = tmp_path / "empty"
    folder.mkdir()
    write(OMEArrow(ARR), str(folder), **extra)
    np.testing.assert_array_equal(OMEArrow.scan(str(folder)).to_numpy(), ARR)


@pytest.mark.parametrize("name", ["zarr", "parquet"])
def test_resumable_writers_refuse_both_options_and_finish_nothing_twice(tmp_path, name):
    write, out_name, extra = WRITERS[name]
    out = tmp_path / out_name
    with pytest.raises(OmeArrowDaskError, match="not both"):
        write(OMEArrow(ARR), str(out), overwrite=True, resume=True, **extra)
    assert not out.exists()
    write(OMEArrow(ARR), str(out), **extra)
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    write(OMEArrow(ARR), str(out), resume=True, **extra)  # complete, same job: done, nothing rewritten
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == before
    with pytest.raises(InputChangedError, match="use overwrite=True to start again"):
        write(OMEArrow(ARR + 1), str(out), resume=True, **extra)


def test_zarr_and_parquet_record_the_same_status_key(tmp_path):
    import json

    zarr_out, parquet_out = tmp_path / "a.ome.zarr", tmp_path / "a.ome.parquet"
    zarr_writer.write(OMEArrow(ARR), zarr_out)
    parquet_writer.write(OMEArrow(ARR), parquet_out)
    manifest = json.loads((parquet_out / parquet_writer.MANIFEST).read_text())
    assert read_status(zarr_out)["status"] == manifest[STATUS_KEY]["status"] == "complete"
    assert len(manifest[STATUS_KEY]["fingerprint"]) == len(read_status(zarr_out)["fingerprint"]) == 64


class _Killed(BaseException):
    pass


def _interrupted(monkeypatch, module, name, run):
    real = getattr(module, name)
    calls = []

    def store_then_die(*args, **kwargs):
        if len(calls) == 2:
            raise _Killed
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, store_then_die)
    with dask.config.set(scheduler="synchronous"), pytest.raises(_Killed):
        run()
    monkeypatch.setattr(module, name, real)


@pytest.mark.parametrize(("name", "store"), [("zarr", "_store_unit"), ("parquet", "_store_part")])
def test_both_writers_refuse_to_resume_after_an_input_changed_in_place(tmp_path, monkeypatch, name, store):
    write, out_name, _ = WRITERS[name]
    src = tmp_path / "in.tif"
    tifffile.imwrite(src, ARR[0, 0])
    out = str(tmp_path / out_name)
    module = zarr_writer if name == "zarr" else parquet_writer
    chunks = {"chunks": (1, 1, 1, 4, 4)} if name == "zarr" else {"chunk_shape": (1, 1, 1, 4, 4)}
    _interrupted(monkeypatch, module, store, lambda: write(OMEArrow.scan(src), out, **chunks))
    st = os.stat(src)
    tifffile.imwrite(src, ARR[0, 0] + 1)
    os.utime(src, ns=(st.st_atime_ns, st.st_mtime_ns))
    with pytest.raises(InputChangedError, match=rf"input changed .*{src.name}"):
        write(OMEArrow.scan(src), out, resume=True, **chunks)


@pytest.mark.parametrize("name", ["zarr", "parquet"])
def test_a_live_job_keeps_the_output(tmp_path, name):
    write, out_name, extra = WRITERS[name]
    out = str(tmp_path / out_name)
    with JobLock(out), pytest.raises(OutputInUseError, match="being written by"):
        write(OMEArrow(ARR), out, overwrite=True, **extra)
    assert not os.path.exists(out)


# ---------------------------------------------------------------------- what writers take
@pytest.mark.parametrize("name", sorted(WRITERS))
def test_writers_take_a_write_input_without_any_plan(tmp_path, name):
    write, out_name, extra = WRITERS[name]
    base = as_write_input(OMEArrow(ARR))
    checked = []
    item = WriteInput(base.array, base.meta, WriteIdentity("my-token", (), lambda: checked.append(1)))
    out = str(tmp_path / out_name)
    write(item, out, **extra)
    assert checked == [1]  # the validate-before-write hook ran
    np.testing.assert_array_equal(OMEArrow.scan(out).to_numpy(), ARR)


@pytest.mark.parametrize("name", sorted(WRITERS))
def test_a_failing_validate_hook_writes_nothing(tmp_path, name):
    write, out_name, extra = WRITERS[name]
    base = as_write_input(OMEArrow(ARR))

    def refuse():
        raise OmeArrowDaskError("header 3 differs")

    out = tmp_path / out_name
    with pytest.raises(OmeArrowDaskError, match="header 3 differs"):
        write(WriteInput(base.array, base.meta, WriteIdentity("t", (), refuse)), str(out), **extra)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_export_hands_writers_a_write_input(tmp_path, monkeypatch):
    seen = []
    real = zarr_writer.write
    monkeypatch.setattr(zarr_writer, "write", lambda image, out, **kw: seen.append(image) or real(image, out, **kw))
    OMEArrow(ARR).export("ome-zarr", out=str(tmp_path / "a.ome.zarr"))
    assert len(seen) == 1 and isinstance(seen[0], WriteInput)
    assert seen[0].shape == ARR.shape and seen[0].dtype == ARR.dtype


def test_as_write_input_refuses_raw_arrays():
    with pytest.raises(OmeArrowDaskError, match=r"OMEArrow plan or a WriteInput, got a ndarray.*OMEArrow\(array\)"):
        as_write_input(ARR)
