"""Folders of TIFF files named by a pattern, as one lazy TCZYX image (one chunk per file).

``open("raw/", pattern="img_ch{c}_z{z}.tif")``, ``open("dir/E99_C<111,222>_ZS<000-021>.tif")``
or ``open("raw/*.tif")`` (axes inferred). The pattern fields place each file on a T, C,
Z, Y-tile, X-tile grid (:mod:`.patterns`); each file holds a 2-D plane, a ZYX stack or
more axes, and is one chunk of the image, read by tifffile inside its task. Only the
first file's header is read at open; ``validate=True`` checks every header (shape, dtype,
axes, first-page segments), and so does :meth:`StackSource.validate_inputs`, which the
writers call before they create any output. Each read task checks its file's fingerprint,
shape, dtype and axes, and that every segment it decodes lies inside the file.

Paths are made absolute at open, so tasks on dask workers started in another working
directory read the same files; a file a worker cannot reach is reported as unreachable
from that worker, not as deleted.

Channel names: a C field with text values (``w<DAPI,GFP>``) names channels by the text;
numeric values keep the letters before (or after) them: ``C<111,222>`` gives ``C111``,
``C222`` (ome-arrow 0.1.0 names these ``C0``, ``C1``), ``{c}nm`` gives ``488nm``.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import socket
import warnings
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
from dask.base import tokenize

from ..errors import (
    CorruptInputError,
    InconsistentInputError,
    InputChangedError,
    InputUnreachableError,
    MissingDataWarning,
    OmeArrowDaskError,
    UnsafePathError,
)
from ..limits import check_chunk_grid, check_declared_bytes
from ..lowering import ChunkSelection, ReadPlan, take_orthogonal
from ..meta import AXES, Channel, ChunkCoords, ImageMeta, PhysicalSize, Shape5, check_dtype, tczyx
from ..storage import Location, is_network_error, is_remote, location, remote_error
from . import _ome_xml
from .base import SourceBase
from .patterns import FileGrid, Pattern, PatternError, detect_syntax, grid_for, natural_key
from .tiff import check_page_segments, imagej_physical_size, tifffile_errors

MISSING_POLICIES = ("error", "zeros")
VALIDATE_WORKERS = 8
_PATTERN_CHARS = "*?<>{}"
_FILE_AXIS = {"T": "T", "C": "C", "S": "C", "Z": "Z", "Q": "Z", "I": "Z", "Y": "Y", "X": "X"}


@dataclass(frozen=True)
class FileLayout:
    """How a file's series (tifffile axes and shape) becomes a 5-D TCZYX block.

    ``page_ndim`` is the number of trailing axes one TIFF page holds (2 for YX, 3 for
    YXS) when every page is one plane of the series, else 0 (pages not addressable).
    """

    axes: str
    shape: tuple[int, ...]
    dtype: np.dtype
    targets: tuple[str | None, ...]
    page_ndim: int = 0

    @property
    def block_shape(self) -> Shape5:
        """The file's extent along T, C, Z, Y, X."""
        sizes = dict.fromkeys(AXES, 1)
        for target, n in zip(self.targets, self.shape, strict=True):
            if target is not None:
                sizes[target] = n
        return tczyx(sizes[a] for a in AXES)

    def to_block(self, data: np.ndarray) -> np.ndarray:
        """Reshape a decoded series to the 5-D block (a view where possible)."""
        kept = [(i, t) for i, t in enumerate(self.targets) if t is not None]
        squeezed = data.reshape([self.shape[i] for i, _ in kept])
        order = sorted(range(len(kept)), key=lambda k: AXES.index(kept[k][1]))
        return squeezed.transpose(order).reshape(self.block_shape)

    @property
    def n_pages(self) -> int:
        """Pages in one file (1 when pages are not addressable)."""
        return math.prod(self.shape[: len(self.shape) - self.page_ndim]) if self.page_ndim else 1

    def pages_for(self, selection: tuple[ChunkSelection, ...]) -> PageRead | None:
        """The pages a block selection touches, or None when it needs every page.

        >>> layout = file_layout("a.tif", "ZYX", (4, 8, 8), "u2", page_ndim=2)
        >>> sel = (slice(0, 1, 1), slice(0, 1, 1), (3, 1), slice(0, 8, 1), slice(2, 4, 1))
        >>> read = layout.pages_for(sel)
        >>> read.pages, read.layout.block_shape, read.remaining[2:]
        ((3, 1), (1, 1, 2, 8, 8), (slice(None, None, None), slice(0, 8, 1), slice(2, 4, 1)))
        """
        if not self.page_ndim or self.n_pages == 1:
            return None
        n_lead = len(self.shape) - self.page_ndim
        per_axis: list[list[int]] = []
        remaining = list(selection)
        for n, target in zip(self.shape[:n_lead], self.targets[:n_lead], strict=True):
            if target is None:
                per_axis.append([0])
                continue
            k = AXES.index(target)
            index = selection[k]
            per_axis.append(list(range(n)[index]) if isinstance(index, slice) else [int(i) for i in index])
            remaining[k] = slice(None)
        picked = [len(v) for v in per_axis]
        if math.prod(picked) == self.n_pages:
            return None
        grid = np.ix_(*per_axis) if per_axis else ()
        pages = np.ravel_multi_index(grid, self.shape[:n_lead]).ravel()
        sub = FileLayout(self.axes, (*picked, *self.shape[n_lead:]), self.dtype, self.targets, self.page_ndim)
        return PageRead(tuple(int(p) for p in pages), sub, tuple(remaining))


@dataclass(frozen=True)
class PageRead:
    """Pages to read from one file, the layout of what they decode to, and what is left to select."""

    pages: tuple[int, ...]
    layout: FileLayout
    remaining: tuple[ChunkSelection, ...]


class FileTable(NamedTuple):
    """Per grid position: file name (None where missing), size and mtime (ns) at scan time."""

    names: np.ndarray
    sizes: np.ndarray
    mtimes: np.ndarray


@dataclass(frozen=True)
class FileHeader:
    """What one TIFF's first IFD tells: series axes, shape, dtype, page shape, physical sizes."""

    axes: str
    shape: tuple[int, ...]
    dtype: np.dtype
    page_ndim: int
    physical_size: PhysicalSize


def file_layout(where: str, axes: str, shape: Sequence[int], dtype: npt.DTypeLike, page_ndim: int = 0) -> FileLayout:
    """Map tifffile series axes to TCZYX: S (samples) -> C, Q/I (pages) -> Z, size-1 extras dropped.

    >>> file_layout("a.tif", "QYX", (3, 4, 5), "u2").block_shape
    (1, 1, 3, 4, 5)
    >>> file_layout("a.tif", "YXS", (4, 5, 3), "u1").block_shape
    (1, 3, 1, 4, 5)
    """
    targets: list[str | None] = []
    for ax, n in zip(axes, shape, strict=True):
        target = _FILE_AXIS.get(ax)
        if target is None and n != 1:
            raise InconsistentInputError(f"{where}: file axis {ax!r} of size {n} (axes {axes}) has no place in TCZYX")
        targets.append(target if n != 1 or target in ("Y", "X") else None)
    kept = [t for t in targets if t is not None]
    if len(set(kept)) != len(kept):
        raise InconsistentInputError(f"{where}: file axes {axes} {tuple(shape)} put two axes on one of TCZYX")
    return FileLayout(axes, tuple(int(n) for n in shape), check_dtype(dtype), tuple(targets), page_ndim)


def _page_ndim(series: Any, shape: tuple[int, ...]) -> int:
    """Trailing axes per page when each page is one plane of the series, else 0."""
    page_shape = tuple(int(n) for n in series.keyframe.shape)
    k = len(page_shape)
    if not k or k > len(shape) or shape[len(shape) - k :] != page_shape:
        return 0
    n_pages = math.prod(shape[: len(shape) - k])
    return k if n_pages == len(series.pages) else 0


def _first_file_physical(tif: Any, where: str) -> PhysicalSize:
    """Pixel sizes from a file's OME-XML or ImageJ tags (plain TIFF resolutions are DPI, not used)."""
    description = tif.pages.first.description or ""
    if "<OME" in description[:4096]:
        image = _ome_xml.parse_image(_ome_xml.parse_root(description, where), 0, where)
        return image.physical_size if image is not None else PhysicalSize()
    if tif.is_imagej:
        return imagej_physical_size(tif)
    return PhysicalSize()


@contextlib.contextmanager
def tiff_file(path: str, loc: Location | None = None, expected: tuple[int, str] | None = None) -> Iterator[Any]:
    """A ``TiffFile`` (``is_ome=False``) for a local path, or for the remote object ``loc``.

    For a remote object ``expected`` is its ``(size, version)`` from the scan's listing;
    an object that differs (size, or a known ETag) is :class:`InputChangedError`.
    """
    import tifffile

    if loc is None:
        with tifffile.TiffFile(path, is_ome=False) as tif:
            yield tif
        return
    fh, (version, size) = loc.open_checked()
    try:
        if expected is not None and (
            (expected[0] >= 0 and expected[0] != size) or (expected[1] and version and expected[1] != version)
        ):
            raise InputChangedError(
                f"{loc.url} changed after the pattern was scanned (size {expected[0]} -> {size}, or its ETag); "
                "scan again"
            )
        with tifffile.TiffFile(fh, is_ome=False, name=loc.name) as tif:
            yield tif
    finally:
        fh.close()


def read_header(path: str, *, physical: bool = False, loc: Location | None = None) -> FileHeader:
    """Read a TIFF's first series header (no pixels; OME references not followed).

    ``physical=True`` also reads pixel sizes from its OME-XML or ImageJ metadata;
    ``loc`` reads a remote object (``path`` is then its URL, for messages).
    """
    try:
        with tiff_file(path, loc) as tif:
            series = tif.series[0]
            shape = tuple(int(n) for n in series.shape)
            _check_has_image(path, series.axes, shape)
            check_segments(path, [(0, series.keyframe)], tif.filehandle.size)
            return FileHeader(
                series.axes,
                shape,
                np.dtype(series.dtype),
                _page_ndim(series, shape),
                _first_file_physical(tif, path) if physical else PhysicalSize(),
            )
    except OmeArrowDaskError:
        raise
    except Exception as exc:
        if loc is not None and is_network_error(exc):
            raise remote_error(path, exc) from exc
        raise CorruptInputError(f"{path}: cannot read the TIFF header ({type(exc).__name__}: {exc})") from exc


def _check_has_image(path: str, axes: str, shape: tuple[int, ...]) -> None:
    """Refuse a header that describes no image (an IFD with 0 entries, no width or length)."""
    if "Y" not in axes or "X" not in axes or not all(n > 0 for n in shape):
        raise CorruptInputError(
            f"{path}: the TIFF header describes no image (axes {axes!r}, shape {shape}): the first IFD is empty "
            "or lacks ImageWidth/ImageLength; the file is damaged, replace it or remove it from the folder"
        )


def check_segments(path: str, pages: Sequence[tuple[int, Any]], file_size: int) -> None:
    """Refuse pages whose header cannot describe their data, or whose strips/tiles are missing.

    ``pages`` holds ``(page number, TiffPage or TiffFrame)`` pairs. Runs before any
    segment is read, so a byte count such as ``0xFFFFFFFF`` never sizes a buffer: each
    page goes through :func:`~ome_arrow_dask.sources.tiff.check_page_segments` (limits,
    table sizes, segments past the end of the file, uncompressed byte counts against the
    geometry); a missing segment is refused too (a stack fills missing files, not strips).
    Pages sharing a keyframe (TiffFrames) are checked together, in one vectorised pass.
    """
    from .tiff import _check_segments_against, _rules_for

    if len(pages) == 1:  # the common single-page case: the public check, unchanged
        number, page = pages[0]
        if page is None:
            raise CorruptInputError(f"{path}: page {number} is missing (damaged IFD chain)")
        check_page_segments(path, page, file_size, page_number=number)
    else:
        groups: dict[int, list[tuple[int, Any]]] = {}
        cache: dict[Any, Any] = {}
        for number, page in pages:
            if page is None:
                raise CorruptInputError(f"{path}: page {number} is missing (damaged IFD chain)")
            groups.setdefault(id(getattr(page, "keyframe", None) or page), []).append((number, page))
        for group in groups.values():
            rules = _rules_for(group[0][1], path, file_size, group[0][0], cache)
            offsets = [page.dataoffsets for _, page in group]
            counts = [page.databytecounts for _, page in group]
            _check_segments_against(rules, offsets, counts, [n for n, _ in group], path, file_size, True)
    for number, page in pages:
        starts, sizes = np.asarray(page.dataoffsets), np.asarray(page.databytecounts)
        if len(starts) == len(sizes) and ((starts <= 0) | (sizes <= 0)).any():
            i = int(np.flatnonzero((starts <= 0) | (sizes <= 0))[0])
            raise CorruptInputError(
                f"{path} (page {number}): segment {i} is missing (offset {int(starts[i])}, {int(sizes[i])} bytes); "
                "a pattern stack does not fill missing strips or tiles"
            )


# --------------------------------------------------------------------------- opening
def split_location(path: str, pattern: str | None) -> tuple[str, str]:
    """Return ``(folder, file-name pattern)`` from a path and an optional ``pattern=``.

    >>> split_location("data/E99_C<1,2>.tif", None)
    ('data', 'E99_C<1,2>.tif')
    >>> split_location("raw", "img_{z}.tif")
    ('raw', 'img_{z}.tif')
    """
    if pattern is not None:
        return path, pattern
    folder, name = os.path.split(path)
    if any(ch in folder for ch in _PATTERN_CHARS):
        raise OmeArrowDaskError(f"only the file-name part of {path!r} may be a pattern, not the folder")
    return folder or ".", name


class FolderListing(dict[str, os.DirEntry[str]]):
    """Regular files of a folder by name; ``others`` holds the entries that are not (folders, broken links...)."""

    def __init__(self, files: dict[str, os.DirEntry[str]], others: dict[str, os.DirEntry[str]]) -> None:
        super().__init__(files)
        self.others = others


def list_files(root: str) -> FolderListing:
    """Regular files (or links to them) in ``root``, by name; other entries go to ``.others``."""
    out, others = {}, {}
    with os.scandir(root) as entries:
        for entry in entries:
            try:
                if entry.is_file():
                    out[entry.name] = entry
                else:
                    others[entry.name] = entry
            except OSError:  # a symlink loop: is_file() fails; checked when matched
                out[entry.name] = entry
    return FolderListing(out, others)


def _entry_kind(entry: os.DirEntry[str]) -> str:
    """What a non-file folder entry is, in words."""
    try:
        if entry.is_dir():
            return "a folder" + (" (through a symlink)" if entry.is_symlink() else "")
        if entry.is_symlink():
            return f"a symlink to {os.readlink(entry.path)!r}, which is missing or not a regular file"
    except OSError:
        pass
    return "not a regular file (a device, FIFO or socket)"


def refuse_non_files(root: str, pattern: Pattern, entries: dict[str, os.DirEntry[str]]) -> None:
    """Refuse a folder entry that matches the pattern but is not a regular file.

    Skipping it would silently shrink the stack: with an open template (``plane_z{z}.tif``)
    a folder named like the first or last file moves the Z range and no position is
    reported missing. ``entries`` comes from :func:`list_files` (a plain dict carries no
    ``others`` and is not checked).

    Raises
    ------
    InconsistentInputError
        Naming the entry, what it is and the pattern.
    """
    others = getattr(entries, "others", None) or {}
    bad = sorted((name for name in others if pattern.regex.fullmatch(name)), key=natural_key)
    if bad:
        listed = "; ".join(f"{os.path.join(root, n)} is {_entry_kind(others[n])}" for n in bad[:10])
        more = f" (and {len(bad) - 10} more)" if len(bad) > 10 else ""
        raise InconsistentInputError(
            f"{len(bad)} entr{'y' if len(bad) == 1 else 'ies'} in {root} match the pattern {pattern.text!r} but "
            f"{'is' if len(bad) == 1 else 'are'} not a regular file: {listed}{more}; every name the pattern matches "
            "must be a TIFF file of the stack: move or rename it (skipping it would change the stack's shape)"
        )


def check_inside(root_real: str, path: str) -> None:
    """Refuse a file whose real path lies outside the (real) root folder."""
    try:
        real = os.path.realpath(path, strict=True)
    except (OSError, RuntimeError) as exc:
        raise UnsafePathError(f"{path}: cannot resolve the path ({exc})") from exc
    if os.path.commonpath([root_real, real]) != root_real:
        raise UnsafePathError(f"{path} resolves to {real}, outside the folder {root_real}; refusing to read it")


def _fingerprints(grid: FileGrid, entries: dict[str, os.DirEntry[str]], root_real: str) -> tuple[np.ndarray, ...]:
    positions = [position for position, _ in grid.files]
    flat = np.ravel_multi_index(tuple(np.array(positions).T), grid.shape) if positions else np.zeros(0, int)
    n = math.prod(grid.shape)
    names = np.full(n, None, dtype=object)
    sizes = np.full(n, -1, dtype=np.int64)
    mtimes = np.full(n, -1, dtype=np.int64)
    file_names = [name for _, name in grid.files]
    matched = [entries[name] for name in file_names]
    for entry in matched:
        if entry.is_symlink():
            check_inside(root_real, entry.path)
    try:
        stats = [entry.stat() for entry in matched]
    except OSError:
        for entry in matched:  # name the first file that cannot be stat'ed
            try:
                entry.stat()
            except OSError as exc:
                raise InputChangedError(f"{entry.path}: cannot stat the file ({exc})") from exc
        raise
    names[flat] = file_names
    sizes[flat] = [st.st_size for st in stats]
    mtimes[flat] = [st.st_mtime_ns for st in stats]
    return names.reshape(grid.shape), sizes.reshape(grid.shape), mtimes.reshape(grid.shape)


def _missing_message(grid: FileGrid, pattern: Pattern, root: str) -> str:
    listed = "; ".join(grid.describe_position(p) for p in grid.missing)
    return (
        f"{len(grid.missing)} of {len(grid.missing) + len(grid.files)} files of pattern {pattern.text!r} in {root} "
        f"are missing: {listed}"
    )


def layout_differs(path: str, axes: str, shape: tuple[int, ...], dtype: npt.DTypeLike, layout: FileLayout) -> bool:
    """True when a file's series would not fill the stack's blocks as ``layout`` does.

    Compares shape, dtype and where each axis lands in TCZYX (``QYX`` and ``ZYX`` agree,
    ``CYX`` and ``ZYX`` do not).
    """
    if shape != layout.shape or check_dtype(dtype) != layout.dtype:
        return True
    try:
        return file_layout(path, axes, shape, dtype).targets != layout.targets
    except InconsistentInputError:
        return True


def _describe_file(name: str, axes: str, shape: tuple[int, ...], dtype: npt.DTypeLike) -> str:
    return f"{name}: shape {shape} {np.dtype(dtype)} (axes {axes})"


def _validate_headers(
    root: str, names: np.ndarray, layout: FileLayout, first: str, loc: Location | None = None
) -> None:
    """Read every file's header (8 at a time) and refuse files that differ from ``first``.

    Raises
    ------
    InconsistentInputError
        Naming each differing file and the first file with their axes, shapes and dtypes.
    CorruptInputError
        For a header that cannot be read or describes no image.
    """
    present = [n for n in names.ravel() if n is not None]

    def check(name: str) -> str | None:
        path = os.path.join(root, name)
        header = read_header(path, loc=loc.join(name) if loc is not None else None)
        if layout_differs(path, header.axes, header.shape, header.dtype, layout):
            return _describe_file(name, header.axes, header.shape, header.dtype)
        return None

    with ThreadPoolExecutor(max_workers=VALIDATE_WORKERS) as pool:
        bad = [msg for msg in pool.map(check, present) if msg]
    if bad:
        shown = "; ".join(bad[:20]) + (f"; and {len(bad) - 20} more" if len(bad) > 20 else "")
        raise InconsistentInputError(
            f"{len(bad)} files (of {len(present)}) in {root} differ from the first file "
            f"{_describe_file(first, layout.axes, layout.shape, layout.dtype)}: {shown}; "
            "every file of a pattern stack must hold the same axes, shape and dtype"
        )


def open_stack(
    path: str | Location,
    pattern: str | None = None,
    *,
    missing: str = "error",
    validate: bool = False,
    entries: dict[str, os.DirEntry[str]] | None = None,
) -> StackSource:
    """Open a folder of TIFFs named by a pattern (see :mod:`.patterns` for the syntaxes).

    Parameters
    ----------
    path
        A folder (with ``pattern``) or a path whose file-name part is the pattern.
    pattern
        Template, regex, bracket pattern or glob matched against file names in the folder.
    missing
        ``"error"`` (default) lists every missing grid position; ``"zeros"`` fills them and warns.
    validate
        Check every file's header (shape, dtype) now instead of in each read task.
    entries
        The folder's files as :func:`list_files` returns them, when the caller already
        listed it (a plate scan lists its folder once for all its fields).
    """
    if missing not in MISSING_POLICIES:
        raise OmeArrowDaskError(f"missing={missing!r}: expected one of {MISSING_POLICIES}")
    if isinstance(path, Location):
        return _open_remote_stack(path, pattern, missing=missing, validate=validate)
    root, text = split_location(path, pattern)
    if not os.path.isdir(root):
        raise FileNotFoundError(f"no such folder: {root!r} (the folder part of {path!r} with pattern {text!r})")
    root = os.path.abspath(root)  # tasks may run on workers started in another working directory
    entries = list_files(root) if entries is None else entries
    compiled, grid = grid_for(text, list(entries))
    refuse_non_files(root, compiled, entries)
    if grid.missing and missing == "error":
        raise InconsistentInputError(_missing_message(grid, compiled, root) + '; pass missing="zeros" to fill them')
    if grid.missing:
        warnings.warn(_missing_message(grid, compiled, root) + "; filled with zeros", MissingDataWarning, stacklevel=3)
    root_real = os.path.realpath(root)
    names, sizes, mtimes = _fingerprints(grid, entries, root_real)
    first = os.path.join(root, grid.files[0][1])
    header = read_header(first, physical=True)
    layout = file_layout(first, header.axes, header.shape, header.dtype, header.page_ndim)
    check_declared_bytes(first, int(np.prod(layout.shape)) * layout.dtype.itemsize, int(sizes[grid.files[0][0]]))
    if validate:
        _validate_headers(root, names, layout, grid.files[0][1])
    files = FileTable(names, sizes, mtimes)
    return StackSource(root, text, compiled.syntax, grid, files, layout, header.physical_size)


def _open_remote_stack(loc: Location, pattern: str | None, *, missing: str, validate: bool) -> StackSource:
    """:func:`open_stack` for a remote prefix: one LIST at scan, then the first file's header."""
    if pattern is None:
        folder, _, text = loc.url.rpartition("/")
        if any(ch in folder for ch in _PATTERN_CHARS):
            raise OmeArrowDaskError(f"only the file-name part of {loc.url!r} may be a pattern, not the folder")
        loc = Location(folder, loc.options)
    else:
        text = pattern
    listed = loc.listing()
    compiled, grid = grid_for(text, list(listed))
    if grid.missing and missing == "error":
        raise InconsistentInputError(_missing_message(grid, compiled, loc.url) + '; pass missing="zeros" to fill them')
    if grid.missing:
        message = _missing_message(grid, compiled, loc.url) + "; filled with zeros"
        warnings.warn(message, MissingDataWarning, stacklevel=3)
    positions = [position for position, _ in grid.files]
    flat = np.ravel_multi_index(tuple(np.array(positions).T), grid.shape)
    n = math.prod(grid.shape)
    names, sizes = np.full(n, None, dtype=object), np.full(n, -1, dtype=np.int64)
    file_names = [name for _, name in grid.files]
    names[flat] = file_names
    sizes[flat] = [listed[name][0] for name in file_names]
    versions = {name: listed[name] for name in file_names}  # (size, ETag) from the listing
    first_name = grid.files[0][1]
    header = read_header(loc.join(first_name).url, physical=True, loc=loc.join(first_name))
    layout = file_layout(loc.join(first_name).url, header.axes, header.shape, header.dtype, header.page_ndim)
    names, sizes = names.reshape(grid.shape), sizes.reshape(grid.shape)
    if validate:
        _validate_headers(loc.url, names, layout, first_name, loc)
    files = FileTable(names, sizes, np.full(grid.shape, -1, dtype=np.int64))
    return StackSource(
        loc.url, text, compiled.syntax, grid, files, layout, header.physical_size, remote=(loc, versions)
    )


def _stack_meta(root: str, grid: FileGrid, layout: FileLayout, physical: PhysicalSize) -> ImageMeta:
    block = layout.block_shape
    shape = tczyx(g * b for g, b in zip(grid.shape, block, strict=True))
    check_chunk_grid(root, shape, block, layout.dtype)
    chunks = tczyx((b,) * g for g, b in zip(grid.shape, block, strict=True))
    names = grid.channel_names()
    channels = tuple(Channel(name=n, id=f"ch-{i}") for i, n in enumerate(names)) if names and block[1] == 1 else ()
    return ImageMeta(
        shape=shape,
        dtype=layout.dtype,
        chunks=chunks,
        channels=channels,
        physical_size=physical,
        name=os.path.basename(os.path.abspath(root)),
    )


class StackSource(SourceBase):
    """A grid of TIFF files, one chunk per file; holds only names, fingerprints and metadata.

    Its token covers the folder, the pattern, every file's name, size and mtime, and the
    metadata.
    """

    def __init__(
        self,
        root: str,
        pattern: str,
        syntax: str,
        grid: FileGrid,
        files: FileTable,
        layout: FileLayout,
        physical_size: PhysicalSize | None = None,
        *,
        remote: tuple[Location, dict[str, tuple[int, str]]] | None = None,
    ) -> None:
        # a remote prefix (URL + storage options) and each object's (size, ETag) from the listing; None locally
        self.loc: Location | None = remote[0] if remote is not None else None
        self.versions: dict[str, tuple[int, str]] = remote[1] if remote is not None else {}
        self.root = root
        self.pattern = pattern
        self.syntax = syntax
        self.grid = grid
        self.names, self.sizes, self.mtimes = files
        self.layout = layout
        self._meta = _stack_meta(root, grid, layout, physical_size or PhysicalSize())
        digest = hashlib.sha1(usedforsecurity=False)
        digest.update("\0".join(str(n) for n in self.names.ravel()).encode())
        digest.update(self.sizes.tobytes() + self.mtimes.tobytes())
        digest.update("\0".join(f"{k}={v}" for k, v in sorted(self.versions.items())).encode())
        where = self.loc if self.loc is not None else os.path.realpath(root)
        self._token = tokenize(where, pattern, digest.hexdigest(), self._meta, layout)

    @property
    def first_path(self) -> str:
        """Path of the first file (in grid order): the one whose header defines the layout."""
        return os.path.join(self.root, self.grid.files[0][1])

    def validate_inputs(self) -> None:
        """Check every file before a job writes anything: unchanged since the scan, same layout.

        Stats each file (fingerprint) and reads each header, 8 files at a time. Writers
        call this through :func:`~ome_arrow_dask.sources.base.validate_before_write`.

        Raises
        ------
        InputChangedError
            A file was changed or deleted since the scan (or is unreachable here).
        InconsistentInputError
            Files whose axes, shape or dtype differ from the first file, all named.
        CorruptInputError
            A header that cannot be read, describes no image or has segments past the end of the file.
        """

        def unchanged(item: tuple[tuple[int, ...], str]) -> None:
            self._check_unchanged(os.path.join(self.root, item[1]), tuple(int(k) for k in item[0]))

        with ThreadPoolExecutor(max_workers=VALIDATE_WORKERS) as pool:
            list(pool.map(unchanged, self.grid.files))
        _validate_headers(self.root, self.names, self.layout, self.grid.files[0][1], self.loc)

    def input_paths(self) -> tuple[str, ...]:
        """Every file of the grid (missing positions have none)."""
        root = self.root if self.loc is not None else os.path.abspath(self.root)
        return tuple(os.path.join(root, str(n)) for n in self.names.ravel() if n is not None)

    def describe(self) -> str:
        """Folder, pattern and the fields -> axes mapping."""
        mapping = ", ".join(f"{a.field.label}->{a.axis}" for a in self.grid.axes) or "no varying fields"
        n_missing = len(self.grid.missing)
        extra = f", {n_missing} missing (zeros)" if n_missing else ""
        return (
            f"filename pattern ({self.syntax}) {self.pattern!r} in "
            f"{self.loc.describe() if self.loc is not None else self.root}: {len(self.grid.files)} TIFF files"
            f"{extra}; {mapping}; each file {self.layout.axes} {self.layout.shape}"
        )

    def explain_reads(self, read_plan: ReadPlan) -> list[str]:
        """Lines for ``explain()``: fields -> axes with sizes, ignored fields, missing files."""
        lines = [f"pattern {self.syntax} {self.pattern!r} in {self.root}: fields -> axes"]
        for amap in self.grid.axes:
            labels = amap.labels
            shown = ", ".join(labels) if len(labels) <= 6 else f"{labels[0]}..{labels[-1]}"
            note = f"; {amap.field.note}" if amap.field.note else ""
            lines.append(f"  {amap.field.label} -> {amap.axis} ({len(labels)}: {shown}; {amap.rule}{note})")
        for field in self.grid.ignored:
            if field.note or self.syntax != "inferred":
                lines.append(f"  {field.label} -> ignored{f' ({field.note})' if field.note else ''}")
        lines.append(
            f"files: {len(self.grid.files)} on a grid {self.grid.shape} (T, C, Z, Y-tile, X-tile), "
            f"each {self.layout.axes} {self.layout.shape} {self.layout.dtype}"
        )
        if self.loc is not None:
            lines.append(
                f"requests: per file read 1 HEAD (ETag and size against the scan's listing) and ranged GETs "
                f"({read_plan.chunks_read} files), no LIST"
            )
        first = next(read_plan.blocks(), None)
        if first is not None and self.layout.n_pages > 1:
            pages = self.layout.pages_for(first.chunk_selection)
            n_read = self.layout.n_pages if pages is None else len(pages.pages)
            lines.append(f"inside each file read: decodes {n_read} of {self.layout.n_pages} pages")
        if self.grid.missing:
            listed = "; ".join(self.grid.describe_position(p) for p in self.grid.missing[:20])
            more = f" and {len(self.grid.missing) - 20} more" if len(self.grid.missing) > 20 else ""
            lines.append(f"missing, filled with zeros: {listed}{more}")
        return lines

    def _check_coords(self, chunk_coords: ChunkCoords) -> ChunkCoords:
        coords = tuple(int(k) for k in chunk_coords)
        if len(coords) != 5 or any(not 0 <= k < n for k, n in zip(coords, self.grid.shape, strict=True)):
            raise OmeArrowDaskError(f"chunk {chunk_coords} is outside the file grid {self.grid.shape}")
        return coords

    def path_of(self, chunk_coords: ChunkCoords) -> str | None:
        """Path of the file at a grid position, or None where it is missing."""
        name = self.names[self._check_coords(chunk_coords)]
        return None if name is None else os.path.join(self.root, name)

    def read_chunk(self, chunk_coords: ChunkCoords) -> np.ndarray:
        """Read the one file at ``chunk_coords``: check its fingerprint, shape and dtype."""
        coords = self._check_coords(chunk_coords)
        path = self.path_of(coords)
        if path is None:
            return np.zeros(self.layout.block_shape, dtype=self.layout.dtype)
        self._check_unchanged(path, coords)
        return self.layout.to_block(self._read_file(path))

    def read_region(self, chunk_coords: ChunkCoords, selection: tuple[ChunkSelection, ...]) -> np.ndarray:
        """Read ``selection`` of the file at ``chunk_coords``, decoding only the pages it touches."""
        coords = self._check_coords(chunk_coords)
        path = self.path_of(coords)
        pages = self.layout.pages_for(selection)
        if path is None or pages is None:
            return take_orthogonal(self.read_chunk(coords), selection)
        self._check_unchanged(path, coords)
        data = self._read_file(path, pages.pages)
        block = pages.layout.to_block(data.reshape(pages.layout.shape))
        return take_orthogonal(block, pages.remaining)

    def _check_unchanged(self, path: str, coords: tuple[int, ...]) -> None:
        if self.loc is not None:  # remote: checked when the object is opened for reading (no extra HEAD)
            return
        try:
            if os.path.islink(path):
                check_inside(os.path.realpath(self.root), path)
            st = os.stat(path)
        except FileNotFoundError as exc:
            if os.path.isdir(self.root):
                raise InputChangedError(
                    f"{path} was deleted after the pattern was scanned (its folder is still there); scan again"
                ) from exc
            raise InputUnreachableError(
                f"{path}: not reachable from {_running_where()} at {os.path.abspath(path)}: the folder "
                f"{self.root} does not exist here (moved or deleted, or not mounted at the same path on this "
                "worker; every dask worker must see the files at the same absolute path)"
            ) from exc
        except OSError as exc:
            raise InputUnreachableError(
                f"{path}: cannot stat the file from {_running_where()} ({type(exc).__name__}: {exc})"
            ) from exc
        if (st.st_size, st.st_mtime_ns) != (self.sizes[coords], self.mtimes[coords]):
            raise InputChangedError(
                f"{path} changed after the pattern was scanned (size {self.sizes[coords]} -> {st.st_size}, "
                "mtime changed); scan again"
            )

    def _read_file(self, path: str, pages: Sequence[int] | None = None) -> np.ndarray:
        """Decode the file's first series, or only ``pages`` of it (stacked along a new first axis)."""
        layout = self.layout
        loc = expected = None
        if self.loc is not None:
            name = path.rsplit("/", 1)[-1]
            loc = self.loc.join(name)
            expected = self.versions.get(name, (-1, ""))
        try:
            with tifffile_errors(path), tiff_file(path, loc, expected) as tif:
                series = tif.series[0]
                shape, dtype = tuple(int(n) for n in series.shape), check_dtype(series.dtype)
                if layout_differs(path, series.axes, shape, dtype, layout):
                    first = self.first_path
                    raise InconsistentInputError(
                        f"{_describe_file(path, series.axes, shape, dtype)} differs from the first file "
                        f"{_describe_file(first, layout.axes, layout.shape, layout.dtype)}; every file of a pattern "
                        "stack must hold the same axes, shape and dtype (validate=True checks all files at open)"
                    )
                size = tif.filehandle.size
                check_declared_bytes(path, math.prod(shape) * dtype.itemsize, size)  # shape: the first file's
                contiguous = series.dataoffset
                if contiguous is not None and contiguous + math.prod(shape) * dtype.itemsize > size:
                    raise CorruptInputError(f"{path}: the image data ends past the end of the file (truncated?)")
                numbers = range(len(series.pages)) if pages is None else pages
                if pages is None and contiguous is not None:
                    # one contiguous block, read at dataoffset and bounded by the check above: no other
                    # page's strip table is used, so only the first page's geometry and segments are checked
                    numbers = range(1)
                if len(numbers) > 1 and isinstance(series.keyframe.index, int):
                    # the other pages as TiffFrames on the first page's geometry (as tifffile's own series
                    # reads take them): their offsets and byte counts without parsing every tag of every IFD
                    tif.pages.useframes = True
                    tif.pages.set_keyframe(series.keyframe.index)
                check_segments(path, [(k, series.pages[k]) for k in numbers], size)
                data = series.asarray() if pages is None else tif.asarray(key=list(pages), series=0)
        except OmeArrowDaskError:
            raise
        except Exception as exc:
            raise CorruptInputError(f"{path}: cannot read the TIFF ({type(exc).__name__}: {exc})") from exc
        return data.astype(layout.dtype, copy=False)


def _running_where() -> str:
    """Name the process a task runs in: the dask worker's address when there is one, host and pid."""
    here = f"host {socket.gethostname()}, pid {os.getpid()}"
    try:
        from distributed import get_worker

        return f"dask worker {get_worker().address} ({here})"
    except (ImportError, ValueError):
        return here


_TIFF_SUFFIXES = (".tif", ".tiff")
_TEMPLATE_AXIS = {"T": "{t}", "C": "{c}", "Z": "{z}", "Y": "{y}", "X": "{x}"}


def folder_hint(folder: str) -> str:
    """What to say for a folder opened without a pattern: how to pass one, and what inference finds.

    Returns ``""`` when the folder holds no TIFF files. Otherwise the text names
    ``pattern=`` (Python), ``--pattern`` (CLI) and a glob path, and either the fields the
    glob's inference would use (with a template built from them) or why inference fails.
    """
    try:
        names = sorted(list_files(folder))
    except OSError:
        return ""
    by_suffix: dict[str, list[str]] = {}
    for name in names:
        suffix = os.path.splitext(name)[1]
        if suffix.lower() in _TIFF_SUFFIXES:
            by_suffix.setdefault(suffix, []).append(name)
    if not by_suffix:
        return ""
    suffix, tiffs = max(by_suffix.items(), key=lambda item: len(item[1]))
    glob = f"*{suffix}"
    glob_path = os.path.join(folder, glob)
    text = (
        f"the folder holds {len(tiffs)} {suffix} files; to read them as one image pass a filename pattern, "
        f"pattern='...' (Python) or --pattern '...' (CLI), or open the glob path {glob_path!r} to infer the axes"
    )
    try:
        pattern, grid = grid_for(glob, tiffs)
    except PatternError as exc:
        return f"{text}. Inference on {glob!r} fails: {exc}"
    if pattern.syntax != "inferred":
        return text
    found = [f"{a.field.label} -> {a.axis} ({len(a.labels)} values, {a.field.note})" for a in grid.axes]
    found += [f"{f.label} -> ignored ({f.note})" for f in grid.ignored if f.note]
    example = _template_from(pattern, grid, tiffs[0])
    as_template = f"; as a template: pattern={example!r}" if example else ""
    return f"{text}. Inference on {glob!r} would use: {'; '.join(found) or 'no varying fields'}{as_template}"


def _template_from(pattern: Pattern, grid: FileGrid, example: str) -> str:
    """A template equivalent to an inferred pattern, spelled with one file's constant fields."""
    match = pattern.regex.fullmatch(example)
    if match is None or not grid.axes:
        return ""
    pieces, pos = [], 0
    for field in pattern.fields:
        start, end = match.span(field.group)
        if field.axis is not None:
            value = _TEMPLATE_AXIS[field.axis]
        elif field.note and not field.note.startswith(("well ", "site ")):
            value = "{}"  # varies but is ignored (a timestamp, or follows another field)
        else:
            value = example[start:end]  # the same in every file
        pieces += [example[pos:start], value]
        pos = end
    pieces.append(example[pos:])
    return "".join(pieces)


# --------------------------------------------------------------------------- registry
def looks_like_pattern(path: str) -> bool:
    """True for a path that holds a glob, bracket pattern, template or named-group regex.

    >>> [looks_like_pattern(p) for p in ("d/*.tif", "d/C<1,2>.tif", "d/z{z}.tif", "d/a.tif")]
    [True, True, True, False]
    """
    return any(ch in path for ch in "*?") or detect_syntax(path) in ("brackets", "template", "regex")


def probe(path: str, **options: object) -> bool:
    """Claim ``path`` when ``pattern=`` is given or its file name is a pattern (not an existing file)."""
    if options.get("pattern") is not None:
        return True
    text = os.fspath(path)
    return not os.path.exists(text) and looks_like_pattern(text)


def probe_remote(loc: Location, **options: object) -> bool:
    """Claim a URL when ``pattern=`` is given or its last part is a pattern (no request)."""
    return options.get("pattern") is not None or looks_like_pattern(loc.url.rsplit("/", 1)[-1])


def open(path: str | Location, **options: Any) -> StackSource:
    """Open a filename pattern; options ``pattern``, ``missing``, ``validate`` (and ``storage_options`` for URLs)."""
    unknown = sorted(set(options) - {"pattern", "missing", "validate", "storage_options"})
    if unknown:
        raise TypeError(f"filename patterns do not take the option(s) {unknown}; use pattern=, missing=, validate=")
    storage_options = options.get("storage_options")
    if not isinstance(path, Location) and is_remote(path):
        path = location(str(path), storage_options)
    return open_stack(
        path if isinstance(path, Location) else os.fspath(path),
        options.get("pattern"),
        missing=str(options.get("missing", "error")),
        validate=bool(options.get("validate", False)),
    )
