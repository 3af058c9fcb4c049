"""High-content screening plates (OME-NGFF 0.4 and 0.5): plate -> well -> field navigation.

``open_plate("screen1.ome.zarr")`` reads the plate metadata and the metadata of every
well, nothing else: for a plate of ``W`` wells that is exactly ``1 + W`` small JSON
files (``zarr.json`` on zarr v3, ``.zattrs`` on zarr v2), whatever the number of fields
(385 for a 384-well plate with 9 fields per well; no field image, level array or chunk
is touched). A field is opened only when asked for (``plate["B/3"][0]``), as an
:class:`~ome_arrow_dask.core.OMEArrow` through the OME-Zarr source, so its levels,
``missing=`` policy and damage checks are those of single images.

Well names follow NGFF: row letters and unpadded column numbers, ``"B/3"``
(``"B3"`` and ``"B03"`` are accepted as keys too).

``open_plate(folder, pattern="r{row}c{col}f{field}p{z}-ch{c}sk{t}fk1fl1.tiff")`` opens a
folder of per-field TIFFs (Opera Phenix / Operetta "Harmony" exports and the like) as
the same navigable plate, each field one pattern stack (see :mod:`.plate_folder`).

Metadata is untrusted: well and image paths must be child keys of the plate (no
``..``, no absolute paths), a well folder whose real path leaves the plate is refused
(:class:`~ome_arrow_dask.errors.UnsafePathError`), and every field read has its JSON
type (else :class:`~ome_arrow_dask.errors.CorruptInputError` naming the file and field).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import CorruptInputError, IncompleteOutputError, SelectionError, UnsafePathError, UnsupportedSourceError
from .jobs.status import STATUS_KEY
from .sources import _ngff

if TYPE_CHECKING:
    import dask.array as da

    from .core import OMEArrow

__all__ = ["Plate", "Well", "column_name", "is_plate", "open_plate", "parse_well_name", "row_name"]

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


# ---------------------------------------------------------------------- metadata files
def _read_json(path: str) -> Any:
    """Load one metadata document (size-limited); None when the file does not exist."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(_ngff.MAX_METADATA_BYTES + 1)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise CorruptInputError(f"{path}: cannot read the metadata file ({exc})") from exc
    if len(data) > _ngff.MAX_METADATA_BYTES:
        raise CorruptInputError(f"{path}: metadata larger than the limit {_ngff.MAX_METADATA_BYTES:,} bytes")
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise CorruptInputError(f"{path}: metadata is not valid JSON ({exc})") from exc


def read_group_attrs(folder: str) -> tuple[dict[str, Any], str, int] | None:
    """(attributes, file read, zarr format) of the zarr group in ``folder``; None when there is none.

    Reads one file: ``zarr.json`` (v3), else ``.zattrs`` (v2; a group with no ``.zattrs``
    but a ``.zgroup`` has empty attributes).
    """
    v3 = os.path.join(folder, "zarr.json")
    doc = _read_json(v3)
    if doc is not None:
        if not isinstance(doc, dict):
            raise CorruptInputError(f"{v3}: must be a JSON object, got {type(doc).__name__}")
        if doc.get("node_type") != "group":
            raise CorruptInputError(f"{v3}: expected a zarr group, found node_type {doc.get('node_type')!r}")
        attrs = _ngff.typed_field(doc, "attributes", dict, v3, "attributes") or {}
        return attrs, v3, 3
    v2 = os.path.join(folder, ".zattrs")
    doc = _read_json(v2)
    if doc is None:
        return ({}, os.path.join(folder, ".zgroup"), 2) if os.path.isfile(os.path.join(folder, ".zgroup")) else None
    if not isinstance(doc, dict):
        raise CorruptInputError(f"{v2}: attributes must be a JSON object, got {type(doc).__name__}")
    return doc, v2, 2


def _ngff_block(attrs: dict[str, Any], key: str, where: str) -> tuple[dict[str, Any] | None, str | None]:
    """``attrs["ome"][key]`` (0.5) or ``attrs[key]`` (0.4) and the NGFF version."""
    ome = _ngff.typed_field(attrs, "ome", dict, where, "'ome'")
    if ome is not None and key in ome:
        return _ngff.typed_field(ome, key, dict, where, f"ome.{key}"), str(ome.get("version", "0.5"))
    block = _ngff.typed_field(attrs, key, dict, where, key)
    if block is None:
        return None, None
    return block, str(block.get("version", "0.4"))


def _check_status(root: str, attrs: dict[str, Any], where: str) -> None:
    status = attrs.get(STATUS_KEY)
    if status is None:
        return
    if not isinstance(status, dict):
        raise CorruptInputError(f"{where}: the attribute {STATUS_KEY!r} must be an object, got {type(status).__name__}")
    if status.get("status") != "complete":
        raise IncompleteOutputError(
            f"{root}: this plate was not finished by ome-arrow-dask (status {status.get('status')!r}); "
            "re-run the conversion with resume=True (CLI --resume) to finish it"
        )


def _names(block: dict[str, Any], key: str, where: str) -> tuple[str, ...]:
    items = _ngff.typed_field(block, key, list, where, f"plate.{key}", required=True)
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise CorruptInputError(f"{where}: plate.{key}[{i}] must be an object, got {type(item).__name__}")
        name = _ngff.typed_field(item, "name", str, where, f"plate.{key}[{i}].name", required=True)
        if not name.isalnum():
            raise CorruptInputError(f"{where}: plate.{key}[{i}].name {name!r} must be alphanumeric")
        out.append(name)
    if len(set(out)) != len(out):
        raise CorruptInputError(f"{where}: plate.{key} repeats names: {out}")
    return tuple(out)


def _check_inside(root: str, path: str, what: str) -> None:
    root_real, real = os.path.realpath(root), os.path.realpath(path)
    if os.path.commonpath([root_real, real]) != root_real:
        raise UnsafePathError(f"{path}: {what} resolves to {real}, outside the plate {root_real}; refusing to read it")


# ---------------------------------------------------------------------- model
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
        found = read_group_attrs(folder)
        if found is None:
            return 1
        attrs, where, _ = found
        ngff = _ngff.ngff_attrs(attrs, where)
        return 1 if ngff is None else _ngff.parse_multiscale(ngff, 0, where).n_levels


# ---------------------------------------------------------------------- opening
def is_plate(path: str | os.PathLike[str]) -> bool:
    """True for a local zarr group whose attributes hold NGFF ``plate`` metadata (reads one file)."""
    folder = os.fspath(path)
    if not os.path.isdir(folder):
        return False
    try:
        found = read_group_attrs(folder)
    except CorruptInputError:
        return False
    if found is None:
        return False
    attrs = found[0]
    ome = attrs.get("ome")
    return "plate" in attrs or (isinstance(ome, dict) and "plate" in ome)


def _well_fields(well_attrs: dict[str, Any], where: str) -> tuple[FieldRef, ...]:
    block, _ = _ngff_block(well_attrs, "well", where)
    if block is None:
        raise CorruptInputError(f"{where}: this well group has no NGFF 'well' metadata")
    images = _ngff.typed_field(block, "images", list, where, "well.images", required=True)
    refs = []
    for i, image in enumerate(images):
        if not isinstance(image, dict):
            raise CorruptInputError(f"{where}: well.images[{i}] must be an object, got {type(image).__name__}")
        path = _ngff.typed_field(image, "path", str, where, f"well.images[{i}].path", required=True)
        _ngff.check_dataset_path(path, where)
        acquisition = _ngff.typed_field(image, "acquisition", int, where, f"well.images[{i}].acquisition")
        refs.append(FieldRef(path, acquisition))
    return tuple(refs)


def _zarr_opener(folder: str, refs: tuple[FieldRef, ...]) -> Callable[[int, int, dict[str, Any]], OMEArrow]:
    def open_field(index: int, level: int, options: dict[str, Any]) -> OMEArrow:
        from .core import OMEArrow

        return OMEArrow.scan(os.path.join(folder, refs[index].path), level=level, **options)

    return open_field


def _open_wells(
    root: str, where: str, block: dict[str, Any], rows: tuple[str, ...], columns: tuple[str, ...]
) -> dict[str, Well]:
    """Check ``plate.wells`` and read each well's metadata (one file per well)."""
    wells_meta = _ngff.typed_field(block, "wells", list, where, "plate.wells", required=True)
    wells: dict[str, Well] = {}
    for i, entry in enumerate(wells_meta):
        if not isinstance(entry, dict):
            raise CorruptInputError(f"{where}: plate.wells[{i}] must be an object, got {type(entry).__name__}")
        wpath = _ngff.typed_field(entry, "path", str, where, f"plate.wells[{i}].path", required=True)
        _ngff.check_dataset_path(wpath, where)
        parts = wpath.split("/")
        if len(parts) != 2 or parts[0] not in rows or parts[1] not in columns:
            raise CorruptInputError(
                f"{where}: plate.wells[{i}].path {wpath!r} must be '<row>/<column>' with names from plate.rows "
                "and plate.columns"
            )
        r = _ngff.typed_field(entry, "rowIndex", int, where, f"plate.wells[{i}].rowIndex")
        c = _ngff.typed_field(entry, "columnIndex", int, where, f"plate.wells[{i}].columnIndex")
        r = rows.index(parts[0]) if r is None else r
        c = columns.index(parts[1]) if c is None else c
        if (rows[r] if 0 <= r < len(rows) else None, columns[c] if 0 <= c < len(columns) else None) != tuple(parts):
            raise CorruptInputError(
                f"{where}: plate.wells[{i}] {wpath!r} has rowIndex {r} / columnIndex {c}, which name another well"
            )
        if wpath in wells:
            raise CorruptInputError(f"{where}: plate.wells lists {wpath!r} twice")
        folder = os.path.join(root, *parts)
        _check_inside(root, folder, f"well folder {wpath!r}")
        well_found = read_group_attrs(folder)
        if well_found is None:
            raise CorruptInputError(f"{folder}: well {wpath!r} is listed in {where} but has no zarr group")
        refs = _well_fields(well_found[0], well_found[1])
        wells[wpath] = Well(wpath, r, c, refs, _zarr_opener(folder, refs), folder)
    return wells


def open_plate(path: str | os.PathLike[str], *, pattern: str | None = None, **options: Any) -> Plate:
    """Open an OME-NGFF plate (0.4 or 0.5), or a folder of per-field TIFFs named by ``pattern``.

    Reads the plate metadata and each well's metadata only: ``1 + number of wells``
    JSON files for an NGFF plate (no field image is opened until asked for). With
    ``pattern`` (``{row}``, ``{col}``, ``{field}`` plus ``{t}``, ``{c}``, ``{z}``) the
    folder is listed once and each field becomes a pattern stack (``options`` go to
    :func:`~ome_arrow_dask.plate_folder.scan_plate_folder`, e.g. ``missing="zeros"``).

    Parameters
    ----------
    path
        The plate store, or the folder of TIFFs.
    pattern
        File-name template of a TIFF folder (None for an NGFF plate).

    Returns
    -------
    Plate
        ``plate.rows``, ``plate.columns``, ``plate.wells``, ``plate["B/3"][0]``, ``plate.montage()``.

    Raises
    ------
    UnsupportedSourceError
        ``path`` is not a zarr group with NGFF ``plate`` metadata.
    IncompleteOutputError
        Our writer has not finished the plate (resume the conversion).
    CorruptInputError, UnsafePathError
        Malformed metadata, a listed well without a group, or a path leaving the plate.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from ome_arrow_dask import OMEArrow, write_plate
    >>> out = os.path.join(tempfile.mkdtemp(), "p.ome.zarr")
    >>> _ = write_plate({"A/1": np.zeros((4, 4), "u1"), "B/2": [np.ones((4, 4), "u1")] * 2}, out)
    >>> plate = open_plate(out)
    >>> plate.rows, plate.columns, plate.wells, len(plate["B/2"]), plate.metadata_files_read
    (('A', 'B'), ('1', '2'), ('A/1', 'B/2'), 2, 3)
    """
    if pattern is not None:
        from .plate_folder import open_plate_folder

        return open_plate_folder(path, pattern, **options)
    if options:
        raise TypeError(f"open_plate takes options {sorted(options)} only with pattern= (a TIFF folder)")
    root = os.path.abspath(os.fspath(path))
    if not os.path.isdir(root):
        raise FileNotFoundError(f"no such plate folder: {root!r}")
    found = read_group_attrs(root)
    if found is None:
        raise UnsupportedSourceError(f"{root}: not a zarr group (no zarr.json, .zattrs or .zgroup)")
    attrs, where, _ = found
    _check_status(root, attrs, where)
    block, version = _ngff_block(attrs, "plate", where)
    if block is None:
        raise UnsupportedSourceError(f"{root}: zarr group without NGFF 'plate' metadata ({where}); open it as an image")
    rows, columns = _names(block, "rows", where), _names(block, "columns", where)
    acquisitions = tuple(_ngff.typed_field(block, "acquisitions", list, where, "plate.acquisitions") or ())
    for i, acq in enumerate(acquisitions):
        if not isinstance(acq, dict) or not isinstance(acq.get("id"), int) or isinstance(acq.get("id"), bool):
            raise CorruptInputError(f"{where}: plate.acquisitions[{i}] must be an object with an integer id")
    field_count = _ngff.typed_field(block, "field_count", int, where, "plate.field_count")
    wells = _open_wells(root, where, block, rows, columns)
    return Plate(
        root,
        name=block.get("name") if isinstance(block.get("name"), str) else None,
        version=str(version),
        rows=rows,
        columns=columns,
        wells=wells,
        acquisitions=tuple(dict(a) for a in acquisitions),
        field_count=field_count,
        metadata_files_read=1 + len(wells),
    )
