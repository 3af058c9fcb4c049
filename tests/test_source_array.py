"""The in-memory array source meets the Source contract for every input kind."""

from __future__ import annotations

import dask.array as da
import numpy as np
from source_contract import SourceContract

from ome_arrow_dask.sources.base import ArraySource


class TestNumpySource(SourceContract):
    def make_source(self, tmp_path):
        data = np.random.default_rng(0).integers(-5, 300, size=(2, 3, 5, 17, 13)).astype(np.int16)
        return ArraySource(data, "TCZYX", chunks=(1, 2, 2, 5, 4)), data


class TestNumpyYXCSource(SourceContract):
    def make_source(self, tmp_path):
        rgb = np.random.default_rng(1).integers(0, 255, size=(9, 11, 3)).astype(np.uint8)
        return ArraySource(rgb, "YXC"), rgb.transpose(2, 0, 1)[None, :, None]


class TestDaskSource(SourceContract):
    def make_source(self, tmp_path):
        data = np.random.default_rng(2).random((3, 7, 10)).astype(np.float32)
        return ArraySource(da.from_array(data, chunks=(2, 3, 10)), "ZYX"), data[None, None]


class TestTorchSource(SourceContract):
    def make_source(self, tmp_path):
        import torch

        data = torch.arange(2 * 3 * 4 * 5, dtype=torch.int32).reshape(2, 3, 4, 5)
        return ArraySource(data), data.numpy().reshape(2, 3, 1, 4, 5)
