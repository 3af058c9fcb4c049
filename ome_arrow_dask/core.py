"""OMEArrow: an immutable lazy plan over a chunked image source.

A plan is ``(source, selection, steps)``. ``slice_lazy`` and ``tensor_view`` compose a
new selection in relative coordinates (a later call indexes the result of the earlier
one) and return a new plan; nothing is read until ``collect()``, ``to_dask().compute()``
or a tensor export. Shape, dtype, chunks and ``explain()`` never read pixels.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Mapping
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np

from . import render
from .errors import OmeArrowDaskError
from .graph import build_array, compute, plan_reads, read_into_memory
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
from .sources.base import ArraySource, MetaOverride, Source, input_paths_of
from .tensor import LazyTensorView, TensorView
from .xarray_interop import is_data_array, is_xarray, source_from_xarray

if TYPE_CHECKING:
    import dask.array as da
    import pyarrow as pa

    from .arrow.chunks import ChunkStream
    from .arrow.tables import ImageColumn


def _is_source(obj: object) -> bool:
    return hasattr(obj, "read_chunk") and hasattr(obj, "meta") and hasattr(obj, "token")


def _is_record_dict(data: object) -> bool:
    """:func:`~ome_arrow_dask.arrow.codec.is_record_dict`, importing pyarrow only for mappings."""
    if not isinstance(data, Mapping):
        return False
    from .arrow.codec import is_record_dict

    return is_record_dict(data)


def _is_arrow_input(data: object) -> bool:
    """:func:`~ome_arrow_dask.arrow.ingest.is_arrow_input`, importing pyarrow only when ``data`` may be Arrow.

    Without pyarrow imported no pyarrow object exists, so only the PyCapsule protocol can apply.
    """
    if "pyarrow" not in sys.modules and not (hasattr(data, "__arrow_c_array__") or hasattr(data, "__arrow_c_stream__")):
        return False
    from .arrow.ingest import is_arrow_input

    return is_arrow_input(data)


def _absolute(path: str | os.PathLike[str]) -> str:
    """Return ``path`` made absolute against this process's working directory.

    Plans and writers travel to ``dask.distributed`` workers, which may run in another
    working directory; a relative path would name another (or no) file there. Strings
    with a URL scheme (``s3://...``) are returned unchanged.
    """
    text = os.fspath(path)
    return text if "://" in text else os.path.abspath(text)


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


def _array_source(data: Any, dim_order: str | None, chunks: Any) -> Source:
    """An in-memory / dask array, or an ``xarray.DataArray`` with its coordinates and attrs."""
    if is_xarray(data):
        return source_from_xarray(data, chunks=chunks)
    return ArraySource(data, dim_order, chunks=chunks)


class OMEArrow:
    """A lazy TCZYX image: any source, a composed selection, and how it was built.

    Parameters
    ----------
    data
        A numpy / dask / torch / jax / cupy array (2-D to 5-D), an ``xarray.DataArray``
        (dims from t c z y x; coordinates and attrs as :meth:`to_xarray` writes), a path (any format
        :func:`~ome_arrow_dask.sources.open_source` recognises), a
        :class:`~ome_arrow_dask.sources.Source`, another ``OMEArrow``, or Arrow data:
        an OME-Arrow struct array / scalar, an ``arrow.fixed_shape_tensor`` array, a
        Pillow image, or any object with ``__arrow_c_array__`` / ``__arrow_c_stream__``
        (zero-copy where the buffers allow; see :mod:`ome_arrow_dask.arrow.ingest`).
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
        if dim_order is not None and (
            is_path or isinstance(data, OMEArrow) or _is_source(data) or _is_record_dict(data) or is_data_array(data)
        ):
            raise OmeArrowDaskError(
                "dim_order is supported only for array inputs (numpy, dask, torch, jax, cupy, Arrow tensors); "
                f"a {type(data).__name__} carries its own axes"
            )
        if is_path:
            source_options = dict(options)
            if column_name is not None:
                source_options["column_name"] = column_name
            if row_index is not None:
                source_options["row_index"] = row_index
            source: Source = open_source(_absolute(data), **source_options)
        elif lazy:
            raise TypeError("lazy=True currently supports only string paths (or os.PathLike); arrays are in memory")
        elif isinstance(data, OMEArrow):
            source = data.source
        elif _is_source(data):
            source = data
        elif _is_record_dict(data):
            from .arrow.codec import record_from_dict
            from .arrow.ingest import source_from_arrow

            source = source_from_arrow(record_from_dict(data))
        elif _is_arrow_input(data) and not is_xarray(data):  # xarray >= 2025 exports Arrow too
            from .arrow.ingest import source_from_arrow

            source = source_from_arrow(data, dim_order=dim_order, row_index=row_index, chunks=chunks)
        else:
            source = _array_source(data, dim_order, chunks)
        if image_type is not None:
            source = MetaOverride(source, source.meta.replace(image_type=image_type))
        selection = data.selection if isinstance(data, OMEArrow) else full_selection(source.meta.shape)
        steps = data.steps if isinstance(data, OMEArrow) else ()
        self._init_plan(source, selection, steps, tcz)
        if is_path and not lazy:
            self.collect()

    def _init_plan(self, source: Source, selection: Selection, steps: tuple[str, ...], tcz: tuple[int, ...]) -> None:
        self._source = source
        self._selection = selection
        self._steps = steps
        t, c, z = (int(v) for v in tcz)
        self.tcz: tuple[int, int, int] = (t, c, z)
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

        ``data`` may be a URL (``s3://``, ``gs://``, ``https://``) with
        ``storage_options={...}`` (credentials, ``anon``, ``endpoint_url``, ``headers``;
        see :mod:`ome_arrow_dask.storage`): OME-Zarr, OME-TIFF / TIFF, pattern folders
        (``pattern=``) and OME-Arrow Parquet files are read remotely.
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
    def labels(self) -> Any:
        """NGFF label images stored with this OME-Zarr image (``labels/<name>``), by name.

        Each is opened lazily as an OMEArrow with ``image_type="label"`` at this image's
        pyramid level (see :mod:`ome_arrow_dask.labels`); empty when there are none.
        """
        from .labels import labels_of

        return labels_of(self)

    @property
    def source(self) -> Source:
        """The source this plan reads from."""
        return self._source

    def input_paths(self) -> tuple[str, ...]:
        """The files and folders the plan reads (or was read from); writers refuse to write onto them."""
        return input_paths_of(self._source)

    @property
    def selection(self) -> Selection:
        """The composed selection in source coordinates, one index per TCZYX axis."""
        return self._selection

    @property
    def steps(self) -> tuple[str, ...]:
        """How the plan was built: one description per step since the source was opened (as :meth:`explain` lists)."""
        return self._steps

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
        """True while pixels still have to be read from a file or computed by dask.

        A selection of a NumPy-backed image is not lazy (ome-arrow's eager ``slice``):
        it is applied as a NumPy slice when the pixels are used, without a file read.
        """
        return not (isinstance(self._source, ArraySource) and self._source.is_in_memory)

    @property
    def _is_materialized(self) -> bool:
        """True when the source *is* the result: an in-memory array and the identity selection."""
        return not self.is_lazy and is_identity(self._selection, self._source.meta.shape)

    # ------------------------------------------------------------------ planning
    def compose(self, inner: Iterable[Any], step: str) -> OMEArrow:
        """Return a new plan that selects ``inner`` from this plan's result (reads nothing).

        Parameters
        ----------
        inner
            One index per TCZYX axis, relative to this plan's shape (``range``, tuple of
            ints, or anything :func:`~ome_arrow_dask.selection.compose_selection` accepts).
        step
            How :meth:`explain` describes this step, e.g. ``"tensor_view(t=0)"``.

        >>> import numpy as np
        >>> img = OMEArrow(np.zeros((1, 2, 1, 4, 4), "u1"))
        >>> crop = img.compose((range(1), (1,), range(1), range(1, 3), range(4)), "second channel")
        >>> crop.shape, crop.steps
        ((1, 1, 1, 2, 4), ('second channel',))
        """
        selection = compose_selection(self._selection, inner)
        return self._from_plan(self._source, selection, (*self._steps, step), self.tcz)

    def with_source(self, source: Source, step: str | None = None) -> OMEArrow:
        """Return this plan (selection, steps, ``tcz``) reading from ``source`` instead (reads nothing).

        ``source`` must have the same TCZYX shape as :attr:`source`, typically because it
        wraps it (a cache, a metadata override). ``step``, when given, is added to :attr:`steps`.

        >>> import numpy as np
        >>> from ome_arrow_dask.sources.base import MetaOverride
        >>> crop = OMEArrow(np.zeros((1, 1, 1, 4, 4), "u1")).slice_lazy(0, 2, 0, 2)
        >>> label_meta = crop.source.meta.replace(image_type="label")
        >>> labelled = crop.with_source(MetaOverride(crop.source, label_meta), "label")
        >>> labelled.shape, labelled.steps, labelled.meta.image_type
        ((1, 1, 1, 2, 2), ('slice_lazy(x=0:2, y=0:2)', 'label'), 'label')
        """
        if tuple(source.meta.shape) != tuple(self._source.meta.shape):
            raise OmeArrowDaskError(
                f"with_source: the new source has shape {tuple(source.meta.shape)}, this plan's source "
                f"{tuple(self._source.meta.shape)}; pass a source over the same image (e.g. a wrapper of plan.source)"
            )
        steps = self._steps if step is None else (*self._steps, step)
        return self._from_plan(source, self._selection, steps, self.tcz)

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

        On an in-memory image the result is in memory too (``is_lazy`` False, as with
        ome-arrow's eager fallback); nothing is copied until the pixels are used.
        On a lazy plan nothing is read until ``collect()``. Coordinates are relative
        to this plan, so chained calls compose. Index lists
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
        return self.compose(inner, step)

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
        """Read the selection into memory, in place, and return ``self`` (as ome-arrow does).

        Reads exactly the source chunks the selection intersects; afterwards
        ``is_lazy`` is False. Plans derived from this one earlier keep their own
        (lazy) source. ``compute_kwargs`` go to ``dask.compute`` (e.g. ``scheduler=``).
        """
        if not self._is_materialized:
            collected = self._collected(**compute_kwargs)
            self._init_plan(collected._source, collected._selection, (), self.tcz)
        return self

    def _collected(self, **compute_kwargs: Any) -> OMEArrow:
        """A new in-memory plan holding the selection's pixels; ``self`` is not changed."""
        if self._is_materialized:
            return self
        array = None if compute_kwargs else read_into_memory(self._source, self._selection)
        if array is None:
            array = compute(self.to_dask(), **compute_kwargs)
        source = ArraySource(array, "TCZYX", chunks=self.chunks, meta=self.meta, input_paths=self.input_paths())
        return self._from_plan(source, full_selection(array.shape), (), self.tcz)

    def to_xarray(self) -> Any:
        """Return the selection as a lazy ``xarray.DataArray`` (dims t c z y x; reads no pixels).

        Coordinates carry physical positions and units, ``c`` the channel names, ``attrs``
        the OME metadata; ``OMEArrow(data_array)`` reads them back. Needs xarray
        (``pip install 'ome-arrow-dask[xarray]'``); see :mod:`ome_arrow_dask.xarray_interop`.
        """
        from .xarray_interop import to_xarray

        return to_xarray(self)

    def to_numpy(self, **compute_kwargs: Any) -> np.ndarray:
        """Read the selection and return it as a TCZYX numpy array (the plan stays lazy)."""
        collected = self._collected(**compute_kwargs)
        return collected._source.array  # type: ignore[attr-defined]

    def tensor_view(self, **kwargs: Any) -> TensorView:
        """Return a tensor view (see :class:`~ome_arrow_dask.tensor.TensorView`)."""
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
        uint16 and truncates). File writers (``"ome-zarr"``, ``"parquet"``, ``"ome-tiff"``
        / ``"ometiff"``) need ``out`` and return it; their options are documented in
        :mod:`ome_arrow_dask.writers`.
        """
        kind = how.lower().replace("_", "-")
        if kind == "numpy":
            array = self.to_numpy()
            return array if dtype is None else array.astype(dtype)
        if kind == "dask":
            lazy = self.to_dask()
            return lazy if dtype is None else lazy.astype(dtype)
        from .writers import ALIASES, as_write_input, write

        target = None if out is None else _absolute(out)  # workers may run in another directory
        item = as_write_input(self if dtype is None else self.astype(dtype))  # array, meta and identity only
        if options.get("labels") is not None and ALIASES.get(kind, kind) == "ome-zarr":
            from .labels import prepare_labels  # label arrays become plans here: labels.py does not import core

            options["labels"] = prepare_labels(item, options["labels"], OMEArrow)
        write(kind, item, target, **options)
        return out

    def astype(self, dtype: Any) -> OMEArrow:
        """Return a lazy plan whose pixels are cast to ``dtype`` when read."""
        array = self.to_dask().astype(dtype)
        meta = self.meta.replace(dtype=np.dtype(dtype))
        source = ArraySource(array, "TCZYX", meta=meta, input_paths=self.input_paths())
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
        :func:`~ome_arrow_dask.arrow.export.record_array`.
        """
        from .arrow.export import record_array

        shape = None if chunk_shape is None else tuple(chunk_shape)
        return record_array(self, payload=payload, chunk_shape=shape, chunk_compression=chunk_compression)

    def arrow_chunks(self, *, pixels: bool = False, batch_size: int = 64) -> ChunkStream:
        """Return the plan's chunks as a re-iterable Arrow stream, one row per chunk.

        Without ``pixels`` no pixel is read, so ``duckdb.sql("select ... from chunks")``
        queries the chunk grid for free. See :class:`~ome_arrow_dask.arrow.chunks.ChunkStream`.
        """
        from .arrow.chunks import ChunkStream

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
        or an Arrow table. Returns an :class:`~ome_arrow_dask.arrow.tables.ImageColumn`
        (iterate it, index it, or slice it).
        """
        from .arrow.tables import scan_table

        def open_file_row(path: str, column: str, row: int) -> OMEArrow:
            return cls.scan(path, tcz=tcz, column_name=column, row_index=row, image_type=image_type)

        def open_record(record: pa.Array) -> OMEArrow:
            return cls(record, tcz, image_type=image_type)

        return scan_table(data, column_name, open_file_row=open_file_row, open_record=open_record)

    def __arrow_c_schema__(self) -> object:
        """Arrow PyCapsule schema: an OME-Arrow byte-payload struct field (no pixels read)."""
        from .arrow.export import record_field

        return record_field().__arrow_c_schema__()

    def __arrow_c_array__(self, requested_schema: object | None = None) -> tuple[object, object]:
        """Arrow PyCapsule array: a one-row OME-Arrow struct record (byte payload; reads the pixels)."""
        from .arrow.export import record_capsules

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
        """ome-arrow's info dict, exactly: ``shape``, ``type``, ``channels``, ``is_multichannel``, ``summary``.

        Reads no pixels. dtype, chunks, bytes, channel names and the source are in
        :attr:`meta`, :meth:`explain` and the notebook (HTML) view.
        """
        return render.info(self)

    @property
    def data(self) -> pa.StructScalar:
        """The image as one OME-Arrow record (``pa.StructScalar``), like ome-arrow's ``.data``.

        Reads the whole selection (as ome-arrow does). The record has the byte payload
        (``OME_ARROW_BYTE_STRUCT``), so every dtype is kept; ``OMEArrow(img.data)``
        opens it again. For ome-arrow's ``list<uint16>`` payload use
        ``img.to_arrow(payload="list")[0]``.
        """
        return self.to_arrow()[0]

    def view(  # noqa: PLR0913 - mirrors ome-arrow's signature
        self,
        how: str = "matplotlib",
        tcz: tuple[int, int, int] | None = None,
        autoscale: bool = True,
        vmin: float | None = None,
        vmax: float | None = None,
        cmap: str = "gray",
        show: bool = True,
        c: int | None = None,
        downsample: int = 1,
        opacity: str | float = "sigmoid",
        clim: tuple[float, float] | None = None,
        show_axes: bool = True,
        scaling_values: tuple[float, float, float] | None = None,
    ) -> Any:
        """Show the image: one plane with matplotlib, or a volume with pyvista (ome-arrow's ``view``).

        ``how="matplotlib"`` reads only plane ``tcz`` (default :attr:`tcz`) and returns
        ``(figure, axes, image)``. ``how="pyvista"`` reads the Z stack of T=``tcz[0]``,
        channel ``c`` (default ``tcz[1]``), and returns a ``pyvista.Plotter``; spacing
        comes from the physical sizes unless ``scaling_values`` (Z, Y, X) is given.
        Both libraries are optional: a missing one raises ``ImportError`` naming the
        package to install. See :mod:`ome_arrow_dask.render`.
        """
        return render.view(
            self,
            how,
            self.tcz if tcz is None else tuple(tcz),
            autoscale=autoscale,
            vmin=vmin,
            vmax=vmax,
            cmap=cmap,
            show=show,
            c=c,
            downsample=downsample,
            opacity=opacity,
            clim=clim,
            show_axes=show_axes,
            scaling_values=scaling_values,
        )

    def _repr_html_(self) -> str:
        return render.html(self)

    def __repr__(self) -> str:
        lazy = "lazy" if self.is_lazy else "in memory"
        return f"OMEArrow(shape={self.shape}, dtype={self.dtype}, {lazy}, source={self._source.describe()!r})"


# tensor.py does not import this module (no import cycle); it opens non-plan inputs of
# ``TensorView(data)`` with the plan class registered here.
TensorView.plan_type = OMEArrow
