"""Planner and DLPack costs, side by side with what users do without us.

- plan + explain of a crop over a big virtual image (no reads) vs building the same
  crop with ``da.from_array`` + slicing (what a dask user writes);
- DLPack export of a view to torch (zero-copy) vs ``torch.from_numpy(arr.copy())``.
"""

from __future__ import annotations

import numpy as np
from _measure import best_of, ratio

from ome_arrow_dask import ImageMeta, OMEArrow
from ome_arrow_dask.meta import regular_chunks


class VirtualSource:
    """Metadata-only source: planning must never call read_chunk."""

    def __init__(self, shape, chunk_shape):
        self.meta = ImageMeta(shape=shape, dtype=np.uint16, chunks=regular_chunks(shape, chunk_shape))
        self.token = f"virtual-{shape}-{chunk_shape}"

    def read_chunk(self, chunk_coords):
        raise AssertionError("planning read pixels")

    def describe(self):
        return "virtual source"


def _plan_case(quick: bool) -> dict:
    shape = (10, 3, 64, 8192, 8192) if not quick else (2, 3, 16, 2048, 2048)
    chunk_shape = (1, 1, 16, 512, 512)
    source = VirtualSource(shape, chunk_shape)

    def ours():
        crop = OMEArrow(source).slice_lazy(1000, 1512, 1500, 2012, t_indices=[1], z_indices=range(8))
        crop.explain()
        crop.to_dask()

    def dask_user():
        import dask.array as da

        lazy = da.zeros(shape, chunks=chunk_shape, dtype=np.uint16)
        lazy[1:2, :, 0:8, 1500:2012, 1000:1512]

    a, b = best_of(ours), best_of(dask_user)
    return {
        "case": f"plan+explain+graph of a 512x512x8 crop, image {shape}, chunks {chunk_shape}",
        "ours": a,
        "baseline": {"what": "da.zeros(shape, chunks) + slice (graph only)", **b},
        "ratio": ratio(a, b),
    }


def _dlpack_case(quick: bool) -> dict:
    import torch

    shape = (1, 1, 16, 2048, 2048) if not quick else (1, 1, 4, 512, 512)
    array = np.random.default_rng(0).integers(0, 60000, size=shape, dtype=np.uint16)
    view = OMEArrow(array, dim_order="TCZYX").tensor_view(t=0, c=0, layout="ZYX")
    view.to_numpy()  # materialise once; both sides start from host memory

    def ours():
        tensor = torch.from_dlpack(view)
        assert tensor.data_ptr() == view.to_numpy().ctypes.data

    def copy():
        torch.from_numpy(view.to_numpy().copy())

    a, b = best_of(ours, 20), best_of(copy, 5)
    return {
        "case": f"export a {view.nbytes / 2**20:.0f} MiB view to torch",
        "ours": {"what": "torch.from_dlpack(view), zero-copy", **a},
        "baseline": {"what": "torch.from_numpy(arr.copy())", **b},
        "ratio": ratio(a, b),
    }


def run(quick: bool) -> list[dict]:
    return [_plan_case(quick), _dlpack_case(quick)]
