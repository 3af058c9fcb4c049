"""Compatibility path: Arrow interop now lives in the :mod:`ome_arrow_dask.arrow` package.

Tensor and record exports are in :mod:`~ome_arrow_dask.arrow.export`, chunk streams in
:mod:`~ome_arrow_dask.arrow.chunks`, image columns of tables in
:mod:`~ome_arrow_dask.arrow.tables` and ``to_ome_parquet`` in :mod:`~ome_arrow_dask.arrow.files`.
"""

from __future__ import annotations

from typing import Any

from .arrow.chunks import CHUNK_STREAM_LAYOUT, ChunkStream, chunk_stream_schema
from .arrow.export import (
    PAYLOADS,
    record_array,
    record_capsules,
    record_field,
    tensor_array,
    tensor_capsules,
    tensor_field,
)
from .arrow.files import to_ome_parquet
from .arrow.tables import ImageColumn

__all__ = [
    "CHUNK_STREAM_LAYOUT",
    "PAYLOADS",
    "ChunkStream",
    "ImageColumn",
    "chunk_stream_schema",
    "record_array",
    "record_capsules",
    "record_field",
    "scan_table",
    "tensor_array",
    "tensor_capsules",
    "tensor_field",
    "to_ome_parquet",
]


def scan_table(
    data: Any,
    column_name: str | None = None,
    *,
    tcz: tuple[int, int, int] = (0, 0, 0),
    image_type: str | None = None,
) -> ImageColumn:
    """Same as :meth:`OMEArrow.scan_table <ome_arrow_dask.core.OMEArrow.scan_table>`."""
    from .core import OMEArrow

    return OMEArrow.scan_table(data, column_name, tcz=tcz, image_type=image_type)
