"""A bounded, thread-safe LRU cache of decoded chunks, as a source wrapper.

For interactive re-reads (browsing, napari-style viewers): repeated reads of the same
chunks are served from memory. ``with_cache(plan, max_bytes="2GiB")`` returns the same
plan over a :class:`CachedSource`; plans derived from it (``slice_lazy``, ...) share the
cache, so browsing around a region re-reads nothing already seen.

Semantics
---------
- The bound is on decoded bytes (``ndarray.nbytes``): the cache never holds more than
  ``max_bytes``; a chunk larger than the bound is returned but not kept.
- Chunks are handed out as read-only views (zero-copy); callers that want to write
  must copy. A result computed from a single chunk may therefore be read-only too.
- Thread-safe (an :class:`~ome_arrow_dask.lru.LRUCache`): the lookup and bookkeeping
  hold a lock; decoding runs outside it, once per chunk: threads missing a chunk another
  thread is reading wait for it (and count as hits).
- Pickling keeps the wrapped source and the bound, not the contents. The local dask
  schedulers (threads, sync) share one cache across computations; under
  ``dask.distributed`` each worker unpickles its own copy per computation, so the cache
  only saves re-reads within that computation.
- The token is the wrapped source's: same pixels, same dask keys. Sources with partial
  reads (``read_region``) or box reads (``read_chunk_box``) are read whole chunk at a
  time once cached, and an in-memory array is read through the cache too: the cache
  hides those abilities (:attr:`CachedSource.hidden_abilities`) and forwards every other
  one (``explain()`` lines, input paths and validation, pyramid level).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple, cast

import numpy as np
from dask.utils import parse_bytes

from .errors import OmeArrowDaskError
from .lru import LRUCache
from .sources.abilities import SourceWrapper, SupportsArray, SupportsReadChunkBox, SupportsReadRegion
from .sources.base import ChunkCoords, Source
from .units import format_bytes

if TYPE_CHECKING:
    from .core import OMEArrow


class CacheInfo(NamedTuple):
    """Cache statistics, like :func:`functools.lru_cache`'s ``cache_info()``."""

    hits: int
    misses: int
    current_bytes: int
    max_bytes: int
    chunks: int


def parse_max_bytes(max_bytes: int | str) -> int:
    """Return a byte bound from an int or a string such as ``"2GiB"`` or ``"512MB"``.

    >>> parse_max_bytes("2GiB"), parse_max_bytes("512MB"), parse_max_bytes(1024)
    (2147483648, 512000000, 1024)
    """
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, (int, np.integer, str)):
        raise OmeArrowDaskError(f"max_bytes must be an int or a string such as '2GiB', got {max_bytes!r}")
    if isinstance(max_bytes, str):
        try:
            value = parse_bytes(max_bytes)
        except (ValueError, TypeError) as exc:
            raise OmeArrowDaskError(
                f"max_bytes {max_bytes!r} is not a byte size; use e.g. '2GiB', '512MB' or an int"
            ) from exc
    else:
        value = int(max_bytes)
    if value < 0:
        raise OmeArrowDaskError(f"max_bytes must be non-negative, got {max_bytes!r}")
    return int(value)


def _read_only(block: np.ndarray) -> np.ndarray:
    """A read-only view of ``block`` (the caller's array keeps its own flags)."""
    view = block.view()
    view.flags.writeable = False
    return view


class CachedSource(SourceWrapper):
    """A source that keeps the most recently read chunks of another source in memory.

    Parameters
    ----------
    inner
        The source to wrap. A :class:`CachedSource` is unwrapped (caches do not nest).
    max_bytes
        Bound on the cached decoded bytes: an int or a string such as ``"2GiB"``.
    """

    hidden_abilities = frozenset({SupportsReadRegion, SupportsReadChunkBox, SupportsArray})
    """Reads that would bypass the cache: every read is a whole chunk, served from memory when cached."""

    def __init__(self, inner: Source, max_bytes: int | str = "2GiB") -> None:
        if isinstance(inner, CachedSource):
            inner = inner.inner
        super().__init__(inner)
        self.max_bytes = parse_max_bytes(max_bytes)
        self._chunks: LRUCache[ChunkCoords, np.ndarray] = LRUCache(self.max_bytes, cost=lambda block: block.nbytes)

    def describe(self) -> str:
        """The wrapped source's description plus the cache bound."""
        return f"{self.inner.describe()} (LRU chunk cache, max {format_bytes(self.max_bytes)})"

    def read_chunk(self, chunk_coords: ChunkCoords) -> np.ndarray:
        """Return the chunk from the cache, or read it from the wrapped source and keep it."""
        key = cast("ChunkCoords", tuple(int(k) for k in chunk_coords))
        return self._chunks.get_or_load(key, lambda: _read_only(np.asarray(self.inner.read_chunk(chunk_coords))))

    def cached_chunks(self) -> tuple[ChunkCoords, ...]:
        """Coordinates of the cached chunks, least recently used first."""
        return self._chunks.keys()

    def cache_info(self) -> CacheInfo:
        """Hits, misses, cached bytes, the bound, and the number of cached chunks."""
        info = self._chunks.info()
        return CacheInfo(info.hits, info.misses, info.current_cost, self.max_bytes, info.entries)

    def cache_clear(self) -> None:
        """Drop every cached chunk and reset the counters."""
        self._chunks.clear()

    def __reduce__(self) -> tuple[object, ...]:
        return (CachedSource, (self.inner, self.max_bytes))

    def __repr__(self) -> str:
        return f"CachedSource({self.inner!r}, max_bytes={self.max_bytes})"


def with_cache(plan: OMEArrow, max_bytes: int | str = "2GiB") -> OMEArrow:
    """Return ``plan`` reading through a bounded LRU chunk cache (:class:`CachedSource`).

    The selection and history are kept; only the source is wrapped. Plans derived from
    the result share its cache. Statistics: ``result.source.cache_info()``.
    """
    source = CachedSource(plan.source, max_bytes)
    step = f"with_cache(max_bytes={format_bytes(source.max_bytes)})"
    return plan.with_source(source, step)
