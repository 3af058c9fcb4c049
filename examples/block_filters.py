"""Block-wise filters with halos: ``map_blocks`` against dask-image's ``ndfilters``.

Generates a small 2-channel volume, smooths it block by block with a halo, computes a
difference of Gaussians from two inputs, and a median filter; each result is compared
with ``dask_image.ndfilters`` on the same dask array (max abs difference printed). The
smoothed image is then written to OME-Zarr under ``out/block_filters/``. Runs in a few
seconds::

    pip install -e ".[examples]"     # dask-image and scipy
    python examples/block_filters.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
from dask_image import ndfilters
from scipy import ndimage as ndi

from ome_arrow_dask import Block, OMEArrow, map_blocks

OUT = Path(__file__).resolve().parents[1] / "out" / "block_filters"
SIGMA = (0.0, 0.0, 1.0, 2.0, 2.0)  # no smoothing across T or C
HALO = {"z": 4, "y": 8, "x": 8}  # scipy's Gaussian radius: int(4 * sigma + 0.5)


def make_sample() -> np.ndarray:
    """Noisy blobs, 2 channels, 16 z-planes of 192 x 192 (TCZYX, float32)."""
    rng = np.random.default_rng(0)
    z, y, x = np.ogrid[:16, :192, :192]
    blobs = np.sin(x / 11.0) * np.cos(y / 17.0) * np.cos(z / 3.0)
    data = np.stack([blobs * (c + 1) for c in range(2)])[None] + rng.normal(0, 0.3, (1, 2, 16, 192, 192))
    return data.astype(np.float32)


def smooth(block: Block) -> None:
    """Fill the output block with the Gaussian of the padded input, halo removed."""
    block.data[...] = ndi.gaussian_filter(block.inputs[0], SIGMA)[block.halo]


def report(name: str, ours: OMEArrow, theirs: object, scipy_whole: np.ndarray) -> None:
    """Print the time of our plan and its max abs difference to dask-image and to whole-array scipy.

    Fails when the plan differs from whole-array scipy (the oracle), so CI catches a wrong halo.
    """
    started = time.perf_counter()
    mine = ours.to_numpy()
    elapsed = time.perf_counter() - started
    other = np.asarray(theirs.compute())  # type: ignore[attr-defined]
    print(
        f"{name:<26} {elapsed * 1000:6.0f} ms   max |ours - dask-image| = {np.abs(mine - other).max():<8.3g}"
        f"max |ours - scipy| = {np.abs(mine - scipy_whole).max():.3g}"
    )
    if not np.allclose(mine, scipy_whole, rtol=0, atol=1e-4):
        raise SystemExit(f"{name}: the block-wise result differs from whole-array scipy")


def main() -> int:
    data = make_sample()
    img = OMEArrow(data, dim_order="TCZYX", chunks=(1, 1, 8, 96, 96)).with_cache(max_bytes="256MiB")
    print(f"input: shape {img.shape} {img.dtype}, blocks of {tuple(max(c) for c in img.chunks)}\n")
    array = img.to_dask()

    smoothed = map_blocks(smooth, img, halo=HALO, dtype="float32")
    report("gaussian_filter", smoothed, ndfilters.gaussian_filter(array, SIGMA), ndi.gaussian_filter(data, SIGMA))

    wide = map_blocks(lambda b: ndi.gaussian_filter(b.inputs[0], (0, 0, 2, 4, 4)), img, halo={"z": 8, "y": 16, "x": 16})
    dog = map_blocks(lambda b: b.inputs[0] - b.inputs[1], smoothed, wide)  # two inputs, no halo
    theirs = ndfilters.gaussian_filter(array, SIGMA) - ndfilters.gaussian_filter(array, (0, 0, 2, 4, 4))
    oracle = ndi.gaussian_filter(data, SIGMA) - ndi.gaussian_filter(data, (0, 0, 2, 4, 4))
    report("difference of Gaussians", dog, theirs, oracle)

    size = (1, 1, 3, 3, 3)
    median = map_blocks(lambda b: ndi.median_filter(b.inputs[0], size), img, halo=(0, 0, 1, 1, 1))
    report("median_filter", median, ndfilters.median_filter(array, size), ndi.median_filter(data, size))

    periodic = map_blocks(
        lambda b: ndi.uniform_filter(b.inputs[0], size), img, halo=(0, 0, 1, 1, 1), boundary="periodic"
    )
    # dask-image pads with boundary="none" and lets scipy wrap inside each block, so its
    # "wrap" differs from whole-array scipy at the image edges; boundary="periodic" does not.
    theirs = ndfilters.uniform_filter(array, size, mode="wrap")
    report("uniform_filter (periodic)", periodic, theirs, ndi.uniform_filter(data, size, mode="wrap"))

    print(f"\ninput chunk cache: {img.source.cache_info()}")  # type: ignore[attr-defined]
    OUT.mkdir(parents=True, exist_ok=True)
    path = smoothed.export(how="ome-zarr", out=OUT / "smoothed.ome.zarr", overwrite=True)
    back = OMEArrow.scan(path)
    print(f"wrote {path}: {back.shape} {back.dtype}, equal: {np.array_equal(back.to_numpy(), smoothed.to_numpy())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
