"""LLSM-like TIFF stacks to OME-Zarr: throughput and peak RSS against the usual recipes and the ceiling.

Input: a folder of ZYX uint16 TIFF stacks named like a lattice light-sheet run
(``..._ch{c}_stack{t}_...tif``), generated in a temp dir. Every writer produces zarr v3
with the same chunks (1, 1, 32, 512, 512) and codec (Blosc zstd level 3, bitshuffle),
one pyramid level, on the threaded scheduler with the same number of threads:

- ours: ``OMEArrow.scan(folder, pattern=...).export("ome-zarr", ...)`` (crash-safe: done
  markers with fsync, crc32c on chunks, NGFF metadata);
- ``tifffile`` + ``da.to_zarr``: ``da.stack`` of delayed ``tifffile.imread`` per file;
- ome-zarr-py ``write_image`` on that same dask array (``scale_factors=()``: one level);
- ceiling: read every file and compress every (32, 512, 512) block with the same codec
  in a thread pool, writing nothing; and the same writing each compressed chunk to its
  own file (what any writer must at least do on this disk).

Also: ours as a whole ``ome-arrow-dask convert`` process (start-up and imports included),
ours with 3 pyramid levels, and ours on zarr-python's default codec pipeline when zarrs is
installed (ours uses zarrs then). Cases run round robin (3 rounds quick, 2 full) and report
medians, with CPU seconds beside wall seconds (steadier on a shared machine).

MB/s counts input (decoded) bytes. Peak RSS is sampled during each call (growth above
its starting RSS). The bounded-memory case converts a 10x larger input with ours and
compares the peaks.
"""

from __future__ import annotations

import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import dask
import dask.array as da
import numcodecs
import numpy as np
import tifffile
import zarr
from _measure import peak_rss_delta_mib
from zarr.codecs import BloscCodec

from ome_arrow_dask import OMEArrow
from ome_arrow_dask.writers import zarr as zarr_writer

PATTERN = "ex6-2_CamA_ch{c}_CAM1_stack{t}_488nm_0000000msec_0000000000msecAbs_000x_000y_000z_0000t.tif"
CHUNKS = (1, 1, 32, 512, 512)
THREADS = os.cpu_count() or 2


def _name(t: int, c: int) -> str:
    return PATTERN.replace("{c}", str(c)).replace("{t}", f"{t:04d}")


def _write_input(folder: Path, n_t: int, n_c: int, stack: tuple[int, int, int]) -> list[Path]:
    """Smooth cells plus Poisson-like noise, so the codec sees microscopy-like data."""
    rng = np.random.default_rng(0)
    z, y, x = np.ogrid[: stack[0], : stack[1], : stack[2]]
    base = (400 + 300 * np.sin(x / 23.0) * np.cos(y / 31.0) * np.cos(z / 7.0)).astype(np.float32)
    noise = rng.normal(0, 12, size=stack).astype(np.float32)
    files = []
    for t in range(n_t):
        for c in range(n_c):
            volume = np.clip(base + np.roll(noise, t * 7 + c, axis=2) + 50 * c, 0, 65535).astype(np.uint16)
            path = folder / _name(t, c)
            tifffile.imwrite(path, volume, metadata={"axes": "ZYX"})
            files.append(path)
    return files


def _dask_input(files: list[Path], n_t: int, n_c: int, stack: tuple[int, int, int]) -> da.Array:
    read = dask.delayed(tifffile.imread, pure=True)
    arrays = [da.from_delayed(read(str(f)), stack, np.uint16) for f in files]
    return da.stack(arrays).reshape((n_t, n_c, *stack)).rechunk(CHUNKS)


def _codec() -> list:
    return [BloscCodec(cname="zstd", clevel=3, shuffle="bitshuffle")]


def _ours(folder: Path, out: Path, levels: int = 1, pipeline: str = "auto", **_: object) -> None:
    OMEArrow.scan(folder, pattern=PATTERN).export(
        "ome-zarr", out=str(out), chunks=CHUNKS, compressor="zstd", clevel=3, levels=levels, codec_pipeline=pipeline
    )


def _cli(folder: Path, out: Path, levels: int = 1, **_: object) -> None:
    """The whole ``ome-arrow-dask convert`` process: interpreter start, imports, scan, write."""
    chunks = ",".join(map(str, CHUNKS))
    cmd = [sys.executable, "-m", "ome_arrow_dask.cli", "convert", str(folder), str(out), "--pattern", PATTERN]
    cmd += ["--chunks", chunks, "--compressor", "zstd", "--clevel", "3", "--levels", str(levels)]
    subprocess.run([*cmd, "--workers", str(THREADS), "--no-progress"], check=True, stdout=subprocess.DEVNULL)


def _tifffile_to_zarr(files: list[Path], out: Path, shape: tuple, **kw: object) -> None:
    array = _dask_input(files, *shape[:2], shape[2:])
    target = zarr.create_array(str(out), shape=array.shape, chunks=CHUNKS, dtype="u2", compressors=_codec())
    da.to_zarr(array, target)


def _ome_zarr_py(files: list[Path], out: Path, shape: tuple, **kw: object) -> None:
    from ome_zarr.writer import write_image

    array = _dask_input(files, *shape[:2], shape[2:])
    group = zarr.open_group(str(out), mode="w")
    write_image(  # scale_factors=() is one level; None means ome-zarr-py's default 5-level pyramid
        array,
        group,
        scale_factors=(),
        axes="tczyx",
        storage_options={"chunks": CHUNKS, "compressors": _codec()},
    )
    assert sorted(group.array_keys()) == ["s0"], "ome-zarr-py wrote more than one level"


def _ceiling(files: list[Path], out: Path | None = None, write: bool = False, **_: object) -> None:
    """Read every file and compress every chunk; with ``write=True`` also write each to a file."""
    codec = numcodecs.Blosc(cname="zstd", clevel=3, shuffle=numcodecs.Blosc.BITSHUFFLE)
    if write:
        out.mkdir(parents=True)

    def one_file(path: Path) -> int:
        volume = tifffile.imread(path)
        nbytes = 0
        for z0 in range(0, volume.shape[0], CHUNKS[2]):
            for y0 in range(0, volume.shape[1], CHUNKS[3]):
                for x0 in range(0, volume.shape[2], CHUNKS[4]):
                    block = np.ascontiguousarray(volume[z0 : z0 + 32, y0 : y0 + 512, x0 : x0 + 512])
                    encoded = codec.encode(block)
                    nbytes += len(encoded)
                    if write:
                        (out / f"{path.stem}.{z0}.{y0}.{x0}").write_bytes(encoded)
        return nbytes

    with ThreadPoolExecutor(THREADS) as pool:
        sum(pool.map(one_file, files))


def _measure(func, out: Path, input_bytes: int, **kwargs: object) -> dict[str, float]:
    """One run of ``func``: wall seconds, CPU seconds (this process and its children) and peak RSS growth."""
    shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(f"{out}.progress", ignore_errors=True)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = time.process_time()
    start = time.perf_counter()
    with dask.config.set(scheduler="threads", num_workers=THREADS):
        _, rss = peak_rss_delta_mib(lambda: func(out=out, **kwargs))
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = time.process_time() - cpu + (after.ru_utime + after.ru_stime) - (children.ru_utime + children.ru_stime)
    return {"seconds": seconds, "mb_per_s": input_bytes / 1e6 / seconds, "cpu_s": cpu, "peak_rss_delta_mib": rss}


def _median(runs: list[dict[str, float]]) -> dict[str, float]:
    out = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
    out["all_seconds"] = [round(run["seconds"], 3) for run in runs]
    return out


def _check_equal(a: Path, b: Path) -> bool:
    return bool(np.array_equal(np.asarray(zarr.open_group(str(a))["0"][:]), np.asarray(zarr.open_array(str(b))[:])))


def _subset(tmp: Path, files: list[Path], n_t: int) -> Path:
    """Hard links to the files of the first ``n_t`` time points (a smaller run of the same data)."""
    small = tmp / "small"
    small.mkdir()
    for f in files:
        if any(f"_stack{t:04d}_" in f.name for t in range(n_t)):
            os.link(f, small / f.name)
    return small


def _pairs(measured: dict[str, dict]) -> list[tuple[str, str, str]]:
    """(ours, baseline, what the ratio means) for every side-by-side comparison reported."""
    reach = "baseline seconds / ours seconds: the fraction of the ceiling's speed reached"
    faster = "baseline seconds / ours seconds (above 1: ours faster)"
    pairs = [
        ("ours", "ceiling + write (read + compress + one file per chunk)", reach),
        ("ours, whole CLI process", "ceiling + write (read + compress + one file per chunk)", reach),
        ("ours", "ceiling (read + compress, no write)", reach),
        ("ours, 3 levels", "ours", "1-level seconds / 3-level seconds: what the pyramid costs (1.0 = nothing)"),
        ("ours", "ours, default codec pipeline", faster),
        ("ours", "tifffile + da.to_zarr", faster),
        ("ours", "ome-zarr-py write_image", faster),
    ]
    return [p for p in pairs if p[0] in measured and p[1] in measured]


def run(quick: bool) -> list[dict]:
    n_t, n_c, stack = (2, 2, (64, 512, 512)) if quick else (10, 2, (100, 1024, 1024))
    repeats = 3 if quick else 2
    results = []
    with tempfile.TemporaryDirectory(prefix="bench_convert_") as tmp_name:
        tmp = Path(tmp_name)
        folder = tmp / "raw"
        folder.mkdir()
        files = _write_input(folder, n_t, n_c, stack)
        file_bytes = int(np.prod(stack)) * 2
        input_bytes = file_bytes * len(files)
        shape = (n_t, n_c, *stack)
        label = f"{len(files)} LLSM TIFF stacks {stack} uint16, {input_bytes / 2**30:.2f} GiB, to OME-Zarr"
        n_small = max(1, n_t // 10)
        small = _subset(tmp, files, n_small)
        _ceiling(files=files)  # warm the page cache once for everyone
        _ours(folder=small, out=tmp / "warm-up.ome.zarr")  # imports and first-call costs
        zarrs = zarr_writer.zarrs_available()
        cases = {
            "ceiling (read + compress, no write)": lambda: _measure(_ceiling, tmp / "c", input_bytes, files=files),
            "ceiling + write (read + compress + one file per chunk)": lambda: _measure(
                _ceiling, tmp / "cw", input_bytes, files=files, write=True
            ),
            "ours": lambda: _measure(_ours, tmp / "ours.ome.zarr", input_bytes, folder=folder),
            "ours, whole CLI process": lambda: _measure(_cli, tmp / "cli.ome.zarr", input_bytes, folder=folder),
            "ours, 3 levels": lambda: _measure(_ours, tmp / "l3.ome.zarr", input_bytes, folder=folder, levels=3),
            "tifffile + da.to_zarr": lambda: _measure(
                _tifffile_to_zarr, tmp / "dz.zarr", input_bytes, files=files, shape=shape
            ),
            "ome-zarr-py write_image": lambda: _measure(
                _ome_zarr_py, tmp / "oz.ome.zarr", input_bytes, files=files, shape=shape
            ),
        }
        if zarrs:  # "ours" runs on zarrs: show what it gains over zarr-python's own pipeline
            cases["ours, default codec pipeline"] = lambda: _measure(
                _ours, tmp / "dflt.ome.zarr", input_bytes, folder=folder, pipeline="default"
            )
        runs: dict[str, list[dict]] = {name: [] for name in cases}
        for _ in range(repeats):  # round robin: a noisy shared machine slows every case alike
            for name, case in cases.items():
                runs[name].append(case())
        measured = {name: _median(values) for name, values in runs.items()}
        same = all(
            _check_equal(tmp / "ours.ome.zarr", other)
            for other in (
                tmp / "dz.zarr",
                tmp / "oz.ome.zarr" / "s0",
                tmp / "cli.ome.zarr" / "0",
                tmp / "l3.ome.zarr" / "0",
            )
        )
        for ours, baseline, meaning in _pairs(measured):
            results.append(
                {
                    "case": f"{label}: {ours} vs {baseline}",
                    "ours": measured[ours],
                    "baseline": measured[baseline],
                    "ratio": measured[baseline]["seconds"] / measured[ours]["seconds"],
                    "cpu_ratio": measured[baseline]["cpu_s"] / measured[ours]["cpu_s"],
                    "ratio_meaning": meaning + "; cpu_ratio: the same with CPU seconds of the process (and children)",
                    "codec_pipeline": "zarrs" if zarrs else "default",
                    "outputs_equal": same,
                }
            )
        little = _measure(_ours, tmp / "small.ome.zarr", file_bytes * n_small * n_c, folder=small)
        big = measured["ours"]
        results.append(
            {
                "case": f"bounded memory: ours on {n_t // n_small}x the input ({input_bytes / 2**30:.2f} GiB)",
                "ours": big,
                "baseline": little,
                "ratio": big["peak_rss_delta_mib"] / max(little["peak_rss_delta_mib"], 1e-9),
                "ratio_meaning": "peak RSS growth, large input / small input (1.0 = flat)",
            }
        )
    return results
