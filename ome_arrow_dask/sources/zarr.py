"""OME-Zarr (NGFF 0.1-0.5, zarr v2 and v3) and plain zarr array source.

zarr-python decodes; chunks are the zarr chunks (inner chunks when sharded). Opening
reads metadata only. NGFF ``datasets[].path`` is followed (never hard-coded), axes map to
TCZYX by name (else type) with singletons for absent axes, ``coordinateTransformations``
give physical sizes, ``omero`` gives channel names and colors. Plain arrays use
``dimension_names`` (v3), ``_ARRAY_DIMENSIONS`` (xarray, v2) or ``dims=``.

Missing chunks: zarr fills absent chunk keys with ``fill_value`` silently, and writers
that use ``write_empty_chunks=False`` (zarr's default) omit chunks equal to the fill
value. We cannot tell the two apart, so by default a missing chunk (or shard) key is a
:class:`~ome_arrow_dask.errors.CorruptInputError` naming the array and key; pass
``missing="zeros"`` to accept fill values (with a :class:`MissingDataWarning`). For
sharded arrays presence is checked per shard; a zero-byte shard or chunk is corrupt.
"""

from __future__ import annotations

import itertools
import os
import warnings
from typing import Any

import numpy as np
from dask.base import tokenize

from ..errors import (
    CorruptInputError,
    IncompleteOutputError,
    MissingDataWarning,
    OmeArrowDaskError,
    SelectionError,
    UnsupportedSourceError,
)
from ..limits import check_chunk_grid
from ..meta import AXES, ImageMeta, PhysicalSize, check_dtype, regular_chunks
from . import _ngff
from .base import ChunkCoords, SourceBase, chunk_slices, parse_dim_order

__all__ = ["ZarrSource", "open", "probe"]

_OPTIONS = frozenset({"level", "dims", "missing"})
_MARKERS = ("zarr.json", ".zgroup", ".zarray")


def probe(path: str, **options: object) -> bool:
    """True for a local folder holding zarr v2 or v3 metadata (checks marker files)."""
    return os.path.isdir(path) and any(os.path.isfile(os.path.join(path, m)) for m in _MARKERS)


def open(path: str, **options: Any) -> ZarrSource:
    """Open an OME-Zarr image or a zarr array lazily; options ``level``, ``dims``, ``missing``."""
    unknown = sorted(set(options) - _OPTIONS)
    if unknown:
        raise TypeError(f"the zarr source does not support options {unknown}; it takes {sorted(_OPTIONS)}")
    return ZarrSource(path, **options)


def _stored_size(store: Any, key: str) -> int | None:
    """Bytes stored under ``key`` (None when absent); a plain ``stat`` for local stores."""
    from zarr.storage import LocalStore

    if isinstance(store, LocalStore):
        try:
            return os.stat(os.path.join(store.root, key)).st_size
        except FileNotFoundError:
            return None
    from zarr.core.sync import sync

    try:
        return sync(store.getsize(key))
    except FileNotFoundError:
        return None


def _open_node(root: str, key: str = "") -> Any:
    import zarr

    try:
        if key:
            return zarr.open_array(store=root, path=key, mode="r")
        return zarr.open(store=root, mode="r")
    except (KeyError, FileNotFoundError) as exc:
        raise CorruptInputError(f"{root}: no zarr array at {key or '/'!r}: {exc}") from exc
    except (RecursionError, MemoryError, ValueError, TypeError, ZeroDivisionError) as exc:
        raise CorruptInputError(f"{root}: zarr metadata unreadable at {key or '/'!r}: {exc}") from exc
    except Exception as exc:
        raise CorruptInputError(f"{root}: cannot open zarr node {key or '/'!r}: {type(exc).__name__}: {exc}") from exc


def _plain_names(array: Any, dims: str | None) -> tuple[str, ...]:
    if dims is not None:
        return tuple(parse_dim_order(dims, array.ndim))
    names = getattr(array.metadata, "dimension_names", None)
    if not names or any(n is None for n in names):
        names = array.attrs.get("_ARRAY_DIMENSIONS")
    if isinstance(names, (list, tuple)) and len(names) == array.ndim and all(isinstance(n, str) for n in names):
        return tuple(names)
    return tuple(parse_dim_order(None, array.ndim))


def _check_complete(root: str, node: Any) -> None:
    """Refuse a store our writer marked ``in_progress`` (a crashed or running job)."""
    status = dict(getattr(node, "attrs", {})).get("ome_arrow_dask")
    if isinstance(status, dict) and status.get("status") != "complete":
        raise IncompleteOutputError(
            f"{root}: this OME-Zarr was not finished by ome-arrow-dask (status {status.get('status')!r}); "
            "re-run the conversion with --resume (its level arrays can still be opened one by one)"
        )


class ZarrSource(SourceBase):
    """A zarr array (an OME-Zarr level or a plain array) as a 5-D TCZYX chunked source.

    Its token covers the store path, the array key, the metadata file's mtime and size,
    and the options.

    Parameters
    ----------
    path
        Folder of an OME-Zarr image (group with ``multiscales``) or of a zarr array.
    level
        Multiscale level (index into ``datasets``); default 0.
    dims
        Axis letters of the array (e.g. ``"ZYX"``), overriding NGFF axes / dimension names.
    missing
        ``"error"`` (default) or ``"zeros"`` (fill absent chunks, warn).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        level: int = 0,
        dims: str | None = None,
        missing: str = "error",
    ) -> None:
        self._root = os.path.abspath(os.fspath(path))
        self._level = int(level)
        self._missing = _ngff.check_missing_option(missing)
        _ngff.check_metadata_sizes(self._root)
        node = _open_node(self._root)
        _check_complete(self._root, node)
        self._key, array, names, types, level_meta, attrs = self._resolve(node, dims)
        self._targets = self._map(names, types, array.ndim, dims)
        self._meta = self._make_meta(array, level_meta, attrs)
        self._shards = tuple(int(s) for s in (array.shards or array.chunks))
        self._native_chunks = tuple(int(c) for c in array.chunks)
        self._fill_value = array.fill_value
        meta_file = os.path.join(self._root, self._key, "zarr.json" if array.metadata.zarr_format == 3 else ".zarray")
        st = os.stat(meta_file)
        options = {"level": self._level, "dims": dims, "missing": self._missing}
        self._token = tokenize("zarr", self._root, self._key, st.st_mtime_ns, st.st_size, options)
        self._array: Any = array  # dropped when pickled; reopened lazily in workers

    # -- opening
    def _resolve(self, node: Any, dims: str | None) -> tuple[str, Any, tuple, tuple, Any, dict]:
        """Return (array key, array, axis names, axis types, NGFF level or None, NGFF attrs)."""
        import zarr

        if isinstance(node, zarr.Array):
            if self._level != 0:
                raise SelectionError(f"{self._root}: level {self._level} requested but this is a single zarr array")
            names = _plain_names(node, dims)
            return "", node, names, (None,) * len(names), None, {}
        attrs = _ngff.ngff_attrs(dict(node.attrs))
        if attrs is None:
            members = sorted(node.keys())[:10]
            raise UnsupportedSourceError(
                f"{self._root}: zarr group without OME-NGFF 'multiscales'; open one of its arrays ({members})"
            )
        level = _ngff.parse_multiscale(attrs, self._level, self._root)
        _ngff.check_metadata_sizes(os.path.join(self._root, level.path))
        array = _open_node(self._root, level.path)
        if len(level.names) != array.ndim:
            raise CorruptInputError(
                f"{self._root}: NGFF axes {level.names} do not match the {array.ndim}-D array {level.path!r}"
            )
        return level.path, array, level.names, level.types, level, attrs

    def _map(self, names: tuple, types: tuple, ndim: int, dims: str | None) -> tuple[str, ...]:
        if dims is not None:
            return tuple(parse_dim_order(dims, ndim))
        return _ngff.axes_to_targets(tuple(names), tuple(types), self._where())

    def _make_meta(self, array: Any, level: Any, attrs: dict) -> ImageMeta:
        where = self._where()
        try:
            dtype = check_dtype(array.dtype)
        except (OmeArrowDaskError, TypeError) as exc:
            raise CorruptInputError(f"{where}: {exc}") from exc
        check_chunk_grid(where, array.shape, array.chunks, dtype)
        shape, chunk_shape = [1] * 5, [1] * 5
        for letter, size, chunk in zip(self._targets, array.shape, array.chunks, strict=True):
            shape[AXES.index(letter)], chunk_shape[AXES.index(letter)] = int(size), int(chunk)
        physical = _ngff.physical_size(self._targets, level, where) if level is not None else PhysicalSize()
        channels = _ngff.omero_channels(attrs, shape[1])
        name = (level.name if level is not None else None) or os.path.basename(self._root.rstrip(os.sep))
        return ImageMeta(
            shape=tuple(shape),  # type: ignore[arg-type]
            dtype=dtype,
            chunks=regular_chunks(shape, chunk_shape),
            channels=channels,
            physical_size=physical,
            name=name,
        )

    def _where(self) -> str:
        return f"{self._root}/{self._key}" if getattr(self, "_key", "") else self._root

    # -- protocol


    def describe(self) -> str:
        """Name the store and array."""
        return f"zarr array {self._where()} (level {self._level})"


    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_array"] = None
        return state

    # -- reading
    def _zarr_array(self) -> Any:
        if self._array is None:
            self._array = _open_node(self._root, self._key) if self._key else _open_node(self._root)
        return self._array

    def _check_present(self, array: Any, key: str) -> None:
        size = _stored_size(array.store_path.store, key)
        if size == 0:
            raise CorruptInputError(f"{self._where()}: chunk key {key!r} is an empty (zero-byte) file")
        if size is None:
            if self._missing == "error":
                raise CorruptInputError(
                    f"{self._where()}: chunk key {key!r} is missing; pass missing='zeros' to read it as the "
                    f"fill value {self._fill_value!r} (writers with write_empty_chunks=False omit such chunks)"
                )
            warnings.warn(
                f"{self._where()}: chunk key {key!r} is missing; filled with {self._fill_value!r}",
                MissingDataWarning,
                stacklevel=3,
            )

    def read_chunk(self, chunk_coords: ChunkCoords) -> np.ndarray:
        """Read one zarr chunk as a 5-D TCZYX array in native byte order."""
        return self.read_chunk_box(chunk_coords, tuple(int(k) + 1 for k in chunk_coords))

    def read_chunk_box(self, first: ChunkCoords, stop: ChunkCoords) -> np.ndarray:
        """Read the chunks ``first <= coords < stop`` (per axis) in one zarr call, as TCZYX.

        One call lets zarr fetch and decode the chunks concurrently; every chunk key is
        checked first, so a missing chunk still raises (or warns) by name.
        """
        lo = chunk_slices(self._meta, tuple(first))
        hi = chunk_slices(self._meta, tuple(int(k) - 1 for k in stop))
        slices = tuple(slice(a.start, b.stop) for a, b in zip(lo, hi, strict=True))
        native = tuple(slices[AXES.index(letter)] for letter in self._targets)
        array = self._zarr_array()
        keys = self._keys_in(array, native)
        for key in keys:
            self._check_present(array, key)
        try:
            block = np.asarray(array[native])
        except Exception as exc:
            named = keys[0] if len(keys) == 1 else f"{keys[0]}..{keys[-1]}"
            raise CorruptInputError(
                f"{self._where()}: chunk key {named!r} cannot be decoded: {type(exc).__name__}: {exc}"
            ) from exc
        order = sorted(range(len(self._targets)), key=lambda i: AXES.index(self._targets[i]))
        shape = tuple(s.stop - s.start for s in slices)
        return np.ascontiguousarray(block.transpose(order).reshape(shape), dtype=self._meta.dtype)

    def _keys_in(self, array: Any, native: tuple[slice, ...]) -> list[str]:
        """Storage keys (shards, or chunks) that the native-order region ``native`` touches."""
        ranges = [range(s.start // k, -(-s.stop // k)) for s, k in zip(native, self._shards, strict=True)]
        prefix = array.store_path.path
        keys = []
        for coords in itertools.product(*ranges):
            key = array.metadata.encode_chunk_key(coords)
            keys.append(f"{prefix}/{key}" if prefix else key)
        return keys
