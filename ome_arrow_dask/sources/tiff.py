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

Damaged input never reads as data of another shape: while the file is scanned, tifffile
WARNING records (metadata that disagrees with the pages, frames missing from a series)
are errors too; every page's declared geometry is checked against the limits, the file
size and, for uncompressed data, its strip/tile byte counts (:func:`check_page_segments`)
before anything is decoded; and OME-XML that tifffile cannot use, or that contradicts the
pages in any of T, C, Z, Y, X or the pixel type, is refused unless ``ome_xml="ignore"``
(which reads the pages as a plain TIFF and warns). OME-XML sizes are checked before
tifffile builds its series from them.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
import os
import re
import threading
import warnings
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from dask.base import tokenize

from .. import limits
from ..errors import (
    CorruptInputError,
    IgnoredMetadataWarning,
    InputChangedError,
    MissingDataWarning,
    OmeArrowDaskError,
    ResourceLimitError,
    SelectionError,
    UnsupportedSourceError,
)
from ..limits import check_chunk_grid, check_declared_bytes
from ..meta import AXES, ChunkCoords, ImageMeta, PhysicalSize, Shape5, regular_chunks, tczyx
from ..storage import Location, is_network_error, is_remote, location, remote_error
from ..units import RESOLUTION_UNIT_UM
from . import _ome_xml
from ._ngff import check_missing_option
from .base import SourceBase, chunk_slices, parse_dim_order

__all__ = ["TiffSource", "check_page_segments", "open", "probe", "resolution_physical_size"]

_SUFFIXES = (".tif", ".tiff", ".btf", ".tf2", ".tf8", ".ome.tif", ".ome.tiff", ".ome.btf")
_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
_OPTIONS = frozenset({"scene", "level", "dims", "missing", "ome_xml", "storage_options"})
_OME_XML_OPTIONS = ("use", "ignore")
_OME_HINT = "pass ome_xml='ignore' to read the pages as a plain TIFF without it"


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


def probe_remote(loc: Location, **options: object) -> bool:
    """True for a URL with a TIFF suffix (no request)."""
    return loc.url.lower().endswith(_SUFFIXES)


def open(path: str, **options: Any) -> TiffSource:
    """Open a TIFF / OME-TIFF lazily; options ``scene``, ``level``, ``dims``, ``missing``, ``ome_xml``."""
    unknown = sorted(set(options) - _OPTIONS)
    if unknown:
        raise TypeError(f"the TIFF source does not support options {unknown}; it takes {sorted(_OPTIONS)}")
    return TiffSource(path, **options)


# --------------------------------------------------------------------------- errors
_BENIGN_WARNINGS = re.compile(
    r"coercing invalid ASCII|GeoKeyDirectoryTag|GDAL_NODATA|not writing extratag|value does not begin on word"
    r"|STK Datetime|eer_xml_metadata"
    r"|<(?:get_resolution|fluoview_\w+|andor_tags|epics_tags|nuvu_tags|ndpi_tags|tifffile\.read_uic1tag)> raised"
)
"""tifffile warnings about vendor metadata only (never the pixel layout): not escalated."""


class _LogRecords(logging.Handler):
    """Collect tifffile ERROR records (and, if ``strict``, WARNING records) of the current thread."""

    def __init__(self, strict: bool) -> None:
        super().__init__(logging.WARNING if strict else logging.ERROR)
        self.thread = threading.get_ident()
        self.errors: list[str] = []
        self.warnings: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread != self.thread:
            return
        message = record.getMessage()
        if record.levelno >= logging.ERROR:
            self.errors.append(message)
        elif not _BENIGN_WARNINGS.search(message):
            self.warnings.append(message)

    @property
    def messages(self) -> list[str]:
        """Escalated messages, errors first."""
        return self.errors + self.warnings


@contextlib.contextmanager
def tifffile_errors(where: str, *, strict: bool = False) -> Iterator[_LogRecords]:
    """Turn exceptions and ERROR log records from tifffile into :class:`CorruptInputError`.

    With ``strict=True`` (used while a file is scanned) WARNING records count too, except
    the few about vendor metadata in :data:`_BENIGN_WARNINGS`: tifffile only warns when a
    shaped, ImageJ or OME series disagrees with the pages and then returns another shape.
    Yields the collecting handler, so a caller can quote the records in its own error.
    """
    handler = _LogRecords(strict)
    logger = logging.getLogger("tifffile")
    logger.addHandler(handler)
    try:
        yield handler
    except OmeArrowDaskError:
        raise
    except Exception as exc:
        if is_network_error(exc):  # a remote file: the request failed, the data may be fine
            raise remote_error(where, exc) from exc
        raise CorruptInputError(f"{where}: cannot read TIFF: {type(exc).__name__}: {exc}") from exc
    finally:
        logger.removeHandler(handler)
    if handler.errors:
        raise CorruptInputError(f"{where}: corrupt or truncated TIFF: {'; '.join(handler.errors[:3])}")
    if handler.warnings:
        raise CorruptInputError(
            f"{where}: damaged or inconsistent TIFF, refused rather than read as another shape "
            f"(tifffile: {'; '.join(handler.warnings[:3])})"
        )


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

    def full_shape(self) -> Shape5:
        out = dict.fromkeys(AXES, 1)
        for size, letter in zip(self.shape, self.targets, strict=True):
            if letter:
                out[letter] = size
        return tczyx(out[a] for a in AXES)


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


# --------------------------------------------------------------------------- page checks
@dataclass(frozen=True)
class _SegmentRules:
    """What one page geometry (a keyframe) allows its strips/tiles to be."""

    count: int  # strips/tiles a page must have
    exact: np.ndarray | None  # uncompressed: byte count of each segment (None: compressed, not checked)
    alt: np.ndarray | None  # uncompressed strips: a last strip stored at full strip size is accepted too


def _roundup16(n: int) -> int:
    return -(-n // 16) * 16


def _segment_rules(kf: Any, where: str, file_size: int) -> _SegmentRules:
    """Check a page geometry against the limits and the file size; the rules for its segments.

    Only arithmetic on header values, in Python ints: nothing is allocated from them.
    """
    shape = tuple(int(n) for n in (getattr(kf, "shape", None) or ()))
    width, length = int(getattr(kf, "imagewidth", 0) or 0), int(getattr(kf, "imagelength", 0) or 0)
    if kf.dtype is None or not shape or 0 in shape or width <= 0 or length <= 0:
        raise CorruptInputError(
            f"{where}: has no image data (no ImageWidth/ImageLength or a zero size, e.g. an IFD with 0 entries); "
            "the file is damaged or truncated"
        )
    itemsize = np.dtype(kf.dtype).itemsize
    shaped = tuple(int(n) for n in kf.shaped)  # (separate samples, depth, length, width, contig samples)
    separate, depth, contig = shaped[0], shaped[1], shaped[4]
    page_bytes = math.prod(shaped) * itemsize
    check_declared_bytes(where, page_bytes, file_size)
    if kf.is_tiled:
        tile = (int(kf.tiledepth), int(kf.tilelength), int(kf.tilewidth))
        sides = (("TileDepth", tile[0], depth), ("TileLength", tile[1], length), ("TileWidth", tile[2], width))
        for name, side, image in sides:
            if side <= 0 or side > max(_roundup16(image), limits.MAX_OVERSIZED_TILE_SIDE):
                raise CorruptInputError(
                    f"{where}: {name} {side} does not fit the image it tiles ({image} pixels; at most "
                    f"{max(_roundup16(image), limits.MAX_OVERSIZED_TILE_SIDE)}, "
                    "ome_arrow_dask.limits.MAX_OVERSIZED_TILE_SIDE); the header is damaged"
                )
        per_plane = math.prod(-(-image // side) for image, side in zip((depth, length, width), tile, strict=True))
        count = separate * per_plane
        segment = (*tile, contig)
        rows = tile[1]
    else:
        rows = min(max(1, int(kf.rowsperstrip or length)), length)
        per_plane = -(-length // rows)
        count = separate * depth * per_plane
        segment = (1, rows, width, contig)
        if page_bytes > limits.MAX_CHUNK_BYTES:  # strip pages are decoded whole
            raise ResourceLimitError(
                f"{where}: one page {shape} of {np.dtype(kf.dtype)} is {page_bytes:,} bytes, more than the limit "
                f"{limits.MAX_CHUNK_BYTES:,} (ome_arrow_dask.limits.MAX_CHUNK_BYTES)"
            )
    segment_bytes = math.prod(segment) * itemsize
    if segment_bytes > limits.MAX_CHUNK_BYTES:
        raise ResourceLimitError(
            f"{where}: one strip/tile {segment[:3]} of {np.dtype(kf.dtype)} is {segment_bytes:,} bytes, more than "
            f"the limit {limits.MAX_CHUNK_BYTES:,} (ome_arrow_dask.limits.MAX_CHUNK_BYTES)"
        )
    if count > limits.MAX_CHUNKS:
        raise ResourceLimitError(
            f"{where}: {count:,} strips/tiles in one page, more than the limit {limits.MAX_CHUNKS:,} "
            "(ome_arrow_dask.limits.MAX_CHUNKS)"
        )
    if int(kf.compression) != 1 or getattr(kf, "is_subsampled", False):
        return _SegmentRules(count, None, None)
    bits = int(kf.bitspersample)
    if kf.is_tiled:
        row_bytes = -(-segment[2] * contig * bits // 8)
        exact = np.full(count, segment[0] * segment[1] * row_bytes, dtype=np.uint64)
        return _SegmentRules(count, exact, exact)
    row_bytes = -(-width * contig * bits // 8)
    last_rows = length - (per_plane - 1) * rows
    plane = np.full(per_plane, rows * row_bytes, dtype=np.uint64)
    plane[-1] = last_rows * row_bytes
    exact = np.tile(plane, separate * depth)
    return _SegmentRules(count, exact, np.full(count, rows * row_bytes, dtype=np.uint64))


def _check_segments_against(
    rules: _SegmentRules,
    offsets: Sequence[Sequence[int]],
    counts: Sequence[Sequence[int]],
    labels: Sequence[Any],
    path: str,
    file_size: int,
    eof: bool,
) -> None:
    """Check the offsets/byte-count tables of pages sharing one geometry, in one vectorised pass.

    ``labels`` names each page in errors (``"{path} (page {label})"``).
    """
    for page_offsets, page_counts, label in zip(offsets, counts, labels, strict=True):
        if not page_offsets:
            raise CorruptInputError(f"{path} (page {label}): has no strip/tile offsets, so no image data; damaged")
        if len(page_offsets) != rules.count or len(page_counts) != len(page_offsets):
            raise CorruptInputError(
                f"{path} (page {label}): offsets table has {len(page_offsets)} of {rules.count} strips/tiles "
                f"({len(page_counts)} byte counts); the header is damaged"
            )
    total = len(labels) * rules.count
    try:
        off = np.fromiter(itertools.chain.from_iterable(offsets), dtype=np.uint64, count=total)
        cnt = np.fromiter(itertools.chain.from_iterable(counts), dtype=np.uint64, count=total)
    except (OverflowError, ValueError, TypeError) as exc:
        raise CorruptInputError(f"{path}: invalid strip/tile offsets or byte counts ({exc})") from exc

    def where(i: int) -> str:
        return f"{path} (page {labels[i // rules.count]}): segment {i % rules.count}"

    size = np.uint64(max(file_size, 0))
    present = off > 0
    bad = present & ((off > size) | (cnt > size) | (off + np.minimum(cnt, size) > size))
    if eof and bad.any():
        i = int(np.argmax(bad))
        raise CorruptInputError(
            f"{where(i)} (offset {int(off[i]):,}, {int(cnt[i]):,} bytes) ends past the end of the file "
            f"({file_size:,} bytes; truncated or damaged)"
        )
    if rules.exact is not None and rules.alt is not None:
        exact, alt = np.tile(rules.exact, len(labels)), np.tile(rules.alt, len(labels))
        wrong = present & (cnt > 0) & (cnt != exact) & (cnt != alt) & ~bad
        if wrong.any():
            i = int(np.argmax(wrong))
            raise CorruptInputError(
                f"{where(i)}: uncompressed, holds {int(cnt[i]):,} bytes but the declared geometry needs "
                f"{int(exact[i]):,}; ImageWidth/ImageLength/RowsPerStrip or the byte counts are damaged"
            )


def check_page_segments(path: str, page: Any, file_size: int, *, page_number: int | None = None) -> None:
    """Refuse a TIFF page whose header cannot describe its stored data; call before decoding it.

    Header values only, no pixel reads, no allocation driven by them. Checks that the page
    has image data (an IFD with 0 entries has none); that its decoded size passes the
    limits of :mod:`ome_arrow_dask.limits` (a whole strip page and one tile at most
    ``MAX_CHUNK_BYTES``, at most ``MAX_CHUNKS`` segments, declared bytes against
    ``file_size`` through :func:`~ome_arrow_dask.limits.check_declared_bytes`); that a tile
    is no larger than the image it tiles rounded up to 16 (or ``MAX_OVERSIZED_TILE_SIDE``);
    that the offsets and byte-count tables have one entry per strip/tile; that no segment
    ends past the end of the file; and, for uncompressed data, that each strip/tile byte
    count equals what the declared geometry needs (an ImageWidth edited from 80 to 8 is
    refused, not read as a narrower image). Missing segments (offset or byte count 0) pass:
    readers decide about them (``missing=``).

    Parameters
    ----------
    path
        The file holding the page, named in errors.
    page
        A ``tifffile.TiffPage``, or a ``TiffFrame`` (its geometry is its keyframe's).
    file_size
        Size in bytes of that file.
    page_number
        The page index named in errors; default ``page.index``.

    Raises
    ------
    CorruptInputError
        The page has no image data, its tables disagree with its geometry, or a segment
        lies past the end of the file.
    ResourceLimitError
        Declared sizes exceed a limit in :mod:`ome_arrow_dask.limits`.
    """
    number = page.index if page_number is None else page_number
    _check_page(path, page, file_size, number, {})


def _check_page(
    path: str, page: Any, file_size: int, number: Any, cache: dict[Any, Any], *, eof: bool = True
) -> None:
    """:func:`check_page_segments` with the per-keyframe rules cached in ``cache`` (by ``id``).

    ``eof=False`` leaves segments past the end of the file to the reader of each segment
    (the single-file reader reads intact tiles of a truncated file).
    """
    rules = _rules_for(page, path, file_size, number, cache)
    _check_segments_against(rules, [page.dataoffsets], [page.databytecounts], [number], path, file_size, eof)


def _rules_for(page: Any, path: str, file_size: int, number: Any, cache: dict[Any, Any]) -> _SegmentRules:
    """The segment rules of ``page``'s geometry, cached by keyframe identity.

    The cache holds the keyframe itself next to its rules, so its ``id`` cannot be reused
    by another page object while the entry exists.
    """
    keyframe = getattr(page, "keyframe", None) or page
    key = (id(keyframe), file_size)
    hit = cache.get(key)
    if hit is not None and hit[0] is keyframe:
        return hit[1]
    rules = _segment_rules(keyframe, f"{path} (page {number})", file_size)
    cache[key] = (keyframe, rules)
    return rules


_GEOMETRY = ("shaped", "dtype", "compression", "planarconfig", "is_tiled", "tilewidth", "tilelength", "bitspersample")


def _check_same_geometry(page: Any, keyframe: Any, where: str) -> None:
    """Refuse a page of a series whose own header declares another geometry than the series'."""
    from tifffile import TiffFrame

    if page is keyframe or isinstance(page, TiffFrame):  # a TiffFrame carries the keyframe's geometry
        return
    for name in _GEOMETRY:
        mine, theirs = getattr(page, name, None), getattr(keyframe, name, None)
        if mine != theirs:
            raise CorruptInputError(
                f"{where}: declares {name} {mine} but the series' first page has {theirs}; a page header is damaged"
            )


def _parsed_pages(series: Any) -> list[Any]:
    """The pages of ``series`` that tifffile has already parsed, without parsing more IFDs.

    For a contiguous shaped series tifffile parses only the first IFD; parsing the others
    here would cost as much as the whole scan (0.5 ms per page), so those pages are checked
    when a chunk first reads them (:meth:`TiffSource._read_page_part`), still before decoding.
    """
    pages = getattr(series, "_pages", None)
    if isinstance(pages, list) and len(pages) == len(series):
        return pages
    return [series.keyframe]


def _check_series_pages(series: Any, where: str) -> None:
    """Run the page checks over the parsed pages of ``series``, grouped by geometry and file."""
    keyframe = series.keyframe
    cache: dict[Any, Any] = {}
    groups: dict[tuple[int, str, int], tuple[_SegmentRules, list[Any]]] = {}
    for page in _parsed_pages(series):
        if page is None:
            continue
        fh = page.parent.filehandle
        path = getattr(fh, "path", None) or where
        _check_same_geometry(page, keyframe, f"{path} (page {page.index})")
        rules = _rules_for(page, path, fh.size, page.index, cache)
        groups.setdefault((id(rules), path, fh.size), (rules, []))[1].append(page)
    for (_, path, size), (rules, pages) in groups.items():
        _check_segments_against(
            rules,
            [p.dataoffsets for p in pages],
            [p.databytecounts for p in pages],
            [p.index for p in pages],
            path,
            size,
            eof=False,
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


def resolution_physical_size(page: Any) -> PhysicalSize:
    """Pixel sizes in µm from a plain TIFF page's XResolution/YResolution and ResolutionUnit.

    Like ome-arrow 0.1.0 (through bioio-tifffile): the size of a pixel is the inverse of the
    resolution (pixels per unit), converted to micrometres. Unlike it, nothing is reported
    when ResolutionUnit is absent or NONE, or a resolution is not a positive fraction giving
    a size between 1e-6 and 1e7 µm (tifffile writes resolution 1/1 without a unit by default).
    """
    tag = page.tags.get("ResolutionUnit")
    try:
        factor = RESOLUTION_UNIT_UM.get(int(tag.value)) if tag is not None else None
    except (TypeError, ValueError):
        factor = None
    if factor is None:
        return PhysicalSize()

    def size(name: str) -> float | None:
        res = page.tags.get(name)
        value = res.value if res is not None else None
        if not isinstance(value, tuple) or len(value) != 2:
            return None
        num, den = value
        if not (isinstance(num, int) and isinstance(den, int) and num > 0 and den > 0):
            return None
        um = factor * den / num
        return um if 1e-6 <= um <= 1e7 else None

    y, x = size("YResolution"), size("XResolution")
    return PhysicalSize(y=y, x=x, y_unit="µm" if y else None, x_unit="µm" if x else None)


def _ome_image(
    tif: Any, first: Any, scene: int, where: str, file_size: int, remote: bool = False
) -> _ome_xml.OmeImage | None:
    """The OME ``Image`` of ``scene`` if the first page carries OME-XML; checked before tifffile uses it.

    OME-XML that does not parse, has no Image, or declares sizes the file cannot hold is a
    :class:`CorruptInputError` (or :class:`ResourceLimitError`), never a silent fallback.
    """
    text = first.description
    if not (tif.is_ome or _ome_xml.looks_like_ome_xml(text)):
        return None
    try:
        root = _ome_xml.parse_root(text, where)
        companions = _remote_companions(root, where) if remote else _ome_xml.check_referenced_files(root, where)
        if _ome_xml.is_binary_only(root):  # metadata in a companion file: left to tifffile, as before
            return None
        images = _ome_xml.parse_images(root, where)
        if not images:
            raise CorruptInputError(f"{where}: the OME-XML describes no Image with Pixels")
        own = where if remote else os.path.realpath(where)
        stored = file_size + sum(os.path.getsize(p) for p in set(companions) if p != own)
        _ome_xml.check_declared_sizes(images, where, stored)
    except (CorruptInputError, ResourceLimitError) as exc:
        raise type(exc)(f"{exc}; {_OME_HINT}") from exc
    if not 0 <= scene < len(images):
        raise SelectionError(f"{where}: scene {scene} out of range; the OME-XML describes {len(images)} images")
    return images[scene]


def _remote_companions(root: Any, url: str) -> list[str]:
    """A remote OME-TIFF may refer to itself only: multi-file OME-TIFF over URLs is refused by name."""
    own = url.rsplit("/", 1)[-1]
    others = sorted(n for n in _ome_xml.referenced_files(root) if n.replace("\\", "/").rsplit("/", 1)[-1] != own)
    if others:
        raise UnsupportedSourceError(
            f"{url}: a multi-file OME-TIFF (its OME-XML refers to {others[:3]}); reading its companion files "
            "over a URL is not supported: copy the files to a local folder and open them there"
        )
    return [url]


def _check_ome_series(series: Any, ome: _ome_xml.OmeImage, log: _LogRecords, where: str) -> None:
    """Refuse when tifffile did not build the OME series, or built one the OME-XML contradicts.

    Every axis is compared (T, C with samples, Z, Y, X) and the pixel type; only series axes
    that are none of these (modulo annotations) fall back to comparing the plane product.
    """
    told = f" (tifffile: {'; '.join(log.messages[:3])})" if log.messages else ""
    if series.kind != "ome":
        raise CorruptInputError(
            f"{where}: carries OME-XML that tifffile cannot use: it fell back to a {series.kind} series "
            f"{tuple(series.shape)} {series.axes!r}{told}; the OME-XML disagrees with the pages; {_OME_HINT}"
        )
    if log.messages:
        raise CorruptInputError(
            f"{where}: the OME-XML disagrees with the pages{told}; tifffile would return another shape; {_OME_HINT}"
        )
    sizes = dict.fromkeys("TCZYX", 1)
    other = 1
    for letter, n in zip(series.axes, series.shape, strict=True):
        if letter in sizes or letter == "S":
            sizes["C" if letter == "S" else letter] *= int(n)
        else:
            other *= int(n)
    promised = tuple(ome.sizes[a] for a in AXES)
    found = tuple(sizes[a] for a in AXES)
    if other == 1:
        agree = promised == found
    else:
        agree = math.prod(promised) == math.prod(found) * other and promised[3:] == found[3:]
    if not agree:
        raise CorruptInputError(
            f"{where}: OME-XML promises TCZYX {promised} but the pages hold {found} ({series.axes!r}){told}; "
            f"truncated or inconsistent; {_OME_HINT}"
        )
    dtype = np.dtype(series.dtype)
    if ome.dtypes and dtype not in ome.dtypes:
        raise CorruptInputError(
            f"{where}: OME-XML Pixels Type is {ome.pixel_type!r} but the pages hold {dtype}; {_OME_HINT}"
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
    ome_xml
        ``"use"`` (default) reads axes and metadata from the file's OME-XML and refuses
        OME-XML that is unusable or contradicts the pages (:class:`CorruptInputError`);
        ``"ignore"`` reads the pages as a plain TIFF without it, with an
        :class:`~ome_arrow_dask.errors.IgnoredMetadataWarning` naming the file.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        scene: int = 0,
        level: int = 0,
        dims: str | None = None,
        missing: str = "error",
        ome_xml: str = "use",
        storage_options: dict[str, Any] | None = None,
    ) -> None:
        self._loc: Location | None = None
        if isinstance(path, Location) or is_remote(path):
            self._loc = path if isinstance(path, Location) else location(str(path), storage_options)
            self._path = self._loc.url
        else:
            self._path = os.path.abspath(os.fspath(path))
        self._scene, self._level = int(scene), int(level)
        self._missing = check_missing_option(missing)
        if ome_xml not in _OME_XML_OPTIONS:
            raise ValueError(f"ome_xml must be one of {_OME_XML_OPTIONS}, not {ome_xml!r}")
        self._ome_xml = ome_xml
        self._scan_fh: Any = None
        self._stat: tuple[str | int, int]  # (ETag or Last-Modified, size) remote; (mtime_ns, size) local
        if self._loc is not None:  # one HEAD: (ETag or Last-Modified, size), kept with the open file
            self._scan_fh, self._stat = self._loc.open_checked()
        else:
            st = os.stat(self._path)
            self._stat = (st.st_mtime_ns, st.st_size)
        self._layout, self._meta = self._inspect(dims)
        options = {"scene": self._scene, "level": self._level, "dims": dims, "missing": self._missing}
        if ome_xml != "use":
            options["ome_xml"] = ome_xml
        self._token = tokenize("tiff", self._loc or self._path, *self._stat, options)
        self._lock = threading.Lock()
        self._tif: Any = None
        self._series: Any = None
        self._rules: dict[Any, Any] = {}  # segment rules of the series keyframe (see _rules_for)

    # -- opening
    def _inspect(self, dims: str | None) -> tuple[_Layout, ImageMeta]:
        import tifffile

        where, file_size = self._path, self._stat[1]
        with (
            tifffile_errors(where, strict=True) as log,
            self._remote_file() as fh,
            tifffile.TiffFile(fh or where, **self._tiff_flags()) as tif,
        ):
            # header checks first: tifffile builds its series (and allocates) from these values
            first = self._first_page(tif, log)
            _check_page(where, first, file_size, 0, {}, eof=False)
            ome = None
            if self._ome_xml == "ignore":
                if _ome_xml.looks_like_ome_xml(first.description):
                    warnings.warn(
                        f"{where}: its OME-XML is ignored (ome_xml='ignore'); the pages are read as a plain TIFF, "
                        "without the OME axes, channel names and physical sizes",
                        IgnoredMetadataWarning,
                        stacklevel=4,
                    )
            else:
                ome = _ome_image(tif, first, self._scene, where, file_size, remote=self._loc is not None)
            series = self._pick_series(tif)
            if ome is not None:
                _check_ome_series(tif.series[self._scene], ome, log, where)
            layout = build_layout(series, dims, where)
            full_layout = build_layout(tif.series[self._scene].levels[0], dims, where)
            if tif.is_imagej:
                _check_imagej_planes(tif, series, where)
            shape, dtype = layout.full_shape(), np.dtype(series.dtype)
            check_chunk_grid(where, shape, layout.chunk_shape(), dtype)  # before any grid is built
            check_declared_bytes(where, math.prod(shape) * dtype.itemsize, file_size)
            _check_series_pages(series, where)
            meta = self._make_meta(tif, series, layout, full_layout, ome)
        return layout, meta

    @contextlib.contextmanager
    def _remote_file(self) -> Iterator[Any]:
        """An fsspec file object for a remote TIFF (ranged reads), else None."""
        if self._loc is None:
            yield None
            return
        fh, self._scan_fh = self._scan_fh or self._loc.open(), None
        try:
            yield fh
        finally:
            fh.close()

    def _tiff_flags(self) -> dict[str, Any]:
        """``TiffFile`` keyword arguments: ``is_ome=False`` when the OME-XML is ignored."""
        return {"is_ome": False} if self._ome_xml == "ignore" else {}

    def _first_page(self, tif: Any, log: _LogRecords) -> Any:
        """The first IFD, or a :class:`CorruptInputError` saying the file has no readable image."""
        try:
            first = tif.pages.first
        except IndexError:
            first = None
        if first is None:
            told = f" (tifffile: {'; '.join(log.messages[:3])})" if log.messages else ""
            raise CorruptInputError(
                f"{self._path}: no readable image: the file is truncated or its first IFD is damaged{told}"
            )
        return first

    def _pick_series(self, tif: Any) -> Any:
        if not tif.series:
            raise CorruptInputError(f"{self._path}: no readable image: the file is truncated or has no image IFD")
        if not 0 <= self._scene < len(tif.series):
            raise SelectionError(f"{self._path}: scene {self._scene} out of range; the file has {len(tif.series)}")
        levels = tif.series[self._scene].levels
        if not 0 <= self._level < len(levels):
            raise SelectionError(f"{self._path}: level {self._level} out of range; scene has {len(levels)} levels")
        return levels[self._level]

    def _make_meta(self, tif: Any, series: Any, layout: _Layout, full: _Layout, ome: Any) -> ImageMeta:
        shape = layout.full_shape()
        dtype = np.dtype(series.dtype)
        kwargs: dict[str, Any] = {"name": series.name or os.path.basename(self._path.rstrip("/"))}
        if ome is not None:
            physical = ome.physical_size
            if len(ome.channels) == shape[1]:
                kwargs["channels"] = ome.channels
            kwargs.update(id=ome.id, name=ome.name or kwargs["name"], acquisition_datetime=ome.acquisition_datetime)
        elif tif.is_imagej:
            physical = imagej_physical_size(tif)
        else:
            physical = resolution_physical_size(tif.series[self._scene].levels[0].keyframe)
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

    @property
    def pyramid_level(self) -> int:
        """The pyramid level this source reads (0 is full resolution; ``level=k`` opens the others)."""
        return self._level

    def input_paths(self) -> tuple[str, ...]:
        """The file, plus the companion files its OME-XML refers to (multi-file OME-TIFF)."""
        import tifffile

        if self._loc is not None:
            return (self._path,)
        with contextlib.suppress(Exception), tifffile.TiffFile(self._path) as tif:
            if tif.is_ome:
                root = _ome_xml.parse_root(tif.pages.first.description, self._path)
                companions = _ome_xml.check_referenced_files(root, self._path)
                return (self._path, *(p for p in companions if p != os.path.realpath(self._path)))
        return (self._path,)

    def describe(self) -> str:
        """Name the file, scene and level (remote: the URL and storage options, secrets hidden)."""
        where = self._loc.describe() if self._loc is not None else self._path
        return f"TIFF {where} (scene {self._scene}, level {self._level})"


    def explain_reads(self, read_plan: Any) -> list[str]:
        """For a remote file: the requests the plan makes (none listed for local files)."""
        if self._loc is None:
            return []
        return [
            f"requests: per process 1 HEAD (ETag and size) and ranged GETs of the header; then one ranged GET per "
            f"touched tile or strip run ({read_plan.chunks_read} chunks, 64 KiB read-ahead), no LIST"
        ]

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.update(_lock=None, _tif=None, _series=None, _rules={}, _scan_fh=None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    # -- reading
    def _handle(self) -> Any:
        """The series at our level in a cached, open TiffFile (caller holds the lock).

        A local file is stat'ed on every read; a remote one once per process, when it is
        opened (its ETag or Last-Modified and size: one HEAD).
        """
        if self._loc is None:
            st = os.stat(self._path)
            if (st.st_mtime_ns, st.st_size) != self._stat:
                raise InputChangedError(f"{self._path}: file changed since it was opened (mtime or size differ)")
        if self._series is None:
            import tifffile

            with tifffile_errors(self._path):
                fh = None
                if self._loc is not None:
                    fh, version = self._loc.open_checked()
                    if version != self._stat:
                        fh.close()
                        raise InputChangedError(
                            f"{self._path}: object changed since it was opened (ETag or size differ); scan it again"
                        )
                tif = tifffile.TiffFile(fh or self._path, **self._tiff_flags())
                weakref.finalize(self, tif.close)
                if fh is not None:
                    weakref.finalize(self, fh.close)
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
            series = self._handle()
            page = series.pages[page_number]
            if page is None:
                return self._fill(layout.page_shape, where, "page is missing")
            fh = page.parent.filehandle
            shared = getattr(page, "keyframe", None) is series.keyframe  # else a page parsed for this read
            cache = self._rules if shared else {}
            _check_page(getattr(fh, "path", None) or self._path, page, fh.size, page.index, cache, eof=False)
            _check_same_geometry(page, series.keyframe, where)
            offsets, counts = tuple(page.dataoffsets), tuple(page.databytecounts)
            if layout.tile is None:
                self._check_segments(offsets, counts, range(len(offsets)), page, where)
                if not self._complete(offsets, counts, range(len(offsets))):
                    return self._fill(layout.page_shape, where, "strips are missing")
                return np.asarray(page.asarray(maxworkers=1)).reshape(layout.page_shape)
            y_letter, x_letter = layout.targets[layout.y_axis], layout.targets[layout.x_axis]
            ty, tx = starts[y_letter] // layout.tile[0], starts[x_letter] // layout.tile[1]
            return self._read_tile(page, offsets, counts, layout.tile, ty, tx, where)

    def _read_tile(
        self, page: Any, offsets: tuple, counts: tuple, tile: tuple[int, int], ty: int, tx: int, where: str
    ) -> np.ndarray:
        """Decode tile (ty, tx), of size ``tile``, of every separate sample plane; crop to the image edge."""
        layout = self._layout
        keyframe = page.keyframe
        tl, tw = tile
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
