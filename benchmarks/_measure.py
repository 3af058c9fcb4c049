"""Timing and memory helpers shared by the benchmark modules."""

from __future__ import annotations

import resource
import statistics
import time
from collections.abc import Callable


def best_of(func: Callable[[], object], repeat: int = 5) -> dict[str, float]:
    """Run ``func`` ``repeat`` times; return min and median wall seconds."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return {"min_s": min(times), "median_s": statistics.median(times)}


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far, in MiB (Linux ru_maxrss is KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def ratio(ours: dict[str, float], baseline: dict[str, float], key: str = "median_s") -> float:
    """ours / baseline for ``key`` (below 1 means we are faster)."""
    return ours[key] / baseline[key] if baseline[key] else float("inf")


def peak_rss_delta_mib(func: Callable[[], object], interval_s: float = 0.002) -> tuple[object, float]:
    """Run ``func``; return its result and the peak RSS above the starting RSS, in MiB.

    A background thread samples this process's RSS (psutil) every ``interval_s``, so
    cases run one after another in one process each get their own peak.
    """
    import threading

    import psutil

    process = psutil.Process()
    start = process.memory_info().rss
    peak = start
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, process.memory_info().rss)
            done.wait(interval_s)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        result = func()
    finally:
        done.set()
        sampler.join()
    peak = max(peak, process.memory_info().rss)
    return result, (peak - start) / 2**20
