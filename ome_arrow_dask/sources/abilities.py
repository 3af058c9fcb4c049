"""Optional source abilities as runtime-checkable protocols, and the one wrapper base.

Every source meets :class:`~ome_arrow_dask.sources.base.Source` (``meta``, ``token``,
``read_chunk``, ``describe``). Some can do more, and the planner, ``explain()``, the
previews and the writers use that when it is there. Each extra is one small protocol
here, checked with ``isinstance`` (as zarr-python does with ``SupportsGetSync``)::

    if isinstance(source, SupportsReadRegion):
        block = source.read_region(chunk_coords, selection)

A source that wraps another one (other descriptors, a chunk cache, a remote retry
layer, ...) subclasses :class:`SourceWrapper`: it forwards the required members to
``inner`` and offers each optional ability exactly when the wrapped source offers it,
so ``isinstance(wrapper, SupportsReadChunkBox) == isinstance(wrapper.inner,
SupportsReadChunkBox)`` unless the wrapper hides that ability on purpose (see
:attr:`SourceWrapper.hidden_abilities`).

How the forwarding works: ``isinstance`` against a runtime-checkable protocol checks
that the attribute exists (Python 3.12+ looks it up statically, so ``__getattr__``
forwarding would not count). ``SourceWrapper.__new__`` therefore picks, per wrapper
class and per set of abilities of the wrapped source, a cached subclass that defines
forwarding methods and properties for exactly those abilities. ``type(wrapper).__name__``
and ``isinstance(wrapper, MetaOverride)`` are unchanged; pickling goes through
:meth:`SourceWrapper.__reduce__`, which rebuilds the wrapper over the unpickled inner
source (so the subclass need not be importable by name).
"""

from __future__ import annotations

import inspect
import threading
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

if TYPE_CHECKING:
    import numpy as np

    from ..lowering import ChunkSelection, ReadPlan
    from ..meta import ImageMeta
    from .base import ChunkCoords, Source

__all__ = [
    "ABILITIES",
    "SourceWrapper",
    "SupportsArray",
    "SupportsExplainReads",
    "SupportsInputPaths",
    "SupportsPyramidLevel",
    "SupportsReadChunkBox",
    "SupportsReadRegion",
    "SupportsValidateInputs",
    "abilities_of",
    "unwrap",
]


@runtime_checkable
class SupportsReadRegion(Protocol):
    """Reads part of one chunk, decoding only what the selection touches (TIFF stacks' pages)."""

    def read_region(self, chunk_coords: ChunkCoords, selection: tuple[ChunkSelection, ...]) -> np.ndarray:
        """Return ``selection`` (per-axis slices or index tuples within the chunk) of chunk ``chunk_coords``."""
        ...


@runtime_checkable
class SupportsReadChunkBox(Protocol):
    """Reads a box of whole chunks in one call (zarr: chunks fetched and decoded concurrently)."""

    def read_chunk_box(self, first: ChunkCoords, stop: ChunkCoords) -> np.ndarray:
        """Return the TCZYX pixels of chunks ``first`` (inclusive) to ``stop`` (exclusive) along each axis."""
        ...


@runtime_checkable
class SupportsExplainReads(Protocol):
    """Adds format-specific lines (files, pages, requests) to ``explain()``."""

    def explain_reads(self, read_plan: ReadPlan) -> list[str]:
        """Lines describing what ``read_plan`` reads from this source."""
        ...


@runtime_checkable
class SupportsInputPaths(Protocol):
    """Names the files and folders it reads, so that writers refuse to write onto them."""

    def input_paths(self) -> tuple[str, ...]:
        """The input files and folders (URLs for remote inputs); empty when there are none."""
        ...


@runtime_checkable
class SupportsValidateInputs(Protocol):
    """Checks every input (headers, fingerprints) before a writer creates output."""

    def validate_inputs(self) -> None:
        """Raise an :class:`~ome_arrow_dask.errors.OmeArrowDaskError` naming the bad input, if any."""
        ...


@runtime_checkable
class SupportsArray(Protocol):
    """Holds its pixels as an array (in memory, or a dask graph the planner indexes directly)."""

    @property
    def array(self) -> object:
        """The 5-D TCZYX array (numpy, dask, cupy)."""
        ...

    @property
    def is_in_memory(self) -> bool:
        """True for numpy-backed pixels (reads cost a memcpy at most)."""
        ...


@runtime_checkable
class SupportsPyramidLevel(Protocol):
    """Was opened at a level of a multiscale pyramid (zarr, TIFF); ``level=k`` opens the others."""

    @property
    def pyramid_level(self) -> int:
        """The level this source reads (0 is full resolution)."""
        ...


ABILITIES: dict[type, tuple[str, ...]] = {
    SupportsReadRegion: ("read_region",),
    SupportsReadChunkBox: ("read_chunk_box",),
    SupportsExplainReads: ("explain_reads",),
    SupportsInputPaths: ("input_paths",),
    SupportsValidateInputs: ("validate_inputs",),
    SupportsArray: ("array", "is_in_memory"),
    SupportsPyramidLevel: ("pyramid_level",),
}
"""Every optional ability and the members it consists of (what a wrapper forwards)."""


def abilities_of(source: object) -> frozenset[type]:
    """The optional abilities ``source`` offers (keys of :data:`ABILITIES`).

    >>> import numpy as np
    >>> from ome_arrow_dask.sources.base import ArraySource
    >>> sorted(p.__name__ for p in abilities_of(ArraySource(np.zeros((2, 2), "u1"))))
    ['SupportsArray', 'SupportsInputPaths']
    """
    return frozenset(proto for proto in ABILITIES if isinstance(source, proto))


def unwrap(source: object, *, limit: int = 32) -> list[object]:
    """``source`` and every source it wraps (through ``inner``), outermost first; at most ``limit``."""
    chain: list[object] = []
    while source is not None and len(chain) < limit:
        chain.append(source)
        source = getattr(source, "inner", None)
    return chain


def _forwarder(protocol: type, name: str) -> Any:
    """A method or property of a wrapper that asks ``self.inner`` for ``name`` on every use."""
    if isinstance(inspect.getattr_static(protocol, name), property):
        return property(lambda self: getattr(self.inner, name), doc=f"The wrapped source's ``{name}``.")

    def forward(self: SourceWrapper, *args: Any, **kwargs: Any) -> Any:
        return getattr(self.inner, name)(*args, **kwargs)

    forward.__name__ = forward.__qualname__ = name
    forward.__doc__ = f"The wrapped source's ``{name}``."
    return forward


_VARIANTS: dict[tuple[type, frozenset[type]], type] = {}
_VARIANTS_LOCK = threading.Lock()


def _variant(cls: type[SourceWrapper], forwarded: frozenset[type]) -> type[SourceWrapper]:
    """``cls``, or its cached subclass that forwards the abilities ``forwarded``."""
    if not forwarded:
        return cls
    key = (cls, forwarded)
    with _VARIANTS_LOCK:
        variant = _VARIANTS.get(key)
        if variant is None:
            namespace: dict[str, Any] = {
                "__module__": cls.__module__,
                "__qualname__": cls.__qualname__,
                "__doc__": cls.__doc__,
                "_wrapper_class": cls,
            }
            for proto in forwarded:
                namespace.update({name: _forwarder(proto, name) for name in ABILITIES[proto]})
            variant = _VARIANTS[key] = type(cls.__name__, (cls,), namespace)
    return variant


class SourceWrapper:
    """Base of every source that wraps another source (``inner``).

    Forwards ``meta``, ``token``, ``describe`` and ``read_chunk`` to ``inner``; a
    subclass overrides what it changes. Each optional ability (:data:`ABILITIES`) is
    offered exactly when ``inner`` offers it, by forwarding, except:

    - an ability the subclass implements itself (it defines the member): always offered;
    - an ability listed in :attr:`hidden_abilities`: never offered (e.g. the chunk
      cache hides partial reads, so that every read goes through the cache).

    The wrapped source is the constructor's first argument (``__new__`` looks at it to
    choose the forwarded abilities) and is stored as ``self.inner``. Pickles as the
    wrapper class over the pickled inner source plus the instance ``__dict__``;
    subclasses holding unpicklable state (locks) define their own ``__reduce__``.
    """

    hidden_abilities: ClassVar[frozenset[type]] = frozenset()
    """Abilities this wrapper never offers, whatever the wrapped source can do."""

    inner: Source

    def __new__(cls, inner: object = None, *args: Any, **kwargs: Any) -> SourceWrapper:
        """Create the wrapper as the subclass of ``cls`` that forwards ``inner``'s abilities."""
        forwarded = frozenset(
            proto
            for proto in abilities_of(inner)
            if proto not in cls.hidden_abilities and not any(hasattr(cls, name) for name in ABILITIES[proto])
        )
        return object.__new__(_variant(cls, forwarded))

    def __init__(self, inner: Source) -> None:
        self.inner = inner

    @property
    def meta(self) -> ImageMeta:
        """The wrapped source's metadata."""
        return self.inner.meta

    @property
    def token(self) -> str:
        """The wrapped source's token."""
        return self.inner.token

    def describe(self) -> str:
        """The wrapped source's description."""
        return self.inner.describe()

    def read_chunk(self, chunk_coords: ChunkCoords) -> np.ndarray:
        """The wrapped source's chunk."""
        return self.inner.read_chunk(chunk_coords)

    @classmethod
    def wrapper_class(cls) -> type[SourceWrapper]:
        """The class as written (``type(wrapper)`` may be its forwarding subclass)."""
        wrapper_class: type[SourceWrapper] = cls.__dict__.get("_wrapper_class", cls)
        return wrapper_class

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild_wrapper, (self.wrapper_class(), dict(self.__dict__)))


def _rebuild_wrapper(cls: type[SourceWrapper], state: dict[str, Any]) -> SourceWrapper:
    """Unpickle a :class:`SourceWrapper`: choose the forwarding class for the inner source, restore state."""
    wrapper = cls.__new__(cls, state.get("inner"))
    wrapper.__dict__.update(state)
    return wrapper
