"""ROI reads from a large OME-Zarr and a large tiled OME-TIFF: ours vs zarr / tifffile.

Ours is ``OMEArrow.scan(p).slice_lazy(...).collect()``; the baselines are direct zarr
slicing and ``tifffile.imread(selection=...)``. Both sides run in this process, timed
with ``best_of`` and measured with tracemalloc (numpy buffers are traced) for the peak
bytes allocated by one ROI read; ``peak_rss_mib`` is the process peak so far.
"""

from __future__ import annotations

import tempfile
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import tifffile
import zarr
from _measure import best_of, peak_rss_mib, ratio

from ome_arrow_dask import OMEArrow

C, Z = 2, 4
TILE = 256


def _plane(c: int, z: int, size: int) -> np.ndarray:
    y = np.arange(size, dtype=np.uint32)[:, None]
    x = np.arange(size, dtype=np.uint32)[None, :]
    return ((y * 7 + x * 3 + c * 1000 + z * 100) % 4096).astype(np.uint16)


def _tiles(size: int) -> Iterator[np.ndarray]:
    for c in range(C):
        for z in range(Z):
            plane = _plane(c, z, size)
            for ty in range(0, size, TILE):
                for tx in range(0, size, TILE):
                    yield plane[ty : ty + TILE, tx : tx + TILE]


def _write_zarr(path: Path, size: int) -> Path:
    root = zarr.open_group(str(path), mode="w", zarr_format=3)
    arr = root.create_array("0", shape=(1, C, Z, size, size), chunks=(1, 1, 1, TILE, TILE), dtype="uint16")
    for c in range(C):
        for z in range(Z):
            arr[0, c, z] = _plane(c, z, size)
    axes = [
        {"name": n, "type": t} for n, t in zip("tczyx", ["time", "channel", "space", "space", "space"], strict=True)
    ]
    scale = [{"type": "scale", "scale": [1, 1, 1, 0.5, 0.5]}]
    root.attrs["ome"] = {
        "version": "0.5",
        "multiscales": [{"axes": axes, "datasets": [{"path": "0", "coordinateTransformations": scale}]}],
    }
    return path


def _write_tiff(path: Path, size: int) -> Path:
    tifffile.imwrite(
        path,
        _tiles(size),
        shape=(C, Z, size, size),
        dtype="uint16",
        tile=(TILE, TILE),
        compression="zlib",
        photometric="minisblack",
        ome=True,
        metadata={"axes": "CZYX"},
    )
    return path


def _traced_peak_mib(func: Callable[[], object]) -> float:
    tracemalloc.start()
    try:
        func()
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def _case(name: str, ours: Callable[[], object], baseline: Callable[[], object], repeat: int, **info: object) -> dict:
    ours_t = best_of(ours, repeat)
    base_t = best_of(baseline, repeat)
    ours_t["peak_traced_mib"] = _traced_peak_mib(ours)
    base_t["peak_traced_mib"] = _traced_peak_mib(baseline)
    ours_t["peak_rss_mib"] = base_t["peak_rss_mib"] = peak_rss_mib()
    return {
        "case": name,
        **info,
        "ours": ours_t,
        "baseline": base_t,
        "ratio": ratio(ours_t, base_t),
        "ratio_mem": ratio(ours_t, base_t, "peak_traced_mib"),
    }


def run(quick: bool) -> list[dict]:
    """Side-by-side ROI reads; ``quick`` uses 1024² planes, else 8192² (256 MiB per 2 planes)."""
    size = 1024 if quick else 8192
    repeat = 3 if quick else 5
    y0, x0, roi = size // 3, size // 2 + 17, 300
    z = Z // 2
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        zpath = _write_zarr(Path(tmp) / "big.ome.zarr", size)
        tpath = _write_tiff(Path(tmp) / "big.ome.tif", size)
        expected = _plane(1, z, size)[y0 : y0 + roi, x0 : x0 + roi]

        def ours_zarr() -> np.ndarray:
            img = OMEArrow.scan(zpath).slice_lazy(x0, x0 + roi, y0, y0 + roi, c_indices=[1], z_indices=[z])
            return img.collect().to_numpy()

        def base_zarr() -> np.ndarray:  # open + slice, like tifffile.imread and OMEArrow.scan
            return zarr.open_array(str(zpath / "0"), mode="r")[0, 1, z, y0 : y0 + roi, x0 : x0 + roi]

        def ours_tiff() -> np.ndarray:
            img = OMEArrow.scan(tpath).slice_lazy(x0, x0 + roi, y0, y0 + roi, c_indices=[1], z_indices=[z])
            return img.collect().to_numpy()

        def base_tiff() -> np.ndarray:
            return tifffile.imread(tpath, selection=(1, z, slice(y0, y0 + roi), slice(x0, x0 + roi)), maxworkers=1)

        for ours, base in [(ours_zarr, base_zarr), (ours_tiff, base_tiff)]:
            np.testing.assert_array_equal(np.asarray(ours()).reshape(roi, roi), expected)
            np.testing.assert_array_equal(np.asarray(base()).reshape(roi, roi), expected)
        info = {"image": f"1x{C}x{Z}x{size}x{size} uint16", "roi": f"{roi}x{roi}", "chunk": f"{TILE}x{TILE}"}
        out.append(_case("roi-ome-zarr vs zarr slicing", ours_zarr, base_zarr, repeat, **info))
        out.append(_case("roi-ome-tiff vs tifffile.imread(selection)", ours_tiff, base_tiff, repeat, **info))
    return out
