"""The contract every Source implementation must meet.

Subclass :class:`SourceContract` in a ``test_*.py`` module and implement
``make_source(tmp_path) -> (source, expected)`` where ``expected`` is the numpy oracle
of the whole image as 5-D TCZYX (e.g. ``tifffile.imread`` reshaped). Every test here
then runs against that source.
"""

from __future__ import annotations

import itertools
import pickle

import numpy as np
import pytest

from ome_arrow_dask import OMEArrow
from ome_arrow_dask.errors import OmeArrowDaskError
from ome_arrow_dask.meta import ImageMeta
from ome_arrow_dask.sources.base import Source, chunk_slices


class SourceContract:
    """Base class: override :meth:`make_source`."""

    def make_source(self, tmp_path) -> tuple[Source, np.ndarray]:
        raise AssertionError("SourceContract subclasses must implement make_source(tmp_path)")

    @pytest.fixture
    def pair(self, tmp_path):
        return self.make_source(tmp_path)

    def test_is_a_source(self, pair):
        source, _ = pair
        assert isinstance(source, Source)
        assert isinstance(source.meta, ImageMeta)
        assert isinstance(source.describe(), str) and source.describe()

    def test_meta_matches_oracle(self, pair):
        source, expected = pair
        assert expected.ndim == 5
        assert source.meta.shape == expected.shape
        assert source.meta.dtype == expected.dtype
        assert len(source.meta.channels) == expected.shape[1]

    def test_chunks_tile_the_shape(self, pair):
        source, _ = pair
        for size, axis in zip(source.meta.shape, source.meta.chunks, strict=True):
            assert sum(axis) == size
            assert all(c > 0 for c in axis)

    def test_every_chunk_equals_oracle(self, pair):
        source, expected = pair
        grid = [range(n) for n in source.meta.numblocks]
        for coords in itertools.product(*grid):
            block = source.read_chunk(coords)
            region = expected[chunk_slices(source.meta, coords)]
            assert block.shape == region.shape, coords
            assert block.dtype == source.meta.dtype
            np.testing.assert_array_equal(block, region, err_msg=f"chunk {coords}")

    def test_pickle_round_trip_reads_the_same(self, pair):
        source, expected = pair
        clone = pickle.loads(pickle.dumps(source))
        assert clone.meta == source.meta
        assert clone.token == source.token
        last = tuple(n - 1 for n in source.meta.numblocks)
        np.testing.assert_array_equal(clone.read_chunk(last), expected[chunk_slices(source.meta, last)])

    def test_token_is_deterministic(self, pair):
        source, _ = pair
        assert source.token == source.token

    def test_chunk_outside_grid_raises(self, pair):
        source, _ = pair
        outside = tuple(source.meta.numblocks)
        with pytest.raises((OmeArrowDaskError, IndexError)):
            source.read_chunk(outside)

    def test_whole_image_through_omearrow(self, pair):
        source, expected = pair
        np.testing.assert_array_equal(OMEArrow(source).to_dask().compute(), expected)
