"""Regression tests for defects found in review of the job-safety and writer changes."""

from __future__ import annotations

import os

import numpy as np
import pytest
import tifffile

from ome_arrow_dask import OMEArrow, open_plate, write_plate
from ome_arrow_dask.errors import (
    IncompleteOutputError,
    InconsistentInputError,
    InputChangedError,
    OmeArrowDaskError,
)


def _bad_stack(folder) -> OMEArrow:
    """A pattern stack whose second file has other axes (found only by validate_inputs / reads)."""
    folder.mkdir()
    for name, axes in (("img_t0.tif", "CYX"), ("img_t1.tif", "ZYX")):
        tifffile.imwrite(folder / name, np.ones((4, 8, 8), "u2"), metadata={"axes": axes}, photometric="minisblack")
    return OMEArrow.scan(folder, pattern="img_t{t}.tif")


def test_plate_overwrite_validates_every_field_before_deleting_the_old_plate(tmp_path):
    """overwrite=True must not delete a complete plate when a field's headers are inconsistent."""
    out = str(tmp_path / "p.ome.zarr")
    write_plate({"A/1": np.full((4, 4), 3, "u1")}, out)
    bad = _bad_stack(tmp_path / "d")
    with pytest.raises(InconsistentInputError, match=r"img_t1\.tif"):
        write_plate({"A/1": np.zeros((4, 4), "u1"), "A/2": bad}, out, overwrite=True)
    plate = open_plate(out)  # the old plate is untouched and still complete
    assert plate.wells == ("A/1",)
    assert plate["A/1"][0].to_numpy().max() == 3


def test_plate_resume_refuses_an_input_changed_in_place(tmp_path):
    """A field input rewritten with its mtime restored is caught on resume, as the single-image writer does."""
    src = tmp_path / "a.tif"
    tifffile.imwrite(src, np.zeros((8, 8), "u2"))
    out = str(tmp_path / "p.ome.zarr")
    write_plate({"A/1": OMEArrow.scan(src)}, out)
    st = os.stat(src)
    tifffile.imwrite(src, np.ones((8, 8), "u2"))
    os.utime(src, ns=(st.st_atime_ns, st.st_mtime_ns))
    with pytest.raises(InputChangedError):
        write_plate({"A/1": OMEArrow.scan(src)}, out, resume=True)


@pytest.mark.parametrize("text", ["[1,2", "[1, 2]", "\xff"])
def test_parquet_resume_with_a_damaged_job_record_names_the_file(tmp_path, text):
    """A damaged <out>.progress/job.json is refused with our error naming it, not a raw JSON/attribute error."""
    out = tmp_path / "ds.parquet"
    job = tmp_path / "ds.parquet.progress" / "job.json"
    job.parent.mkdir()
    job.write_bytes(text.encode("latin-1"))
    with pytest.raises(OmeArrowDaskError, match=r"job\.json") as info:
        OMEArrow(np.zeros((8, 8), "u1")).export("parquet", out=str(out), resume=True)
    assert isinstance(info.value, IncompleteOutputError)


def test_remote_inputs_are_not_fingerprinted_as_missing_local_files():
    from ome_arrow_dask.errors import OmeArrowDaskError
    from ome_arrow_dask.jobs import image_input_paths, input_records

    class Remote:
        def input_paths(self):
            return ("s3://bucket/img.ome.zarr",)

    assert image_input_paths(Remote()) == ("s3://bucket/img.ome.zarr",)  # not <cwd>/s3:/bucket/...
    assert "remote" in input_records(["s3://bucket/img.ome.zarr"])["s3://bucket/img.ome.zarr"]
    with pytest.raises(OmeArrowDaskError, match=r"s3://bucket/img\.ome\.zarr: verify_inputs='content' hashes local"):
        input_records(["s3://bucket/img.ome.zarr"], "content")


def test_lock_fallback_two_successors_of_a_dead_owner_never_both_win(tmp_path, monkeypatch):
    """Without flock: B takes over the dead owner's lock between A's liveness check and A's rename."""
    import json

    from ome_arrow_dask.errors import OutputInUseError
    from ome_arrow_dask.jobs import JobLock, lock_path
    from ome_arrow_dask.jobs import lock as _jobfiles

    out = tmp_path / "o.ome.zarr"
    lock_path(out).write_text(json.dumps({"pid": 2**22 + 7, "host": "gone", "job_id": "dead"}))
    interleaved: list = []

    def owner_alive(owner):
        if owner.get("job_id") == "dead" and not interleaved:
            interleaved.append(None)
            interleaved[0] = JobLock(out)._acquire_exclusive()  # B wins the takeover first
        return owner.get("job_id") != "dead"

    monkeypatch.setattr(_jobfiles, "_owner_alive", owner_alive)
    a = JobLock(out)
    with pytest.raises(OutputInUseError):
        a._acquire_exclusive()
    b = interleaved[0]
    assert json.loads(lock_path(out).read_text())["job_id"] == b.job_id  # B's lock is still in place
    assert not list(tmp_path.glob("*.stale"))
    b.release()
