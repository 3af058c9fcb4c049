"""Writers: ``OMEArrow.export(how=...)`` dispatches here by format name.

Each writer module exposes ``write(image, out, **options) -> out`` taking an
:class:`~ome_arrow_dask.core.OMEArrow` plan; it streams block by block.
"""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING, Any

from ..errors import OmeArrowDaskError

if TYPE_CHECKING:
    from ..core import OMEArrow

WRITERS: dict[str, str] = {
    "ome-zarr": "ome_arrow_dask.writers.zarr",
    "parquet": "ome_arrow_dask.writers.parquet",
    "ome-tiff": "ome_arrow_dask.writers.tiff",
}
"""Canonical format name -> module exposing ``write``."""

ALIASES: dict[str, str] = {
    "omezarr": "ome-zarr",
    "zarr": "ome-zarr",
    "ome-parquet": "parquet",
    "omeparquet": "parquet",
    "ometiff": "ome-tiff",
    "tiff": "ome-tiff",
}


def write(how: str, image: OMEArrow, out: str | os.PathLike[str] | None, **options: Any) -> Any:
    """Write ``image`` in format ``how`` to ``out``; return ``out``."""
    kind = ALIASES.get(how, how)
    module_name = WRITERS.get(kind)
    if module_name is None:
        known = ", ".join(["numpy", "dask", *WRITERS])
        raise OmeArrowDaskError(f"unknown export format how={how!r}; expected one of: {known}")
    if out is None:
        raise OmeArrowDaskError(f"export(how={how!r}) writes a file: pass out=<path>")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        raise OmeArrowDaskError(f"export(how={how!r}) is not available in this version of ome-arrow-dask") from exc
    labels = options.pop("labels", None) if kind == "ome-zarr" else None
    if labels is not None:  # NGFF label images beside the image (see ome_arrow_dask.labels), checked first
        from ..labels import prepare_labels, write_labels

        labels = prepare_labels(image, labels)
    result = module.write(image, out, **options)
    if labels is not None:
        write_labels(os.fspath(out), image, labels, **options)
    return result
