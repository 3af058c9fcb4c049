"""Compressed zarr v3 writes alone: zarr-python's codec pipelines and tensorstore against a plain loop.

1 GiB (``--quick``: 128 MiB) of microscopy-like uint16 already in memory is written as
(1, 1, 32, 512, 512) chunks with Blosc zstd level 3 + bitshuffle and a crc32c checksum
(the codecs our OME-Zarr writer uses), from a pool of ``THREADS`` threads, one chunk per
call:

- loop (the ceiling): numcodecs Blosc encode + crc32c + one file per chunk, no zarr;
- zarr-python with its default ``BatchedCodecPipeline``;
- zarr-python with the ``zarrs`` codec pipeline (Rust), when installed;
- tensorstore's zarr3 driver, when installed;
- ours: ``OMEArrow(numpy).export("ome-zarr")`` (done markers, CRC32 records, NGFF metadata)
  on the default pipeline and on zarrs (``codec_pipeline=``), so what our write path adds
  on top of the pipeline shows.

Cases run round-robin (``REPEATS`` rounds) in one process and the median of each is
reported, so a noisy shared machine shifts them alike; read ratios, not MB/s. Every zarr
output is read back through the default pipeline and compared with the input.
"""

from __future__ import annotations

import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numcodecs
import numpy as np
import zarr
from zarr.codecs import BloscCodec, Crc32cCodec

CHUNKS = (1, 1, 32, 512, 512)
THREADS = os.cpu_count() or 2
ZARRS = {"codec_pipeline.path": "zarrs.ZarrsCodecPipeline"}


def microscopy_like(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """Smooth cells plus Gaussian noise (zstd + bitshuffle ratio about 2.4, like real data)."""
    rng = np.random.default_rng(seed)
    *lead, z, y, x = shape
    zz, yy, xx = np.ogrid[:z, :y, :x]
    base = (400 + 300 * np.sin(xx / 23.0) * np.cos(yy / 31.0) * np.cos(zz / 7.0)).astype(np.float32)
    out = np.empty(shape, np.uint16)
    for i, index in enumerate(np.ndindex(*lead)):
        noise = rng.normal(0, 12, size=(z, y, x)).astype(np.float32)
        out[index] = np.clip(base + noise + 50 * i, 0, 65535)
    return out


def regions(shape: tuple[int, ...], chunks: tuple[int, ...]) -> list[tuple[slice, ...]]:
    grid = [range(0, n, c) for n, c in zip(shape, chunks, strict=True)]
    out = [()]
    for axis, starts in enumerate(grid):
        out = [(*r, slice(s, min(s + chunks[axis], shape[axis]))) for r in out for s in starts]
    return out


def loop_write(data: np.ndarray, out: Path, threads: int = THREADS) -> None:
    """The ceiling: compress + crc32c each chunk and write it to its own file, ``threads`` at a time."""
    import google_crc32c

    codec = numcodecs.Blosc(cname="zstd", clevel=3, shuffle=numcodecs.Blosc.BITSHUFFLE)
    out.mkdir(parents=True)

    def one(region: tuple[slice, ...]) -> int:
        encoded = codec.encode(np.ascontiguousarray(data[region]))
        checksum = google_crc32c.value(encoded).to_bytes(4, "little")
        name = out / ".".join(str(s.start) for s in region)
        with open(name, "wb") as fh:
            fh.write(encoded)
            fh.write(checksum)
        return len(encoded)

    with ThreadPoolExecutor(threads) as pool:
        sum(pool.map(one, regions(data.shape, CHUNKS)))


def _create(out: Path, data: np.ndarray) -> None:
    zarr.create_array(
        str(out),
        shape=data.shape,
        chunks=CHUNKS,
        dtype=data.dtype,
        compressors=[BloscCodec(cname="zstd", clevel=3, shuffle="bitshuffle"), Crc32cCodec()],
        fill_value=0,
        config={"write_empty_chunks": True},
    )


def zarr_write(data: np.ndarray, out: Path, pipeline: dict | None = None, threads: int = THREADS) -> None:
    """zarr-python, one ``array[region] = block`` per chunk from ``threads`` threads."""
    _create(out, data)
    with zarr.config.set(pipeline or {}):
        array = zarr.open_array(str(out), mode="r+")

    def one(region: tuple[slice, ...]) -> None:
        array[region] = data[region]

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, regions(data.shape, CHUNKS)))


def tensorstore_write(data: np.ndarray, out: Path, threads: int = THREADS) -> None:
    """tensorstore zarr3 driver, same codecs, ``threads`` for copies and file I/O, one write per chunk."""
    import tensorstore as ts

    spec = {
        "driver": "zarr3",
        "kvstore": {"driver": "file", "path": str(out)},
        "metadata": {
            "shape": list(data.shape),
            "data_type": "uint16",
            "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": list(CHUNKS)}},
            "codecs": [
                {"name": "bytes", "configuration": {"endian": "little"}},
                {"name": "blosc", "configuration": {"cname": "zstd", "clevel": 3, "shuffle": "bitshuffle"}},
                {"name": "crc32c"},
            ],
            "fill_value": 0,
        },
        "context": {"data_copy_concurrency": {"limit": threads}, "file_io_concurrency": {"limit": threads}},
        "create": True,
        "delete_existing": True,
    }
    store = ts.open(spec).result()
    futures = [store[region].write(data[region]) for region in regions(data.shape, CHUNKS)]
    for future in futures:
        future.result()


def ours_write(data: np.ndarray, out: Path, pipeline: str) -> None:
    import dask

    from ome_arrow_dask import OMEArrow

    with dask.config.set(scheduler="threads", num_workers=THREADS):
        OMEArrow(data, dims="TCZYX").export(
            "ome-zarr", out=str(out), chunks=CHUNKS, compressor="zstd", clevel=3, codec_pipeline=pipeline
        )


def _installed(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


def _read_back(out: Path) -> np.ndarray:
    """Through zarr-python's default pipeline (checks every crc32c)."""
    with zarr.config.set({"codec_pipeline.path": "zarr.core.codec_pipeline.BatchedCodecPipeline"}):
        node = zarr.open(str(out), mode="r")
        array = node["0"] if isinstance(node, zarr.Group) else node
        return np.asarray(array[:])


def run(quick: bool, repeats: int | None = None) -> list[dict]:
    shape = (1, 2, 64, 512, 1024) if quick else (1, 4, 128, 1024, 1024)
    repeats = repeats or 3
    data = microscopy_like(shape)
    nbytes = data.nbytes
    cases: dict[str, Callable[[Path], None]] = {"loop": lambda out: loop_write(data, out)}
    cases["zarr default pipeline"] = lambda out: zarr_write(data, out)
    if _installed("zarrs"):
        cases["zarr + zarrs pipeline"] = lambda out: zarr_write(data, out, ZARRS)
    if _installed("tensorstore"):
        cases["tensorstore"] = lambda out: tensorstore_write(data, out)
    cases["ours, default pipeline"] = lambda out: ours_write(data, out, "default")
    if _installed("zarrs"):
        cases["ours, zarrs pipeline"] = lambda out: ours_write(data, out, "zarrs")
    times: dict[str, list[float]] = {name: [] for name in cases}
    cpus: dict[str, list[float]] = {name: [] for name in cases}
    equal: dict[str, bool] = {}
    with tempfile.TemporaryDirectory(prefix="bench_zarr_write_") as tmp_name:
        tmp = Path(tmp_name)
        for name, case in cases.items():  # warm-up: imports, first-call costs
            out = tmp / "warm"
            case(out)
            if name != "loop":
                equal[name] = bool(np.array_equal(_read_back(out), data))
            shutil.rmtree(out)
            shutil.rmtree(f"{out}.progress", ignore_errors=True)
        for _ in range(repeats):
            for name, case in cases.items():
                out = tmp / "out"
                cpu, start = time.process_time(), time.perf_counter()
                case(out)
                times[name].append(time.perf_counter() - start)
                cpus[name].append(time.process_time() - cpu)
                shutil.rmtree(out)
    loop, loop_cpu = statistics.median(times["loop"]), statistics.median(cpus["loop"])
    results = []
    for name, values in times.items():
        if name == "loop":
            continue
        seconds, cpu = statistics.median(values), statistics.median(cpus[name])
        results.append(
            {
                "case": f"zarr v3 write {nbytes / 2**20:.0f} MiB, zstd+bitshuffle+crc32c, {THREADS} threads: "
                f"{name} vs the loop",
                "ours": {"seconds": seconds, "mb_per_s": nbytes / 1e6 / seconds, "cpu_s": cpu, "all_s": values},
                "baseline": {
                    "seconds": loop,
                    "mb_per_s": nbytes / 1e6 / loop,
                    "cpu_s": loop_cpu,
                    "all_s": times["loop"],
                },
                "ratio": loop / seconds,
                "cpu_ratio": loop_cpu / cpu,
                "ratio_meaning": "fraction of the loop's speed reached (1.0 = at the ceiling); cpu_ratio: the same "
                "with CPU seconds of the process (steadier on a shared machine)",
                "read_back_equal_default_pipeline": equal.get(name),
            }
        )
    return results


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps(run(quick="--quick" in sys.argv), indent=1))
