"""Lazy, chunk-aligned microscopy images on Dask.

Open any supported source as one lazy TCZYX plan, compose selections, and read only
the chunks they touch::

    from ome_arrow_dask import OMEArrow
    img = OMEArrow.scan("image.ome.tiff")
    crop = img.slice_lazy(0, 512, 0, 512, z_indices=[0, 2])
    print(crop.explain())
    pixels = crop.collect().to_numpy()

The public names are imported on first use (PEP 562), so ``import ome_arrow_dask`` is
cheap and ``from ome_arrow_dask import OMEArrow`` imports only what a plan needs; Dask's
array module, pyarrow, zarr and tifffile are imported where a call first needs them.
"""

from __future__ import annotations

from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .arrow.chunks import ChunkStream
    from .arrow.tables import ImageColumn
    from .blocks import Block, map_blocks
    from .cache import CachedSource, CacheInfo
    from .core import OMEArrow
    from .dlpack import DLPackExport
    from .errors import (
        CorruptInputError,
        DimOrderError,
        IgnoredMetadataWarning,
        IncompleteOutputError,
        InconsistentInputError,
        InputChangedError,
        InputUnreachableError,
        LayoutError,
        MissingDataWarning,
        OmeArrowDaskError,
        OutputInUseError,
        OutputIsInputError,
        PatternError,
        ResourceLimitError,
        SelectionError,
        UnsafePathError,
        UnsupportedSourceError,
    )
    from .meta import AXES, Channel, ImageMeta, PhysicalSize
    from .plate import Plate, Well, open_plate
    from .sources import ArraySource, Source, available_formats, open_source
    from .tensor import LazyTensorView, TensorView
    from .writers.plate import write_plate

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    "AXES": "meta",
    "ArraySource": "sources",
    "Block": "blocks",
    "CacheInfo": "cache",
    "CachedSource": "cache",
    "Channel": "meta",
    "ChunkStream": "arrow.chunks",
    "CorruptInputError": "errors",
    "DLPackExport": "dlpack",
    "DimOrderError": "errors",
    "IgnoredMetadataWarning": "errors",
    "ImageColumn": "arrow.tables",
    "ImageMeta": "meta",
    "IncompleteOutputError": "errors",
    "InconsistentInputError": "errors",
    "InputChangedError": "errors",
    "InputUnreachableError": "errors",
    "LayoutError": "errors",
    "LazyTensorView": "tensor",
    "MissingDataWarning": "errors",
    "OMEArrow": "core",
    "OmeArrowDaskError": "errors",
    "OutputInUseError": "errors",
    "OutputIsInputError": "errors",
    "PatternError": "errors",
    "PhysicalSize": "meta",
    "Plate": "plate",
    "ResourceLimitError": "errors",
    "SelectionError": "errors",
    "Source": "sources",
    "TensorView": "tensor",
    "UnsafePathError": "errors",
    "UnsupportedSourceError": "errors",
    "Well": "plate",
    "available_formats": "sources",
    "map_blocks": "blocks",
    "open_plate": "plate",
    "open_source": "sources",
    "write_plate": "writers.plate",
}
"""Public name -> the submodule (relative to this package) that defines it."""

__all__ = [
    "AXES",
    "ArraySource",
    "Block",
    "CacheInfo",
    "CachedSource",
    "Channel",
    "ChunkStream",
    "CorruptInputError",
    "DLPackExport",
    "DimOrderError",
    "IgnoredMetadataWarning",
    "ImageColumn",
    "ImageMeta",
    "IncompleteOutputError",
    "InconsistentInputError",
    "InputChangedError",
    "InputUnreachableError",
    "LayoutError",
    "LazyTensorView",
    "MissingDataWarning",
    "OMEArrow",
    "OmeArrowDaskError",
    "OutputInUseError",
    "OutputIsInputError",
    "PatternError",
    "PhysicalSize",
    "Plate",
    "ResourceLimitError",
    "SelectionError",
    "Source",
    "TensorView",
    "UnsafePathError",
    "UnsupportedSourceError",
    "Well",
    "__version__",
    "available_formats",
    "map_blocks",
    "open_plate",
    "open_source",
    "write_plate",
]


def _submodule(module: str) -> ModuleType:  # noqa: C901 - one case per submodule
    """Import one submodule named in :data:`_EXPORTS`.

    Plain import statements, not ``importlib``, so that tests/test_import_layers.py sees
    the package root's imports (function-level imports count there).
    """
    match module:
        case "arrow.chunks":
            from .arrow import chunks

            return chunks
        case "arrow.tables":
            from .arrow import tables

            return tables
        case "blocks":
            from . import blocks

            return blocks
        case "cache":
            from . import cache

            return cache
        case "core":
            from . import core

            return core
        case "dlpack":
            from . import dlpack

            return dlpack
        case "errors":
            from . import errors

            return errors
        case "meta":
            from . import meta

            return meta
        case "plate":
            from . import plate

            return plate
        case "sources":
            from . import sources

            return sources
        case "tensor":
            from . import tensor

            return tensor
        case "writers.plate":
            from .writers import plate as writers_plate

            return writers_plate
    raise AssertionError(f"no import for submodule {module!r}")


def __getattr__(name: str) -> Any:
    """Import a public name's submodule on first access (PEP 562) and cache the name here."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(_submodule(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """Module attributes plus the public names not imported yet (for ``dir()`` and completion)."""
    return sorted({*globals(), *__all__})
