"""The Source protocol and the in-memory array source.

A source knows its :class:`~ome_arrow_dask.meta.ImageMeta` without reading pixels and
reads whole chunks of its grid as 5-D TCZYX numpy arrays. Sources must pickle (store
paths, open files inside :meth:`Source.read_chunk`) so dask workers can run the reads.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
from dask.base import tokenize

from ..errors import DimOrderError, OmeArrowDaskError
from ..meta import AXES, ChunkCoords, ImageMeta, check_dtype
from .abilities import SourceWrapper, SupportsInputPaths, SupportsValidateInputs, unwrap


@runtime_checkable
class Source(Protocol):
    """What the planner needs from a format: metadata and whole-chunk reads."""

    @property
    def meta(self) -> ImageMeta:
        """Shape, dtype, chunk grid and OME descriptors; never reads pixels."""
        ...

    @property
    def token(self) -> str:
        """A deterministic identity (path, mtime, options) used to name dask tasks."""
        ...

    def read_chunk(self, chunk_coords: ChunkCoords) -> np.ndarray:
        """Read the whole chunk at grid ``chunk_coords`` as a 5-D TCZYX array."""
        ...

    def describe(self) -> str:
        """One line naming the format and location, for ``explain()``."""
        ...


class SourceBase:
    """Plumbing shared by the format sources.

    ``__init__`` sets ``_meta`` (read at open, no pixels) and, unless the subclass
    computes its token, ``_token``; subclasses add ``describe`` and ``read_chunk``.
    """

    _meta: ImageMeta
    _token: str

    @property
    def meta(self) -> ImageMeta:
        """Shape, dtype, chunk grid and descriptors, read at open (no pixels)."""
        return self._meta

    @property
    def token(self) -> str:
        """Deterministic identity of the pixels (what it covers: see the class docstring)."""
        return self._token

    def describe(self) -> str:
        """A one-line description naming the file and what of it is read."""
        raise NotImplementedError

    def input_paths(self) -> tuple[str, ...]:
        """The files and folders the source reads; writers refuse to write onto them."""
        return ()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.describe()}, shape={self.meta.shape}, dtype={self.meta.dtype})"


def chunk_slices(meta: ImageMeta, chunk_coords: ChunkCoords) -> tuple[slice, ...]:
    """Return the TCZYX slices that chunk ``chunk_coords`` covers in the full image.

    Raises :class:`~ome_arrow_dask.errors.OmeArrowDaskError` for coordinates outside the grid.
    """
    if len(chunk_coords) != 5:
        raise OmeArrowDaskError(f"chunk coordinates must have 5 entries (TCZYX), got {chunk_coords}")
    out = []
    for axis, k, sizes in zip(AXES, chunk_coords, meta.chunks, strict=True):
        if not 0 <= k < len(sizes):
            raise OmeArrowDaskError(f"chunk index {k} along {axis} is outside the grid of {len(sizes)} chunks")
        start = sum(sizes[:k])
        out.append(slice(start, start + sizes[k]))
    return tuple(out)


DEFAULT_DIM_ORDERS = {2: "YX", 3: "ZYX", 4: "TCYX", 5: "TCZYX"}
"""ome-arrow's rank-inferred dim orders for tensors; used for every array here."""

_DIM_ALIASES = {"B": "T", "H": "Y", "W": "X"}


def parse_dim_order(dim_order: str | None, ndim: int) -> str:
    """Validate ``dim_order`` for an array of ``ndim`` dims; return canonical letters.

    ``None`` picks ome-arrow's tensor default by rank. ``B`` (batch) maps to T, and
    ``H`` / ``W`` are aliases for Y / X.

    >>> parse_dim_order(None, 3)
    'ZYX'
    >>> parse_dim_order("bhw", 3)
    'TYX'
    """
    if dim_order is None:
        if ndim not in DEFAULT_DIM_ORDERS:
            raise DimOrderError(f"cannot infer a dim_order for a {ndim}-D array; pass dim_order (2-D to 5-D)")
        return DEFAULT_DIM_ORDERS[ndim]
    if not isinstance(dim_order, str):
        raise DimOrderError(f"dim_order must be a string such as 'ZYX', got {dim_order!r}")
    letters = "".join(_DIM_ALIASES.get(ch, ch) for ch in dim_order.upper())
    unknown = sorted(set(letters) - set(AXES))
    if unknown:
        raise DimOrderError(
            f"dim_order {dim_order!r} has unknown letters {unknown}; use letters from 'TCZYX' (B=T, H=Y, W=X)"
        )
    if len(set(letters)) != len(letters):
        raise DimOrderError(f"dim_order {dim_order!r} repeats an axis")
    if len(letters) != ndim:
        raise DimOrderError(f"dim_order {dim_order!r} has {len(letters)} letters but the array has {ndim} dims")
    if "Y" not in letters or "X" not in letters:
        raise DimOrderError(f"dim_order {dim_order!r} must contain Y and X")
    return letters


def _to_numpy_backed(data: object) -> object:
    """Return numpy/dask/cupy arrays as they are; convert torch/jax tensors zero-copy on CPU."""
    module = type(data).__module__.split(".")[0]
    if module == "torch":
        tensor = data.detach()  # type: ignore[attr-defined]
        if tensor.device.type != "cpu":
            tensor = tensor.cpu()
        return tensor.resolve_conj().resolve_neg().numpy()
    if module in ("jax", "jaxlib"):
        return np.asarray(data)
    if isinstance(data, np.ndarray) or module in ("dask", "cupy"):
        return data
    if hasattr(data, "__array__"):
        return np.asarray(data)
    raise TypeError(
        f"unsupported input type {type(data).__name__}: expected a numpy, dask, torch, jax or cupy array, "
        "a path, or a Source"
    )


def to_tczyx(array: object, dim_order: str) -> object:
    """Transpose and expand an array with ``dim_order`` to 5-D TCZYX (a view, no copy)."""
    present = [ax for ax in AXES if ax in dim_order]
    transposed = array.transpose([dim_order.index(ax) for ax in present])  # type: ignore[attr-defined]
    index = tuple(slice(None) if ax in dim_order else None for ax in AXES)
    return transposed[index]


def _explicit_grid(chunks: object, shape: tuple[int, ...]) -> tuple[tuple[int, ...], ...] | None:
    """``chunks`` when it is already a full dask-style grid of ``shape`` (block sizes per axis), else None.

    Plans pass their own grid (``collect()``); taking it as is avoids importing ``dask.array``.

    >>> _explicit_grid(((1,), (2, 1)), (1, 3)), _explicit_grid((1, 3), (1, 3))
    (((1,), (2, 1)), None)
    """
    if not isinstance(chunks, tuple) or len(chunks) != len(shape):
        return None
    for sizes, size in zip(chunks, shape, strict=True):
        if not isinstance(sizes, tuple) or not sizes or not all(type(b) is int for b in sizes) or sum(sizes) != size:
            return None
        if not (all(b > 0 for b in sizes) or sizes == (0,)):  # as dask normalises them
            return None
    return chunks


def default_chunks(shape: tuple[int, ...], dtype: np.dtype) -> tuple[tuple[int, ...], ...]:
    """Chunk an in-memory array: one T and C per chunk, ZYX blocks of about 16 MiB."""
    from dask.array.core import normalize_chunks

    return normalize_chunks((1, 1, "auto", "auto", "auto"), shape, limit="16MiB", dtype=dtype)


class ArraySource:
    """A source over an in-memory numpy, dask, torch, jax or cupy array.

    Parameters
    ----------
    data
        Array of 2 to 5 dims.
    dim_order
        Letters naming ``data``'s axes; default by rank as in ome-arrow (2D YX, 3D ZYX,
        4D TCYX, 5D TCZYX).
    chunks
        Dask-style chunks for the TCZYX array; defaults to the dask array's chunks, else
        one T and C per chunk with about 16 MiB ZYX blocks.
    meta
        Descriptors (channels, physical sizes, ...) to carry; shape, dtype and chunks are
        always taken from the array.
    input_paths
        Files the array was read from (e.g. by ``collect()``), reported by
        :meth:`input_paths` so that writers refuse to write onto them.
    """

    def __init__(
        self,
        data: object,
        dim_order: str | None = None,
        *,
        chunks: object = None,
        meta: ImageMeta | None = None,
        input_paths: tuple[str, ...] = (),
    ) -> None:
        self._input_paths = tuple(input_paths)
        backed = _to_numpy_backed(data)
        ndim = len(backed.shape)  # type: ignore[attr-defined]
        if not 2 <= ndim <= 5:
            raise DimOrderError(f"expected a 2-D to 5-D array, got {ndim}-D with shape {backed.shape}")  # type: ignore[attr-defined]
        order = parse_dim_order(dim_order, ndim)
        self._array = to_tczyx(backed, order)
        shape = tuple(int(s) for s in self._array.shape)  # type: ignore[attr-defined]
        dtype = check_dtype(self._array.dtype)  # type: ignore[attr-defined]
        if self._array.dtype != dtype:  # type: ignore[attr-defined]
            self._array = self._array.astype(dtype)  # type: ignore[attr-defined]  # big-endian -> native
        self._is_dask = type(self._array).__module__.split(".")[0] == "dask"
        if chunks is None and self._is_dask:
            grid = self._array.chunks  # type: ignore[attr-defined]
        elif chunks is None:
            grid = default_chunks(shape, dtype)
        else:
            grid = _explicit_grid(chunks, shape)
            if grid is None:
                from dask.array.core import normalize_chunks

                grid = normalize_chunks(chunks, shape, dtype=dtype)
            if self._is_dask:
                self._array = self._array.rechunk(grid)  # type: ignore[attr-defined]
        base = meta.replace(shape=shape, dtype=dtype, chunks=grid) if meta else None
        self._meta = base or ImageMeta(shape=shape, dtype=dtype, chunks=grid)  # type: ignore[arg-type]
        self._order = order

    @property
    def meta(self) -> ImageMeta:
        """Metadata of the TCZYX view of the array."""
        return self._meta

    @property
    def array(self) -> object:
        """The 5-D TCZYX array (a view of the input)."""
        return self._array

    @property
    def token(self) -> str:
        """Deterministic identity: dask names or a hash of the pixels (computed once)."""
        token = self.__dict__.get("_token")
        if token is None:
            token = self.__dict__["_token"] = tokenize(self._array, self._meta)
        return token

    def input_paths(self) -> tuple[str, ...]:
        """The files the array was read from, if known (empty for user arrays)."""
        return self.__dict__.get("_input_paths", ())

    @property
    def is_in_memory(self) -> bool:
        """True for numpy-backed data (reads cost a memcpy at most)."""
        return isinstance(self._array, np.ndarray)

    def describe(self) -> str:
        """Name the array type and its original dim order."""
        kind = type(self._array).__module__.split(".")[0]
        return f"in-memory {kind} array (dim_order {self._order})"

    def read_chunk(self, chunk_coords: ChunkCoords) -> np.ndarray:
        """Return the chunk at ``chunk_coords`` as numpy (a view when already numpy)."""
        block = self._array[chunk_slices(self._meta, chunk_coords)]  # type: ignore[index]
        if self._is_dask:
            from dask.local import get_sync  # the callable: dask imports distributed to resolve the name "sync"

            block = block.compute(scheduler=get_sync)
        if type(block).__module__.split(".")[0] == "cupy":
            block = block.get()
        return np.asarray(block)

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild_array_source, (self._array, self._meta, self._order, self.token, self.input_paths()))

    def __repr__(self) -> str:
        return f"ArraySource({self.describe()}, shape={self._meta.shape}, dtype={self._meta.dtype})"


def _rebuild_array_source(
    array: object, meta: ImageMeta, order: str, token: str, input_paths: tuple[str, ...] = ()
) -> ArraySource:
    source = ArraySource.__new__(ArraySource)
    source.__dict__["_token"] = token  # what the ``token`` property caches
    source._input_paths = input_paths
    source._array = array
    source._meta = meta
    source._order = order
    source._is_dask = type(array).__module__.split(".")[0] == "dask"
    return source


class MetaOverride(SourceWrapper):
    """A source that reports other descriptors (name, image type, ...) for the same pixels.

    Every optional ability of the wrapped source (partial reads, ``explain()`` lines,
    input validation, the array pass-through, ...) is forwarded (see
    :class:`~ome_arrow_dask.sources.abilities.SourceWrapper`).
    """

    def __init__(self, inner: Source, meta: ImageMeta) -> None:
        if (meta.shape, meta.dtype, meta.chunks) != (inner.meta.shape, inner.meta.dtype, inner.meta.chunks):
            raise OmeArrowDaskError("MetaOverride may change descriptors only, not shape, dtype or chunks")
        super().__init__(inner)
        self._meta = meta

    @property
    def meta(self) -> ImageMeta:
        """The overriding metadata."""
        return self._meta

    @property
    def token(self) -> str:
        """The inner token combined with the new metadata."""
        return tokenize(self.inner.token, self._meta)


def input_paths_of(source: object) -> tuple[str, ...]:
    """The files and folders ``source`` reads (``source.input_paths()``; empty when it has none)."""
    return tuple(source.input_paths()) if isinstance(source, SupportsInputPaths) else ()


def validate_before_write(source: object) -> None:
    """Run ``source.validate_inputs()`` (e.g. every header of a pattern stack) before a writer creates output.

    Wrappers forward the hook (:class:`~ome_arrow_dask.sources.abilities.SourceWrapper`);
    other objects with an ``inner`` source are looked through. Sources without the hook
    are not checked. Errors from the hook propagate, so a job fails before any output exists.
    """
    for layer in unwrap(source):  # bounded: a wrapper cycle must not hang a write
        if isinstance(layer, SupportsValidateInputs):
            layer.validate_inputs()
            return
