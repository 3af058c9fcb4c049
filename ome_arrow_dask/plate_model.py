"""The plate model both plate openers build: NGFF well names, :class:`Plate`, :class:`Well`, :class:`FieldRef`.

:func:`ome_arrow_dask.plate.open_plate` builds it from NGFF plate metadata,
:func:`ome_arrow_dask.plate_folder.open_plate_folder` from a folder of per-field TIFFs.
A :class:`Well` opens its fields through the opener it was given, so this module opens
no image itself (the public names are re-exported by :mod:`ome_arrow_dask.plate`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import SelectionError
from .sources import _ngff

if TYPE_CHECKING:
    import dask.array as da

    from .core import OMEArrow

__all__ = ["FieldRef", "Plate", "Well", "column_name", "parse_well_name", "row_index", "row_name"]

_WELL_KEY = re.compile(r"([A-Za-z]+)/?0*(\d+)")


def row_name(index: int) -> str:
    """NGFF row name of a 0-based row index: A..Z, then AA, AB, ... (1536-well plates have 32 rows).

    >>> row_name(0), row_name(1), row_name(25), row_name(26), row_name(31)
    ('A', 'B', 'Z', 'AA', 'AF')
    """
    if index < 0:
        raise SelectionError(f"row index {index} must be >= 0")
    letters = ""
    n = index + 1
    while n:
        n, rem = divmod(n - 1, 26)
        letters = chr(ord("A") + rem) + letters
    return letters


def row_index(name: str) -> int:
    """0-based index of a row name (inverse of :func:`row_name`, any case).

    >>> row_index("A"), row_index("p"), row_index("AF")
    (0, 15, 31)
    """
    n = 0
    for ch in name.upper():
        n = n * 26 + (ord(ch) - ord("A") + 1)
    return n - 1


def column_name(index: int) -> str:
    """NGFF column name of a 0-based column index: unpadded 1-based numbers.

    >>> column_name(0), column_name(11)
    ('1', '12')
    """
    if index < 0:
        raise SelectionError(f"column index {index} must be >= 0")
    return str(index + 1)


def parse_well_name(name: str) -> tuple[int, int]:
    """0-based (row, column) of a well name: ``"B/3"``, ``"B3"`` or ``"B03"``.

    >>> parse_well_name("B/3"), parse_well_name("b03"), parse_well_name("AF/48")
    ((1, 2), (1, 2), (31, 47))
    """
    m = _WELL_KEY.fullmatch(str(name).strip())
    if m is None or int(m.group(2)) < 1:
        raise SelectionError(
            f"well name {name!r} is not a row letter and a column number from 1, such as 'B/3' (or 'B3', 'B03')"
        )
    return row_index(m.group(1)), int(m.group(2)) - 1


@dataclass(frozen=True)
class FieldRef:
    """One image of a well: its path in the well group and its acquisition id (None when not given)."""

    path: str
    acquisition: int | None = None


class Well(Sequence["OMEArrow"]):
    """The fields of one well; ``well[i]`` opens field ``i`` lazily as an OMEArrow (level 0).

    Use :meth:`field` for another pyramid level or source options.
    """

    def __init__(
        self,
        name: str,
        row: int,
        column: int,
        fields: tuple[FieldRef, ...],
        opener: Callable[[int, int, dict[str, Any]], OMEArrow],
        location: str,
    ) -> None:
        self.name = name
        self.row = row
        self.column = column
        self.images = fields
        self._opener = opener
        self.location = location

    @property
    def acquisitions(self) -> tuple[int | None, ...]:
        """The acquisition id of each field (None where the metadata gives none)."""
        return tuple(f.acquisition for f in self.images)

    def __len__(self) -> int:
        return len(self.images)

    def field(self, index: int, *, level: int = 0, **options: Any) -> OMEArrow:
        """Open field ``index`` (negative counts from the end) at pyramid ``level`` lazily."""
        n = len(self.images)
        if not -n <= index < n:
            raise SelectionError(f"well {self.name} has {n} field(s); field {index} does not exist")
        return self._opener(index % n, level, options)

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return [self.field(i) for i in range(len(self.images))[index]]
        return self.field(int(index))

    def __iter__(self) -> Iterator[OMEArrow]:
        return (self.field(i) for i in range(len(self.images)))

    def __repr__(self) -> str:
        return f"Well({self.name!r}, {len(self.images)} field(s), {self.location})"


class Plate(Mapping[str, Well]):
    """A plate: rows, columns, wells and their fields; see :func:`open_plate`.

    Attributes
    ----------
    path
        The plate store (or the TIFF folder).
    name
        The plate name from its metadata (None when absent).
    version
        The NGFF version (``"0.4"`` / ``"0.5"``), or ``"folder"`` for a TIFF folder.
    rows, columns
        Row names (``"A"``, ``"B"``, ...) and column names (``"1"``, ``"2"``, ...), every physical one listed.
    wells
        Well names (``"B/3"``) in the order of the metadata.
    acquisitions
        The plate's ``acquisitions`` entries (dicts with at least ``id``); empty when none.
    field_count
        ``field_count`` from the metadata, else the largest number of fields in a well.
    metadata_files_read
        Metadata files read to open the plate (``1 + len(wells)`` for an NGFF plate).
    """

    def __init__(  # noqa: PLR0913 - every attribute of the plate
        self,
        path: str,
        *,
        name: str | None,
        version: str,
        rows: tuple[str, ...],
        columns: tuple[str, ...],
        wells: dict[str, Well],
        acquisitions: tuple[dict[str, Any], ...] = (),
        field_count: int | None = None,
        metadata_files_read: int = 0,
    ) -> None:
        self.path = path
        self.name = name
        self.version = version
        self.rows = rows
        self.columns = columns
        self._wells = wells
        self.acquisitions = acquisitions
        self.field_count = field_count if field_count is not None else max((len(w) for w in wells.values()), default=0)
        self.metadata_files_read = metadata_files_read

    @property
    def wells(self) -> tuple[str, ...]:
        """Well names such as ``"B/3"``."""
        return tuple(self._wells)

    def __len__(self) -> int:
        return len(self._wells)

    def __iter__(self) -> Iterator[str]:
        return iter(self._wells)

    def __getitem__(self, key: Any) -> Well:
        if isinstance(key, str) and key in self._wells:
            return self._wells[key]
        if isinstance(key, tuple) and len(key) == 2:  # (row index, column index) into plate.rows / plate.columns
            r, c = (int(k) for k in key)
            if not (0 <= r < len(self.rows) and 0 <= c < len(self.columns)):
                raise KeyError(f"{self.path}: no well at row/column index {key}")
            name = f"{self.rows[r]}/{self.columns[c]}"
        else:
            r, c = parse_well_name(str(key))
            name = f"{row_name(r)}/{column_name(c)}"
        if name.upper() in self._wells:
            return self._wells[name.upper()]
        raise KeyError(f"{self.path}: no well {key!r}; the plate has {len(self._wells)} wells, e.g. {self.wells[:4]}")

    def __repr__(self) -> str:
        return (
            f"Plate({self.path!r}, {len(self.rows)} rows x {len(self.columns)} columns, {len(self)} wells, "
            f"up to {self.field_count} field(s) per well, NGFF {self.version})"
        )

    def summary(self) -> str:
        """Several lines: rows, columns, wells, fields, acquisitions and the first field's shape."""
        lines = [
            f"path:          {self.path}",
            f"format:        NGFF {self.version} plate" if self.version != "folder" else "format:        TIFF folder",
            f"name:          {self.name or ''}",
            f"rows:          {len(self.rows)} ({', '.join(self.rows)})",
            f"columns:       {len(self.columns)} ({', '.join(self.columns)})",
            f"wells:         {len(self)} ({', '.join(self.wells[:12])}{', ...' if len(self) > 12 else ''})",
            f"fields:        up to {self.field_count} per well, {sum(len(w) for w in self._wells.values())} in all",
            f"acquisitions:  {len(self.acquisitions)}",
        ]
        first = next((w for w in self._wells.values() if len(w)), None)
        if first is not None:
            image = first[0]
            lines.append(f"image (TCZYX): {image.shape} {image.dtype} (well {first.name}, field 0)")
        return "\n".join(lines)

    def montage(self, level: int = -1, field: int = 0, *, fill: Any = 0) -> da.Array:
        """A lazy TCZYX dask array: field ``field`` of every well tiled at its plate position.

        Each cell is as large as the largest such field image (per axis); wells without
        that field, rows and columns without wells, and the margins of smaller images are
        ``fill``. ``level`` is the pyramid level of every field (negative counts from the
        coarsest level the fields all have). Field metadata is read now; pixels only when
        computed.
        """
        import dask.array as da

        cells: dict[tuple[int, int], da.Array] = {}
        wells = [w for w in self._wells.values() if -len(w) <= field < len(w)]
        if not wells:
            raise SelectionError(f"{self.path}: no well has a field {field}")
        if level < 0:
            depth = min(self._levels(w, field) for w in wells)
            level = depth + level
            if level < 0:
                raise SelectionError(f"{self.path}: level {level - depth} out of range; the fields have {depth} levels")
        for well in wells:
            cells[(well.row, well.column)] = well.field(field, level=level).to_dask()
        dtype = np.result_type(*(a.dtype for a in cells.values()))
        cell = tuple(max(a.shape[k] for a in cells.values()) for k in range(5))
        n_rows = max(len(self.rows), 1 + max(r for r, _ in cells))
        n_cols = max(len(self.columns), 1 + max(c for _, c in cells))
        chunks = (cell[0], cell[1], cell[2], cell[3], cell[4])
        grid = []
        for r in range(n_rows):
            row = []
            for c in range(n_cols):
                array = cells.get((r, c))
                if array is None:
                    row.append(da.full(cell, fill, dtype=dtype, chunks=chunks))
                    continue
                array = array.astype(dtype)
                pad = [(0, n - s) for n, s in zip(cell, array.shape, strict=True)]
                if any(p[1] for p in pad):
                    array = da.pad(array, pad, mode="constant", constant_values=fill)
                row.append(array)
            grid.append(row)
        return da.block(grid)

    def _levels(self, well: Well, field: int) -> int:
        ref = well.images[field]
        folder = os.path.join(well.location, ref.path)
        found = _ngff.read_group_attrs(folder)
        if found is None:
            return 1
        attrs, where, _ = found
        ngff = _ngff.ngff_attrs(attrs, where)
        return 1 if ngff is None else _ngff.parse_multiscale(ngff, 0, where).n_levels
