"""TIFF, OME-TIFF and ImageJ hyperstack source: one chunk per tile, or per page for strips.

tifffile parses headers and decodes segments. Opening reads IFDs and metadata only;
:meth:`TiffSource.read_chunk` reads one page (strip files) or one tile (tiled files).
The open ``TiffFile`` is cached per instance and dropped when pickling, so tasks pickle.

Bad input is refused with the classes in :mod:`ome_arrow_dask.errors`, naming the file:
tifffile ERROR log records during parsing (truncated IFD chains, circular IFDs) become
:class:`~ome_arrow_dask.errors.CorruptInputError`, so a truncated 8-page file never
comes back as one plane; declared sizes are checked against :mod:`ome_arrow_dask.limits`;
segments missing from the offsets tables or past the end of the file are errors unless
``missing="zeros"`` (which warns).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import threading
import warnings
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from dask.base import tokenize

from ..errors import CorruptInputError, InputChangedError, MissingDataWarning, OmeArrowDaskError, SelectionError
from ..limits import check_chunk_grid, check_declared_bytes
from ..meta import AXES, ImageMeta, PhysicalSize, regular_chunks
from . import _ome_xml
from ._ngff import check_missing_option
from .base import ChunkCoords, SourceBase, chunk_slices, parse_dim_order

__all__ = ["TiffSource", "open", "probe"]

_SUFFIXES = (".tif", ".tiff", ".btf", ".tf2", ".tf8", ".ome.tif", ".ome.tiff", ".ome.btf")
_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
_OPTIONS = frozenset({"scene", "level", "dims", "missing"})


def probe(path: str, **options: object) -> bool:
    """True for an existing file with a TIFF suffix or TIFF magic bytes (reads 4 bytes)."""
    if not os.path.isfile(path):
        return False
    if path.lower().endswith(_SUFFIXES):
        return True
    try:
        with builtin_open(path, "rb") as fh:
            return fh.read(4) in _MAGIC
    except OSError:
        return False


builtin_open = open


def open(path: str, **options: Any) -> TiffSource:
    """Open a TIFF / OME-TIFF lazily; options ``scene``, ``level``, ``dims``, ``missing``."""
    unknown = sorted(set(options) - _OPTIONS)
    if unknown:
        raise TypeError(f"the TIFF source does not support options {unknown}; it takes {sorted(_OPTIONS)}")
    return TiffSource(path, **options)


# --------------------------------------------------------------------------- errors
class _ErrorRecords(logging.Handler):
    """Collect tifffile ERROR records emitted by the current thread."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.thread = threading.get_ident()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread:
            self.messages.append(record.getMessage())


@contextlib.contextmanager
def tifffile_errors(where: str) -> Iterator[None]:
    """Turn exceptions and ERROR log records from tifffile into :class:`CorruptInputError`."""
    handler = _ErrorRecords()
    logger = logging.getLogger("tifffile")
    logger.addHandler(handler)
    try:
        yield
    except OmeArrowDaskError:
        raise
    except Exception as exc:
        raise CorruptInputError(f"{where}: cannot read TIFF: {type(exc).__name__}: {exc}") from exc
    finally:
        logger.removeHandler(handler)
    if handler.messages:
        raise CorruptInputError(f"{where}: corrupt or truncated TIFF: {'; '.join(handler.messages[:3])}")


# --------------------------------------------------------------------------- layout
@dataclass(frozen=True)
class _Layout:
    """How the series' pages and segments map onto the 5-D chunk grid (picklable)."""

    shape: tuple[int, ...]  # squeezed series shape, as tifffile.imread returns it
    n_index: int  # leading axes that index pages
    y_axis: int  # series axis of image length
    x_axis: int  # series axis of image width
    targets: tuple[str, ...]  # TCZYX letter per series axis ("" for dropped singletons)
    tile: tuple[int, int] | None  # (tilelength, tilewidth) or None for whole pages
    segments_per_page: int

    @property
    def index_shape(self) -> tuple[int, ...]:
        return self.shape[: self.n_index]

    @property
    def page_shape(self) -> tuple[int, ...]:
        return self.shape[self.n_index :]

    def chunk_shape(self) -> tuple[int, ...]:
        """5-D TCZYX chunk shape: 1 per page index, a tile (or the page) in Y and X."""
        out = dict.fromkeys(AXES, 1)
        for i, letter in enumerate(self.targets):
            if not letter:
                continue
            if i < self.n_index:
                out[letter] = 1
            elif self.tile is not None and i in (self.y_axis, self.x_axis):
                out[letter] = self.tile[0] if i == self.y_axis else self.tile[1]
            else:
                out[letter] = self.shape[i]
        return tuple(out[a] for a in AXES)

    def full_shape(self) -> tuple[int, ...]:
        out = dict.fromkeys(AXES, 1)
        for size, letter in zip(self.shape, self.targets, strict=True):
            if letter:
                out[letter] = size
        return tuple(out[a] for a in AXES)


def map_axes(axes: str, shape: tuple[int, ...], dims: str | None) -> tuple[str, ...]:
    """Map tifffile series axes to TCZYX letters; singleton axes are dropped ("").

    ``S`` (samples) becomes C; other letters (``I``, ``Q``, ...) take the first free
    of Z, T, C. ``dims`` overrides the letters of the squeezed series axes.

    >>> map_axes("QYXS", (4, 8, 9, 3), None)
    ('Z', 'Y', 'X', 'C')
    >>> map_axes("TZCYX", (2, 1, 3, 8, 9), None)
    ('T', '', 'C', 'Y', 'X')
    """
    if dims is not None:
        letters = parse_dim_order(dims, len(axes))
        return tuple(letter if size > 1 or letter in "YX" else "" for letter, size in zip(letters, shape, strict=True))
    out = [""] * len(axes)
    used: set[str] = set()
    for i, ax in enumerate(axes):
        if ax in "TCZYX" and (shape[i] > 1 or ax in "YX"):
            out[i] = ax
            used.add(ax)
    for i, ax in enumerate(axes):
        if out[i] or shape[i] == 1:
            continue
        order = "CZT" if ax == "S" else "ZTC"
        free = [letter for letter in order if letter not in used]
        if not free:
            raise OmeArrowDaskError(f"cannot map TIFF axes {axes!r} {shape} to TCZYX; pass dims=")
        out[i] = free[0]
        used.add(free[0])
    return tuple(out)


def _segments_per_page(keyframe: Any) -> tuple[tuple[int, int] | None, int]:
    """Tile shape (or None) and the number of strips/tiles one page must have."""
    separate = keyframe.shaped[0] if keyframe.planarconfig == 2 else 1
    if keyframe.is_tiled and keyframe.imagedepth == 1 and keyframe.tiledepth == 1:
        tl, tw = int(keyframe.tilelength), int(keyframe.tilewidth)
        across = -(-keyframe.imagewidth // tw)
        down = -(-keyframe.imagelength // tl)
        return (tl, tw), separate * across * down
    if keyframe.is_tiled:
        tiles = math.prod(-(-a // b) for a, b in zip(keyframe.shaped[1:4], keyframe.chunks[-4:-1], strict=False))
        return None, separate * max(tiles, 1)
    rows = max(1, int(keyframe.rowsperstrip or keyframe.imagelength))
    return None, separate * keyframe.imagedepth * -(-keyframe.imagelength // rows)


def build_layout(series: Any, dims: str | None, where: str) -> _Layout:
    """Split the series into page-index axes and page axes and map them to TCZYX."""
    shape = tuple(int(s) for s in series.shape)
    axes = series.axes
    keyframe = series.keyframe
    page_ndim = len(keyframe.shape)
    n_index = len(shape) - page_ndim
    n_pages = len(series.pages)
    if n_index < 0 or math.prod(shape[n_index:]) != math.prod(keyframe.shape) or math.prod(shape[:n_index]) != n_pages:
        raise CorruptInputError(
            f"{where}: series shape {shape} ({axes}) does not match {n_pages} pages of shape {keyframe.shape}"
        )
    if "Y" not in axes[n_index:] or "X" not in axes[n_index:]:
        raise CorruptInputError(f"{where}: series axes {axes!r} have no Y and X inside the page")
    tile, n_segments = _segments_per_page(keyframe)
    return _Layout(
        shape=shape,
        n_index=n_index,
        y_axis=axes.index("Y", n_index),
        x_axis=axes.index("X", n_index),
        targets=map_axes(axes, shape, dims),
        tile=tile,
        segments_per_page=n_segments,
    )


# --------------------------------------------------------------------------- metadata
def imagej_physical_size(tif: Any) -> PhysicalSize:
    """Pixel sizes from ImageJ metadata: X/Y resolution tags, ``spacing`` for Z, ``unit``."""
    meta = tif.imagej_metadata or {}
    unit = meta.get("unit")
    unit = "µm" if unit in ("micron", "um", "\\u00B5m", "µm") else unit
    page = tif.pages.first

    def res(tag: str) -> float | None:
        value = page.tags.get(tag)
        if value is None:
            return None
        num, den = value.value
        return den / num if num and den else None

    x, y, z = res("XResolution"), res("YResolution"), meta.get("spacing")
    z = float(z) if isinstance(z, (int, float)) and z > 0 else None
    return PhysicalSize(
        z=z, y=y, x=x, z_unit=unit if z else None, y_unit=unit if y else None, x_unit=unit if x else None
    )


def _scale_physical(ps: PhysicalSize, full: tuple[int, ...], level: tuple[int, ...]) -> PhysicalSize:
    """Physical sizes of a pyramid level: multiply by the downsampling factor per axis."""

    def scaled(value: float | None, k: int) -> float | None:
        return None if value is None or not level[k] else value * full[k] / level[k]

    return PhysicalSize(
        z=scaled(ps.z, 2), y=scaled(ps.y, 3), x=scaled(ps.x, 4), z_unit=ps.z_unit, y_unit=ps.y_unit, x_unit=ps.x_unit
    )


def _ome_image(tif: Any, scene: int, where: str) -> _ome_xml.OmeImage | None:
    if not tif.is_ome:
        return None
    root = _ome_xml.parse_root(tif.pages.first.description, where)
    _ome_xml.check_referenced_files(root, where)
    return _ome_xml.parse_image(root, scene, where)


def _check_ome_planes(ome: _ome_xml.OmeImage, full: tuple[int, ...], where: str) -> None:
    promised = tuple(ome.sizes[a] for a in AXES)
    if math.prod(promised) != math.prod(full) or promised[3:] != full[3:]:
        raise CorruptInputError(
            f"{where}: OME-XML promises TCZYX {promised} but the file holds {full} (truncated or inconsistent)"
        )


def _check_imagej_planes(tif: Any, series: Any, where: str) -> None:
    images = (tif.imagej_metadata or {}).get("images")
    if isinstance(images, int) and images > len(series.pages):
        raise CorruptInputError(
            f"{where}: ImageJ metadata promises {images} planes but the file holds only {len(series.pages)}"
        )


# --------------------------------------------------------------------------- source
class TiffSource(SourceBase):
    """A TIFF series (``scene``) at pyramid ``level`` as a 5-D TCZYX chunked source.

    Its token covers the path, the file's mtime and size, and the options.

    Parameters
    ----------
    path
        TIFF, OME-TIFF, BigTIFF or ImageJ hyperstack file.
    scene
        Series index (OME ``Image``); default 0.
    level
        Pyramid level (sub-IFDs or series levels); default 0 (full resolution).
    dims
        Letters for the series axes as ``tifffile.imread`` returns them (e.g. ``"ZYX"``).
    missing
        ``"error"`` (default) raises for tiles/strips absent from the offsets tables;
        ``"zeros"`` fills them with zeros and warns.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        scene: int = 0,
        level: int = 0,
        dims: str | None = None,
        missing: str = "error",
    ) -> None:
        self._path = os.path.abspath(os.fspath(path))
        self._scene, self._level = int(scene), int(level)
        self._missing = check_missing_option(missing)
        st = os.stat(self._path)
        self._stat = (st.st_mtime_ns, st.st_size)
        self._layout, self._meta = self._inspect(dims)
        options = {"scene": self._scene, "level": self._level, "dims": dims, "missing": self._missing}
        self._token = tokenize("tiff", self._path, *self._stat, options)
        self._lock = threading.Lock()
        self._tif: Any = None
        self._series: Any = None

    # -- opening
    def _inspect(self, dims: str | None) -> tuple[_Layout, ImageMeta]:
        import tifffile

        where = self._path
        with tifffile_errors(where), tifffile.TiffFile(where) as tif:
            ome = _ome_image(tif, self._scene, where)
            series = self._pick_series(tif)
            layout = build_layout(series, dims, where)
            full_layout = build_layout(tif.series[self._scene].levels[0], dims, where)
            if ome is not None and self._level == 0:
                _check_ome_planes(ome, layout.full_shape(), where)
            if tif.is_imagej:
                _check_imagej_planes(tif, series, where)
            meta = self._make_meta(tif, series, layout, full_layout, ome)
            check_chunk_grid(where, meta.shape, layout.chunk_shape(), meta.dtype)
            check_declared_bytes(where, meta.nbytes, self._stat[1])
        return layout, meta

    def _pick_series(self, tif: Any) -> Any:
        if not 0 <= self._scene < len(tif.series):
            raise SelectionError(f"{self._path}: scene {self._scene} out of range; the file has {len(tif.series)}")
        levels = tif.series[self._scene].levels
        if not 0 <= self._level < len(levels):
            raise SelectionError(f"{self._path}: level {self._level} out of range; scene has {len(levels)} levels")
        return levels[self._level]

    def _make_meta(self, tif: Any, series: Any, layout: _Layout, full: _Layout, ome: Any) -> ImageMeta:
        shape = layout.full_shape()
        dtype = np.dtype(series.dtype)
        kwargs: dict[str, Any] = {"name": series.name or os.path.basename(self._path)}
        if ome is not None:
            physical = ome.physical_size
            if len(ome.channels) == shape[1]:
                kwargs["channels"] = ome.channels
            kwargs.update(id=ome.id, name=ome.name or kwargs["name"], acquisition_datetime=ome.acquisition_datetime)
        elif tif.is_imagej:
            physical = imagej_physical_size(tif)
        else:
            physical = PhysicalSize()
        kwargs["physical_size"] = _scale_physical(physical, full.full_shape(), shape)
        try:
            chunks = regular_chunks(shape, layout.chunk_shape())
            return ImageMeta(shape=shape, dtype=dtype, chunks=chunks, **kwargs)
        except OmeArrowDaskError as exc:
            raise CorruptInputError(f"{self._path}: {exc}") from exc

    # -- protocol


    @property
    def path(self) -> str:
        """Absolute path of the file."""
        return self._path

    def describe(self) -> str:
        """Name the file, scene and level."""
        return f"TIFF {self._path} (scene {self._scene}, level {self._level})"


    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.update(_lock=None, _tif=None, _series=None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    # -- reading
    def _handle(self) -> Any:
        """The series at our level in a cached, open TiffFile (caller holds the lock)."""
        st = os.stat(self._path)
        if (st.st_mtime_ns, st.st_size) != self._stat:
            raise InputChangedError(f"{self._path}: file changed since it was opened (mtime or size differ)")
        if self._series is None:
            import tifffile

            with tifffile_errors(self._path):
                tif = tifffile.TiffFile(self._path)
                weakref.finalize(self, tif.close)
                self._tif, self._series = tif, self._pick_series(tif)
        return self._series

    def read_chunk(self, chunk_coords: ChunkCoords) -> np.ndarray:
        """Read one page (strip layouts) or one tile as a 5-D TCZYX array (native byte order)."""
        slices = chunk_slices(self._meta, chunk_coords)
        layout = self._layout
        starts = dict(zip(AXES, (s.start for s in slices), strict=True))
        index = tuple(starts[t] if t else 0 for t in layout.targets[: layout.n_index])
        page_number = int(np.ravel_multi_index(index, layout.index_shape)) if layout.n_index else 0
        where = f"{self._path} (page {page_number}, chunk {tuple(chunk_coords)})"
        with tifffile_errors(where):
            block = self._read_page_part(page_number, starts, where)
        return self._to_tczyx(block, tuple(s.stop - s.start for s in slices))

    def _read_page_part(self, page_number: int, starts: dict[str, int], where: str) -> np.ndarray:
        layout = self._layout
        with self._lock:
            page = self._handle().pages[page_number]
            if page is None:
                return self._fill(layout.page_shape, where, "page is missing")
            offsets, counts = tuple(page.dataoffsets), tuple(page.databytecounts)
            if layout.tile is None:
                self._check_segments(offsets, counts, range(len(offsets)), page, where)
                if not self._complete(offsets, counts, range(len(offsets))):
                    return self._fill(layout.page_shape, where, "strips are missing")
                return np.asarray(page.asarray(maxworkers=1)).reshape(layout.page_shape)
            y_letter, x_letter = layout.targets[layout.y_axis], layout.targets[layout.x_axis]
            ty, tx = starts[y_letter] // layout.tile[0], starts[x_letter] // layout.tile[1]
            return self._read_tile(page, offsets, counts, ty, tx, where)

    def _read_tile(self, page: Any, offsets: tuple, counts: tuple, ty: int, tx: int, where: str) -> np.ndarray:
        """Decode tile (ty, tx) of every separate sample plane; crop to the image edge."""
        layout = self._layout
        keyframe = page.keyframe
        tl, tw = layout.tile  # type: ignore[misc]
        across, down = -(-keyframe.imagewidth // tw), -(-keyframe.imagelength // tl)
        separate = keyframe.shaped[0] if keyframe.planarconfig == 2 else 1
        indices = [s * across * down + ty * across + tx for s in range(separate)]
        self._check_segments(offsets, counts, indices, page, where)
        h = min(tl, keyframe.imagelength - ty * tl)
        w = min(tw, keyframe.imagewidth - tx * tw)
        part = list(layout.page_shape)
        part[layout.y_axis - layout.n_index], part[layout.x_axis - layout.n_index] = h, w
        if not self._complete(offsets, counts, indices):
            return self._fill(tuple(part), where, f"tile ({ty}, {tx}) is missing")
        fh = page.parent.filehandle
        raw = []
        for i in indices:
            fh.seek(offsets[i])
            raw.append((fh.read(counts[i]), i))
        out = np.empty((separate, 1, h, w, keyframe.shaped[4]), dtype=keyframe.dtype)
        for s, (data, i) in enumerate(raw):
            if len(data) != counts[i]:
                raise CorruptInputError(f"{where}: segment {i} is truncated ({len(data)} of {counts[i]} bytes)")
            seg = keyframe.decode(data, i, jpegtables=keyframe.jpegtables)[0]
            out[s] = seg.reshape(seg.shape[-4:])[:, :h, :w, :]
        return out.reshape(part)

    def _check_segments(self, offsets: tuple, counts: tuple, indices: Any, page: Any, where: str) -> None:
        layout = self._layout
        if len(offsets) != layout.segments_per_page or len(counts) != len(offsets):
            raise CorruptInputError(f"{where}: offsets table has {len(offsets)} of {layout.segments_per_page} segments")
        size = page.parent.filehandle.size
        for i in indices:
            if offsets[i] and offsets[i] + counts[i] > size:
                raise CorruptInputError(f"{where}: segment {i} ends past the end of the file (truncated?)")

    @staticmethod
    def _complete(offsets: tuple, counts: tuple, indices: Any) -> bool:
        return all(offsets[i] > 0 and counts[i] > 0 for i in indices)

    def _fill(self, shape: tuple[int, ...], where: str, why: str) -> np.ndarray:
        if self._missing == "error":
            raise CorruptInputError(f"{where}: {why}; pass missing='zeros' to fill with zeros")
        warnings.warn(f"{where}: {why}; filled with zeros", MissingDataWarning, stacklevel=4)
        return np.zeros(shape, dtype=self._meta.dtype)

    def _to_tczyx(self, part: np.ndarray, chunk_shape: tuple[int, ...]) -> np.ndarray:
        """Turn a page part (page axes at chunk size) into the 5-D TCZYX chunk."""
        layout = self._layout
        block = part.reshape((1,) * layout.n_index + part.shape)
        kept = [i for i, t in enumerate(layout.targets) if t]
        block = block.reshape([block.shape[i] for i in kept])
        order = sorted(range(len(kept)), key=lambda k: AXES.index(layout.targets[kept[k]]))
        block = block.transpose(order).reshape(chunk_shape)
        return np.ascontiguousarray(block, dtype=self._meta.dtype)
