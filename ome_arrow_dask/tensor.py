"""Tensor views: a selection of an OMEArrow plan in a layout, exported to NumPy / DLPack.

Shape, dtype, layout and strides are known without reading pixels. The first export
materialises the view once (thread-safe) into a C-contiguous buffer in canonical
TZCYX order; the layout is a transposed view of it, so repeated exports share memory
(``torch.from_dlpack(view)`` aliases ``view.to_numpy()``). ``select`` and
``with_layout`` compose with the current view and never overwrite it.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from .dlpack import KDL_CPU, DLPackExport, export_capsule, prefetched
from .errors import LayoutError, OmeArrowDaskError, SelectionError
from .gpu import check_device, to_device_array
from .layout import LayoutPlan, default_layout, display_layout, parse_layout, plan_layout
from .view_args import ViewArgs, view_selection

if TYPE_CHECKING:
    import pyarrow as pa

    from .core import OMEArrow

_CHUNK_POLICIES = ("auto", "combine", "keep")
_MODES = ("numpy", "arrow")


def _tiles(extent: int, size: int) -> list[tuple[int, int]]:
    """Return (start, length) of tiles of ``size`` over ``extent``, the last one clipped.

    >>> _tiles(10, 4)
    [(0, 4), (4, 4), (8, 2)]
    """
    if size <= 0:
        raise SelectionError(f"tile size must be positive, got {size}")
    return [(start, min(size, extent - start)) for start in range(0, extent, size)]


class TensorView:
    """A selection of an image in a tensor layout (ome-arrow's ``TensorView`` API).

    Parameters
    ----------
    data
        An :class:`~ome_arrow_dask.core.OMEArrow` plan, or anything ``OMEArrow`` accepts.
    scene
        ``None`` or ``0``: a plan holds one scene (open others with ``scan(..., scene=k)``).
    t, z, c
        int (negative wraps), slice (step honoured) or list (order and duplicates kept).
    roi, roi3d, roi_nd, roi_type, tile
        Spatial selections as in ome-arrow (see :mod:`ome_arrow_dask.view_args`).
    layout
        Letters over TZCYX (H/W aliases); default CYX for one t and one z, else TZCYX.
    dtype
        Output dtype (a plain NumPy cast, as in ome-arrow); default the stored dtype.
        Torch users of uint16 images pass ``"int32"`` or ``"float32"``: torch's uint16
        tensors lack ``max``, ``mean`` and most other kernels. A lazy view casts block
        by block as it reads, so the stored-dtype copy is never held whole.
    chunk_policy
        Accepted for compatibility; chunking never changes the values here.
    channel_policy
        ``"error"`` or ``"first"`` (keep the first selected channel when C is dropped).
    """

    _layout_text: str | None = None
    """The layout string as the caller spelled it (what a lazy view's ``layout`` returns)."""

    plan_type: ClassVar[type[OMEArrow] | None] = None
    """The plan class: ``data`` of another type is opened with ``plan_type(data)``.

    :mod:`ome_arrow_dask.core` sets it to :class:`~ome_arrow_dask.core.OMEArrow` when it is
    imported (``import ome_arrow_dask`` does), so this module never imports core.
    """

    def __init__(  # noqa: PLR0913 - mirrors ome-arrow's signature
        self,
        data: Any,
        *,
        scene: int | None = None,
        t: Any = None,
        z: Any = None,
        c: Any = None,
        roi: Sequence[int] | None = None,
        roi3d: Sequence[int] | None = None,
        roi_nd: Sequence[int] | None = None,
        roi_type: str | None = None,
        tile: Sequence[int] | None = None,
        layout: str | None = None,
        dtype: Any = None,
        chunk_policy: str = "auto",
        channel_policy: str = "error",
    ) -> None:
        if scene not in (None, 0):
            raise SelectionError(f"scene={scene!r}: a plan holds one scene; open it with OMEArrow.scan(path, scene=k)")
        if chunk_policy not in _CHUNK_POLICIES:
            raise OmeArrowDaskError(f"Unsupported chunk_policy {chunk_policy!r}; expected one of {_CHUNK_POLICIES}")
        plan_type = TensorView.plan_type
        if plan_type is None:  # only when this module is loaded without its package
            raise OmeArrowDaskError("TensorView needs ome_arrow_dask.core: run `import ome_arrow_dask` first")
        base = data if isinstance(data, plan_type) else plan_type(data, row_index=_first_record_row(data))
        args = ViewArgs(t, z, c, roi, roi3d, roi_nd, roi_type, tile)
        plan = base.compose(view_selection(args, base.shape, base.chunks), _describe_args(args))
        self._init(plan, None if layout is None else parse_layout(layout), dtype, channel_policy)
        self._layout_text = layout

    def _init(self, plan: OMEArrow, layout: str | None, dtype: Any, channel_policy: str) -> None:
        self._plan = plan
        self._layout = layout
        self._dtype = plan.dtype if dtype is None else _output_dtype(dtype)
        self._channel_policy = channel_policy
        self._lock = threading.Lock()
        self._buffer: np.ndarray | None = None
        if channel_policy not in ("error", "first"):
            raise LayoutError(f"channel_policy must be 'error' or 'first', got {channel_policy!r}")
        try:
            self._planned_layout: LayoutPlan | LayoutError = plan_layout(
                self._resolved_layout(), self._sizes(), channel_policy
            )
        except LayoutError as exc:
            # as in ome-arrow, a layout that drops a non-singleton axis fails when the tensor is used
            self._planned_layout = exc

    @property
    def _layout_plan(self) -> LayoutPlan:
        planned = self._planned_layout
        if isinstance(planned, LayoutError):
            raise LayoutError(str(planned))
        return planned

    @classmethod
    def _derive(cls, plan: OMEArrow, layout: str | None, dtype: Any, channel_policy: str) -> TensorView:
        view = cls.__new__(cls)
        view._init(plan, layout, dtype, channel_policy)
        return view

    def _sizes(self) -> dict[str, int]:
        return dict(zip("TCZYX", self._plan.shape, strict=True))

    def _resolved_layout(self) -> str:
        t, _, z = self._plan.shape[:3]
        return self._layout or default_layout(t, z)

    # ----------------------------------------------------------------- properties
    @property
    def plan(self) -> OMEArrow:
        """The OMEArrow plan (TCZYX) this view reads."""
        return self._plan

    @property
    def layout(self) -> str:
        """The layout in ome-arrow's spelling (H/W for Y/X), e.g. ``"CHW"``.

        A :class:`LazyTensorView` returns a layout you passed as you spelled it (``"YX"``),
        as ome-arrow's does.
        """
        return display_layout(self._layout_plan.layout)

    @property
    def shape(self) -> tuple[int, ...]:
        """Tensor shape in layout order (no pixels read)."""
        sizes = self._sizes()
        if self._layout_plan.first_channel_only:
            sizes["C"] = 1
        return self._layout_plan.shape(sizes)

    @property
    def dtype(self) -> np.dtype:
        """Output dtype."""
        return self._dtype

    @property
    def ndim(self) -> int:
        """Number of tensor dims."""
        return len(self._layout_plan.layout)

    @property
    def nbytes(self) -> int:
        """Bytes of the materialised tensor."""
        return int(np.prod(self.shape, dtype=np.int64)) * self._dtype.itemsize

    @property
    def strides(self) -> tuple[int, ...]:
        """Byte strides of :meth:`to_numpy` (a view of the TZCYX-ordered buffer)."""
        sizes = self._sizes()
        if self._layout_plan.first_channel_only:
            sizes["C"] = 1
        buffer_shape = self._layout_plan.buffer_shape(sizes)
        buffer_strides = [self._dtype.itemsize] * len(buffer_shape)
        for i in range(len(buffer_shape) - 2, -1, -1):
            buffer_strides[i] = buffer_strides[i + 1] * buffer_shape[i + 1]
        return tuple(buffer_strides[i] for i in self._layout_plan.permutation)

    @property
    def device(self) -> str:
        """Where :meth:`to_numpy` data lives: always ``"cpu"``."""
        return "cpu"

    @property
    def axes(self) -> str:
        """The layout's axis letters spelled T/Z/C/Y/X (``layout`` uses H/W), e.g. ``"CYX"``."""
        return self._layout_plan.layout

    @property
    def channel_names(self) -> tuple[str, ...]:
        """Names of the channels in the tensor (no pixels read)."""
        names = self._plan.meta.channel_names
        return names[:1] if self._layout_plan.first_channel_only else names

    # ----------------------------------------------------------------- composition
    def select(self, **kwargs: Any) -> TensorView:
        """Select within this view (t, z, c, roi, roi3d, roi_nd, roi_type, tile).

        Indices are relative to this view, so selections compose; layout, dtype and
        channel policy are kept.
        """
        args = ViewArgs(**kwargs)
        plan = self._plan.compose(view_selection(args, self._plan.shape, self._plan.chunks), _describe_args(args))
        view = self._derive(plan, self._layout, self._dtype, self._channel_policy)
        view._layout_text = self._layout_text
        return view

    def with_layout(self, layout: str) -> TensorView:
        """Return the same selection in another layout."""
        view = self._derive(self._plan, parse_layout(layout), self._dtype, self._channel_policy)
        view._layout_text = layout
        return view

    def _with_fixed_layout(self, **kwargs: Any) -> TensorView:
        """A sub-view that keeps this view's resolved layout (used by the iterators)."""
        child = self.select(**kwargs)
        return self._derive(child._plan, self._layout_plan.layout, self._dtype, self._channel_policy)

    # ----------------------------------------------------------------- materialise
    def _materialize(self) -> np.ndarray:
        with self._lock:
            if self._buffer is None:
                self._buffer = self._compute_buffer()
            return self._buffer

    def _compute_buffer(self) -> np.ndarray:
        lp: LayoutPlan = self._layout_plan
        plan = self._plan
        if lp.first_channel_only:
            plan = plan.compose(
                (range(n) if ax != "C" else range(1) for ax, n in self._sizes().items()), "first channel"
            )
        array = plan.to_numpy()  # small reads skip the scheduler (see graph.read_into_memory)
        canonical = array.transpose(0, 2, 1, 3, 4)  # TCZYX -> TZCYX
        keep = tuple(slice(None) if ax in lp.buffer_axes else 0 for ax in "TZCYX")
        buffer = np.ascontiguousarray(canonical[keep], dtype=self._dtype)
        return buffer

    def to_numpy(self, *, contiguous: bool = False) -> np.ndarray:
        """Return the tensor; a transposed view of the shared buffer unless ``contiguous``."""
        view = self._materialize().transpose(self._layout_plan.permutation)
        return np.ascontiguousarray(view) if contiguous else view

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        array = self.to_numpy()
        if dtype is not None and np.dtype(dtype) != array.dtype:
            return array.astype(dtype)
        return array.copy() if copy else array

    # ----------------------------------------------------------------- DLPack
    def __dlpack__(
        self,
        *,
        stream: Any = None,
        max_version: tuple[int, int] | None = None,
        dl_device: tuple[int, int] | None = None,
        copy: bool | None = None,
    ) -> Any:
        """Export a fresh DLPack capsule of :meth:`to_numpy` (zero-copy on the CPU)."""
        return export_capsule(self.to_numpy(), stream=stream, max_version=max_version, dl_device=dl_device, copy=copy)

    def __dlpack_device__(self) -> tuple[int, int]:
        """Return ``(kDLCPU, 0)``."""
        return (KDL_CPU, 0)

    def to_dlpack(self, *, device: str = "cpu", contiguous: bool = True, mode: str = "numpy") -> DLPackExport:
        """Return a reusable DLPack export of this view.

        ``mode="numpy"`` exports the shaped tensor (the default here; ome-arrow's default
        ``"arrow"`` gives a 1-D capsule over a pyarrow buffer, still available).
        ``device="cuda"`` uploads once to the GPU (needs cupy).
        """
        if mode not in _MODES:
            raise OmeArrowDaskError(f"mode must be one of {_MODES}, got {mode!r}")
        array = self.to_numpy(contiguous=contiguous or mode == "arrow")
        if mode == "arrow":
            if check_device(device) != "cpu":
                raise OmeArrowDaskError("mode='arrow' exports host memory only; use mode='numpy' for device='cuda'")
            import pyarrow as pa

            return DLPackExport(pa.array(array.reshape(-1)))
        if check_device(device) != "cpu":
            return DLPackExport(to_device_array(array, device))
        return DLPackExport(array)

    def to_torch(self, **kwargs: Any) -> Any:
        """Return a torch tensor through DLPack (zero-copy on the CPU)."""
        from ._torch import from_dlpack

        return from_dlpack(self.to_dlpack(**kwargs))

    def to_jax(self, **kwargs: Any) -> Any:
        """Return a jax array through DLPack."""
        from ._jax import from_dlpack

        return from_dlpack(self.to_dlpack(**kwargs))

    # ----------------------------------------------------------------- Arrow
    def to_arrow(self) -> pa.ExtensionArray:
        """Return the tensor as a length-1 ``arrow.fixed_shape_tensor`` array (see ``arrow.export``)."""
        from .arrow.export import tensor_array

        return tensor_array(self)

    def __arrow_c_schema__(self) -> object:
        """Arrow PyCapsule schema: the ``arrow.fixed_shape_tensor`` field (no pixels read)."""
        from .arrow.export import tensor_field

        return tensor_field(self).__arrow_c_schema__()

    def __arrow_c_array__(self, requested_schema: object | None = None) -> tuple[object, object]:
        """Arrow PyCapsule array: the tensor, zero-copy when the layout keeps the buffer order."""
        from .arrow.export import tensor_capsules

        return tensor_capsules(self, requested_schema)

    # ----------------------------------------------------------------- iterators
    def iter_dlpack(  # noqa: PLR0913 - mirrors ome-arrow's signature
        self,
        *,
        batch_size: int | None = None,
        tile_size: tuple[int, int] | None = None,
        tiles: tuple[int, int] | None = None,
        shuffle: bool = False,
        seed: int | None = None,
        prefetch: int = 0,
        device: str = "cpu",
        contiguous: bool = True,
        mode: str = "numpy",
    ) -> Iterator[DLPackExport]:
        """Yield DLPack exports of T batches, or of 2-D tiles when ``tile_size`` is given.

        Batches split this view's T positions into groups of ``batch_size`` (``None``:
        one batch); tiles walk the Y/X extent row-major with clipped edges, each holding
        every selected T/Z/C. ``shuffle`` permutes batches/tiles with ``random.Random(seed)``.
        ``prefetch=N`` computes the next N exports in a background thread meanwhile.
        """
        if tiles is not None:
            import warnings

            warnings.warn("tiles= is deprecated; use tile_size=", DeprecationWarning, stacklevel=2)
            tile_size = tile_size or tiles
        views = self._tile_views(tile_size) if tile_size is not None else self._batch_views(batch_size)
        if shuffle:
            random.Random(seed).shuffle(views)
        return prefetched(views, _exporter(device, contiguous, mode), prefetch)

    def _batch_views(self, batch_size: int | None) -> list[TensorView]:
        n_t = self._plan.shape[0]
        size = n_t if batch_size is None else int(batch_size)
        if size <= 0:
            raise OmeArrowDaskError(f"batch_size must be positive, got {batch_size}")
        groups = [list(range(start, min(start + size, n_t))) for start in range(0, n_t, size)]
        return [self._with_fixed_layout(t=group) for group in groups]

    def _tile_views(self, tile_size: Sequence[int]) -> list[TensorView]:
        tile_h, tile_w = (int(v) for v in tile_size)
        _, _, _, height, width = self._plan.shape
        return [
            self._with_fixed_layout(roi=(x, y, w, h))
            for y, h in _tiles(height, tile_h)
            for x, w in _tiles(width, tile_w)
        ]

    def iter_tiles_3d(
        self,
        *,
        tile_size: tuple[int, int, int],
        shuffle: bool = False,
        seed: int | None = None,
        prefetch: int = 0,
        device: str = "cpu",
        contiguous: bool = True,
        mode: str = "numpy",
    ) -> Iterator[DLPackExport]:
        """Yield 3-D tiles: one per t x consecutive z group x y tile x x tile."""
        if mode != "numpy":
            raise OmeArrowDaskError("iter_tiles_3d currently supports only mode='numpy'.")
        tile_z, tile_h, tile_w = (int(v) for v in tile_size)
        n_t, _, n_z, height, width = self._plan.shape
        views = [
            self._with_fixed_layout(t=[t], z=slice(z0, z0 + dz), roi=(x, y, w, h))
            for t in range(n_t)
            for z0, dz in _tiles(n_z, tile_z)
            for y, h in _tiles(height, tile_h)
            for x, w in _tiles(width, tile_w)
        ]
        if shuffle:
            random.Random(seed).shuffle(views)
        return prefetched(views, _exporter(device, contiguous, mode), prefetch)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(shape={self.shape}, dtype={self.dtype}, layout={self.layout!r}, "
            f"nbytes={self.nbytes})"
        )

    def _repr_html_(self) -> str:
        """A small table for Jupyter: shape per axis, dtype, bytes and where the pixels come from (no reads)."""
        from html import escape

        from .units import format_bytes

        axes = "".join(f"<th>{escape(a)}</th>" for a in self.layout)
        sizes = "".join(f"<td>{n}</td>" for n in self.shape)
        source = escape(self._plan.source.describe())
        rows = [
            ("dtype", escape(str(self.dtype))),
            ("bytes", escape(format_bytes(self.nbytes))),
            ("lazy", str(isinstance(self, LazyTensorView) and self._collected is None)),
            ("source", source),
        ]
        body = "".join(f"<tr><th style='text-align:left'>{k}</th><td>{v}</td></tr>" for k, v in rows)
        return (
            f"<div><b>{type(self).__name__}</b> layout {escape(self.layout)}"
            f"<table><tr>{axes}</tr><tr>{sizes}</tr></table><table>{body}</table></div>"
        )


def _exporter(device: str, contiguous: bool, mode: str) -> Any:
    check_device(device)
    if mode not in _MODES:
        raise OmeArrowDaskError(f"mode must be one of {_MODES}, got {mode!r}")

    def export(view: TensorView) -> DLPackExport:
        return view.to_dlpack(device=device, contiguous=contiguous, mode=mode)

    return export


def _output_dtype(dtype: Any) -> np.dtype:
    """Validate a view's ``dtype=``: a numeric or bool NumPy dtype.

    >>> _output_dtype("float32")
    dtype('float32')
    """
    try:
        out = np.dtype(dtype)
    except TypeError as exc:
        raise OmeArrowDaskError(f"dtype={dtype!r} is not a NumPy dtype; pass e.g. 'int32' or 'float32'") from exc
    if out.kind not in "biufc":
        raise OmeArrowDaskError(f"dtype={dtype!r} is not numeric; pass e.g. 'int32' or 'float32'")
    return out


def _describe_args(args: ViewArgs) -> str:
    given = ", ".join(f"{name}={value!r}" for name, value in vars(args).items() if value is not None)
    return f"tensor_view({given})"


def _first_record_row(data: Any) -> int | None:
    """Row 0 for a multi-row OME-Arrow struct array (ome-arrow's ``TensorView`` reads row 0), else None."""
    import pyarrow as pa

    if isinstance(data, (pa.Array, pa.ChunkedArray)) and pa.types.is_struct(data.type) and len(data) > 1:
        return 0
    return None


class LazyTensorView(TensorView):
    """A :class:`TensorView` over a lazy plan; :meth:`collect` resolves it once."""

    _collected: TensorView | None = None

    @property
    def layout(self) -> str:
        """The layout as you passed it (ome-arrow's lazy spelling, e.g. ``"YX"``), else the H/W default."""
        if self._layout_text is not None:
            self._layout_plan  # noqa: B018 - a layout that drops an axis raises here, as for TensorView
            return self._layout_text
        return super().layout

    def collect(self) -> TensorView:
        """Read the pixels once and return an in-memory :class:`TensorView` (cached)."""
        with self._lock:
            if self._collected is None:
                # cast while reading, block by block: only the output dtype is held in memory
                plan = self._plan if self._dtype == self._plan.dtype else self._plan.astype(self._dtype)
                plan = plan.collect()
                self._collected = TensorView._derive(plan, self._layout, self._dtype, self._channel_policy)
            return self._collected

    def _materialize(self) -> np.ndarray:
        return self.collect()._materialize()
