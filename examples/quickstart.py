"""Quickstart: open an OME-TIFF lazily, crop it, explain the plan, export tensors.

Generates its own sample (a tiled 3-channel OME-TIFF, 16 z-planes of 1024 x 1024)
under ``out/quickstart/`` so it runs on a fresh clone with nothing else::

    python examples/quickstart.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import tifffile

from ome_arrow_dask import OMEArrow

OUT = Path(__file__).resolve().parents[1] / "out" / "quickstart"


def make_sample(path: Path) -> np.ndarray:
    """Write a tiled OME-TIFF with channel names and physical sizes; return its pixels."""
    rng = np.random.default_rng(0)
    z, y, x = np.ogrid[:16, :1024, :1024]
    blobs = np.sin(x / 37.0) * np.cos(y / 53.0) * np.cos(z / 5.0)
    data = np.stack([(blobs * (c + 1) * 4000 + 20000).astype(np.uint16) for c in range(3)])
    data = (data + rng.poisson(50, size=data.shape)).astype(np.uint16)  # CZYX
    path.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(
        path,
        data,
        ome=True,
        tile=(256, 256),
        compression="zlib",
        metadata={
            "axes": "CZYX",
            "PhysicalSizeX": 0.325,
            "PhysicalSizeY": 0.325,
            "PhysicalSizeZ": 1.5,
            "Channel": {"Name": ["DNA", "Actin", "Mito"]},
        },
    )
    return data


def main() -> int:
    path = OUT / "cells.ome.tiff"
    data = make_sample(path)
    print(f"wrote {path} ({path.stat().st_size / 2**20:.1f} MiB on disk)")

    img = OMEArrow.scan(path)  # reads the header only
    print(f"\nscan: shape {img.shape} (TCZYX), dtype {img.dtype}, channels {img.meta.channel_names}")
    print(f"physical size: {img.meta.physical_size}")

    crop = img.slice_lazy(100, 612, 300, 812).slice_lazy(64, 320, 64, 320, z_indices=[0, 2], c_indices=[1])
    print("\n" + crop.explain())

    started = time.perf_counter()
    pixels = crop.collect().to_numpy()
    print(f"\ncollect: {pixels.shape} in {1000 * (time.perf_counter() - started):.0f} ms")
    expected = data[[1]][:, [0, 2], 364:620, 164:420][None]
    assert np.array_equal(pixels, expected), "crop differs from tifffile's pixels"
    print("crop equals tifffile.imread(...) of the same region")

    view = img.tensor_view(t=0, z=slice(0, 8), roi=(64, 64, 128, 128), layout="ZCYX")
    print(f"\ntensor_view: shape {view.shape} layout {view.layout} strides {view.strides}")
    try:
        import torch
    except ImportError:
        print("torch not installed: skipping the torch part (pip install 'ome-arrow-dask[torch]')")
    else:
        tensor = torch.from_dlpack(view)
        print(
            f"torch.from_dlpack(view): {tuple(tensor.shape)}, shares memory: "
            f"{tensor.data_ptr() == view.to_numpy().ctypes.data}"
        )
    batches = [cap.shape for cap in view.iter_dlpack(tile_size=(64, 64), shuffle=True, seed=7, prefetch=1)]
    print(f"iter_dlpack(tile_size=(64, 64), prefetch=1): {len(batches)} tiles of {batches[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
