"""Build the read graph: a source plus a selection becomes one dask layer.

Each output block is one task that reads one whole source chunk and keeps the part
the selection needs. The source itself sits under a single key, so it is shipped to
workers once, not once per task. Task names are deterministic (``tokenize``).
"""

from __future__ import annotations

import dask.array as da
import numpy as np
from dask.base import tokenize
from dask.highlevelgraph import HighLevelGraph

from .errors import CorruptInputError
from .lowering import ChunkSelection, ReadPlan, lower, take_orthogonal
from .selection import Selection
from .sources.base import ChunkCoords, Source, chunk_slices

__all__ = ["build_array", "plan_reads", "read_block", "take_orthogonal"]


def _selected_shape(chunk_shape: tuple[int, ...], selection: tuple[ChunkSelection, ...]) -> tuple[int, ...]:
    return tuple(
        len(range(n)[s]) if isinstance(s, slice) else len(s) for n, s in zip(chunk_shape, selection, strict=True)
    )


def read_block(source: Source, chunk_coords: ChunkCoords, selection: tuple[ChunkSelection, ...]) -> np.ndarray:
    """Read one source chunk, check it matches the grid, and keep ``selection`` of it.

    Sources with a ``read_region(chunk_coords, selection)`` method (e.g. TIFF stacks,
    which decode only the pages a selection touches) return the selected part directly.
    """
    meta = source.meta
    read_region = getattr(source, "read_region", None)
    if read_region is not None:
        chunk_shape = tuple(s.stop - s.start for s in chunk_slices(meta, chunk_coords))
        block = read_region(chunk_coords, selection)
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


def build_array(source: Source, selection: Selection, *, name_prefix: str = "ome-arrow-read") -> da.Array:
    """Return a lazy 5-D dask array of ``selection`` over ``source``: one task per block."""
    plan = plan_reads(source, selection)
    token = tokenize(source.token, selection)
    name = f"{name_prefix}-{token}"
    source_key = f"ome-arrow-source-{token}"
    graph: dict[object, object] = {source_key: source}
    for out_block, chunk_coords, chunk_selection in plan.block_tuples():
        graph[(name, *out_block)] = (read_block, source_key, chunk_coords, chunk_selection)
    hlg = HighLevelGraph.from_collections(name, graph, dependencies=())
    meta = np.empty((0,) * 5, dtype=source.meta.dtype)
    return da.Array(hlg, name, chunks=plan.out_chunks, dtype=source.meta.dtype, meta=meta)
