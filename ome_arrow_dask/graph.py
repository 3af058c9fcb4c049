"""Build the read graph: a source plus a selection becomes one dask layer.

Each output block is one task that reads one whole source chunk and keeps the part
the selection needs. The source itself sits under a single key, so it is shipped to
workers once, not once per task. Task names are deterministic (``tokenize``).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, cast

import numpy as np
from dask.base import tokenize

from .errors import CorruptInputError
from .lowering import ChunkSelection, ReadPlan, lower, take_orthogonal
from .selection import Selection
from .sources.abilities import (
    SourceWrapper,
    SupportsArray,
    SupportsReadChunkBox,
    SupportsReadRegion,
)
from .sources.base import ChunkCoords, Source, chunk_slices

if TYPE_CHECKING:
    import dask.array as da

__all__ = [
    "active_client",
    "build_array",
    "compute",
    "plan_reads",
    "read_block",
    "read_into_memory",
    "run_graph",
    "take_orthogonal",
]

SMALL_READ_BLOCKS = 8
"""Plans with at most this many blocks (and :data:`SMALL_READ_BYTES`) skip the scheduler."""

SMALL_READ_BYTES = 16 * 2**20
"""Decoded bytes up to which a plan is read in the calling thread, chunk by chunk."""

BOX_READ_BYTES = 64 * 2**20
"""Decoded bytes up to which a crop is read in one ``read_chunk_box`` call (zarr decodes concurrently)."""


def _selected_shape(chunk_shape: tuple[int, ...], selection: tuple[ChunkSelection, ...]) -> tuple[int, ...]:
    return tuple(
        len(range(n)[s]) if isinstance(s, slice) else len(s) for n, s in zip(chunk_shape, selection, strict=True)
    )


def read_block(source: Source, chunk_coords: ChunkCoords, selection: tuple[ChunkSelection, ...]) -> np.ndarray:
    """Read one source chunk, check it matches the grid, and keep ``selection`` of it.

    Sources with :class:`~ome_arrow_dask.sources.abilities.SupportsReadRegion` (e.g. TIFF
    stacks, which decode only the pages a selection touches) return the selected part directly.
    """
    meta = source.meta
    if isinstance(source, SupportsReadRegion):
        chunk_shape = tuple(s.stop - s.start for s in chunk_slices(meta, chunk_coords))
        block = source.read_region(chunk_coords, selection)
        expected = _selected_shape(chunk_shape, selection)
        if block.shape != expected or block.dtype != meta.dtype:
            raise CorruptInputError(
                f"{source.describe()}: chunk {chunk_coords} region decoded to shape {block.shape} dtype "
                f"{block.dtype}, expected shape {expected} dtype {meta.dtype}"
            )
        return block
    block = source.read_chunk(chunk_coords)
    expected = tuple(s.stop - s.start for s in chunk_slices(meta, chunk_coords))
    if block.shape != expected or block.dtype != meta.dtype:
        raise CorruptInputError(
            f"{source.describe()}: chunk {chunk_coords} decoded to shape {block.shape} dtype {block.dtype}, "
            f"expected shape {expected} dtype {meta.dtype}"
        )
    return take_orthogonal(block, selection)


def plan_reads(source: Source, selection: Selection) -> ReadPlan:
    """Lower ``selection`` onto ``source``'s chunk grid (pure; reads nothing)."""
    return lower(selection, source.meta.chunks)


def select_dask(array: da.Array, selection: Selection, out_chunks: tuple[tuple[int, ...], ...]) -> da.Array:
    """Apply ``selection`` to a 5-D dask array axis by axis (outer indexing), on ``out_chunks``.

    >>> import dask.array as da
    >>> x = da.arange(24, chunks=5).reshape(1, 1, 1, 4, 6)
    >>> sel = (range(1), range(1), range(1), (3, 0), range(1, 5, 2))
    >>> select_dask(x, sel, ((1,), (1,), (1,), (2,), (2,))).compute()[0, 0, 0].tolist()
    [[19, 21], [1, 3]]
    """
    out = array
    for axis, index in enumerate(selection):
        if isinstance(index, range) and index == range(out.shape[axis]):
            continue
        key: list[object] = [slice(None)] * out.ndim
        is_slice = isinstance(index, range) and index.step == 1
        key[axis] = slice(index.start, index.stop) if is_slice else list(index)  # type: ignore[union-attr]
        out = out[tuple(key)]
    return out.rechunk(out_chunks)


def dask_backing(source: Source) -> da.Array | None:
    """The lazy dask array (numpy chunks) behind a source with :class:`SupportsArray`, else None.

    Wrappers that only change descriptors forward the array; the chunk cache hides it.
    Never imports ``dask.array`` itself: without it loaded, no dask array exists.
    """
    array = source.array if isinstance(source, SupportsArray) else None
    if array is None or "dask.array" not in sys.modules:
        return None
    import dask.array as da

    if isinstance(array, da.Array) and isinstance(array._meta, np.ndarray):
        return array
    return None


def build_array(source: Source, selection: Selection, *, name_prefix: str = "ome-arrow-read") -> da.Array:
    """Return a lazy 5-D dask array of ``selection`` over ``source``: one task per block."""
    import dask.array as da
    from dask.highlevelgraph import HighLevelGraph

    plan = plan_reads(source, selection)
    backing = dask_backing(source)
    if backing is not None:
        # A lazy dask array (astype, map_blocks results): index its graph rather than compute
        # each chunk in a nested graph, which re-runs shared inputs (halos) once per block.
        return select_dask(backing, selection, plan.out_chunks)
    token = tokenize(source.token, selection)
    name = f"{name_prefix}-{token}"
    source_key = f"ome-arrow-source-{token}"
    graph: dict[Any, Any] = {source_key: source}
    for out_block, chunk_coords, chunk_selection in plan.block_tuples():
        graph[(name, *out_block)] = (read_block, source_key, chunk_coords, chunk_selection)
    hlg = HighLevelGraph.from_collections(name, graph, dependencies=())
    meta = np.empty((0,) * 5, dtype=source.meta.dtype)
    return da.Array(hlg, name, chunks=plan.out_chunks, dtype=source.meta.dtype, meta=meta)


def active_client() -> Any:
    """The current ``distributed.Client`` if one is active (never imports distributed itself)."""
    if "distributed" not in sys.modules:
        return None
    from distributed import default_client

    try:
        return default_client()
    except ValueError:
        return None


def read_into_memory(source: Source, selection: Selection) -> np.ndarray | None:
    """Read a small selection in this thread and return it; None when the scheduler should run it.

    The scheduler round trip dominates a small crop, so small plans skip it: a crop over
    a source with ``read_chunk_box`` (zarr) up to :data:`BOX_READ_BYTES` is one call,
    and up to :data:`SMALL_READ_BLOCKS` blocks / :data:`SMALL_READ_BYTES` are read chunk
    by chunk. Not when a ``distributed.Client`` or an explicit scheduler is active: then
    the user chose where reads run.
    """
    import dask

    plan = plan_reads(source, selection)
    if active_client() is not None or dask.config.get("scheduler", None) or dask_backing(source) is not None:
        return None
    nbytes = plan.elements_read() * source.meta.dtype.itemsize
    boxed = _BoxedSource.wrap(source, plan) if nbytes <= BOX_READ_BYTES else source
    if boxed is source and (plan.num_blocks > SMALL_READ_BLOCKS or nbytes > SMALL_READ_BYTES):
        return None
    shape = tuple(sum(c) for c in plan.out_chunks)
    if plan.num_blocks == 1 and isinstance(source, SupportsReadChunkBox):
        # one whole chunk (a chunk-aligned crop): the box read is a fresh array of exactly the output
        (_, chunk_coords, chunk_selection), = plan.block_tuples()
        chunk = chunk_slices(source.meta, chunk_coords)
        if all(
            isinstance(s, slice) and range(c.stop - c.start)[s] == range(c.stop - c.start)
            for s, c in zip(chunk_selection, chunk, strict=True)
        ):
            block = source.read_chunk_box(chunk_coords, cast("ChunkCoords", tuple(k + 1 for k in chunk_coords)))
            if block.shape == shape and block.dtype == source.meta.dtype:
                return block
    out = np.empty(shape, dtype=source.meta.dtype)
    offsets = [np.cumsum((0, *c)) for c in plan.out_chunks]
    for out_block, chunk_coords, chunk_selection in plan.block_tuples():
        region = tuple(slice(int(o[i]), int(o[i + 1])) for o, i in zip(offsets, out_block, strict=True))
        out[region] = read_block(boxed, chunk_coords, chunk_selection)
    return out


class _BoxedSource(SourceWrapper):
    """Serve ``read_chunk`` from one ``read_chunk_box`` call over every chunk a plan touches.

    Used when the source has :class:`SupportsReadChunkBox` (zarr: one call, chunks fetched
    and decoded concurrently) and the touched chunks form a box (a crop, not scattered lists).
    Hides the reads that would bypass the box; forwards every other ability.
    """

    hidden_abilities = frozenset({SupportsReadRegion, SupportsReadChunkBox, SupportsArray})

    def __init__(self, source: Source, first: ChunkCoords, box: np.ndarray) -> None:
        super().__init__(source)
        self._origin = tuple(s.start for s in chunk_slices(source.meta, first))
        self._box = box

    @classmethod
    def wrap(cls, source: Source, plan: ReadPlan) -> Source:
        """``source`` reading the plan's chunks from one box read, or ``source`` itself when that does not apply."""
        touched = plan.touched
        if not isinstance(source, SupportsReadChunkBox) or plan.chunks_read < 2:
            return source
        if any(t != tuple(range(t[0], t[-1] + 1)) for t in touched):
            return source
        first = cast("ChunkCoords", tuple(t[0] for t in touched))
        box = source.read_chunk_box(first, cast("ChunkCoords", tuple(t[-1] + 1 for t in touched)))
        return cls(source, first, box)

    def read_chunk(self, chunk_coords: ChunkCoords) -> np.ndarray:
        """The chunk's part of the box read."""
        region = chunk_slices(self.meta, chunk_coords)
        return self._box[tuple(slice(r.start - o, r.stop - o) for r, o in zip(region, self._origin, strict=True))]


def compute(collection: Any, **compute_kwargs: Any) -> Any:
    """``collection.compute(**compute_kwargs)``, naming the collection's default scheduler when dask would search.

    Without ``scheduler=`` or a configured scheduler, dask imports ``distributed`` to look
    for a client (0.2-0.4 s the first time) and, finding none, runs the collection's default
    scheduler (threads for arrays and delayed). No client exists while ``distributed`` is not
    imported, so then the default is named here and the search skipped; once ``distributed``
    is imported, dask chooses as always (a client, a worker's client, or the default).
    """
    import dask

    searches = "scheduler" not in compute_kwargs and not dask.config.get("scheduler", None)
    if searches and "distributed" not in sys.modules:
        compute_kwargs["scheduler"] = collection.__dask_scheduler__
    return collection.compute(**compute_kwargs)


def run_graph(graph: Any, progress: bool) -> None:
    """Compute a write graph on the active scheduler, with a progress bar when asked.

    A ``distributed.Client`` gets :func:`distributed.progress`; local schedulers get
    :class:`dask.diagnostics.ProgressBar`. Without a client, ``distributed`` is not imported
    (see :func:`compute`).
    """
    client = active_client()
    if client is not None and progress:
        from distributed import progress as distributed_progress

        future = client.compute(graph)
        distributed_progress(future)
        future.result()
    elif progress:
        from dask.diagnostics import ProgressBar

        with ProgressBar():
            compute(graph)
    else:
        compute(graph)
