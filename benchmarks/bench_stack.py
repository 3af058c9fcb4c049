"""Folders of TIFFs: graph build, full sum, one-plane read and peak RSS against the usual recipes.

Ours: ``OMEArrow.scan(folder, pattern="img_t{t}_z{z}.tif")`` (one layer, one task per file,
pages decoded only where the selection needs them). Baselines, as users write them:

- ``da.block`` over ``da.from_delayed(dask.delayed(tifffile.imread))`` per file;
- ``tifffile.TiffSequence("folder/img_*.tif", pattern=regex).aszarr()`` + ``da.from_zarr``
  (it lists the folder itself, as ours does);
- ``dask.array.image.imread(glob, imread=tifffile.imread)`` (files in alphabetical order);
- ``dask_image.imread.imread(glob)`` (pims; 2-D files only).

Two folders are generated in a temp dir: many small 2-D planes, and a few Z-stack files
where a one-plane read shows the page-level reads (ceiling: ``tifffile.imread(key=z)``).
Peak RSS is sampled during each call (growth above the RSS at its start).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

import dask
import dask.array as da
import dask.array.image
import dask_image.imread
import numpy as np
import tifffile
from _measure import best_of, peak_rss_delta_mib, ratio

from ome_arrow_dask import OMEArrow

PLANE = (64, 64)
PATTERN = "img_t{t}_z{z}.tif"
REGEX = r"img_t(?P<t>\d+)_z(?P<z>\d+)\.tif"


def _write_planes(folder: Path, n_t: int, n_z: int) -> list[Path]:
    data = np.arange(np.prod(PLANE), dtype=np.uint16).reshape(PLANE)
    files = []
    for t in range(n_t):
        for z in range(n_z):
            path = folder / f"img_t{t}_z{z}.tif"
            tifffile.imwrite(path, data + t + z)
            files.append(path)
    return files


def _write_stacks(folder: Path, n_t: int, stack: tuple[int, int, int]) -> list[Path]:
    rng = np.random.default_rng(0)
    files = []
    for t in range(n_t):
        path = folder / f"img_t{t}_z0.tif"
        tifffile.imwrite(path, rng.integers(0, 4096, size=stack, dtype=np.uint16), metadata={"axes": "ZYX"})
        files.append(path)
    return files


def _makers(folder: Path, files: list[Path], n_t: int, n_z: int, shape: tuple[int, ...]) -> dict[str, Callable]:
    def block() -> da.Array:
        read = dask.delayed(tifffile.imread, pure=True)
        pieces = [da.from_delayed(read(str(f)), shape, np.uint16) for f in files]
        return da.block([[[[pieces[t * n_z + z][None, None]]] for z in range(n_z)] for t in range(n_t)])  # (T, Z, Y, X)

    makers = {
        "ours": lambda: OMEArrow.scan(folder, pattern=PATTERN).to_dask(),
        "da.block(delayed imread)": block,
        "TiffSequence.aszarr + from_zarr": lambda: da.from_zarr(
            tifffile.TiffSequence(str(folder / "img_*.tif"), pattern=REGEX).aszarr()
        ),
        "dask.array.image.imread": lambda: dask.array.image.imread(str(folder / "img_*.tif"), imread=tifffile.imread),
    }
    if len(shape) == 2:
        makers["dask_image.imread"] = lambda: dask_image.imread.imread(str(folder / "img_*.tif"))
    return makers


def _one_plane(
    name: str, folder: Path, files: list[Path], t: int, z: int, n_z: int, stacked: bool, makers: dict | None = None
) -> Callable:
    """Build (from scratch) and read one plane, as a user asking for plane (t, z) would."""
    index = sorted(str(f) for f in files).index(str(files[t * n_z + (0 if stacked else z)]))
    if name == "ours":
        return lambda: OMEArrow.scan(folder, pattern=PATTERN).tensor_view(t=t, z=z, layout="YX").to_numpy()
    if name == "TiffSequence.aszarr + from_zarr":
        seq = lambda: da.from_zarr(tifffile.TiffSequence(str(folder / "img_*.tif"), pattern=REGEX).aszarr())  # noqa: E731
        return lambda: seq()[(t, z) if not stacked else (t, 0, z)].compute()
    if name == "dask.array.image.imread":
        glob_ = str(folder / "img_*.tif")
        if stacked:
            return lambda: dask.array.image.imread(glob_, imread=tifffile.imread)[index, z].compute()
        return lambda: dask.array.image.imread(glob_, imread=tifffile.imread)[index].compute()
    if name == "dask_image.imread":
        return lambda: dask_image.imread.imread(str(folder / "img_*.tif"))[index].compute()
    if name == "da.block(delayed imread)":
        return lambda: makers[name]()[t, z].compute()
    if name == "tifffile.imread(key=z) (ceiling)":
        return lambda: tifffile.imread(files[t * n_z], key=z)
    raise KeyError(name)


def _compare(case: str, measured: dict[str, dict], extra: dict | None = None) -> list[dict]:
    out = []
    for name, stats in measured.items():
        if name == "ours":
            continue
        row = {"case": f"{case}, vs {name}", "ours": measured["ours"], "baseline": stats}
        row["ratio"] = ratio(measured["ours"], stats)
        row.update(extra or {})
        out.append(row)
    return out


def _planes_cases(tmp: Path, quick: bool) -> list[dict]:
    n_t, n_z = (6, 50) if quick else (24, 100)
    repeat = 3 if quick else 5
    folder = tmp / "planes"
    folder.mkdir()
    files = _write_planes(folder, n_t, n_z)
    makers = _makers(folder, files, n_t, n_z, PLANE)
    label = f"{len(files)} files of {PLANE} uint16"
    builds, sums, planes = {}, {}, {}
    for name, make in makers.items():
        builds[name] = best_of(make, repeat=repeat) | {"keys": len(dict(make().__dask_graph__()))}
        array = make()
        total = int(array.sum(dtype=np.uint64).compute())  # warm-up: OS cache, imports
        total, rss = peak_rss_delta_mib(lambda a=array: int(a.sum(dtype=np.uint64).compute()))
        sums[name] = best_of(lambda a=array: a.sum(dtype=np.uint64).compute(), repeat=2) | {
            "sum": total,
            "peak_rss_delta_mib": rss,
        }
        plane = _one_plane(name, folder, files, n_t - 1, n_z // 2, n_z, stacked=False, makers=makers)
        planes[name] = best_of(plane, repeat=repeat)
    same = len({s["sum"] for s in sums.values()}) == 1
    return (
        _compare(f"graph build, {label}", builds)
        + _compare(f"full sum (threads), {label}", sums, {"all_sums_equal": same})
        + _compare(f"one plane incl. building, {label}", planes)
    )


def _stack_cases(tmp: Path, quick: bool) -> list[dict]:
    n_t, stack = (4, (16, 512, 512)) if quick else (16, (32, 512, 512))
    folder = tmp / "stacks"
    folder.mkdir()
    files = _write_stacks(folder, n_t, stack)
    label = f"{n_t} ZYX files of {stack} uint16"
    names = ["ours", "TiffSequence.aszarr + from_zarr", "dask.array.image.imread", "tifffile.imread(key=z) (ceiling)"]
    planes = {}
    for name in names:
        plane = _one_plane(name, folder, files, n_t - 1, stack[0] // 2, 1, stacked=True)
        planes[name] = best_of(plane, repeat=5)
        _, planes[name]["peak_rss_delta_mib"] = peak_rss_delta_mib(plane)
    return _compare(f"one plane of a Z-stack file incl. building, {label}", planes)


def run(quick: bool) -> list[dict]:
    with tempfile.TemporaryDirectory(prefix="bench_stack_") as tmp:
        return _planes_cases(Path(tmp), quick) + _stack_cases(Path(tmp), quick)
