"""Lazy, chunk-aligned microscopy images on Dask.

Open any supported source as one lazy TCZYX plan, compose selections, and read only
the chunks they touch::

    from ome_arrow_dask import OMEArrow
    img = OMEArrow.scan("image.ome.tiff")
    crop = img.slice_lazy(0, 512, 0, 512, z_indices=[0, 2])
    print(crop.explain())
    pixels = crop.collect().to_numpy()
"""

from __future__ import annotations

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
