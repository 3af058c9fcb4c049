"""DLPack export objects and the prefetching batch iterator.

:class:`DLPackExport` wraps one materialised tensor (numpy on the CPU, cupy on a GPU)
and hands out a fresh capsule on every ``__dlpack__`` call, with the array-API
signature, so ``torch.from_dlpack``, ``jax.dlpack.from_dlpack``, ``np.from_dlpack`` and
``cupy.from_dlpack`` all accept it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

import numpy as np

from .errors import OmeArrowDaskError

T = TypeVar("T")
U = TypeVar("U")

KDL_CPU = 1


class DLPackExport:
    """A tensor ready for DLPack consumers; each ``__dlpack__`` call makes a new capsule.

    Parameters
    ----------
    array
        A numpy array (CPU), a cupy array (GPU), or a 1-D pyarrow array (``mode="arrow"``).
    """

    def __init__(self, array: Any) -> None:
        self.array = array

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of the exported tensor."""
        return tuple(self.array.shape) if hasattr(self.array, "shape") else (len(self.array),)

    def __dlpack__(
        self,
        *,
        stream: Any = None,
        max_version: tuple[int, int] | None = None,
        dl_device: tuple[int, int] | None = None,
        copy: bool | None = None,
    ) -> Any:
        """Export a new DLPack capsule (array-API signature)."""
        return export_capsule(self.array, stream=stream, max_version=max_version, dl_device=dl_device, copy=copy)

    def __dlpack_device__(self) -> tuple[int, int]:
        """Return ``(device_type, device_id)``; ``(1, 0)`` is the CPU."""
        return self.array.__dlpack_device__()

    def __repr__(self) -> str:
        return f"DLPackExport(shape={self.shape}, device={self.__dlpack_device__()})"


def export_capsule(
    array: Any,
    *,
    stream: Any = None,
    max_version: tuple[int, int] | None = None,
    dl_device: tuple[int, int] | None = None,
    copy: bool | None = None,
) -> Any:
    """Call ``array.__dlpack__`` with only the arguments its producer understands.

    Read-only numpy arrays (e.g. from jax or a memory map) are copied when the consumer
    cannot receive DLPack's read-only flag (unversioned capsules).
    """
    if isinstance(array, np.ndarray):
        if not array.flags.writeable and (max_version is None or max_version < (1, 0)):
            array = array.copy()
        if array.dtype.byteorder not in ("=", "|"):
            raise OmeArrowDaskError(f"cannot export non-native byte order {array.dtype} over DLPack")
        return array.__dlpack__(stream=stream, max_version=max_version, dl_device=dl_device, copy=copy)
    kwargs = {"stream": stream}
    if max_version is not None:
        kwargs["max_version"] = max_version
    try:
        return array.__dlpack__(**kwargs)
    except TypeError:
        return array.__dlpack__()


def prefetched(items: Iterable[T], produce: Callable[[T], U], prefetch: int) -> Iterator[U]:
    """Yield ``produce(item)`` for each item, computing up to ``prefetch`` ahead.

    With ``prefetch=N > 0`` one background thread keeps the next ``N`` results in flight
    while the consumer works on the current one. Leaving the loop early cancels work
    that has not started.

    >>> list(prefetched(range(4), lambda i: i * i, prefetch=2))
    [0, 1, 4, 9]
    """
    if prefetch < 0:
        raise OmeArrowDaskError(f"prefetch must be >= 0, got {prefetch}")
    if prefetch == 0:
        for item in items:
            yield produce(item)
        return
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ome-arrow-prefetch")
    pending: deque[Future[U]] = deque()
    source = iter(items)
    try:
        for item in source:
            pending.append(pool.submit(produce, item))
            if len(pending) > prefetch:
                break
        while pending:
            result = pending.popleft().result()
            for item in source:
                pending.append(pool.submit(produce, item))
                break
            yield result
    finally:
        for future in pending:
            future.cancel()
        pool.shutdown(wait=True)
