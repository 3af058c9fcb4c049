"""OMEArrow: an immutable lazy plan over a chunked image source.

A plan is ``(source, selection, steps)``. ``slice_lazy`` and ``tensor_view`` compose a
new selection in relative coordinates (a later call indexes the result of the earlier
one) and return a new plan; nothing is read until ``collect()``, ``to_dask().compute()``
or a tensor export. Shape, dtype, chunks and ``explain()`` never read pixels.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from functools import cached_property
from typing import TYPE_CHECKING, Any

import dask.array as da
import numpy as np

from . import render
from ._arrow_import import is_arrow_input, source_from_arrow
from .errors import OmeArrowDaskError
from .graph import build_array, plan_reads, read_into_memory
from .lowering import ReadPlan
from .meta import ImageMeta
from .selection import (
    Selection,
    compose_selection,
    full_selection,
    half_open_bounds,
    is_identity,
    normalize_index,
    selection_shape,
)
from .sources import open_source
from .sources.base import ArraySource, MetaOverride, Source

if TYPE_CHECKING:
    import pyarrow as pa

    from .arrow_interop import ChunkStream, ImageColumn


def _is_source(obj: object) -> bool:
    return hasattr(obj, "read_chunk") and hasattr(obj, "meta") and hasattr(obj, "token")


def _sorted_unique_indices(indices: Iterable[int] | None, size: int, axis: str) -> tuple[int, ...] | range:
    """ome-arrow's index-list rule for ``slice``: sorted, deduplicated, here range-checked."""
    if indices is None:
        return range(size)
    if isinstance(indices, int):
        indices = [indices]
    picked = normalize_index(list(indices), size, axis)
    if not picked:
        raise OmeArrowDaskError(f"{axis}_indices is empty: it would select no {axis.upper()} planes")
    return tuple(sorted(set(picked)))


class OMEArrow:
    """A lazy TCZYX image: any source, a composed selection, and how it was built.

    Parameters
    ----------
    data
        A numpy / dask / torch / jax / cupy array (2-D to 5-D), a path (any format
        :func:`~ome_arrow_dask.sources.open_source` recognises), a
        :class:`~ome_arrow_dask.sources.Source`, another ``OMEArrow``, or Arrow data:
        an OME-Arrow struct array / scalar, an ``arrow.fixed_shape_tensor`` array, a
        Pillow image, or any object with ``__arrow_c_array__`` / ``__arrow_c_stream__``
        (zero-copy where the buffers allow; see :mod:`ome_arrow_dask._arrow_import`).
    tcz
        Default (t, c, z) plane for the HTML thumbnail, as in ome-arrow.
    dim_order
        Axis letters of an array input; default by rank (2D YX, 3D ZYX, 4D TCYX, 5D TCZYX).
    column_name, row_index
        Which Parquet column / row holds the image (passed to the Parquet source);
        ``row_index`` also picks a row of a multi-row Arrow record or tensor array.
    image_type
        Overrides the image type recorded in the metadata ("image", "label").
    lazy
        For paths: ``True`` keeps the plan lazy (same as :meth:`scan`); ``False`` (the
        default, as in ome-arrow) loads the pixels into memory.
    chunks
        Chunking for array, tensor and Pillow inputs (dask-style); ignored for paths.
    **options
        Format options for paths (e.g. ``level=``, ``scene=``, ``pattern=``).
    """

    def __init__(
        self,
        data: Any,
        tcz: tuple[int, int, int] = (0, 0, 0),
        *,
        dim_order: str | None = None,
        column_name: str | None = None,
        row_index: int | None = None,
        image_type: str | None = None,
        lazy: bool = False,
        chunks: Any = None,
        **options: Any,
    ) -> None:
        is_path = isinstance(data, (str, os.PathLike))
        if dim_order is not None and (is_path or isinstance(data, OMEArrow) or _is_source(data)):
            raise OmeArrowDaskError("dim_order is only valid with array inputs")
        if is_path:
            source_options = dict(options)
            if column_name is not None:
                source_options["column_name"] = column_name
            if row_index is not None:
                source_options["row_index"] = row_index
            source: Source = open_source(data, **source_options)
        elif lazy:
            raise TypeError("lazy=True requires a path; arrays are already in memory")
        elif isinstance(data, OMEArrow):
            source = data._source
        elif _is_source(data):
            source = data
        elif is_arrow_input(data):
            source = source_from_arrow(data, dim_order=dim_order, row_index=row_index, chunks=chunks)
        else:
            source = ArraySource(data, dim_order, chunks=chunks)
        if image_type is not None:
            source = MetaOverride(source, source.meta.replace(image_type=image_type))
        selection = data._selection if isinstance(data, OMEArrow) else full_selection(source.meta.shape)
        steps = data._steps if isinstance(data, OMEArrow) else ()
        self._init_plan(source, selection, steps, tcz)
        if is_path and not lazy:
            collected = self.collect()
            self._init_plan(collected._source, collected._selection, (), tcz)

    def _init_plan(self, source: Source, selection: Selection, steps: tuple[str, ...], tcz: tuple[int, ...]) -> None:
        self._source = source
        self._selection = selection
        self._steps = steps
        self.tcz = tuple(int(v) for v in tcz)
        self.__dict__.pop("read_plan", None)
        self.__dict__.pop("meta", None)

    @classmethod
    def _from_plan(cls, source: Source, selection: Selection, steps: tuple[str, ...], tcz: tuple[int, ...]) -> OMEArrow:
        plan = cls.__new__(cls)
        plan._init_plan(source, selection, steps, tcz)
        return plan

    @classmethod
    def scan(
        cls,
        data: str | os.PathLike[str],
        *,
        tcz: tuple[int, int, int] = (0, 0, 0),
        column_name: str | None = None,
        row_index: int | None = None,
        image_type: str | None = None,
        **options: Any,
    ) -> OMEArrow:
        """Open ``data`` lazily: read metadata only, like polars' ``scan_*``.

        Unlike ome-arrow, a missing path fails here (``FileNotFoundError``), not at
        ``collect()``.
        """
        return cls(
            data,
            tcz,
            column_name=column_name,
            row_index=row_index,
            image_type=image_type,
            lazy=True,
            **options,
        )

    # ------------------------------------------------------------------ metadata
    @property
    def source(self) -> Source:
        """The source this plan reads from."""
        return self._source

    @property
    def selection(self) -> Selection:
        """The composed selection in source coordinates, one index per TCZYX axis."""
        return self._selection

    @cached_property
    def read_plan(self) -> ReadPlan:
        """The selection lowered onto the source's chunk grid (no reads)."""
        return plan_reads(self._source, self._selection)

    @cached_property
    def meta(self) -> ImageMeta:
        """Metadata of the selected image (shape, dtype, chunks, channels, ...)."""
        base = self._source.meta
        channels = tuple(base.channels[c] for c in self._selection[1])
        shape = selection_shape(self._selection)
        return base.replace(shape=shape, chunks=self.read_plan.out_chunks, channels=channels)

    @property
    def shape(self) -> tuple[int, ...]:
        """TCZYX shape of the selection."""
        return self.meta.shape

    @property
    def dtype(self) -> np.dtype:
        """Pixel dtype, exactly as stored."""
        return self.meta.dtype

    @property
    def chunks(self) -> tuple[tuple[int, ...], ...]:
        """Dask-style chunks of :meth:`to_dask` (they follow the source chunks)."""
        return self.meta.chunks

    @property
    def nbytes(self) -> int:
        """Bytes of the selection when loaded."""
        return self.meta.nbytes

    @property
    def is_lazy(self) -> bool:
        """True while pixels still have to be read (a file source or a pending selection)."""
        in_memory = isinstance(self._source, ArraySource) and self._source.is_in_memory
        return not (in_memory and is_identity(self._selection, self._source.meta.shape))

    # ------------------------------------------------------------------ planning
    def _compose(self, inner: Iterable[Any], step: str) -> OMEArrow:
        selection = compose_selection(self._selection, inner)
        return self._from_plan(self._source, selection, (*self._steps, step), self.tcz)

    def slice_lazy(
        self,
        x_min: int,
        x_max: int,
        y_min: int,
        y_max: int,
        t_indices: Iterable[int] | None = None,
        c_indices: Iterable[int] | None = None,
        z_indices: Iterable[int] | None = None,
        fill_missing: bool = True,
    ) -> OMEArrow:
        """Crop X/Y (half-open) and pick T/C/Z planes; return a new lazy plan.

        Coordinates are relative to this plan, so chained calls compose. Index lists
        are sorted and deduplicated as in ome-arrow, but out-of-range indices raise
        instead of being dropped. ``fill_missing`` is accepted for compatibility; our
        sources never have missing planes (they raise or fill when they are opened).
        """
        del fill_missing
        t, c, z, y, x = self.shape
        inner = (
            _sorted_unique_indices(t_indices, t, "t"),
            _sorted_unique_indices(c_indices, c, "c"),
            _sorted_unique_indices(z_indices, z, "z"),
            half_open_bounds(y_min, y_max, y, "y"),
            half_open_bounds(x_min, x_max, x, "x"),
        )
        step = render.slice_step(inner, self.shape)
        return self._compose(inner, step)

    def slice(self, *args: Any, **kwargs: Any) -> OMEArrow:
        """Same as :meth:`slice_lazy` (ome-arrow's eager name); nothing is read."""
        return self.slice_lazy(*args, **kwargs)

    def explain(self) -> str:
        """Describe the plan: source, steps, composed selection and what will be read."""
        return render.explain(self)

    # ------------------------------------------------------------------ execution
    def to_dask(self) -> da.Array:
        """Return the selection as a lazy 5-D TCZYX dask array (one task per block)."""
        return build_array(self._source, self._selection)

    def collect(self, **compute_kwargs: Any) -> OMEArrow:
        """Read the selection into memory; return an in-memory ``OMEArrow``.

        Reads exactly the source chunks the selection intersects.
        """
        if not self.is_lazy:
            return self
        array = None if compute_kwargs else read_into_memory(self._source, self._selection)
        if array is None:
            array = self.to_dask().compute(**compute_kwargs)
        source = ArraySource(array, "TCZYX", chunks=self.chunks, meta=self.meta)
        return self._from_plan(source, full_selection(array.shape), (), self.tcz)

    def to_numpy(self, **compute_kwargs: Any) -> np.ndarray:
        """Read the selection and return it as a TCZYX numpy array."""
        collected = self.collect(**compute_kwargs)
        return collected._source.array  # type: ignore[attr-defined, no-any-return]

    def tensor_view(self, **kwargs: Any) -> Any:
        """Return a tensor view (see :class:`~ome_arrow_dask.tensor.TensorView`)."""
        from .tensor import LazyTensorView, TensorView

        cls = LazyTensorView if self.is_lazy else TensorView
        return cls(self, **kwargs)

    def to_device(self, device: str = "cuda") -> da.Array:
        """Return the selection as a dask array whose chunks live on ``device`` (cupy)."""
        from .gpu import to_device

        return to_device(self.to_dask(), device)

    def export(
        self,
        how: str = "numpy",
        dtype: Any = None,
        *,
        out: str | os.PathLike[str] | None = None,
        **options: Any,
    ) -> Any:
        """Export the selection: ``"numpy"`` (TCZYX array), ``"dask"``, or a writer format.

        Unlike ome-arrow, ``dtype=None`` keeps the stored dtype (ome-arrow defaults to
        uint16 and truncates). File writers (``"ome-zarr"``, ``"parquet"``, ...) need
        ``out`` and return it.
        """
        kind = how.lower().replace("_", "-")
        if kind == "numpy":
            array = self.to_numpy()
            return array if dtype is None else array.astype(dtype)
        if kind == "dask":
            array = self.to_dask()
            return array if dtype is None else array.astype(dtype)
        from .writers import write

        return write(kind, self if dtype is None else self.astype(dtype), out, **options)

    def astype(self, dtype: Any) -> OMEArrow:
        """Return a lazy plan whose pixels are cast to ``dtype`` when read."""
        array = self.to_dask().astype(dtype)
        source = ArraySource(array, "TCZYX", meta=self.meta.replace(dtype=np.dtype(dtype)))
        return self._from_plan(source, full_selection(array.shape), self._steps, self.tcz)

    # ------------------------------------------------------------------ Arrow
    def to_arrow(
        self,
        *,
        payload: str = "bytes",
        chunk_shape: Iterable[int] | None = None,
        chunk_compression: str | None = None,
    ) -> pa.StructArray:
        """Return the selection as a one-row OME-Arrow struct array (reads the pixels).

        ``payload="bytes"`` (default) keeps the dtype; ``"list"`` / ``"planes"`` store
        ``list<uint16>`` as ome-arrow's ``from_numpy`` does. See
        :func:`~ome_arrow_dask.arrow_interop.record_array`.
        """
        from .arrow_interop import record_array

        shape = None if chunk_shape is None else tuple(chunk_shape)
        return record_array(self, payload=payload, chunk_shape=shape, chunk_compression=chunk_compression)

    def arrow_chunks(self, *, pixels: bool = False, batch_size: int = 64) -> ChunkStream:
        """Return the plan's chunks as a re-iterable Arrow stream, one row per chunk.

        Without ``pixels`` no pixel is read, so ``duckdb.sql("select ... from chunks")``
        queries the chunk grid for free. See :class:`~ome_arrow_dask.arrow_interop.ChunkStream`.
        """
        from .arrow_interop import ChunkStream

        return ChunkStream(self, pixels=pixels, batch_size=batch_size)

    @classmethod
    def scan_table(
        cls,
        data: Any,
        column_name: str | None = None,
        *,
        tcz: tuple[int, int, int] = (0, 0, 0),
        image_type: str | None = None,
    ) -> ImageColumn:
        """Open the image column of a feature table lazily: one ``OMEArrow`` per row.

        ``data`` is a Parquet file (only the rows you open are read, one row group each)
        or an Arrow table. Returns an :class:`~ome_arrow_dask.arrow_interop.ImageColumn`
        (iterate it, index it, or slice it).
        """
        from .arrow_interop import scan_table

        return scan_table(data, column_name, tcz=tcz, image_type=image_type)

    def __arrow_c_schema__(self) -> object:
        """Arrow PyCapsule schema: an OME-Arrow byte-payload struct field (no pixels read)."""
        from .arrow_interop import record_field

        return record_field().__arrow_c_schema__()

    def __arrow_c_array__(self, requested_schema: object | None = None) -> tuple[object, object]:
        """Arrow PyCapsule array: a one-row OME-Arrow struct record (byte payload; reads the pixels)."""
        from .arrow_interop import record_capsules

        return record_capsules(self, requested_schema)

    def with_cache(self, max_bytes: int | str = "2GiB") -> OMEArrow:
        """Return this plan reading through a bounded LRU cache of decoded chunks.

        Repeated reads of the same chunks (browsing, viewers) are served from memory;
        ``max_bytes`` (an int or a string such as ``"512MB"``) bounds the cached bytes.
        Plans derived from the result share the cache; statistics are in
        ``plan.source.cache_info()``. See :class:`~ome_arrow_dask.cache.CachedSource`.
        """
        from .cache import with_cache

        return with_cache(self, max_bytes)

    # ------------------------------------------------------------------ display
    def info(self) -> dict[str, Any]:
        """ome-arrow's info dict, plus dtype, chunks, bytes and the source."""
        return render.info(self)

    def _repr_html_(self) -> str:
        return render.html(self)

    def __repr__(self) -> str:
        lazy = "lazy" if self.is_lazy else "in memory"
        return f"OMEArrow(shape={self.shape}, dtype={self.dtype}, {lazy}, source={self._source.describe()!r})"
