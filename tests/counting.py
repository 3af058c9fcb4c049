"""A source that counts pixel reads, to prove what reads pixels and what does not."""

from __future__ import annotations

import threading
from collections import Counter

import numpy as np

from ome_arrow_dask.sources.base import ArraySource


class CountingSource(ArraySource):
    """An in-memory source that records every ``read_chunk`` call (thread-safe).

    Optional ``on_read`` is called with the chunk coords after each read (used to
    synchronise prefetch tests without timing).
    """

    def __init__(self, data: np.ndarray, dim_order: str = "TCZYX", *, chunks=None, on_read=None) -> None:
        super().__init__(data, dim_order, chunks=chunks)
        self.reads: Counter[tuple[int, ...]] = Counter()
        self._reads_lock = threading.Lock()
        self.on_read = on_read

    def read_chunk(self, chunk_coords):
        block = super().read_chunk(chunk_coords)
        with self._reads_lock:
            self.reads[tuple(chunk_coords)] += 1
        if self.on_read is not None:
            self.on_read(tuple(chunk_coords))
        return block

    @property
    def total_reads(self) -> int:
        return sum(self.reads.values())
