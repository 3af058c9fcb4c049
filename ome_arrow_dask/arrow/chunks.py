"""Chunk streams: the chunks of an image plan as Arrow record batches (``OMEArrow.arrow_chunks()``).

One row per chunk of the plan, with the pixel bytes only when asked for, so DuckDB and
polars can query chunk metadata without reading pixels.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa

from ..errors import OmeArrowDaskError
from .export import ImagePlan
from .schema import FILE_METADATA, record_from_meta

CHUNK_STREAM_LAYOUT = b"chunk-stream"
"""``ome.arrow.layout`` schema metadata of a :class:`ChunkStream`."""


def chunk_stream_schema(image: ImagePlan, *, pixels: bool = False) -> pa.Schema:
    """Schema of :class:`ChunkStream` rows: chunk id, TCZYX origin and shape, dtype, optional bytes."""
    fields = [pa.field("chunk_id", pa.int64(), nullable=False)]
    fields += [pa.field(axis, pa.int32(), nullable=False) for axis in "tczyx"]
    fields += [pa.field(f"shape_{axis}", pa.int32(), nullable=False) for axis in "tczyx"]
    fields.append(pa.field("dtype", pa.string(), nullable=False))
    if pixels:
        fields.append(pa.field("pixel_bytes", pa.large_binary(), nullable=False))
    pixels_meta = record_from_meta(image.meta)["pixels_meta"]
    metadata = {
        **FILE_METADATA,
        b"ome.arrow.layout": CHUNK_STREAM_LAYOUT,
        b"ome.arrow.pixels_meta": json.dumps(pixels_meta).encode(),
    }
    return pa.schema(fields, metadata=metadata)


class ChunkStream:
    """The chunks of an image plan as Arrow record batches: one row per chunk, re-iterable.

    Rows follow the plan's chunk grid (the source chunks its selection touches) in
    T→C→Z→Y→X order, as ome-arrow's dataset ``chunks.parquet`` does. Without
    ``pixels`` nothing is read; with ``pixels`` each batch reads only its own chunks,
    when the consumer pulls it. ``pixel_bytes`` holds each chunk's raw C-order TCZYX
    bytes in ``dtype`` (decode with ``np.frombuffer(b, dtype).reshape(shape_t, ..., shape_x)``).

    Every ``__arrow_c_stream__`` call starts a fresh stream, so DuckDB
    (``duckdb.sql("select ... from stream")``) and polars (``pl.DataFrame(stream)``) can
    read it as often as they like.

    Parameters
    ----------
    image
        The plan whose chunks to list.
    pixels
        Add the ``pixel_bytes`` column.
    batch_size
        Chunks per record batch.
    """

    def __init__(self, image: ImagePlan, *, pixels: bool = False, batch_size: int = 64) -> None:
        if int(batch_size) <= 0:
            raise OmeArrowDaskError(f"batch_size must be positive, got {batch_size}")
        self.image = image
        self.pixels = bool(pixels)
        self.batch_size = int(batch_size)
        self.schema = chunk_stream_schema(image, pixels=self.pixels)

    def __len__(self) -> int:
        return math.prod(self.image.meta.numblocks)

    def _batches(self) -> Iterator[pa.RecordBatch]:
        meta = self.image.meta
        starts = [np.concatenate([[0], np.cumsum(axis)[:-1]]).astype(np.int64) for axis in meta.chunks]
        indices = list(np.ndindex(*meta.numblocks))
        delayed = self.image.to_dask().to_delayed() if self.pixels else None
        for first in range(0, len(indices), self.batch_size):
            batch = indices[first : first + self.batch_size]
            columns: dict[str, Any] = {"chunk_id": list(range(first, first + len(batch)))}
            for a, axis in enumerate("tczyx"):
                columns[axis] = [int(starts[a][index[a]]) for index in batch]
                columns[f"shape_{axis}"] = [int(meta.chunks[a][index[a]]) for index in batch]
            columns["dtype"] = [meta.dtype.name] * len(batch)
            if delayed is not None:
                columns["pixel_bytes"] = _binary_column([delayed[index] for index in batch])
            yield pa.RecordBatch.from_pydict(columns, schema=self.schema)

    def reader(self) -> pa.RecordBatchReader:
        """A fresh single-use reader over the batches."""
        return pa.RecordBatchReader.from_batches(self.schema, self._batches())

    def read_all(self) -> pa.Table:
        """All rows as a table (reads the pixels when ``pixels`` is set)."""
        return self.reader().read_all()

    def __arrow_c_stream__(self, requested_schema: object | None = None) -> object:
        """Export a fresh stream through the Arrow PyCapsule interface."""
        return self.reader().__arrow_c_stream__(requested_schema)

    def __repr__(self) -> str:
        what = "with pixel_bytes" if self.pixels else "metadata only"
        return f"ChunkStream({len(self)} chunks, {what}, batch_size={self.batch_size})"


def _binary_column(blocks: list[Any]) -> pa.Array:
    import dask

    arrays = [np.ascontiguousarray(b) for b in dask.compute(*blocks)]
    sizes = np.array([a.nbytes for a in arrays], dtype=np.int64)
    offsets = pa.py_buffer(np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64))
    data = pa.py_buffer(b"".join(a.reshape(-1).view(np.uint8).data for a in arrays))
    return pa.LargeBinaryArray.from_buffers(pa.large_binary(), len(arrays), [None, offsets, data])
