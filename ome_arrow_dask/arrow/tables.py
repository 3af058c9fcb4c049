"""Table helpers: find the OME-Arrow image column of a table and open it row by row.

:func:`find_column` picks the struct column that holds OME-Arrow records (by name, by
ome-arrow's default names, or by type); :func:`scan_table` wraps that column as an
:class:`ImageColumn`. Images are made by factories the caller passes in
(``OMEArrow.scan_table`` passes ``OMEArrow.scan`` and ``OMEArrow``), so this module
never imports :mod:`ome_arrow_dask.core`.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, overload

import numpy as np
import pyarrow as pa

from ..errors import OmeArrowDaskError, UnsupportedSourceError
from ..sources._parquet_common import parquet_file
from .schema import is_ome_arrow_struct

if TYPE_CHECKING:
    from ..core import OMEArrow

PREFERRED_COLUMNS = ("ome_arrow", "image")
"""Column names tried before auto-detection (ome-arrow's two defaults)."""


def find_column(schema: pa.Schema, column_name: str | None, path: str) -> str:
    """Pick the struct column holding OME-Arrow records: named, ``ome_arrow``/``image``, or detected.

    A named column that does not exist is replaced by the first OME-Arrow struct column
    with ome-arrow's ``UserWarning`` ("Requested column ... was not usable or not found.
    Auto-detected OME-Arrow column ..."), naming ``path`` too; a named column that is not
    an OME-Arrow struct raises.
    """
    if column_name is not None:
        if column_name not in schema.names:
            found = [f.name for f in schema if is_ome_arrow_struct(f.type)]
            if not found:
                raise OmeArrowDaskError(
                    f"{path}: no column {column_name!r}; OME-Arrow struct columns here: none "
                    "(ome-arrow's message: Could not locate an OME-Arrow struct column: "
                    f"column '{column_name}' not found and auto-detection failed.)"
                )
            others = f"; other OME-Arrow columns: {found[1:]}" if len(found) > 1 else ""
            warnings.warn(
                f"Requested column '{column_name}' was not usable or not found. "
                f"Auto-detected OME-Arrow column '{found[0]}'. ({path}: no column {column_name!r}, "
                f"reading {found[0]!r} instead{others})",
                UserWarning,
                stacklevel=2,
            )
            return found[0]
        if not is_ome_arrow_struct(schema.field(column_name).type):
            raise OmeArrowDaskError(f"{path}: column {column_name!r} is not an OME-Arrow struct column")
        return column_name
    for name in PREFERRED_COLUMNS:
        if name in schema.names and is_ome_arrow_struct(schema.field(name).type):
            return name
    for field in schema:
        if is_ome_arrow_struct(field.type):
            return field.name
    raise OmeArrowDaskError(f"{path}: no OME-Arrow struct column (a struct with pixels_meta, planes, ...) found")


class ImageColumn(Sequence["OMEArrow"]):
    """The image column of a table: one lazy ``OMEArrow`` per row, opened when asked for.

    Parameters
    ----------
    open_row
        Returns the image of row ``i`` (injected: a Parquet file or an in-memory table).
    num_rows
        Rows in the table.
    column_name
        The struct column holding the images.
    where
        The table, for ``repr`` and messages.
    """

    def __init__(self, open_row: Callable[[int], OMEArrow], num_rows: int, column_name: str, where: str) -> None:
        self._open_row = open_row
        self.num_rows = int(num_rows)
        self.column_name = column_name
        self.where = where

    def __len__(self) -> int:
        return self.num_rows

    @overload
    def __getitem__(self, index: int) -> OMEArrow: ...

    @overload
    def __getitem__(self, index: slice) -> list[OMEArrow]: ...

    def __getitem__(self, index: int | slice) -> OMEArrow | list[OMEArrow]:
        if isinstance(index, slice):
            return [self._open_row(i) for i in range(*index.indices(self.num_rows))]
        if not isinstance(index, (int, np.integer)):
            raise TypeError(f"rows are selected by int or slice, got {type(index).__name__}")
        row = int(index) + self.num_rows if index < 0 else int(index)
        if not 0 <= row < self.num_rows:
            raise IndexError(f"row {index} is out of range for {self.num_rows} rows of {self.where}")
        return self._open_row(row)

    def __iter__(self) -> Iterator[OMEArrow]:
        for row in range(self.num_rows):
            yield self._open_row(row)

    def __repr__(self) -> str:
        return f"ImageColumn({self.column_name!r}, {self.num_rows} rows of {self.where})"


def scan_table(
    data: Any,
    column_name: str | None,
    *,
    open_file_row: Callable[[str, str, int], OMEArrow],
    open_record: Callable[[pa.Array], OMEArrow],
) -> ImageColumn:
    """Open the image column of a table lazily, one image per row (see ``OMEArrow.scan_table``).

    Parameters
    ----------
    data
        A Parquet file (opening reads the footer only; row ``i`` reads the metadata of
        its row group when opened and that row group's pixels when read) or an Arrow
        table (``pa.Table``, ``pa.RecordBatch``, or any ``__arrow_c_stream__`` object
        such as a polars DataFrame; rows are zero-copy slices).
    column_name
        The OME-Arrow struct column; None: ``ome_arrow``, ``image``, else the first one found.
    open_file_row
        ``(path, column, row) -> image`` for a row of a Parquet file.
    open_record
        ``(one-row struct array) -> image`` for a row of an in-memory table.
    """
    if isinstance(data, (str, os.PathLike)):
        path = os.fspath(data)
        if os.path.isdir(path):
            raise UnsupportedSourceError(f"{path}: scan_table reads one Parquet table file; open datasets with scan()")
        pf = parquet_file(path)
        try:
            column = find_column(pf.schema_arrow, column_name, path)
            num_rows = pf.metadata.num_rows
        finally:
            pf.close()
        return ImageColumn(lambda row: open_file_row(path, column, row), num_rows, column, f"Parquet table {path}")
    table = as_table(data)
    column = find_column(table.schema, column_name, "the table")
    images = table.column(column)
    where = f"an in-memory table of {table.num_rows} rows"
    return ImageColumn(lambda row: open_record(images.slice(row, 1)), table.num_rows, column, where)


def as_table(data: Any) -> pa.Table:
    """``data`` as a ``pa.Table``: a table, a record batch or any ``__arrow_c_stream__`` object."""
    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    if hasattr(data, "__arrow_c_stream__"):
        return pa.table(data)
    raise TypeError(
        f"scan_table expects a Parquet path or an Arrow table (an object with __arrow_c_stream__), "
        f"got {type(data).__name__}"
    )
