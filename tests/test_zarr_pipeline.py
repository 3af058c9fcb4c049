"""OME-Zarr writer on the zarrs codec pipeline and on zarr-python's default: same pixels, same safety.

The zarrs pipeline (Rust) is used when installed (``codec_pipeline="auto"``); the environment
variable ``OME_ARROW_DASK_ZARR_PIPELINE=default`` or ``codec_pipeline="default"`` forces
zarr-python's own. zarrs' filesystem store writes keys in place, so our writer stages each unit
and renames it over its key: a kill mid-write never leaves a torn key in the output.
"""

from __future__ import annotations

import json
import os
import threading

import dask
import numpy as np
import pytest
import zarr

from ome_arrow_dask import OMEArrow
from ome_arrow_dask.errors import OmeArrowDaskError
from ome_arrow_dask.writers import zarr as zarr_writer
from ome_arrow_dask.writers.zarr import PIPELINE_ENV, ZarrWriteOptions, downsample, read_status

HAVE_ZARRS = zarr_writer.zarrs_available()
needs_zarrs = pytest.mark.skipif(not HAVE_ZARRS, reason="zarrs is not installed (pip install zarrs)")
PIPELINES = [pytest.param("zarrs", marks=needs_zarrs), "default"]
DEFAULT_CLASS = "zarr.core.codec_pipeline.BatchedCodecPipeline"
CHUNKS = (1, 1, 2, 16, 16)


def _data(rng, shape=(2, 2, 3, 37, 41), dtype="u2") -> np.ndarray:
    return rng.integers(0, 60000, size=shape).astype(dtype)


def _read_default(out, level: str = "0") -> np.ndarray:
    """Read one level through zarr-python's default pipeline (which checks every crc32c)."""
    with zarr.config.set({"codec_pipeline.path": DEFAULT_CLASS}):
        array = zarr.open_array(store=str(out), path=level, mode="r")
        assert type(array._async_array.codec_pipeline).__name__ == "BatchedCodecPipeline"
        return np.asarray(array[...])


def _keys(out, level: str = "0") -> list[str]:
    root = os.path.join(out, level)
    return sorted(
        os.path.relpath(os.path.join(folder, name), root)
        for folder, _, names in os.walk(root)
        for name in names
        if name not in ("zarr.json", ".zarray", ".zattrs")
    )


@pytest.mark.parametrize("pipeline", PIPELINES)
@pytest.mark.parametrize("how", ["option", "env"])
def test_pixels_read_back_bit_identical_through_the_default_pipeline(tmp_path, rng, monkeypatch, pipeline, how):
    data = _data(rng)
    out = tmp_path / "img.ome.zarr"
    options = {"codec_pipeline": pipeline} if how == "option" else {}
    if how == "env":
        monkeypatch.setenv(PIPELINE_ENV, pipeline)
    OMEArrow(data, dims="TCZYX").export("ome-zarr", out=str(out), chunks=CHUNKS, levels=3, **options)
    assert read_status(out)["status"] == "complete"
    np.testing.assert_array_equal(_read_default(out), data)
    level1 = downsample(data, "mean")
    np.testing.assert_array_equal(_read_default(out, "1"), level1)
    np.testing.assert_array_equal(_read_default(out, "2"), downsample(level1, "mean"))
    assert not (tmp_path / "img.ome.zarr.progress").exists()  # records and staging removed at the end
    assert [p.name for p in tmp_path.iterdir()] == ["img.ome.zarr"]


@needs_zarrs
@pytest.mark.parametrize(
    ("version", "shards"), [("0.5", None), ("0.5", (1, 1, 2, 32, 32)), ("0.4", None)], ids=["v3", "sharded", "v2"]
)
def test_zarrs_and_default_write_the_same_keys_and_pixels(tmp_path, rng, version, shards):
    data = _data(rng)
    outs = {}
    for pipeline in ("zarrs", "default"):
        outs[pipeline] = tmp_path / f"{pipeline}.ome.zarr"
        OMEArrow(data, dims="TCZYX").export(
            "ome-zarr", out=str(outs[pipeline]), chunks=CHUNKS, shards=shards, version=version, codec_pipeline=pipeline
        )
    assert _keys(outs["zarrs"]) == _keys(outs["default"])
    for out in outs.values():
        np.testing.assert_array_equal(_read_default(out), data)


@needs_zarrs
def test_chunks_written_by_zarrs_carry_a_crc32c_that_both_pipelines_verify(tmp_path, rng):
    out = tmp_path / "img.ome.zarr"
    OMEArrow(_data(rng), dims="TCZYX").export("ome-zarr", out=str(out), chunks=CHUNKS, codec_pipeline="zarrs")
    codecs = [c["name"] for c in json.loads((out / "0" / "zarr.json").read_text())["codecs"]]
    assert codecs == ["bytes", "blosc", "crc32c"]
    chunk = out / "0" / "c" / "0" / "0" / "0" / "0" / "0"
    raw = bytearray(chunk.read_bytes())
    raw[len(raw) // 2] ^= 0x01  # one flipped bit
    chunk.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="checksum"):
        _read_default(out)
    with zarr.config.set({"codec_pipeline.path": "zarrs.ZarrsCodecPipeline"}):
        array = zarr.open_array(store=str(out), path="0", mode="r")
        with pytest.raises(RuntimeError, match="checksum"):
            array[0, 0, 0:2, 0:16, 0:16]


class _Killed(BaseException):
    """Stands in for a kill: not an Exception, so nothing on the way catches it."""


@needs_zarrs
def test_a_kill_while_zarrs_writes_leaves_no_torn_key_in_the_output(tmp_path, rng, monkeypatch):
    """zarrs writes keys in place: the half-written key must stay in the stage, never in the output."""
    data = _data(rng)
    out = tmp_path / "img.ome.zarr"
    real = zarr_writer._staging_array
    written = []

    class TornWrite:
        def __init__(self, array):
            self.array = array

        def __setitem__(self, region, block):
            self.array[region] = block
            key = zarr_writer._unit_key(self.array, region)
            staged = os.path.join(zarr_writer._staging_root(str(out) + ".progress/stage"), "0", *key.split("/"))
            with open(staged, "r+b") as fh:  # the process dies half-way through the key
                fh.truncate(os.path.getsize(staged) // 2)
            written.append(key)
            raise _Killed

        def __getattr__(self, name):
            return getattr(self.array, name)

    monkeypatch.setattr(zarr_writer, "_staging_array", lambda *a: TornWrite(real(*a)))
    with dask.config.set(scheduler="synchronous"), pytest.raises(_Killed):
        OMEArrow(data, dims="TCZYX").export("ome-zarr", out=str(out), chunks=CHUNKS, codec_pipeline="zarrs")
    assert len(written) == 1
    assert not (out / "0" / written[0]).exists()  # the output never saw the torn key
    assert list((tmp_path / "img.ome.zarr.progress" / "stage").rglob("c/*/*/*/*/*"))  # it is in the stage
    monkeypatch.setattr(zarr_writer, "_staging_array", real)
    OMEArrow(data, dims="TCZYX").export("ome-zarr", out=str(out), chunks=CHUNKS, resume=True, codec_pipeline="zarrs")
    np.testing.assert_array_equal(_read_default(out), data)
    assert not (tmp_path / "img.ome.zarr.progress").exists()


@needs_zarrs
@pytest.mark.parametrize(("first", "second"), [("zarrs", "default"), ("default", "zarrs")])
def test_a_job_started_on_one_pipeline_resumes_and_verifies_on_the_other(tmp_path, rng, monkeypatch, first, second):
    data = _data(rng)
    out = tmp_path / "img.ome.zarr"
    real, stored = zarr_writer._store_unit, []

    def store_then_die(*args, **kwargs):
        if len(stored) == 7:
            raise _Killed
        stored.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(zarr_writer, "_store_unit", store_then_die)
    with dask.config.set(scheduler="synchronous"), pytest.raises(_Killed):
        OMEArrow(data, dims="TCZYX").export("ome-zarr", out=str(out), chunks=CHUNKS, levels=2, codec_pipeline=first)
    monkeypatch.setattr(zarr_writer, "_store_unit", real)
    OMEArrow(data, dims="TCZYX").export(
        "ome-zarr", out=str(out), chunks=CHUNKS, levels=2, resume=True, verify=True, codec_pipeline=second
    )
    np.testing.assert_array_equal(_read_default(out), data)
    np.testing.assert_array_equal(_read_default(out, "1"), downsample(data, "mean"))


@needs_zarrs
def test_our_writes_leave_the_global_zarr_config_alone(tmp_path, rng):
    before = zarr.config.get("codec_pipeline.path")
    images = [OMEArrow(_data(rng), dims="TCZYX") for _ in range(3)]

    def convert(i):
        with dask.config.set(scheduler="threads", num_workers=4):
            images[i].export("ome-zarr", out=str(tmp_path / f"{i}.ome.zarr"), chunks=CHUNKS, levels=2)

    threads = [threading.Thread(target=convert, args=(i,)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert zarr.config.get("codec_pipeline.path") == before
    pipeline = zarr.open_array(store=str(tmp_path / "0.ome.zarr"), path="0")._async_array.codec_pipeline
    assert type(pipeline).__name__ == before.rsplit(".", 1)[-1]


def test_pipeline_option_and_environment_are_validated(monkeypatch):
    assert ZarrWriteOptions(codec_pipeline="default").codec_pipeline == "default"
    with pytest.raises(OmeArrowDaskError, match="codec_pipeline must be one of"):
        ZarrWriteOptions(codec_pipeline="rust")
    monkeypatch.setenv(PIPELINE_ENV, "default")
    assert ZarrWriteOptions().codec_pipeline == "default"
    assert ZarrWriteOptions(codec_pipeline="zarrs" if HAVE_ZARRS else "default").codec_pipeline != "auto"
    monkeypatch.setenv(PIPELINE_ENV, "fastest")
    with pytest.raises(OmeArrowDaskError, match=PIPELINE_ENV):
        ZarrWriteOptions()


def test_without_zarrs_auto_falls_back_and_explicit_zarrs_is_refused(tmp_path, rng, monkeypatch):
    monkeypatch.setattr(zarr_writer, "zarrs_available", lambda: False)
    monkeypatch.delenv(PIPELINE_ENV, raising=False)
    with pytest.raises(OmeArrowDaskError, match=r"pip install 'ome-arrow-dask\[fast\]'"):
        ZarrWriteOptions(codec_pipeline="zarrs")
    data = _data(rng)
    out = tmp_path / "img.ome.zarr"
    staged = []
    monkeypatch.setattr(zarr_writer, "_staging_array", lambda *a: staged.append(a))
    OMEArrow(data, dims="TCZYX").export("ome-zarr", out=str(out), chunks=CHUNKS)
    assert not staged  # every unit went through zarr-python's pipeline
    np.testing.assert_array_equal(_read_default(out), data)


@pytest.mark.parametrize("dtype", ["u1", "i1", "u2", "i2", "u4", "i4"])
def test_fast_integer_mean_equals_the_exact_rounded_mean(rng, dtype):
    info = np.iinfo(dtype)
    block = rng.integers(info.min, info.max, size=(2, 3, 24, 34), dtype=dtype, endpoint=True)
    block[0, 0, :4, :4] = info.max
    block[0, 1, :4, :4] = info.min
    block[1, 0, :2, :2] = [[info.min, info.max], [info.min, info.max]]
    block[1, 1, :2, :2] = [[-1 if info.min else 0, 0], [1, 0]]  # sums of 0 and +-1: ties and near-ties
    total = sum(block[..., i::2, j::2].astype(np.int64) for i in (0, 1) for j in (0, 1))
    expected = np.rint(total / 4).astype(dtype)  # exact in float64 for sums of four 32-bit values
    np.testing.assert_array_equal(downsample(block, "mean"), expected)
    np.testing.assert_array_equal(downsample(block[..., :0, :], "mean"), expected[..., :0, :])


@pytest.mark.parametrize("pipeline", PIPELINES)
@pytest.mark.parametrize("shards", [None, (1, 1, 2, 32, 32)], ids=["chunks", "shards"])
def test_units_equal_to_the_fill_value_still_write_their_key(tmp_path, pipeline, shards):
    """A missing key must mean "not written": zarrs 0.2 skips fill-value chunks, so those go through zarr-python."""
    data = np.zeros((1, 2, 4, 40, 40), "u2")
    data[0, 0, :2, :16, :16] = 7  # one unit with content, every other one all fill value
    out = tmp_path / "img.ome.zarr"
    OMEArrow(data, dims="TCZYX").export("ome-zarr", out=str(out), chunks=CHUNKS, shards=shards, codec_pipeline=pipeline)
    unit = shards or CHUNKS
    grid = [-(-n // u) for n, u in zip(data.shape, unit, strict=True)]
    assert len(_keys(out)) == int(np.prod(grid))
    np.testing.assert_array_equal(_read_default(out), data)


@needs_zarrs
def test_tasks_opening_the_stage_at_once_never_see_half_copied_metadata(tmp_path, rng):
    """The first tasks of a level copy its metadata into the stage; the others must wait, not read it half-written."""
    out = tmp_path / "img.ome.zarr"
    OMEArrow(_data(rng), dims="TCZYX").export("ome-zarr", out=str(out), chunks=CHUNKS)
    stage = str(tmp_path / "stage")
    for job in range(5):
        barrier, errors = threading.Barrier(8), []

        def open_stage(job=job, barrier=barrier, errors=errors):
            barrier.wait()
            try:
                zarr_writer._staging_array(str(out), "0", stage, f"job-{job}")
            except Exception as exc:  # a JSONDecodeError when the copy races the open
                errors.append(exc)

        threads = [threading.Thread(target=open_stage) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not errors
