"""Pure lowering of a composed selection onto a source's chunk grid.

For every axis, :func:`lower_axis` lists the source chunks a selection touches and
what part of each it needs. Output blocks follow those pieces, so each output block
is read from exactly one source chunk (chunk-aligned reads).
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import accumulate

import numpy as np

from .meta import ChunkCoords
from .selection import AxisIndex, Selection

ChunkSelection = slice | tuple[int, ...]


@dataclass(frozen=True)
class AxisPiece:
    """The part of one source chunk that one output block takes along one axis."""

    chunk_index: int
    chunk_selection: ChunkSelection
    out_len: int


@dataclass(frozen=True)
class BlockRead:
    """One output block: which source chunk to read and what to keep of it."""

    out_block: tuple[int, ...]
    chunk_coords: ChunkCoords
    chunk_selection: tuple[ChunkSelection, ...]


def _ranged_pieces(index: range, offsets: list[int]) -> Iterator[AxisPiece]:
    first_chunk = bisect.bisect_right(offsets, index[0]) - 1
    last_chunk = bisect.bisect_right(offsets, index[-1]) - 1
    for k in range(first_chunk, last_chunk + 1):
        lo, hi = offsets[k], offsets[k + 1]
        first = index.start if index.start >= lo else index.start + -(-(lo - index.start) // index.step) * index.step
        stop = min(hi, index.stop)
        if first >= stop:
            continue
        out_len = len(range(first, stop, index.step))
        yield AxisPiece(k, slice(first - lo, stop - lo, index.step), out_len)


def _listed_pieces(index: Sequence[int], offsets: list[int]) -> Iterator[AxisPiece]:
    chunk_of = [bisect.bisect_right(offsets, i) - 1 for i in index]
    start = 0
    for k, group in itertools.groupby(chunk_of):
        n = len(list(group))
        local = tuple(i - offsets[k] for i in index[start : start + n])
        start += n
        if local == tuple(range(local[0], local[0] + n)):
            yield AxisPiece(k, slice(local[0], local[0] + n, 1), n)
        else:
            yield AxisPiece(k, local, n)


def lower_axis(index: AxisIndex, chunk_sizes: Sequence[int]) -> tuple[AxisPiece, ...]:
    """Split one axis index into per-chunk pieces, in output order.

    A strided range stays a strided slice inside each chunk; an index list is split
    into runs of consecutive entries that fall in the same chunk.

    >>> [(p.chunk_index, p.chunk_selection, p.out_len) for p in lower_axis(range(3, 9), (4, 4, 4))]
    [(0, slice(3, 4, 1), 1), (1, slice(0, 4, 1), 4), (2, slice(0, 1, 1), 1)]
    >>> [(p.chunk_index, p.chunk_selection) for p in lower_axis((5, 1, 2), (4, 4))]
    [(1, slice(1, 2, 1)), (0, slice(1, 3, 1))]
    >>> [(p.chunk_index, p.chunk_selection) for p in lower_axis(range(0, 8, 3), (4, 4))]
    [(0, slice(0, 4, 3)), (1, slice(2, 4, 3))]
    """
    if not len(index):
        return ()
    offsets = [0, *accumulate(chunk_sizes)]
    if isinstance(index, range) and index.step > 0:
        return tuple(_ranged_pieces(index, offsets))
    return tuple(_listed_pieces(tuple(index), offsets))


@dataclass(frozen=True)
class ReadPlan:
    """A selection lowered onto a chunk grid: the pieces per axis and what they cost."""

    pieces: tuple[tuple[AxisPiece, ...], ...]
    source_chunks: tuple[tuple[int, ...], ...]

    @property
    def out_chunks(self) -> tuple[tuple[int, ...], ...]:
        """Dask-style chunks of the output array."""
        return tuple(tuple(p.out_len for p in axis) for axis in self.pieces)

    @property
    def touched(self) -> tuple[tuple[int, ...], ...]:
        """Distinct source chunk indices touched along each axis, sorted."""
        return tuple(tuple(sorted({p.chunk_index for p in axis})) for axis in self.pieces)

    @property
    def chunks_read(self) -> int:
        """Number of distinct source chunks the selection reads."""
        return math.prod(len(t) for t in self.touched)

    @property
    def chunks_total(self) -> int:
        """Number of chunks in the source grid."""
        return math.prod(len(c) for c in self.source_chunks)

    def elements_read(self) -> int:
        """Pixels decoded: the full size of every distinct chunk touched."""
        return math.prod(
            sum(sizes[k] for k in touched) for touched, sizes in zip(self.touched, self.source_chunks, strict=True)
        )

    @property
    def num_blocks(self) -> int:
        """Number of output blocks (one read task each)."""
        return math.prod(len(axis) for axis in self.pieces)

    def blocks(self) -> Iterator[BlockRead]:
        """Yield one :class:`BlockRead` per output block, in C order."""
        for out_block, chunk_coords, chunk_selection in self.block_tuples():
            yield BlockRead(out_block, chunk_coords, chunk_selection)

    def block_tuples(self) -> Iterator[tuple[tuple[int, ...], ChunkCoords, tuple[ChunkSelection, ...]]]:
        """Like :meth:`blocks` as plain ``(out_block, chunk_coords, chunk_selection)`` tuples (graph building)."""
        per_axis = [
            [(i, p.chunk_index, p.chunk_selection) for i, p in enumerate(axis)] for axis in self.pieces
        ]
        for combo in itertools.product(*per_axis):
            out_block, chunk_coords, chunk_selection = zip(*combo, strict=True)
            yield out_block, chunk_coords, chunk_selection


def lower(selection: Selection, source_chunks: Sequence[Sequence[int]]) -> ReadPlan:
    """Lower a 5-D selection onto dask-style ``source_chunks``.

    >>> plan = lower((range(1), range(1), (0, 2), range(2, 6), range(4)), ((1,), (1,), (1, 1, 1), (4, 4), (4,)))
    >>> plan.out_chunks, plan.chunks_read, plan.chunks_total
    (((1,), (1,), (1, 1), (2, 2), (4,)), 4, 6)
    """
    chunks = tuple(tuple(int(c) for c in axis) for axis in source_chunks)
    pieces = tuple(lower_axis(index, axis) for index, axis in zip(selection, chunks, strict=True))
    return ReadPlan(pieces=pieces, source_chunks=chunks)


def take_orthogonal(block: np.ndarray, selection: tuple[ChunkSelection, ...]) -> np.ndarray:
    """Apply per-axis slices and index lists independently (outer indexing).

    >>> take_orthogonal(np.arange(12).reshape(3, 4), (slice(0, 2), (3, 0))).tolist()
    [[3, 0], [7, 4]]
    """
    basic = tuple(s if isinstance(s, slice) else slice(None) for s in selection)
    out = block[basic]
    for axis, index in enumerate(selection):
        if not isinstance(index, slice):
            out = np.take(out, index, axis=axis)
    return out
