"""One small thread-safe LRU cache, bounded by a cost (bytes, or 1 per entry), with one load per key.

Used by the chunk cache (:class:`~ome_arrow_dask.cache.CachedSource`, bounded by decoded
bytes), the Parquet payload columns (:mod:`~ome_arrow_dask.sources._parquet_struct`) and
the parsed Parquet footers (:mod:`~ome_arrow_dask.sources._parquet_common`), both
bounded by a count.

Semantics
---------
- The summed cost of the entries never exceeds ``max_cost``; the least recently used
  entries are evicted first. A value costing more than ``max_cost`` is returned by
  :meth:`LRUCache.get_or_load` but not kept.
- :meth:`LRUCache.get_or_load` loads each key once however many threads ask for it at
  the same time: the first caller runs ``load`` outside the lock, the others wait for its
  value. Should that load fail, its caller gets the exception and one of the waiting
  callers loads again.
- Statistics: a hit is a call answered without loading (waiting for another thread's
  load included), a miss is a call that ran ``load``.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, NamedTuple, TypeVar

__all__ = ["LRUCache", "LRUInfo"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class LRUInfo(NamedTuple):
    """Cache statistics, like :func:`functools.lru_cache`'s ``cache_info()``."""

    hits: int
    misses: int
    current_cost: int
    max_cost: int
    entries: int


class _Load(Generic[V]):
    """A load in flight: the thread running it, and its value once done."""

    def __init__(self) -> None:
        self.owner = threading.get_ident()
        self.done = threading.Event()
        self.ok = False
        self.value: V | None = None


def _one(_value: object) -> int:
    return 1


class LRUCache(Generic[K, V]):
    """A thread-safe least-recently-used cache bounded by the summed ``cost`` of its values.

    Parameters
    ----------
    max_cost
        Bound on the summed cost of the cached values (>= 0).
    cost
        The cost of one value (e.g. ``lambda a: a.nbytes``); 1 per entry by default.

    Examples
    --------
    >>> cache = LRUCache(2)
    >>> cache.get_or_load("a", lambda: 1), cache.get_or_load("b", lambda: 2), cache.get_or_load("a", lambda: 0)
    (1, 2, 1)
    >>> cache.put("c", 3)  # "b" is the least recently used
    >>> cache.keys(), cache.info()
    (('a', 'c'), LRUInfo(hits=1, misses=2, current_cost=2, max_cost=2, entries=2))
    """

    def __init__(self, max_cost: int, cost: Callable[[V], int] = _one) -> None:
        if int(max_cost) < 0:
            raise ValueError(f"max_cost must be >= 0, got {max_cost!r}")
        self.max_cost = int(max_cost)
        self._cost = cost
        self._lock = threading.Lock()
        self._items: OrderedDict[K, tuple[V, int]] = OrderedDict()
        self._loading: dict[K, _Load[V]] = {}
        self._current = 0
        self._hits = 0
        self._misses = 0

    def get(self, key: K) -> V | None:
        """The value of ``key`` (now the most recently used), or None; counted as a hit or a miss."""
        with self._lock:
            found = self._items.get(key)
            if found is None:
                self._misses += 1
                return None
            self._items.move_to_end(key)
            self._hits += 1
            return found[0]

    def put(self, key: K, value: V) -> None:
        """Keep ``value`` under ``key`` (most recently used), evicting the least recently used as needed."""
        cost = int(self._cost(value))
        with self._lock:
            self._store(key, value, cost)

    def get_or_load(self, key: K, load: Callable[[], V]) -> V:
        """The value of ``key``, from the cache or from ``load()`` (run once per key, outside the lock)."""
        while True:
            with self._lock:
                found = self._items.get(key)
                if found is not None:
                    self._items.move_to_end(key)
                    self._hits += 1
                    return found[0]
                pending = self._loading.get(key)
                if pending is None:
                    pending = self._loading[key] = _Load()
                    self._misses += 1
                    break
            if pending.owner == threading.get_ident():
                raise RuntimeError(f"LRUCache: loading {key!r} asked for {key!r} again (a recursive load)")
            pending.done.wait()
            if pending.ok:
                with self._lock:
                    self._hits += 1
                return pending.value  # type: ignore[return-value]
            # that load failed: loop, and load it here unless another waiter started first
        try:
            value = load()
            cost = int(self._cost(value))
        except BaseException:
            with self._lock:
                self._loading.pop(key, None)
            pending.done.set()
            raise
        pending.value, pending.ok = value, True
        with self._lock:
            self._loading.pop(key, None)
            self._store(key, value, cost)
        pending.done.set()
        return value

    def _store(self, key: K, value: V, cost: int) -> None:
        """Insert under the lock; a value costing more than the bound is not kept."""
        if cost > self.max_cost:
            return
        old = self._items.pop(key, None)
        if old is not None:
            self._current -= old[1]
        while self._items and self._current + cost > self.max_cost:
            _, (_, evicted) = self._items.popitem(last=False)
            self._current -= evicted
        self._items[key] = (value, cost)
        self._current += cost

    def keys(self) -> tuple[K, ...]:
        """The cached keys, least recently used first."""
        with self._lock:
            return tuple(self._items)

    def info(self) -> LRUInfo:
        """Hits, misses, the summed cost, the bound and the number of entries."""
        with self._lock:
            return LRUInfo(self._hits, self._misses, self._current, self.max_cost, len(self._items))

    def clear(self) -> None:
        """Drop every entry and reset the counters (loads in flight finish but are kept)."""
        with self._lock:
            self._items.clear()
            self._current = self._hits = self._misses = 0

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._items
