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

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .errors import CorruptInputError, IncompleteOutputError, UnsafePathError, UnsupportedSourceError
from .jobs.status import STATUS_KEY
from .plate_model import FieldRef, Plate, Well, column_name, parse_well_name, row_name
from .sources import _ngff
from .sources._ngff import read_group_attrs

if TYPE_CHECKING:
    from .core import OMEArrow

__all__ = ["Plate", "Well", "column_name", "is_plate", "open_plate", "parse_well_name", "row_name"]


# ---------------------------------------------------------------------- metadata
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
