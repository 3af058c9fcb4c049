"""OME-Arrow struct records in Parquet: single-row files and rows of multi-row tables.

Opening reads only the record's metadata leaves (``pixels_meta``, ``chunk_grid``, ids)
and the chunk / plane coordinates, never a pixel column. Parquet cannot read part of
a column chunk, and these layouts keep a whole image in one row group, so the first
chunk read in a process reads the payload leaf (``pixel_bytes`` or ``pixels``) of that
row group once, caches it (:data:`MAX_CACHED_PAYLOADS`), and every chunk is a
zero-copy slice of it decoded with ``np.frombuffer``.

Payloads: byte chunks (``OME_ARROW_BYTE_STRUCT``; per-chunk dtype, raw / zstd /
lz4-frame; a chunk dtype other than ``pixels_meta.type`` is refused, except ome-arrow's
all-``uint16`` ``dtype_meta=`` layout), list chunks (``list<uint16>`` values cast to
``pixels_meta.type``, value-checked), or,
when a record has no chunks, planes (planes-only and pre-0.1 legacy records; one plane
per chunk). Chunks win over planes. The record format (layout checks, decoding) is
:mod:`ome_arrow_dask.arrow.codec`'s; this module reads the Parquet leaves it needs.
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np
import pyarrow as pa
from dask.base import tokenize

from ..arrow.codec import (
    COORD_FIELDS,
    Payload,
    decode_entry,
    load_payload,
    record_layout,
    record_metadata,
    row_payload,
)
from ..arrow.schema import METADATA_FIELDS
from ..arrow.tables import find_column
from ..errors import CorruptInputError, OmeArrowDaskError
from ..limits import check_declared_bytes
from ..lowering import ReadPlan
from ..lru import LRUCache
from ..sources.base import ChunkCoords, SourceBase, chunk_slices
from ..units import format_bytes
from ._parquet_common import (
    DATA_ERRORS,
    Fingerprint,
    corrupt,
    fingerprint,
    leaf_paths,
    locate_row,
    parquet_file,
    row_group_column,
)

MAX_CACHED_PAYLOADS = 4
"""Payload columns (one row group's pixel leaf each) kept per process."""

_PAYLOADS: LRUCache[tuple[Any, ...], Payload] = LRUCache(MAX_CACHED_PAYLOADS)
"""Payload columns by (path, fingerprint, row group, leaf); each loaded once however many threads ask."""


def clear_payload_cache() -> None:
    """Drop every cached payload column (tests, or to free memory)."""
    _PAYLOADS.clear()


def _select_leaves(paths: list[str], column: str, field: str, names: tuple[str, ...] | None = None) -> list[str]:
    prefix = f"{column}.{field}"
    picked = [p for p in paths if p == prefix or p.startswith(prefix + ".")]
    if names is None:
        return picked
    return [p for p in picked if p.rsplit(".", 1)[-1] in names and p.count(".") == prefix.count(".") + 3]


def _payload_leaf(paths: list[str], column: str, field: str, name: str) -> str:
    prefix = f"{column}.{field}."
    found = [p for p in paths if p.startswith(prefix) and name in p[len(prefix) :].split(".")]
    if len(found) != 1:
        raise CorruptInputError(f"{column}.{field}: expected one {name!r} leaf column, found {found}")
    return found[0]


def _row_record(table: pa.Table, column: str, row: int, where: str) -> tuple[dict[str, Any], pa.StructArray]:
    """Metadata dict of one row plus the row's struct (1-element) array."""
    array = table.column(column).combine_chunks().slice(row, 1)
    return record_metadata(array, where), array


def _list_stats(footer: Any, row_group: int, leaf: str, where: str) -> int | None:
    col = row_group_column(footer, row_group, leaf, where)
    return None if col is None else int(col.total_compressed_size)


class StructSource(SourceBase):
    """One OME-Arrow struct record in a Parquet file (see the module docstring).

    Parameters
    ----------
    path
        The Parquet file.
    column_name
        The struct column; default ``ome_arrow``, then ``image``, then the first struct
        column with OME-Arrow's fields.
    row_index
        Which row (0 for single-row files).
    """

    def __init__(self, path: str, column_name: str | None = None, row_index: int = 0) -> None:
        self.path = path
        self._fingerprint: Fingerprint = fingerprint(path)
        pf = parquet_file(path, self._fingerprint)
        footer = pf.metadata
        try:
            schema = pf.schema_arrow
        except DATA_ERRORS as exc:  # a damaged footer: its schema cannot be converted to Arrow
            raise corrupt(path, exc) from exc
        self.column = find_column(schema, column_name, path)
        self._record_type = schema.field(self.column).type
        n_rows = footer.num_rows
        if not isinstance(row_index, (int, np.integer)) or not 0 <= int(row_index) < n_rows:
            raise OmeArrowDaskError(f"{path}: row_index {row_index!r} is out of range [0, {n_rows})")
        self.row_index = int(row_index)
        self.row_group, self.row_in_group = locate_row(footer, self.row_index)
        self._where = f"{path} (column {self.column!r}, row {self.row_index})"
        paths = leaf_paths(footer, path)
        columns = [leaf for field in METADATA_FIELDS for leaf in _select_leaves(paths, self.column, field)]
        columns += _select_leaves(paths, self.column, "chunks", (*COORD_FIELDS, "dtype", "compression"))
        columns += _select_leaves(paths, self.column, "planes", ("t", "c", "z"))
        try:
            table = pf.read_row_group(self.row_group, columns=columns)
        except (OSError, *DATA_ERRORS) as exc:
            raise corrupt(self._where, exc) from exc
        finally:
            pf.close()
        record, array = _row_record(table, self.column, self.row_in_group, self._where)
        self._init_layout(record, array, paths)
        self._rows_in_group = footer.row_group(self.row_group).num_rows
        self._payload_bytes = _list_stats(footer, self.row_group, self._leaf, self._where)
        self._check_stored_values(footer)
        check_declared_bytes(self._where, self._meta.nbytes, self._fingerprint[1])

    # ------------------------------------------------------------------ opening
    def _init_layout(self, record: dict[str, Any], array: pa.StructArray, paths: list[str]) -> None:
        self._layout = record_layout(record, array, self._where, self._record_type)
        self.kind = self._layout.kind
        self._meta = self._layout.meta
        self._field = self._layout.field
        self._leaf = _payload_leaf(paths, self.column, self._field, self._layout.value_field)

    def _check_stored_values(self, footer: Any) -> None:
        """For list / plane payloads in a one-row row group, the footer counts the stored values."""
        if self.kind == "bytes" or self._rows_in_group != 1:
            return
        col = row_group_column(footer, self.row_group, self._leaf, self._where)
        if col is not None:
            stored, declared = int(col.num_values), math.prod(self._meta.shape)
            if stored != declared:
                what = "planes" if self.kind == "planes" else "chunks"
                raise CorruptInputError(
                    f"{self._where}: {what} cover {stored} of {declared} pixels of the declared shape "
                    f"{self._meta.shape} (stored pixel values counted in the Parquet footer)"
                )

    # ------------------------------------------------------------------ Source protocol

    @property
    def token(self) -> str:
        """``tokenize(path, mtime_ns, size, column, row)``."""
        return tokenize(self.path, *self._fingerprint, self.column, self.row_index)

    def input_paths(self) -> tuple[str, ...]:
        """The Parquet file."""
        return (self.path if hasattr(self.path, "loc") else os.path.abspath(self.path),)

    def describe(self) -> str:
        """Format, file, column, row and payload kind."""
        return f"OME-Arrow Parquet {self.path} (column {self.column!r}, row {self.row_index}, {self.kind} payload)"

    def explain_reads(self, read_plan: ReadPlan) -> list[str]:
        """Say that the whole payload column is read once and sliced per chunk."""
        size = "" if self._payload_bytes is None else f", {format_bytes(self._payload_bytes)} stored"
        return [
            f"parquet: row group {self.row_group} holds the whole image ({self._rows_in_group} row(s)); its payload "
            f"column {self._leaf}{size} is read once per process and each chunk is a zero-copy slice of it"
        ]

    def read_chunk(self, chunk_coords: ChunkCoords) -> np.ndarray:
        """Decode the chunk at ``chunk_coords`` (5-D TCZYX, native byte order)."""
        slices = chunk_slices(self._meta, chunk_coords)
        shape = tuple(s.stop - s.start for s in slices)
        entry = int(self._layout.entry_of[tuple(chunk_coords)])
        where = f"{self._where} {'plane' if self.kind == 'planes' else 'chunk'} {entry} at {tuple(chunk_coords)}"
        return decode_entry(self._layout, self._payload(), entry, shape, where)

    # ------------------------------------------------------------------ payload cache
    def _payload(self) -> Payload:
        key = (self.path, self._fingerprint, self.row_group, self._leaf)
        return self._row_view(_PAYLOADS.get_or_load(key, self._load_payload))

    def _load_payload(self) -> Payload:
        """Read the payload leaf of the whole row group; keep per-entry offsets (all rows)."""
        from ._parquet_common import read_row_group

        table = read_row_group(self.path, self._fingerprint, self.row_group, [self._leaf], self._where)
        lists = table.column(self.column).combine_chunks().field(self._field)
        return load_payload(lists, self._layout, self._where)

    def _row_view(self, payload: Payload) -> Payload:
        """Entries of this source's row (a row group may hold many rows)."""
        return row_payload(payload, self.row_in_group)
