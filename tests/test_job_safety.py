"""Conversion jobs never destroy their input, never interleave, and never resume over a changed input.

- Writing onto the input (same path, output inside the input, input inside the output,
  through symlinks or relative paths) is refused before anything is touched, for both
  writers, the Python API and the CLI; the input stays byte-identical.
- Two conversions to one output run as real processes: the second is refused with a
  message naming the first (pid, host, start time), even with ``--resume``, and the first
  finishes with the right pixels; after a SIGKILL the lock is taken over by ``--resume``.
- A resume refuses an input changed in place with its mtime restored (inode change time),
  and ``verify_inputs="content"`` compares the bytes.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import dask
import numpy as np
import pytest
import tifffile

from ome_arrow_dask import OMEArrow
from ome_arrow_dask.cli import main
from ome_arrow_dask.errors import (
    InputChangedError,
    OmeArrowDaskError,
    OutputInUseError,
    OutputIsInputError,
    UnsafePathError,
)
from ome_arrow_dask.jobs import JobLock, check_output_not_input, input_records, lock_path
from ome_arrow_dask.jobs import lock as _jobfiles
from ome_arrow_dask.writers import parquet as parquet_writer
from ome_arrow_dask.writers import zarr as zarr_writer
from ome_arrow_dask.writers.zarr import read_status

PATTERN = "img_t{t}_c{c}.tif"


def _snapshot(path: Path) -> dict[str, bytes]:
    """Every file under ``path`` (or the file itself) with its bytes."""
    if path.is_file():
        return {"": path.read_bytes()}
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


@pytest.fixture
def pixels():
    return np.random.default_rng(3).integers(0, 4000, size=(2, 1, 3, 24, 20), dtype=np.uint16)


@pytest.fixture
def store(tmp_path, pixels):
    out = tmp_path / "in.ome.zarr"
    OMEArrow(pixels, dim_order="TCZYX").export("ome-zarr", out=str(out), chunks=(1, 1, 1, 8, 8))
    return out


@pytest.fixture
def dataset(tmp_path, pixels):
    out = tmp_path / "in.parquet"
    OMEArrow(pixels, dim_order="TCZYX").export("parquet", out=str(out), chunk_shape=(1, 1, 1, 8, 8))
    return out


@pytest.fixture
def stack(tmp_path):
    """2 T x 2 C TIFF files of ZYX (2, 24, 20) uint16."""
    rng = np.random.default_rng(11)
    folder = tmp_path / "raw"
    folder.mkdir()
    for t in range(2):
        for c in range(2):
            data = rng.integers(0, 4000, size=(2, 24, 20), dtype=np.uint16)
            tifffile.imwrite(folder / f"img_t{t}_c{c}.tif", data, metadata={"axes": "ZYX"})
    return folder


# ---------------------------------------------------------------------- writing onto the input
@pytest.mark.parametrize("how", ["ome-zarr", "parquet"])
def test_converting_a_store_onto_itself_is_refused_and_deletes_nothing(store, dataset, how):
    source = store if how == "ome-zarr" else dataset
    options = {"overwrite": True} if how == "ome-zarr" else {}  # the Parquet writer replaces without asking
    before = _snapshot(source)
    with pytest.raises(OutputIsInputError, match="is the input") as info:
        OMEArrow.scan(source).export(how, out=str(source), **options)
    assert isinstance(info.value, UnsafePathError)
    assert "Choose another output path" in str(info.value)
    assert _snapshot(source) == before
    assert not lock_path(source).exists() and not Path(f"{source}.progress").exists()


def test_output_inside_the_input_is_refused(store, dataset):
    before = _snapshot(store)
    with pytest.raises(OutputIsInputError, match="lies inside the input"):
        OMEArrow.scan(store).export("ome-zarr", out=str(store / "copy.ome.zarr"), overwrite=True)
    with pytest.raises(OutputIsInputError, match="lies inside the input"):
        OMEArrow.scan(dataset).export("parquet", out=str(dataset / "copy.parquet"))
    assert _snapshot(store) == before
    assert not (store / "copy.ome.zarr").exists() and not (dataset / "copy.parquet").exists()


def test_input_inside_the_output_is_refused(store):
    before = _snapshot(store)
    with pytest.raises(OutputIsInputError, match="lies inside the output"):
        OMEArrow.scan(store / "0").export("ome-zarr", out=str(store), overwrite=True)
    assert _snapshot(store) == before


def test_map_blocks_output_remembers_every_input(store, dataset):
    from ome_arrow_dask import map_blocks

    before = _snapshot(store)
    smoothed = map_blocks(lambda b: b.inputs[0] + b.inputs[1], OMEArrow.scan(store), OMEArrow.scan(dataset))
    assert set(smoothed.input_paths()) >= {str(store.resolve()), str(dataset.resolve())}
    with pytest.raises(OutputIsInputError, match="is the input"):
        smoothed.export("ome-zarr", out=str(store), overwrite=True)
    assert _snapshot(store) == before


def test_symlinks_and_relative_paths_are_resolved(store, tmp_path, monkeypatch):
    before = _snapshot(store)
    link = tmp_path / "alias.ome.zarr"
    link.symlink_to(store, target_is_directory=True)
    with pytest.raises(OutputIsInputError):
        OMEArrow.scan(store).export("ome-zarr", out=str(link), overwrite=True)
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")
    with pytest.raises(OutputIsInputError):
        OMEArrow.scan("../in.ome.zarr").export("ome-zarr", out="./../sub/../in.ome.zarr", overwrite=True)
    assert _snapshot(store) == before


def test_hard_linked_file_is_the_same_input(dataset, tmp_path):
    struct = tmp_path / "one.parquet"
    OMEArrow.scan(dataset).export("parquet", out=str(struct), layout="struct")
    twin = tmp_path / "twin.parquet"
    os.link(struct, twin)
    before = _snapshot(struct)
    with pytest.raises(OutputIsInputError, match="is the input"):
        OMEArrow.scan(struct).export("parquet", out=str(twin), layout="struct")
    assert _snapshot(struct) == before


def test_collected_and_cast_images_remember_their_files(store):
    before = _snapshot(store)
    in_memory = OMEArrow(str(store))  # lazy=False: pixels read into memory
    assert in_memory.input_paths() == (str(store),)
    with pytest.raises(OutputIsInputError):
        in_memory.export("ome-zarr", out=str(store), overwrite=True)
    with pytest.raises(OutputIsInputError):
        OMEArrow.scan(store).export("ome-zarr", dtype="float32", out=str(store), overwrite=True)
    with pytest.raises(OutputIsInputError):
        OMEArrow(OMEArrow.scan(store), image_type="label").export("ome-zarr", out=str(store), overwrite=True)
    assert _snapshot(store) == before


def test_pattern_stack_inputs_are_its_files(stack):
    image = OMEArrow.scan(stack, pattern=PATTERN)
    assert sorted(image.input_paths()) == sorted(str(p) for p in stack.glob("*.tif"))
    victim = stack / "img_t1_c0.tif"
    before = victim.read_bytes()
    with pytest.raises(OutputIsInputError, match="is the input"):
        image.export("parquet", out=str(victim), layout="struct")
    assert victim.read_bytes() == before
    image.export("ome-zarr", out=str(stack / "beside.ome.zarr"))  # a new folder beside the files is fine
    np.testing.assert_array_equal(OMEArrow.scan(stack / "beside.ome.zarr").to_numpy(), image.to_numpy())


@pytest.mark.parametrize("suffix", [".ome.zarr", ".parquet"])
def test_cli_refuses_onto_the_input_in_cli_words(store, dataset, suffix, capsys):
    source = store if suffix == ".ome.zarr" else dataset
    before = _snapshot(source)
    assert main(["convert", str(source), str(source), "--overwrite", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "is the input" in err and "Choose another output path" in err
    assert "overwrite=True" not in err
    assert _snapshot(source) == before
    assert OMEArrow.scan(source).shape == (2, 1, 3, 24, 20)


def test_check_output_not_input_allows_siblings(tmp_path):
    (tmp_path / "a.ome.zarr").mkdir()
    check_output_not_input(tmp_path / "a.ome.zarr2", [str(tmp_path / "a.ome.zarr")])  # a name prefix is not inside
    check_output_not_input(tmp_path / "b.ome.zarr", [str(tmp_path / "a.ome.zarr")])
    with pytest.raises(OutputIsInputError):
        check_output_not_input(tmp_path / "b.zarr", [str(tmp_path / "b.zarr.progress" / "x")],
                               job_paths=[tmp_path / "b.zarr.progress"])


# ---------------------------------------------------------------------- the ownership lock
def test_lock_refuses_a_second_owner_in_the_same_process_and_is_released(tmp_path):
    out = tmp_path / "o.ome.zarr"
    with JobLock(out):
        details = json.loads(lock_path(out).read_text())
        assert details["pid"] == os.getpid() and details["host"] == socket.gethostname()
        with pytest.raises(OutputInUseError, match=f"pid {os.getpid()} on host"):
            JobLock(out).acquire()
    assert not lock_path(out).exists()
    with JobLock(out):  # free again
        pass


def test_stale_lock_file_of_a_dead_owner_is_taken_over(tmp_path):
    out = tmp_path / "o.ome.zarr"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = {"pid": int(dead.stdout), "host": socket.gethostname(), "started": "yesterday", "job_id": "old"}
    lock_path(out).write_text(json.dumps(stale))
    lock = JobLock(out).acquire()
    try:
        assert lock.previous["job_id"] == "old"
        assert json.loads(lock_path(out).read_text())["job_id"] == lock.job_id
    finally:
        lock.release()


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="process start times are read from /proc")
def test_lock_without_flock_uses_process_liveness(tmp_path, monkeypatch):
    """Where the file system has no flock: a live owner (pid and start time) is refused, a dead one replaced."""
    out = tmp_path / "o.ome.zarr"
    live = JobLock(out)
    monkeypatch.setattr(live, "_details", lambda: json.dumps(
        {"pid": os.getppid(), "host": socket.gethostname(), "boot_id": _jobfiles._boot_id(),
         "process_start": _jobfiles._process_start(os.getppid()), "started": "now", "job_id": "live"}).encode())
    live._acquire_exclusive()
    with pytest.raises(OutputInUseError, match=f"pid {os.getppid()}"):
        JobLock(out)._acquire_exclusive()
    # the same pid with another start time is a reused pid: the owner is gone
    stale = json.loads(lock_path(out).read_text())
    stale["process_start"] = (stale["process_start"] or 0) + 12345
    os.close(live._fd)
    live._fd = None
    lock_path(out).write_text(json.dumps(stale))
    successor = JobLock(out)._acquire_exclusive()
    assert successor.previous["job_id"] == "live"
    successor.release()
    assert not lock_path(out).exists()


_GATED = textwrap.dedent(
    """
    import os, sys, threading, time
    from ome_arrow_dask.cli import main
    from ome_arrow_dask.writers import parquet, zarr

    gate, free = sys.argv[1], int(sys.argv[2])
    done, lock = [], threading.Lock()

    def gated(real):
        def store(*args, **kwargs):
            while True:
                with lock:
                    if len(done) < free or os.path.exists(gate):
                        done.append(1)
                        break
                time.sleep(0.01)
            return real(*args, **kwargs)
        return store

    zarr._store_unit = gated(zarr._store_unit)
    parquet._store_part = gated(parquet._store_part)
    sys.exit(main(sys.argv[3:]))
    """
)
"""A real ``ome-arrow-dask convert`` process that stores ``free`` units, then waits for ``gate``."""


def _start_gated(argv: list[str], gate: Path, free: int) -> subprocess.Popen:
    cmd = [sys.executable, "-c", _GATED, str(gate), str(free), *argv]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_owned(proc: subprocess.Popen, out: Path, units: int, count, timeout: float = 120.0) -> None:
    """Wait until ``proc`` holds the lock of ``out`` and has recorded ``units`` units."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        try:
            owner = json.loads(lock_path(out).read_text())
        except (OSError, ValueError):
            owner = {}
        if owner.get("pid") == proc.pid and count() >= units:
            return
        time.sleep(0.02)
    raise AssertionError("the first conversion did not start")


def _cli(argv: list[str]) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "ome_arrow_dask.cli", *argv]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


def _zarr_markers(out: Path) -> int:
    try:  # the writer removes the folder when it finishes, possibly while we list it
        return sum(1 for _ in Path(f"{out}.progress").glob("*/*.done"))
    except FileNotFoundError:
        return 0


def _parquet_parts(out: Path) -> int:
    try:
        return len(list((Path(f"{out}.progress") / "parts").glob("part-*.parquet")))
    except FileNotFoundError:
        return 0


@pytest.mark.slow
@pytest.mark.parametrize("suffix", [".ome.zarr", ".parquet"])
def test_second_conversion_is_refused_while_the_first_runs(stack, tmp_path, suffix):
    out = tmp_path / f"race{suffix}"
    gate = tmp_path / "gate"
    argv = ["convert", str(stack), str(out), "--pattern", PATTERN, "--chunks", "1,1,1,8,8", "--no-progress"]
    count = (lambda: _zarr_markers(out)) if suffix == ".ome.zarr" else (lambda: _parquet_parts(out))
    first = _start_gated(argv, gate, free=5)
    try:
        _wait_owned(first, out, 5, count)
        for extra in (["--overwrite"], ["--resume"]):
            second = _cli([*argv, *extra])
            assert second.returncode == 2, second.stderr
            assert f"is being written by another conversion (pid {first.pid} on host {socket.gethostname()}" in (
                second.stderr
            )
            assert "started 20" in second.stderr
            assert count() == 5  # the running job's records are untouched
        assert not list(tmp_path.glob("*.creating-*"))
        gate.touch()
        _, err = first.communicate(timeout=300)
        assert first.returncode == 0, err
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    np.testing.assert_array_equal(OMEArrow.scan(out).to_numpy(), OMEArrow.scan(stack, pattern=PATTERN).to_numpy())
    assert not lock_path(out).exists()
    assert not Path(f"{out}.progress").exists()
    assert not list(tmp_path.glob("*.creating-*"))


@pytest.mark.slow
@pytest.mark.parametrize("suffix", [".ome.zarr", ".parquet"])
def test_sigkilled_owner_is_taken_over_by_resume(stack, tmp_path, suffix):
    out = tmp_path / f"killed{suffix}"
    argv = ["convert", str(stack), str(out), "--pattern", PATTERN, "--chunks", "1,1,1,8,8", "--no-progress"]
    count = (lambda: _zarr_markers(out)) if suffix == ".ome.zarr" else (lambda: _parquet_parts(out))
    first = _start_gated(argv, tmp_path / "never", free=7)
    try:
        _wait_owned(first, out, 7, count)
    finally:
        first.send_signal(signal.SIGKILL)
        first.communicate()
    assert json.loads(lock_path(out).read_text())["pid"] == first.pid  # the dead owner's file is still there
    resumed = _cli([*argv, "--resume"])
    assert resumed.returncode == 0, resumed.stderr
    np.testing.assert_array_equal(OMEArrow.scan(out).to_numpy(), OMEArrow.scan(stack, pattern=PATTERN).to_numpy())
    assert not lock_path(out).exists()
    assert not list(tmp_path.glob("*.creating-*"))


def test_output_appearing_while_the_store_is_built_leaves_no_temp_folder(tmp_path, monkeypatch, pixels):
    """A writer that ignores the lock creates the output meanwhile: clear refusal, no ``.creating-*`` left."""
    out = tmp_path / "o.ome.zarr"
    real = zarr_writer._build_store

    def build_then_intruder(building, *args, **kwargs):
        real(building, *args, **kwargs)
        (out / "0").mkdir(parents=True)  # not empty: the rename fails with ENOTEMPTY

    monkeypatch.setattr(zarr_writer, "_build_store", build_then_intruder)
    with pytest.raises(OutputInUseError, match="created by another process"):
        OMEArrow(pixels, dim_order="TCZYX").export("ome-zarr", out=str(out))
    assert not list(tmp_path.glob("*.creating-*"))
    assert not lock_path(out).exists()


def test_leftover_creating_folder_is_removed_even_when_the_output_is_complete(tmp_path, pixels):
    out = tmp_path / "o.ome.zarr"
    OMEArrow(pixels, dim_order="TCZYX").export("ome-zarr", out=str(out))
    leftover = tmp_path / "o.ome.zarr.creating-0123456789ab"
    (leftover / "0").mkdir(parents=True)
    OMEArrow(pixels, dim_order="TCZYX").export("ome-zarr", out=str(out), resume=True)
    assert not leftover.exists()
    assert read_status(out)["status"] == "complete"


# ---------------------------------------------------------------------- resume and changed inputs
class _Killed(BaseException):
    """Stands in for a kill: not an Exception, so nothing on the way catches it."""


def _interrupt(monkeypatch, module, name: str, after: int, run) -> None:
    real = getattr(module, name)
    stored = []

    def store_then_fail(*args, **kwargs):
        if len(stored) == after:
            raise _Killed
        stored.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, store_then_fail)
    with dask.config.set(scheduler="synchronous"), pytest.raises(_Killed):
        run()
    monkeypatch.setattr(module, name, real)


def _flip_low_bits_keep_mtime(path: Path) -> None:
    """Rewrite the pixels in place (same size), then set atime and mtime back as ``touch -r`` would."""
    st = path.stat()
    time.sleep(0.05)  # past the coarse timestamp tick of the file system
    data = tifffile.imread(path)
    raw = bytearray(path.read_bytes())
    with tifffile.TiffFile(path) as tif:
        for page in tif.pages:
            for offset, count in zip(page.dataoffsets, page.databytecounts, strict=True):
                pixels = np.frombuffer(raw, dtype="<u2", count=count // 2, offset=offset) ^ 1
                raw[offset : offset + count] = pixels.astype("<u2").tobytes()
    with open(path, "r+b") as fh:  # in place: same inode, same size
        fh.write(raw)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert (path.stat().st_size, path.stat().st_mtime_ns) == (st.st_size, st.st_mtime_ns)
    np.testing.assert_array_equal(tifffile.imread(path), data ^ 1)


@pytest.mark.parametrize("how", ["ome-zarr", "parquet"])
def test_resume_refuses_an_input_changed_in_place_with_its_mtime_restored(stack, tmp_path, monkeypatch, how):
    out = tmp_path / ("o.ome.zarr" if how == "ome-zarr" else "o.parquet")
    options = {"chunks": (1, 1, 1, 8, 8)} if how == "ome-zarr" else {"chunk_shape": (1, 1, 1, 8, 8)}
    module, name = (zarr_writer, "_store_unit") if how == "ome-zarr" else (parquet_writer, "_store_part")

    def run(**extra):
        return OMEArrow.scan(stack, pattern=PATTERN).export(how, out=str(out), **options, **extra)

    _interrupt(monkeypatch, module, name, 10, run)
    victim = stack / "img_t1_c0.tif"
    _flip_low_bits_keep_mtime(victim)
    with pytest.raises(InputChangedError, match=r"img_t1_c0\.tif") as info:
        run(resume=True)
    assert "change time" in str(info.value)


def test_resume_refuses_a_changed_chunk_of_an_input_store(store, tmp_path, monkeypatch):
    out = tmp_path / "o.parquet"

    def run(**extra):
        return OMEArrow.scan(store).export("parquet", out=str(out), chunk_shape=(1, 1, 1, 8, 8), **extra)

    _interrupt(monkeypatch, parquet_writer, "_store_part", 4, run)
    chunk = next(p for p in sorted((store / "0" / "c").rglob("*")) if p.is_file())
    st = chunk.stat()
    time.sleep(0.05)
    chunk.write_bytes(chunk.read_bytes())  # same bytes, rewritten: only the change time tells
    os.utime(chunk, ns=(st.st_atime_ns, st.st_mtime_ns))
    with pytest.raises(InputChangedError, match=r"in\.ome\.zarr"):
        run(resume=True)


def test_content_verification_accepts_identical_bytes_and_refuses_changed_ones(stack, tmp_path, monkeypatch):
    out = tmp_path / "o.ome.zarr"

    def run(**extra):
        OMEArrow.scan(stack, pattern=PATTERN).export("ome-zarr", out=str(out), chunks=(1, 1, 1, 8, 8), **extra)

    _interrupt(monkeypatch, zarr_writer, "_store_unit", 6, lambda: run(verify_inputs="content"))
    with pytest.raises(OmeArrowDaskError, match="verify_inputs='content'"):  # resumed with another check
        run(resume=True)
    victim = stack / "img_t0_c1.tif"
    st, data = victim.stat(), victim.read_bytes()
    time.sleep(0.05)
    victim.write_bytes(data)  # restored from a copy: same bytes, new change time
    os.utime(victim, ns=(st.st_atime_ns, st.st_mtime_ns))
    _flip_low_bits_keep_mtime(stack / "img_t1_c1.tif")
    with pytest.raises(InputChangedError, match=r"img_t1_c1\.tif") as info:  # the bytes differ
        run(resume=True, verify_inputs="content")
    assert "bytes differ" in str(info.value)
    _flip_low_bits_keep_mtime(stack / "img_t1_c1.tif")  # flipped back: identical bytes again
    run(resume=True, verify_inputs="content")
    assert read_status(out)["status"] == "complete"
    np.testing.assert_array_equal(OMEArrow.scan(out).to_numpy(), OMEArrow.scan(stack, pattern=PATTERN).to_numpy())


def test_cli_verify_inputs_content_resumes(stack, tmp_path, monkeypatch):
    out = tmp_path / "o.parquet"
    argv = ["convert", str(stack), str(out), "--pattern", PATTERN, "--chunks", "1,1,1,8,8", "--no-progress"]
    _interrupt(monkeypatch, parquet_writer, "_store_part", 5, lambda: main([*argv, "--verify-inputs", "content"]))
    job = json.loads((Path(f"{out}.progress") / "job.json").read_text())
    assert job["verify_inputs"] == "content" and len(job["inputs"]) == 4
    assert main([*argv, "--resume", "--verify-inputs", "content"]) == 0
    np.testing.assert_array_equal(OMEArrow.scan(out).to_numpy(), OMEArrow.scan(stack, pattern=PATTERN).to_numpy())


def test_input_records_cover_ctime_and_content(tmp_path):
    f = tmp_path / "a.bin"
    f.write_bytes(b"1234")
    stat1, content1 = input_records([str(f)]), input_records([str(f)], "content")
    st = f.stat()
    time.sleep(0.05)
    f.write_bytes(b"1235")
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert input_records([str(f)]) != stat1
    assert input_records([str(f)], "content") != content1
    with pytest.raises(OmeArrowDaskError, match="verify_inputs"):
        input_records([str(f)], "xxhash")
