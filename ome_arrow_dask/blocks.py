"""Block-wise processing with halos and several inputs, on ``dask.array.map_overlap``.

Modelled on imglib2-cache-python's ``Block``: the output is a grid of blocks, and a
Python function fills each one from the matching (padded) blocks of its inputs::

    def smooth(block):
        block.data[...] = scipy.ndimage.gaussian_filter(block.inputs[0], 2.0)[block.halo]

    out = map_blocks(smooth, img, halo={"z": 4, "y": 8, "x": 8}, dtype="float32")

Every array here is 5-D TCZYX. Coordinates (``min``, ``max``) are global, in the
coordinates of the full image; ``max`` is inclusive, as in imglib2.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from numbers import Real
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from .core import OMEArrow
from .errors import DimOrderError, InconsistentInputError, OmeArrowDaskError, SelectionError
from .meta import AXES, ImageMeta, tczyx
from .sources.base import ArraySource, default_chunks

if TYPE_CHECKING:
    import dask.array as da

BOUNDARY_MODES = ("reflect", "periodic", "nearest", "none")
"""String boundary modes (dask's names); a number pads with that constant instead.

scipy.ndimage equivalents: ``"reflect"`` = scipy ``"reflect"`` (numpy ``"symmetric"``, the
edge pixel repeated), ``"periodic"`` = ``"wrap"``, ``"nearest"`` = ``"nearest"``, a number
``v`` = ``mode="constant", cval=v``. ``"none"`` does not pad at the image edges.
"""

Halo5 = tuple[int, int, int, int, int]
BlockFunc = Callable[["Block"], "np.ndarray | None"]


@dataclass(frozen=True, eq=False)
class Block:
    """One output block and the matching blocks of the inputs, handed to ``func``.

    Attributes
    ----------
    data
        The output block (zeros, writable, shape ``dim``): fill it in place, or return an array.
    inputs
        The inputs' blocks, padded by the halo (read-only); ``inputs[i][halo]`` is the
        part under ``data``.
    index
        Block index in the output grid, per TCZYX axis.
    min, max
        Global coordinates of the first and last (inclusive) pixel of ``data``.
    halo
        Slices that remove the padding from an input block.
    """

    data: np.ndarray
    inputs: tuple[np.ndarray, ...]
    index: tuple[int, ...]
    min: tuple[int, ...]
    max: tuple[int, ...]
    halo: tuple[slice, ...]

    @property
    def dim(self) -> tuple[int, ...]:
        """Block size per axis (``max - min + 1``), the shape of ``data``."""
        return tuple(hi - lo + 1 for lo, hi in zip(self.min, self.max, strict=True))

    @property
    def slices(self) -> tuple[slice, ...]:
        """Where ``data`` sits in the full image: ``full[block.slices]`` is this block."""
        return tuple(slice(lo, hi + 1) for lo, hi in zip(self.min, self.max, strict=True))


def normalize_halo(halo: Sequence[int] | Mapping[str, int] | None) -> Halo5:
    """Return the halo as five non-negative ints (TCZYX).

    Accepts five numbers, or a dict of axis letters (case-insensitive; missing axes are 0).

    >>> normalize_halo({"z": 4, "Y": 8, "x": 8})
    (0, 0, 4, 8, 8)
    >>> normalize_halo(None)
    (0, 0, 0, 0, 0)
    >>> normalize_halo([0, 0, 1, 2, 3])
    (0, 0, 1, 2, 3)
    """
    hint = "pass five sizes (TCZYX) such as (0, 0, 4, 8, 8) or a dict such as {'z': 4, 'y': 8, 'x': 8}"
    if halo is None:
        return (0, 0, 0, 0, 0)
    if isinstance(halo, Mapping):
        unknown = sorted(str(k) for k in halo if str(k).upper() not in AXES)
        if unknown:
            raise SelectionError(f"halo has unknown axes {unknown}; use letters from 'TCZYX'")
        upper = {str(k).upper(): v for k, v in halo.items()}
        values: Sequence[object] = [upper.get(axis, 0) for axis in AXES]
    elif isinstance(halo, Sequence) and not isinstance(halo, str) and len(halo) == 5:
        values = halo
    else:
        raise SelectionError(f"halo {halo!r} is not understood; {hint}")
    sizes: list[int] = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
            raise SelectionError(f"halo sizes must be non-negative integers, got {halo!r}; {hint}")
        sizes.append(int(v))
    return tczyx(sizes)


def check_boundary(boundary: str | float) -> str | float:
    """Validate a boundary mode: one of :data:`BOUNDARY_MODES` or a number.

    >>> check_boundary("Reflect"), check_boundary(0)
    ('reflect', 0)
    """
    if isinstance(boundary, str):
        mode = boundary.lower()
        if mode in BOUNDARY_MODES:
            return mode
    elif isinstance(boundary, Real) and not isinstance(boundary, bool):
        return boundary
    raise OmeArrowDaskError(
        f"boundary {boundary!r} is not supported; use one of {BOUNDARY_MODES} or a number (constant padding)"
    )


def fit_grid_to_halo(chunks: Sequence[Sequence[int]], halo: Halo5) -> tuple[tuple[int, ...], ...]:
    """Merge blocks smaller than the halo into neighbours, so every block is at least the halo.

    ``da.map_overlap`` needs each block at least as large as the halo along that axis.

    >>> fit_grid_to_halo(((1,), (1,), (4, 4, 1), (8, 8), (3,)), (0, 0, 2, 2, 0))
    ((1,), (1,), (4, 3, 2), (8, 8), (3,))
    """
    from dask.array.overlap import ensure_minimum_chunksize

    out = []
    for axis, axis_chunks, depth in zip(AXES, chunks, halo, strict=True):
        size = sum(axis_chunks)
        if depth > size:
            raise SelectionError(
                f"halo {depth} along {axis} is larger than the image ({size} pixels along {axis}); "
                f"use a halo of at most {size} along {axis}"
            )
        out.append(tuple(ensure_minimum_chunksize(depth, tuple(axis_chunks))) if depth else tuple(axis_chunks))
    return tuple(out)


def halo_slices(
    block_shape: Sequence[int], block_min: Sequence[int], halo: Halo5, boundary: str | float
) -> tuple[slice, ...]:
    """Slices that cut a padded input block back to the output block.

    With ``boundary="none"`` blocks at the image edges are not padded on that side.

    >>> halo_slices((4, 5), (0, 3), (2, 1), "reflect")
    (slice(2, 6, None), slice(1, 6, None))
    >>> halo_slices((4, 5), (0, 3), (2, 1), "none")
    (slice(0, 4, None), slice(1, 6, None))
    """
    out = []
    for size, lo, depth in zip(block_shape, block_min, halo, strict=True):
        pad_lo = depth if (boundary != "none" or lo > 0) else 0
        out.append(slice(pad_lo, pad_lo + size))
    return tuple(out)


def _read_only(array: np.ndarray) -> np.ndarray:
    view = np.asarray(array).view()
    view.flags.writeable = False
    return view


def _run_block(
    *padded: np.ndarray,
    func: BlockFunc,
    halo: Halo5,
    boundary: str | float,
    dtype: np.dtype,
    block_info: dict[Any, Any],
) -> np.ndarray:
    """Build the :class:`Block` for one output block, call ``func`` and check its result.

    dask passes ``block_info`` because the signature names it (``meta=`` is given, so
    dask never calls this without it to guess the output type).
    """
    info = block_info[None]
    index = tuple(int(i) for i in info["chunk-location"])
    block_min = tuple(int(lo) for lo, _ in info["array-location"])
    block_max = tuple(int(hi) - 1 for _, hi in info["array-location"])
    shape = tuple(int(s) for s in info["chunk-shape"])
    block = Block(
        data=np.zeros(shape, dtype=dtype),
        inputs=tuple(_read_only(p) for p in padded),
        index=index,
        min=block_min,
        max=block_max,
        halo=halo_slices(shape, block_min, halo, boundary),
    )
    result = func(block)
    if result is None or result is block.data:
        return block.data
    result = np.asarray(result)
    if result.shape == padded[0].shape:
        result = result[block.halo]
    if result.shape != shape:
        raise OmeArrowDaskError(
            f"map_blocks: func returned shape {result.shape} for block {index} (min {block_min}); "
            f"expected the block shape {shape} (or the padded input shape {padded[0].shape})"
        )
    block.data[...] = result
    return block.data


def _as_dask(image: object) -> tuple[da.Array | np.ndarray, ImageMeta | None]:
    """Return an input as a 5-D dask or numpy array, plus its metadata when it is an OMEArrow."""
    import dask.array as da

    if isinstance(image, OMEArrow):
        return image.to_dask(), image.meta
    array = image if isinstance(image, da.Array) else np.asarray(image)
    if array.ndim != 5:
        raise DimOrderError(
            f"map_blocks inputs must be 5-D TCZYX, got {array.ndim}-D with shape {array.shape}; "
            "wrap other arrays as OMEArrow(array, dim_order=...) first"
        )
    return array, None


def _output_grid(
    arrays: Sequence[da.Array | np.ndarray], block_shape: object, dtype: np.dtype, halo: Halo5
) -> tuple[tuple[int, ...], ...]:
    import dask.array as da
    from dask.array.core import normalize_chunks

    shape = arrays[0].shape
    if block_shape is not None:
        try:
            grid = normalize_chunks(block_shape, shape, dtype=dtype)
        except (ValueError, TypeError) as exc:
            raise OmeArrowDaskError(
                f"block_shape {block_shape!r} does not fit the image shape {shape}: {exc}; "
                "pass five block sizes (TCZYX), -1 for a whole axis"
            ) from exc
    else:
        chunked = [a for a in arrays if isinstance(a, da.Array)]
        grid = chunked[0].chunks if chunked else default_chunks(shape, dtype)
    return fit_grid_to_halo(grid, halo)


def _holds(dtype: np.dtype, value: float) -> bool:
    """True when ``value`` is exactly representable in ``dtype`` (the constant a halo is padded with).

    >>> _holds(np.dtype("u1"), 7), _holds(np.dtype("u1"), 0.5), _holds(np.dtype("u1"), -1), _holds(np.dtype("f4"), 0.5)
    (True, False, False, True)
    """
    with np.errstate(over="ignore", invalid="ignore"):
        try:
            cast = np.array(value).astype(dtype)
        except (OverflowError, ValueError):
            return False
    return bool(cast == value) and bool(np.isfinite(value) == np.isfinite(cast))


def _widened(dtype: np.dtype, value: float) -> np.dtype:
    """The smallest dtype holding both ``dtype`` and the constant ``value`` exactly.

    >>> _widened(np.dtype("u1"), -3), _widened(np.dtype("u1"), 300), _widened(np.dtype("u1"), 0.7)
    (dtype('int16'), dtype('uint16'), dtype('float64'))
    """
    if isinstance(value, (int, np.integer)):
        return np.result_type(dtype, np.min_scalar_type(value))
    return np.result_type(dtype, np.float64)


def map_blocks(
    func: BlockFunc,
    *inputs: object,
    halo: Sequence[int] | Mapping[str, int] | None = None,
    dtype: npt.DTypeLike | None = None,
    block_shape: object = None,
    boundary: str | float = "reflect",
) -> OMEArrow:
    """Fill a lazy image block by block with ``func``, from padded blocks of the inputs.

    Parameters
    ----------
    func
        Called with a :class:`Block` per output block; writes ``block.data`` in place (and
        returns None), or returns an array of the block shape or of the padded input shape
        (then ``[block.halo]`` is applied).
    *inputs
        One or more images of equal TCZYX shape: ``OMEArrow`` plans, dask or numpy 5-D arrays.
    halo
        Padding per axis: five sizes (TCZYX) or a dict of axis letters, e.g. ``{"y": 8, "x": 8}``.
    dtype
        Output dtype; defaults to the first input's dtype.
    block_shape
        Output block shape (dask-style chunks); defaults to the first chunked input's chunks.
        Blocks smaller than the halo are merged with a neighbour.
    boundary
        Padding at the image edges: ``"reflect"`` (scipy's default ``"reflect"``),
        ``"periodic"`` (scipy ``"wrap"``), ``"nearest"``, ``"none"`` (no padding at the
        edges), or a number (constant padding).

    Returns
    -------
    OMEArrow
        A lazy plan; channels, physical sizes and name come from the first ``OMEArrow`` input.
    """
    import dask.array as da

    if not inputs:
        raise OmeArrowDaskError("map_blocks needs at least one input image")
    converted = [_as_dask(image) for image in inputs]
    arrays = [array for array, _ in converted]
    shapes = [tuple(int(s) for s in a.shape) for a in arrays]
    if len(set(shapes)) > 1:
        raise InconsistentInputError(
            f"map_blocks inputs must have the same TCZYX shape, got {shapes}; slice or pad them to match"
        )
    depth = normalize_halo(halo)
    mode = check_boundary(boundary)
    out_dtype = np.dtype(arrays[0].dtype if dtype is None else dtype)
    grid = _output_grid(arrays, block_shape, out_dtype, depth)
    aligned = [
        a.rechunk(grid) if isinstance(a, da.Array) else da.from_array(a, chunks=grid, asarray=True) for a in arrays
    ]
    if not isinstance(mode, str):  # dask pads in each input's dtype: widen inputs that cannot hold the value
        aligned = [a if _holds(a.dtype, mode) else a.astype(_widened(a.dtype, mode)) for a in aligned]
    runner = partial(_run_block, func=func, halo=depth, boundary=mode, dtype=out_dtype)
    result = da.map_overlap(
        runner,
        *aligned,
        depth=dict(enumerate(depth)),
        boundary=mode,
        trim=False,
        align_arrays=False,
        allow_rechunk=False,
        chunks=grid,
        dtype=out_dtype,
        meta=np.empty((0,) * 5, dtype=out_dtype),
        token="ome-arrow-map-blocks",
    )
    metas = [meta for _, meta in converted if meta is not None]
    paths = dict.fromkeys(path for image in inputs if isinstance(image, OMEArrow) for path in image.input_paths())
    source = ArraySource(result, "TCZYX", meta=metas[0] if metas else None, input_paths=tuple(paths))
    return OMEArrow(source)
