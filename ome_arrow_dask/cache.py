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
- Thread-safe: the lookup and bookkeeping hold a lock; decoding runs outside it, so two
  threads missing the same chunk at once may both read it (both count as misses).
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

import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, NamedTuple, cast

import numpy as np
from dask.utils import parse_bytes

from .errors import OmeArrowDaskError
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
        self._lock = threading.Lock()
        self._chunks: OrderedDict[ChunkCoords, np.ndarray] = OrderedDict()
        self._bytes = 0
        self._hits = 0
        self._misses = 0

    def describe(self) -> str:
        """The wrapped source's description plus the cache bound."""
        return f"{self.inner.describe()} (LRU chunk cache, max {format_bytes(self.max_bytes)})"

    def read_chunk(self, chunk_coords: ChunkCoords) -> np.ndarray:
        """Return the chunk from the cache, or read it from the wrapped source and keep it."""
        key = cast("ChunkCoords", tuple(int(k) for k in chunk_coords))
        with self._lock:
            cached = self._chunks.get(key)
            if cached is not None:
                self._chunks.move_to_end(key)
                self._hits += 1
                return cached
            self._misses += 1
        block = _read_only(np.asarray(self.inner.read_chunk(chunk_coords)))
        self._store(key, block)
        return block

    def _store(self, key: ChunkCoords, block: np.ndarray) -> None:
        size = block.nbytes
        if size > self.max_bytes:
            return
        with self._lock:
            old = self._chunks.pop(key, None)
            if old is not None:
                self._bytes -= old.nbytes
            while self._bytes + size > self.max_bytes:
                _, evicted = self._chunks.popitem(last=False)
                self._bytes -= evicted.nbytes
            self._chunks[key] = block
            self._bytes += size

    def cached_chunks(self) -> tuple[ChunkCoords, ...]:
        """Coordinates of the cached chunks, least recently used first."""
        with self._lock:
            return tuple(self._chunks)

    def cache_info(self) -> CacheInfo:
        """Hits, misses, cached bytes, the bound, and the number of cached chunks."""
        with self._lock:
            return CacheInfo(self._hits, self._misses, self._bytes, self.max_bytes, len(self._chunks))

    def cache_clear(self) -> None:
        """Drop every cached chunk and reset the counters."""
        with self._lock:
            self._chunks.clear()
            self._bytes = self._hits = self._misses = 0

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
