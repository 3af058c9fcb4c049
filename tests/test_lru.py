"""The shared LRU cache: eviction order, the cost bound, one load per key under concurrency, statistics."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from ome_arrow_dask.lru import LRUCache, LRUInfo


def test_least_recently_used_is_evicted_first():
    cache: LRUCache[str, int] = LRUCache(3)
    for key in "abc":
        cache.put(key, ord(key))
    assert cache.get("a") == ord("a")  # "a" is now the most recent; "b" the least
    cache.put("d", 0)
    assert cache.keys() == ("c", "a", "d")
    assert cache.get("b") is None
    cache.get_or_load("c", lambda: pytest.fail("cached"))  # a hit refreshes too
    cache.put("e", 0)
    assert cache.keys() == ("d", "c", "e")


def test_cost_bound_is_never_exceeded():
    cache: LRUCache[int, np.ndarray] = LRUCache(100, cost=lambda a: a.nbytes)
    rng = np.random.default_rng(0)
    for i in range(200):
        cache.put(i % 17, np.zeros(int(rng.integers(1, 60)), "u1"))
        info = cache.info()
        assert info.current_cost <= 100
        assert info.current_cost == sum(cache.get_or_load(k, pytest.fail).nbytes for k in cache.keys())


def test_value_over_the_bound_is_returned_not_kept_and_replacing_a_key_recosts_it():
    cache: LRUCache[str, bytes] = LRUCache(10, cost=len)
    assert cache.get_or_load("big", lambda: b"x" * 11) == b"x" * 11
    assert "big" not in cache and len(cache) == 0
    cache.put("a", b"123456")
    cache.put("a", b"12")  # replaced: its old cost is released
    cache.put("b", b"12345678")
    assert cache.keys() == ("a", "b") and cache.info().current_cost == 10


def test_statistics_and_clear():
    cache: LRUCache[str, int] = LRUCache(2)
    cache.get_or_load("a", lambda: 1)
    cache.get_or_load("a", lambda: 2)
    cache.get("b")
    assert cache.info() == LRUInfo(hits=1, misses=2, current_cost=1, max_cost=2, entries=1)
    cache.clear()
    assert cache.info() == LRUInfo(0, 0, 0, 2, 0)
    with pytest.raises(ValueError, match="max_cost"):
        LRUCache(-1)


def test_concurrent_get_or_load_loads_each_key_once():
    cache: LRUCache[int, int] = LRUCache(8)
    calls: list[int] = []
    lock = threading.Lock()

    def load(key: int) -> int:
        with lock:
            calls.append(key)
        time.sleep(0.05)  # every thread asks while the first load runs
        return key * 10

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(lambda i: cache.get_or_load(i % 2, lambda: load(i % 2)), range(32)))
    assert results == [(i % 2) * 10 for i in range(32)]
    assert sorted(calls) == [0, 1]
    info = cache.info()
    assert (info.misses, info.hits) == (2, 30)


def test_a_failed_load_is_raised_to_its_caller_and_retried_by_a_waiter():
    cache: LRUCache[str, str] = LRUCache(2)
    started, release = threading.Event(), threading.Event()

    def failing() -> str:
        started.set()
        release.wait(5)
        raise OSError("flaky read")

    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(cache.get_or_load, "k", failing)
        started.wait(5)
        second = pool.submit(cache.get_or_load, "k", lambda: "loaded")  # waits for the first load
        time.sleep(0.05)
        release.set()
        with pytest.raises(OSError, match="flaky"):
            first.result(5)
        assert second.result(5) == "loaded"
    assert cache.keys() == ("k",) and cache.info().misses == 2


def test_a_value_too_big_to_keep_is_still_loaded_once_for_concurrent_callers():
    cache: LRUCache[str, bytes] = LRUCache(1, cost=len)
    calls, entered = [], []

    def load() -> bytes:
        calls.append(1)
        deadline = time.monotonic() + 5
        while len(entered) < 4 and time.monotonic() < deadline:  # every caller is on its way in
            time.sleep(0.01)
        time.sleep(0.2)
        return b"too big"

    def ask(_: int) -> bytes:
        entered.append(1)
        return cache.get_or_load("k", load)

    with ThreadPoolExecutor(4) as pool:
        assert set(pool.map(ask, range(4))) == {b"too big"}
    assert len(calls) == 1 and len(cache) == 0


def test_recursive_load_of_the_same_key_is_refused():
    cache: LRUCache[str, int] = LRUCache(2)
    with pytest.raises(RuntimeError, match="recursive"):
        cache.get_or_load("k", lambda: cache.get_or_load("k", lambda: 1))
    assert cache.get_or_load("k", lambda: 2) == 2  # the failed load left nothing behind
