"""Writers: ``OMEArrow.export(how=...)`` dispatches here by format name.

Each writer module exposes ``write(image, out, **options) -> out`` taking a
:class:`~ome_arrow_dask.jobs.WriteInput` (dask array, :class:`~ome_arrow_dask.meta.ImageMeta`
and the plan's identity), built once by :func:`as_write_input`; an
:class:`~ome_arrow_dask.core.OMEArrow` passed directly is converted at the entry. Writers
stream block by block and share the job rules of :mod:`ome_arrow_dask.jobs`.
"""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING, Any

from ..errors import OmeArrowDaskError
from ._input import as_write_input

if TYPE_CHECKING:
    from ..core import OMEArrow
    from ..jobs import WriteInput

__all__ = ["ALIASES", "REMOTE_WRITERS", "WRITERS", "as_write_input", "write"]

WRITERS: dict[str, str] = {
    "ome-zarr": "ome_arrow_dask.writers.zarr",
    "parquet": "ome_arrow_dask.writers.parquet",
    "ome-tiff": "ome_arrow_dask.writers.tiff",
}
"""Canonical format name -> module exposing ``write``."""

REMOTE_WRITERS = ("ome-zarr", "parquet")
"""Formats written to object stores (``s3://...``) too, by the protocol of :mod:`ome_arrow_dask.jobs.object_store`."""

ALIASES: dict[str, str] = {
    "omezarr": "ome-zarr",
    "zarr": "ome-zarr",
    "ome-parquet": "parquet",
    "omeparquet": "parquet",
    "ometiff": "ome-tiff",
    "tiff": "ome-tiff",
}


def write(how: str, image: WriteInput | OMEArrow, out: str | os.PathLike[str] | None, **options: Any) -> Any:
    """Write ``image`` in format ``how`` to ``out``; return ``out``."""
    kind = ALIASES.get(how, how)
    module_name = WRITERS.get(kind)
    if module_name is None:
        known = ", ".join(["numpy", "dask", *WRITERS])
        raise OmeArrowDaskError(f"unknown export format how={how!r}; expected one of: {known}")
    if out is None:
        raise OmeArrowDaskError(f"export(how={how!r}) writes a file: pass out=<path>")
    if "://" in os.fspath(out) and (kind not in REMOTE_WRITERS or options.get("labels") is not None):
        what = "labels=" if kind in REMOTE_WRITERS else f"how={how!r}"
        raise OmeArrowDaskError(
            f"{os.fspath(out)}: export with {what} writes local paths only; object stores take "
            f"{' and '.join(REMOTE_WRITERS)} (write locally and upload the result otherwise)"
        )
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        raise OmeArrowDaskError(f"export(how={how!r}) is not available in this version of ome-arrow-dask") from exc
    item = as_write_input(image)
    labels = options.pop("labels", None) if kind == "ome-zarr" else None
    if labels is not None:  # NGFF label images beside the image (see ome_arrow_dask.labels), checked first
        from ..jobs import WriteInput
        from ..labels import prepare_labels, write_labels

        open_plan = None if isinstance(image, WriteInput) else type(image)  # arrays become plans of image's type
        labels = prepare_labels(item, labels, open_plan)
    result = module.write(item, out, **options)
    if labels is not None:
        write_labels(os.fspath(out), item, labels, **options)
    return result
