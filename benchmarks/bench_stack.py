"""Folders of small TIFFs: graph build, key count and full-sum time against the usual recipes.

Ours: ``OMEArrow.scan(folder, pattern="img_t{t}_z{z}.tif").to_dask()`` (one layer, one task per
file). Baselines: ``da.block`` over ``da.from_delayed(dask.delayed(tifffile.imread))`` per file,
and ``tifffile.TiffSequence(...).aszarr()`` + ``da.from_zarr``. Files are generated in a temp dir.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import dask
import dask.array as da
import numpy as np
import tifffile
from _measure import best_of, ratio

from ome_arrow_dask import OMEArrow

SHAPE = (64, 64)
PATTERN = "img_t{t}_z{z}.tif"
REGEX = r"img_t(?P<t>\d+)_z(?P<z>\d+)\.tif"


def _write(folder: Path, n_t: int, n_z: int) -> list[Path]:
    data = np.arange(np.prod(SHAPE), dtype=np.uint16).reshape(SHAPE)
    files = []
    for t in range(n_t):
        for z in range(n_z):
            path = folder / f"img_t{t}_z{z}.tif"
            tifffile.imwrite(path, data)
            files.append(path)
    return files


def _ours(folder: Path) -> da.Array:
    return OMEArrow.scan(folder, pattern=PATTERN).to_dask()


def _block(files: list[Path], n_t: int, n_z: int) -> da.Array:
    read = dask.delayed(tifffile.imread, pure=True)
    pieces = [da.from_delayed(read(str(f)), SHAPE, np.uint16) for f in files]
    return da.block([[[pieces[t * n_z + z][None, None, None]] for z in range(n_z)] for t in range(n_t)])


def _zarr(files: list[Path]) -> da.Array:
    store = tifffile.TiffSequence([str(f) for f in files], pattern=REGEX).aszarr()
    return da.from_zarr(store)


def _build_stats(make, repeat: int) -> dict[str, float]:
    stats = best_of(make, repeat=repeat)
    stats["keys"] = len(dict(make().__dask_graph__()))
    return stats


def _sum_time(make, repeat: int) -> dict[str, float]:
    array = make()
    total = int(array.sum(dtype=np.uint64).compute())  # warm-up (imports, OS cache)
    stats = best_of(lambda: array.sum(dtype=np.uint64).compute(), repeat=repeat)
    stats["sum"] = total
    return stats


def run(quick: bool) -> list[dict]:
    n_t, n_z = (10, 30) if quick else (30, 100)
    n_files = n_t * n_z
    repeat = 3 if quick else 5
    results = []
    with tempfile.TemporaryDirectory(prefix="bench_stack_") as tmp:
        folder = Path(tmp)
        files = _write(folder, n_t, n_z)
        makers = {
            "ours": lambda: _ours(folder),
            "da.block(delayed imread)": lambda: _block(files, n_t, n_z),
            "TiffSequence.aszarr + from_zarr": lambda: _zarr(files),
        }
        builds = {name: _build_stats(make, repeat) for name, make in makers.items()}
        sums = {name: _sum_time(make, 3 if quick else 2) for name, make in makers.items()}
    for name in list(makers)[1:]:
        results.append(
            {
                "case": f"graph build, {n_files} files of {SHAPE} uint16, vs {name}",
                "ours": builds["ours"],
                "baseline": builds[name],
                "ratio": ratio(builds["ours"], builds[name]),
            }
        )
        results.append(
            {
                "case": f"full sum, {n_files} files (threads), vs {name}",
                "ours": sums["ours"],
                "baseline": sums[name],
                "ratio": ratio(sums["ours"], sums[name]),
                "same_result": sums["ours"]["sum"] == sums[name]["sum"],
            }
        )
    return results
