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
