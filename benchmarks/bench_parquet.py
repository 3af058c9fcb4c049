"""Crops out of OME-Arrow Parquet: ours vs ome-arrow 0.1.0, in one process.

- typed chunk dataset directory: ``OMEArrow.scan(dir).slice_lazy(...).collect()`` vs
  ome-arrow's ``OMEArrowDataset(dir).read_region(...)`` (its fastest crop path);
- single-row byte-payload file: ours vs ome-arrow's ``OMEArrow.scan(p).tensor_view(...)``
  (which loads the whole record).
Time is the median of repeated runs, each opening the file afresh; memory is the
tracemalloc peak of one run (Python allocations, numpy/pyarrow buffers included).
"""

from __future__ import annotations

import tempfile
import tracemalloc
from pathlib import Path

import numpy as np
from _measure import best_of, ratio

from ome_arrow_dask import OMEArrow


def _peak_mib(func) -> float:
    tracemalloc.start()
    func()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 2**20


def _image(shape) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.poisson(200, size=shape).astype(np.uint16)


def _side_by_side(name, ours, theirs, what_theirs, repeat) -> dict:
    a, b = best_of(ours, repeat), best_of(theirs, repeat)
    a["tracemalloc_peak_mib"], b["tracemalloc_peak_mib"] = _peak_mib(ours), _peak_mib(theirs)
    return {"case": name, "ours": a, "baseline": {"what": what_theirs, **b}, "ratio": ratio(a, b)}


def run(quick: bool) -> list[dict]:
    from ome_arrow import OMEArrow as OmeArrowOriginal
    from ome_arrow import OMEArrowDataset

    from ome_arrow_dask.sources._parquet_struct import clear_payload_cache

    shape = (1, 2, 4, 1024, 1024) if quick else (1, 2, 8, 2048, 2048)
    data = _image(shape)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        dataset = Path(tmp) / "volume.ome.parquet"
        OMEArrow(data, dim_order="TCZYX").export("parquet", out=dataset, chunk_shape=(1, 1, 1, 256, 256))
        roi = (300, 556, 600, 856)  # x0, x1, y0, y1: 256 x 256, not chunk-aligned

        def ours_dataset():
            OMEArrow.scan(dataset).slice_lazy(*roi, c_indices=[1], z_indices=[2]).collect()

        def theirs_dataset():
            OMEArrowDataset(str(dataset)).read_region(y=slice(roi[2], roi[3]), x=slice(roi[0], roi[1]), c=1, z=2)

        np.testing.assert_array_equal(
            OMEArrow.scan(dataset).slice_lazy(*roi, c_indices=[1], z_indices=[2]).to_numpy(),
            data[:, 1:2, 2:3, roi[2] : roi[3], roi[0] : roi[1]],
        )
        results.append(
            _side_by_side(
                f"256x256 crop of one plane, dataset dir {shape}, chunks 256x256",
                ours_dataset,
                theirs_dataset,
                "ome_arrow.OMEArrowDataset(dir).read_region",
                5,
            )
        )

        single = Path(tmp) / "one.ome.parquet"
        small = data[:, :, :2, :1024, :1024]
        OMEArrow(small, dim_order="TCZYX").export(
            "parquet", out=single, layout="struct", chunk_shape=(1, 1, 1, 256, 256)
        )

        def ours_single():
            clear_payload_cache()  # measure a cold read of the payload column each time
            OMEArrow.scan(single).slice_lazy(*roi, c_indices=[1], z_indices=[1]).collect()

        def theirs_single():
            OmeArrowOriginal.scan(str(single)).tensor_view(t=0, z=1, c=1).to_numpy()

        results.append(
            _side_by_side(
                f"256x256 crop of one plane, single-row byte file {small.shape}",
                ours_single,
                theirs_single,
                "ome_arrow.OMEArrow.scan(p).tensor_view(t,z,c).to_numpy() (whole plane; its slice_lazy fails here)",
                3,
            )
        )
    return results
