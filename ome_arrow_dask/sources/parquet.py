"""OME-Arrow Parquet: every layout ome-arrow 0.1.0 writes or reads (Vortex excepted).

* **Single-row files** (``to_ome_parquet``): one struct column (``ome_arrow``, ``image``
  or found by type) holding one record with a byte payload, a list payload (chunks
  and/or planes; chunks win), planes only, or the pre-0.1 legacy struct.
* **Multi-row tables** (e.g. CytoDataFrame feature tables): pick the record with
  ``column_name`` and ``row_index``.
* **Typed chunk dataset directories** (``write_ome_arrow_dataset``, ome-arrow's
  ``export(how="parquet")``): recognised by ``_ome_arrow_dataset.json``, any suffix;
  pick one of several images with ``image_id``.

Vortex files are not read (no Vortex dependency); convert them with ome-arrow first.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..storage import Location, RemoteURL
from ._parquet_layout import is_dataset_dir

if TYPE_CHECKING:
    from ._parquet_dataset import DatasetSource
    from ._parquet_struct import StructSource

__all__ = ["DatasetSource", "StructSource", "open", "probe"]

SUFFIXES = (".parquet", ".pq", ".parq")


def probe(path: str, **options: object) -> bool:
    """Cheap check: a dataset directory, a ``.parquet`` suffix, or the ``PAR1`` magic.

    Zarr stores (a ``.zarr`` name, ``zarr.json``, ``.zgroup``, ``.zattrs``) are never
    claimed, even with the ``<path>.progress`` sibling an interrupted conversion leaves.
    """
    del options
    p = Path(path)
    if p.is_dir():
        return is_dataset_dir(path)
    if not p.is_file():
        return False
    if p.name.lower().endswith(SUFFIXES):
        return True
    try:
        with p.open("rb") as fh:
            return fh.read(4) == b"PAR1"
    except OSError:
        return False


def probe_remote(loc: Location, **options: object) -> bool:
    """True for a URL with a Parquet suffix (no request)."""
    del options
    return loc.url.lower().endswith(SUFFIXES)


def open(
    path: str | Location,
    *,
    column_name: str | None = None,
    row_index: int | None = None,
    image_id: str | None = None,
    **options: object,
) -> StructSource | DatasetSource:
    """Open ``path`` lazily (metadata only).

    Parameters
    ----------
    path
        A Parquet file or a typed chunk dataset directory.
    column_name, row_index
        For files: the struct column (default ``ome_arrow``, ``image``, else detected)
        and the row (default 0).
    image_id
        For dataset directories: which image (default the first).

    Raises
    ------
    TypeError
        For options this format does not take, or that do not fit the layout.
    """
    from ._parquet_dataset import DatasetSource  # pyarrow: imported once a Parquet path is opened
    from ._parquet_struct import StructSource

    options.pop("storage_options", None)  # used by open_source to build the Location
    if options:
        raise TypeError(f"OME-Arrow Parquet does not take the option(s) {sorted(options)}")
    if isinstance(path, Location):
        version = path.head()  # None: no such object, so a dataset folder (its manifest says; no LIST)
        if version is None:
            if column_name is not None or row_index is not None:
                raise TypeError("column_name and row_index apply to Parquet files, not dataset folders (use image_id)")
            return DatasetSource(path, image_id=image_id)
        path = RemoteURL(path.pin(*version))
    elif Path(path).is_dir():
        if column_name is not None or row_index is not None:
            raise TypeError("column_name and row_index apply to Parquet files, not dataset directories (use image_id)")
        return DatasetSource(path, image_id=image_id)
    if image_id is not None:
        raise TypeError("image_id applies to dataset directories; pick a row of a file with row_index")
    # ome-arrow's default column is "ome_arrow": another column is auto-detected with its UserWarning
    requested = "ome_arrow" if column_name is None else column_name
    return StructSource(path, column_name=requested, row_index=0 if row_index is None else row_index)


def __getattr__(name: str) -> Any:
    """The source classes in :data:`__all__`, imported on first access (they import pyarrow)."""
    if name == "DatasetSource":
        from ._parquet_dataset import DatasetSource

        return DatasetSource
    if name == "StructSource":
        from ._parquet_struct import StructSource

        return StructSource
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
