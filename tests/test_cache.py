"""The bounded LRU chunk cache: contract, bound, LRU order, hit counting, pickling, threads."""

from __future__ import annotations

import itertools
import pickle
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from counting import CountingSource
from source_contract import SourceContract

from ome_arrow_dask import OMEArrow
from ome_arrow_dask.cache import CachedSource, parse_max_bytes, with_cache
from ome_arrow_dask.errors import OmeArrowDaskError
from ome_arrow_dask.sources.base import ArraySource, chunk_slices

SHAPE = (2, 2, 5, 17, 13)
CHUNKS = (1, 2, 2, 6, 5)  # irregular edge chunks, so chunk sizes differ


@pytest.fixture
def data(rng) -> np.ndarray:
    return rng.integers(0, 60000, size=SHAPE).astype(np.uint16)


def _all_coords(source) -> list[tuple[int, ...]]:
    return list(itertools.product(*(range(n) for n in source.meta.numblocks)))


def _chunk_nbytes(source, coords) -> int:
    return int(np.prod([s.stop - s.start for s in chunk_slices(source.meta, coords)])) * source.meta.dtype.itemsize


class TestCachedSourceContract(SourceContract):
    def make_source(self, tmp_path):
        data = np.random.default_rng(5).random((2, 3, 4, 9, 11)).astype(np.float32)
        return CachedSource(ArraySource(data, "TCZYX", chunks=(1, 2, 3, 4, 5)), "1MiB"), data


def test_reread_is_served_from_memory(data):
    inner = CountingSource(data, chunks=CHUNKS)
    plan = with_cache(OMEArrow(inner), max_bytes="64MiB")
    np.testing.assert_array_equal(plan.to_numpy(), data)
    n = len(_all_coords(inner))
    assert inner.total_reads == n
    np.testing.assert_array_equal(plan.to_numpy(), data)
    assert inner.total_reads == n  # the second pass never reached the inner source
    info = plan.source.cache_info()
    assert (info.hits, info.misses, info.chunks) == (n, n, n)
    assert info.current_bytes == data.nbytes
    assert info.max_bytes == 64 * 2**20


def test_derived_plans_share_the_cache(data):
    inner = CountingSource(data, chunks=CHUNKS)
    cached = with_cache(OMEArrow(inner), max_bytes="64MiB")
    crop = cached.slice_lazy(0, 7, 0, 9, z_indices=[1, 2])
    np.testing.assert_array_equal(crop.to_numpy(), data[:, :, 1:3, 0:9, 0:7])
    first = inner.total_reads
    again = cached.slice_lazy(2, 6, 3, 8, z_indices=[1])  # inside the chunks already read
    np.testing.assert_array_equal(again.to_numpy(), data[:, :, 1:2, 3:8, 2:6])
    assert inner.total_reads == first
    assert again.source.cache_info().hits > 0


def test_selection_and_steps_kept(data):
    plan = OMEArrow(data, dim_order="TCZYX", chunks=CHUNKS).slice_lazy(1, 11, 2, 15, c_indices=[1])
    cached = with_cache(plan, max_bytes=10_000)
    assert cached.selection == plan.selection and cached.shape == plan.shape and cached.meta == plan.meta
    np.testing.assert_array_equal(cached.to_numpy(), plan.to_numpy())
    assert "with_cache" in cached.explain()
    assert "LRU chunk cache" in cached.source.describe()


def test_bound_never_exceeded_under_random_reads(data, rng):
    inner = CountingSource(data, chunks=CHUNKS)
    coords = _all_coords(inner)
    sizes = {c: _chunk_nbytes(inner, c) for c in coords}
    bound = 3 * max(sizes.values()) + 7  # a few chunks, never a multiple of a chunk size
    cache = CachedSource(inner, bound)
    for k in rng.integers(0, len(coords), size=600):
        c = coords[k]
        np.testing.assert_array_equal(cache.read_chunk(c), data[chunk_slices(inner.meta, c)])
        info = cache.cache_info()
        assert info.current_bytes <= bound
        assert info.current_bytes == sum(sizes[c] for c in cache.cached_chunks())
    info = cache.cache_info()
    assert info.hits + info.misses == 600
    assert inner.total_reads == info.misses
    assert 0 < info.hits < 600  # a bound this small both hits and evicts


def test_least_recently_used_is_evicted(data):
    inner = CountingSource(data, chunks=(1, 2, 1, 17, 13))  # equal-sized chunks
    a, b, c = (0, 0, 0, 0, 0), (0, 0, 1, 0, 0), (0, 0, 2, 0, 0)
    cache = CachedSource(inner, 2 * _chunk_nbytes(inner, a))  # room for two
    cache.read_chunk(a)
    cache.read_chunk(b)
    cache.read_chunk(a)  # a is now the most recent
    cache.read_chunk(c)  # evicts b
    assert cache.cached_chunks() == (a, c)
    before = dict(inner.reads)
    cache.read_chunk(a)
    assert inner.reads == before  # a was kept: a hit
    cache.read_chunk(b)
    assert inner.reads[b] == before[b] + 1  # b was evicted: read again
    assert cache.cached_chunks() == (a, b)  # c was the least recent


def test_chunk_larger_than_bound_is_not_cached(data):
    inner = CountingSource(data, chunks=CHUNKS)
    first = (0, 0, 0, 0, 0)
    cache = CachedSource(inner, _chunk_nbytes(inner, first) - 1)
    for _ in range(2):
        np.testing.assert_array_equal(cache.read_chunk(first), data[chunk_slices(inner.meta, first)])
    assert inner.reads[first] == 2
    assert cache.cache_info().current_bytes == 0 and cache.cached_chunks() == ()
    assert CachedSource(inner, 0).read_chunk(first).shape == (1, 2, 2, 6, 5)


def test_returned_chunks_are_read_only_views(data):
    inner = ArraySource(data, "TCZYX", chunks=CHUNKS)
    cache = CachedSource(inner, "1MiB")
    block = cache.read_chunk((0, 0, 0, 0, 0))
    assert not block.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        block[...] = 0
    assert np.shares_memory(block, data)  # zero-copy for in-memory sources
    assert data.flags.writeable  # the caller's own array keeps its flags
    assert not cache.read_chunk((0, 0, 0, 0, 0)).flags.writeable  # hits too


def test_pickle_keeps_the_bound_not_the_contents(data):
    inner = CountingSource(data, chunks=CHUNKS)
    cache = CachedSource(inner, "2MiB")
    cache.read_chunk((0, 0, 0, 0, 0))
    clone = pickle.loads(pickle.dumps(cache))
    assert clone.max_bytes == cache.max_bytes and clone.token == cache.token and clone.meta == cache.meta
    assert clone.cache_info() == (0, 0, 0, 2 * 2**20, 0)
    np.testing.assert_array_equal(clone.read_chunk((1, 0, 2, 2, 2)), data[chunk_slices(inner.meta, (1, 0, 2, 2, 2))])


def test_threads_share_one_consistent_cache(data, rng):
    inner = CountingSource(data, chunks=CHUNKS)
    coords = _all_coords(inner)
    bound = 4 * max(_chunk_nbytes(inner, c) for c in coords)
    cache = CachedSource(inner, bound)
    picks = [coords[k] for k in rng.integers(0, len(coords), size=2000)]

    def read(c):
        return np.array_equal(cache.read_chunk(c), data[chunk_slices(inner.meta, c)])

    with ThreadPoolExecutor(8) as pool:
        assert all(pool.map(read, picks))
    info = cache.cache_info()
    assert info.hits + info.misses == len(picks)
    assert inner.total_reads == info.misses
    assert info.current_bytes <= bound
    assert info.current_bytes == sum(_chunk_nbytes(inner, c) for c in cache.cached_chunks())


def test_cache_clear_and_no_nesting(data):
    inner = CountingSource(data, chunks=CHUNKS)
    cache = CachedSource(inner, "1MiB")
    cache.read_chunk((0, 0, 0, 0, 0))
    cache.cache_clear()
    assert cache.cache_info() == (0, 0, 0, 2**20, 0)
    rewrapped = with_cache(with_cache(OMEArrow(inner), "1MiB"), "2MiB")
    assert rewrapped.source.inner is inner and rewrapped.source.max_bytes == 2 * 2**20


@pytest.mark.parametrize(
    ("given", "expected"), [("2GiB", 2 * 2**30), ("512MB", 512 * 10**6), (4096, 4096), ("0", 0), (np.int64(7), 7)]
)
def test_parse_max_bytes(given, expected):
    assert parse_max_bytes(given) == expected


@pytest.mark.parametrize("given", ["lots", -1, 1.5, True, None])
def test_bad_max_bytes(given):
    with pytest.raises(OmeArrowDaskError, match="max_bytes"):
        parse_max_bytes(given)
