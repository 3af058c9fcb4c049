"""Single-record Parquet files: ome-arrow's ``to_ome_parquet``.

The one module of :mod:`ome_arrow_dask.arrow` that writes files. A file appears whole or
not at all (temp name, fsync, rename: :mod:`ome_arrow_dask.jobs`), with page checksums.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import OmeArrowDaskError
from ..jobs.commit import commit
from ..jobs.paths import tmp_path
from .codec import is_record_dict, record_from_dict
from .export import ImagePlan, record_array
from .ingest import record_source
from .schema import FILE_METADATA


def to_ome_parquet(
    data: Any,
    out_path: str | os.PathLike[str],
    column_name: str = "image",
    file_metadata: dict[str, str] | None = None,
    compression: str | None = "zstd",
) -> None:
    """Write one OME-Arrow record as a single-row Parquet file (ome-arrow's ``to_ome_parquet``).

    Parameters
    ----------
    data
        The record: a dict in OME-Arrow record form, a ``pa.StructScalar``, a one-row
        OME-Arrow struct array, or an :class:`~ome_arrow_dask.core.OMEArrow` (written
        with the byte payload, dtype kept). Arrow and dict records are written as given
        (list or byte payload), after checking that they open as an image.
    out_path
        The file to write; written to a temporary name and renamed when complete.
    column_name
        The struct column's name (ome-arrow's default ``"image"``).
    file_metadata
        Extra key/value pairs for the schema metadata, next to ``ome.arrow.type`` / ``version``.
    compression
        Parquet codec of every leaf column (default zstd).
    """
    if isinstance(data, ImagePlan):
        record = record_array(data)
    elif is_record_dict(data):
        record = record_from_dict(data)
    elif isinstance(data, pa.StructScalar):
        record = pa.array([data.as_py()], type=data.type)  # scalars hide their buffers: one copy
    elif isinstance(data, pa.StructArray) and len(data) == 1:
        record = data
    else:
        raise TypeError(
            f"to_ome_parquet writes one OME-Arrow record (dict, StructScalar, one-row StructArray or OMEArrow), "
            f"got {type(data).__name__}"
        )
    record_source(record)  # raises on a record that does not open as an image
    metadata = {**FILE_METADATA, **{str(k).encode(): str(v).encode() for k, v in (file_metadata or {}).items()}}
    table = pa.Table.from_arrays([record], names=[column_name]).replace_schema_metadata(metadata)
    target = Path(os.path.abspath(os.fspath(out_path)))
    if target.is_dir():
        raise OmeArrowDaskError(f"{target}: is a directory; to_ome_parquet writes a single file")
    write_table_file(table, target, compression)


def write_table_file(table: pa.Table, final: Path, compression: str | None = "zstd") -> None:
    """Write ``table`` to the Parquet file ``final``: temp name, fsync, rename; page checksums, no dictionaries.

    ``compression`` is the codec of every leaf column (None: uncompressed). The temp file
    never stays behind, also when the write fails.
    """
    tmp = tmp_path(final)
    try:
        with pq.ParquetWriter(
            tmp, table.schema, compression=compression or "none", write_page_checksum=True, use_dictionary=False
        ) as writer:
            writer.write_table(table)
        commit(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
