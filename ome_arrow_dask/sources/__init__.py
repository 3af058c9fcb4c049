"""Source formats and the registry that ``OMEArrow.scan`` dispatches through.

Each format lives in its own module exposing two functions::

    def probe(path: str, **options) -> bool   # cheap: suffix, magic bytes, a marker file
    def open(path: str, **options) -> Source  # reads metadata only

Formats are tried in :data:`FORMATS` order; the first whose ``probe`` says yes opens
the path. Modules that are not part of this build yet are skipped.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from types import ModuleType
from typing import Any

from ..errors import UnsupportedSourceError
from ..storage import is_remote, location
from .base import ArraySource, Source, chunk_slices

__all__ = [
    "FORMATS",
    "ArraySource",
    "Source",
    "available_formats",
    "chunk_slices",
    "open_source",
    "register_format",
]

FORMATS: list[tuple[str, str]] = [
    ("ome-arrow parquet", "ome_arrow_dask.sources.parquet"),
    ("ome-zarr", "ome_arrow_dask.sources.zarr"),
    ("filename pattern", "ome_arrow_dask.sources.stack"),
    ("tiff", "ome_arrow_dask.sources.tiff"),
]
"""(format name, module) pairs probed in order by :func:`open_source`."""


def register_format(name: str, module: str, *, first: bool = False) -> None:
    """Register a third-party format module exposing ``probe`` and ``open``."""
    entry = (name, module)
    if entry in FORMATS:
        return
    if first:
        FORMATS.insert(0, entry)
    else:
        FORMATS.append(entry)


def _load(module_name: str) -> ModuleType | None:
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            return None
        raise


def available_formats() -> list[str]:
    """Names of the formats this installation can open."""
    return [name for name, module in FORMATS if _load(module) is not None]


def open_source(path: str | os.PathLike[str], **options: Any) -> Source:
    """Open ``path`` with the first registered format whose probe accepts it.

    A URL (``s3://``, ``https://``, ...) goes to the formats that read remote stores
    (module functions ``probe_remote`` / ``open``), with ``storage_options=`` (credentials,
    ``anon``, ``endpoint_url``, ``headers``; see :mod:`ome_arrow_dask.storage`); local
    paths ignore ``storage_options``.

    Raises
    ------
    FileNotFoundError
        When ``path`` does not exist and no format claims it (patterns may not exist).
    UnsupportedSourceError
        When no format recognises the path; the message lists the formats tried.
    """
    text = os.fspath(path)
    storage_options = options.pop("storage_options", None)
    if is_remote(text):
        return _open_remote(text, storage_options, options)
    tried = []
    for name, module_name in FORMATS:
        module = _load(module_name)
        if module is None:
            continue
        tried.append(name)
        if module.probe(text, **options):
            return module.open(text, **options)
    if not any(ch in text for ch in "*?<>{}") and not os.path.exists(text):
        raise FileNotFoundError(f"no such file or directory: {text!r}")
    stack = _load("ome_arrow_dask.sources.stack") if os.path.isdir(text) else None
    hint = stack.folder_hint(text) if stack is not None else ""  # a folder of TIFFs: say how to pass a pattern
    if hint:
        raise UnsupportedSourceError(f"cannot open {text!r} without a filename pattern: {hint}")
    raise UnsupportedSourceError(
        f"cannot open {text!r}: no supported format recognised it (tried: {', '.join(tried) or 'none'}). "
        "Pass an array to OMEArrow(...) or convert the file to OME-TIFF, OME-Zarr or OME-Arrow Parquet."
    )


def _open_remote(url: str, storage_options: Mapping[str, Any] | None, options: dict[str, Any]) -> Source:
    """Open a URL with the first format whose ``probe_remote`` accepts it (by name; no request)."""
    loc = location(url, storage_options)
    tried = []
    for name, module_name in FORMATS:
        module = _load(module_name)
        probe = getattr(module, "probe_remote", None) if module is not None else None
        if module is None or probe is None:
            continue
        tried.append(name)
        if probe(loc, **options):
            return module.open(loc, **options)
    raise UnsupportedSourceError(
        f"cannot open {loc.describe()}: remote URLs are recognised by name (.zarr, .tif/.tiff, .parquet, or a "
        f"folder with pattern=...); tried: {', '.join(tried) or 'none'}"
    )
