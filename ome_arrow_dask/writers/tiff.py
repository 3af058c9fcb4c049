"""OME-TIFF writer: tiled, compressed, pyramids as SubIFDs, streamed, crash-safe.

``OMEArrow.export(how="ome-tiff", out=...)`` (also ``"ometiff"`` / ``"tiff"``) and
``ome-arrow-dask convert IN out.ome.tiff`` write one OME-TIFF file with
:class:`tifffile.TiffWriter`:

- **OME-XML** (axes ``TCZYX``): image name, acquisition date, physical sizes with their
  units (OME symbols: ``micrometer`` / ``um`` -> ``µm``), and per channel the name,
  color (OME signed RGBA), emission / excitation wavelengths (nm) and illumination.
  XResolution / YResolution tags carry the Y/X pixel size too (pixels per centimeter),
  for readers that ignore OME-XML.
- **Tiles** of ``tile=(Y, X)`` pixels (default 512x512, clipped to the image rounded up
  to 16), compressed with ``compression`` (default ``"zlib"``: every TIFF reader
  decodes it; ``"zstd"``, ``"lzw"``, ``"lzma"`` or ``None`` on request), with the
  horizontal predictor for integer pixels.
- **Pyramid levels** (``levels=``) as SubIFDs of every full-resolution plane, each 2x
  smaller in Y/X (``ceil``): the 2x2 mean of the level above, or every second pixel for
  label images, with :func:`ome_arrow_dask.writers.zarr.downsample`, so the levels equal
  the OME-Zarr writer's.
- **BigTIFF** when the file may reach 4 GiB (estimated from the tiles' uncompressed
  bytes), or as forced with ``bigtiff=True`` / ``False``.
- **Bounded memory**: the image is computed one unit at a time (a group of Z planes of
  one source chunk, one plane, or a band of tile rows of a very large plane), at most
  ``buffer_bytes`` (default 32 MiB) each; tifffile consumes the tiles as an iterator and
  compresses at most ``buffer_bytes`` of them at once. Pyramid level ``k + 1`` is binned
  from level ``k``'s units as they stream past and kept in an uncompressed temp file
  beside the output (at most a third of the full-resolution bytes), read back band by
  band when that level is written. The input is read once.
- **Crash safety**: everything is written to ``<out>.<hex>.tmp`` in the output's folder,
  fsynced and renamed onto ``out`` only when complete; an existing ``out`` is refused
  unless ``overwrite=True`` and stays intact until the new file replaces it. A killed
  run leaves temp files that the next run on the same output removes (under the job
  lock ``<out>.lock``). There is no resume: a TIFF is written from its start.

Pixel types: every OME pixel type is kept (``bool`` as OME ``bit``, ``int8`` ...
``uint32``, ``float32``, ``float64``, ``complex64``, ``complex128``). ``float16`` is
widened to ``float32`` (exact; OME has no half float). 64-bit integers are refused (OME
has no such type): cast them first (``image.astype("int32")``) or write OME-Zarr.

Differences from ome-arrow 0.1.0's ``export(how="ome-tiff")``: the stored dtype is
kept (ome-arrow casts to uint16 by default), channel colors are written whenever known
(``use_channel_colors=False`` leaves them out), and tiles are always used.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from dask.utils import parse_bytes

from ..errors import OmeArrowDaskError
from ..jobs import Existing, JobLock, WriteInput, check_output_not_input, commit, decide, lock_path, tmp_path
from ..meta import ImageMeta
from ..units import UM_PER_UNIT, ome_length_unit
from ._input import as_write_input
from .zarr import check_levels, downsample

if TYPE_CHECKING:
    from ..core import OMEArrow

__all__ = ["COMPRESSIONS", "TiffPlan", "TiffWriteOptions", "plan", "write"]

Shape5 = tuple[int, int, int, int, int]

COMPRESSIONS = ("zlib", "zstd", "lzw", "lzma", None)
"""Compressions this writer offers (``None``: uncompressed)."""

_COMPRESSION_ALIASES: dict[Any, str | None] = {
    "zlib": "zlib",
    "deflate": "zlib",
    "adobe_deflate": "zlib",
    "zstd": "zstd",
    "zstandard": "zstd",
    "lzw": "lzw",
    "lzma": "lzma",
    "none": None,
    None: None,
    False: None,
}

_ILLUMINATION = ("Transmitted", "Epifluorescence", "Oblique", "NonLinear", "Other")

_TMP_NAME = r"\.[0-9a-f]{32}\.tmp(?:\.level\d+)?"
"""Suffix of this writer's temp files beside the output (see :func:`_temp_files`)."""

_CLASSIC_TIFF_LIMIT = 2**32 - 2**24
"""Estimated file sizes above this (4 GiB less a 16 MiB margin) get BigTIFF."""


def _check_compression(value: Any) -> str | None:
    key = value.lower() if isinstance(value, str) else value
    if key not in _COMPRESSION_ALIASES:
        choices = ", ".join(repr(c) for c in COMPRESSIONS)
        raise OmeArrowDaskError(f"OME-TIFF compression must be one of {choices}, got {value!r}")
    return _COMPRESSION_ALIASES[key]


@dataclass(frozen=True)
class TiffWriteOptions:
    """Options of :func:`write` (validated on construction).

    Parameters
    ----------
    levels
        Number of resolution levels (1 = full resolution only); levels 1.. are SubIFDs.
    tile
        Tile shape ``(Y, X)``, multiples of 16; default ``(512, 512)`` clipped to the image.
    compression
        ``"zlib"`` (default), ``"zstd"``, ``"lzw"``, ``"lzma"`` or ``None``.
    compression_level
        Codec level (zlib 0-9, zstd 1-22, lzma 0-9); default: the codec's.
    predictor
        Horizontal differencing before compression; default (None): on for compressed
        integer pixels.
    bigtiff
        Force BigTIFF on or off; default (None): on when the file may reach 4 GiB.
    overwrite
        Replace an existing ``out`` (it stays intact until the new file is complete).
    use_channel_colors
        Write the channels' colors (default True; ome-arrow's option of the same name
        defaults to False).
    dim_order
        ome-arrow's argument; only ``"TCZYX"`` (the plan's order) is accepted.
    buffer_bytes
        Bound on the pixels computed at once, and on the tiles tifffile compresses at
        once (an int or a string such as ``"64MiB"``); default 32 MiB.
    progress
        Print the planes written to stderr.
    """

    levels: int = 1
    tile: tuple[int, int] | None = None
    compression: str | None = "zlib"
    compression_level: int | None = None
    predictor: bool | None = None
    bigtiff: bool | None = None
    overwrite: bool = False
    use_channel_colors: bool = True
    dim_order: str = "TCZYX"
    buffer_bytes: int | str = "32MiB"
    progress: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.levels, bool) or int(self.levels) != self.levels or int(self.levels) < 1:
            raise OmeArrowDaskError(f"levels must be an integer >= 1, got {self.levels!r}")
        object.__setattr__(self, "levels", int(self.levels))
        object.__setattr__(self, "compression", _check_compression(self.compression))
        if self.tile is not None:
            tile = tuple(self.tile)
            if len(tile) != 2 or any(int(v) != v or int(v) < 16 or int(v) % 16 for v in tile):
                raise OmeArrowDaskError(
                    "tile must be two sizes (Y, X), each a positive multiple of 16 (TIFF requires it), "
                    f"got {self.tile!r}"
                )
            object.__setattr__(self, "tile", (int(tile[0]), int(tile[1])))
        if str(self.dim_order).upper() != "TCZYX":
            raise OmeArrowDaskError(
                f"dim_order={self.dim_order!r}: the OME-TIFF writer writes the plan's TCZYX order; "
                "select or reorder axes on the plan instead"
            )
        budget = parse_bytes(self.buffer_bytes) if isinstance(self.buffer_bytes, str) else int(self.buffer_bytes)
        if budget < 1 << 20:
            raise OmeArrowDaskError(f"buffer_bytes must be at least 1 MiB, got {self.buffer_bytes!r}")
        object.__setattr__(self, "buffer_bytes", budget)
        if self.compression_level is not None and self.compression is None:
            raise OmeArrowDaskError("compression_level needs a compression ('zlib', 'zstd', 'lzw' or 'lzma')")


@dataclass(frozen=True)
class TiffPlan:
    """What :func:`write` will write: level shapes, tile, dtype, compression and BigTIFF."""

    shapes: tuple[Shape5, ...]
    dtype: np.dtype
    tile: tuple[int, int]
    compression: str | None
    predictor: bool
    bigtiff: bool
    estimated_bytes: int
    method: str
    notes: tuple[str, ...] = field(default=())

    def describe(self) -> str:
        """A few lines for ``convert --dry-run``."""
        size = f"{self.estimated_bytes / 2**20:,.1f} MiB uncompressed"
        lines = [
            f"OME-TIFF{' (BigTIFF)' if self.bigtiff else ''}, {self.dtype}, tiles {self.tile[0]}x{self.tile[1]}, "
            f"compression {self.compression or 'none'}, at most {size}",
        ]
        for k, shape in enumerate(self.shapes):
            where = "main IFDs" if k == 0 else f"SubIFD {k - 1} ({self.method} 2x)"
            lines.append(f"  level {k}: shape {shape} in {where}")
        lines.extend(f"  note: {note}" for note in self.notes)
        return "\n".join(lines)


def _level_shapes(shape: Shape5, levels: int) -> tuple[Shape5, ...]:
    t, c, z, y, x = shape
    check_levels(levels, y, x)
    out = []
    for _ in range(levels):
        out.append((t, c, z, y, x))
        y, x = -(-y // 2), -(-x // 2)
    return tuple(out)


def _stored_dtype(dtype: np.dtype, where: str) -> tuple[np.dtype, str | None]:
    """The pixel type written for ``dtype`` and a note when it differs."""
    if dtype == np.float16:
        return np.dtype(np.float32), "float16 pixels are written as float32 (exact; OME has no half-float type)"
    if dtype.kind in "ui" and dtype.itemsize == 8:
        raise OmeArrowDaskError(
            f"{where}: OME-TIFF has no 64-bit integer pixel type ({dtype}); cast the plan first, e.g. "
            "image.astype('int32') or astype('float64') when the values fit, or write OME-Zarr (how='ome-zarr')"
        )
    if dtype.kind not in "buifc":
        raise OmeArrowDaskError(f"{where}: OME-TIFF cannot store {dtype} pixels")
    return dtype.newbyteorder("="), None


def _roundup16(n: int) -> int:
    return max(16, -(-n // 16) * 16)


def plan(image: WriteInput | OMEArrow, **options: Any) -> TiffPlan:
    """Plan the OME-TIFF of ``image`` with :func:`write`'s options; reads no pixels.

    >>> import numpy as np
    >>> from ome_arrow_dask import OMEArrow
    >>> p = plan(OMEArrow(np.zeros((40, 30), "u2")), levels=2)
    >>> p.shapes, p.tile, p.compression, p.bigtiff
    (((1, 1, 1, 40, 30), (1, 1, 1, 20, 15)), (48, 32), 'zlib', False)
    """
    opts = _options(options)
    return _plan(image, opts, "OME-TIFF output")


def _plan(image: WriteInput | OMEArrow, opts: TiffWriteOptions, where: str) -> TiffPlan:
    shape: Shape5 = tuple(int(s) for s in image.shape)  # type: ignore[assignment]
    if math.prod(shape) == 0:
        raise OmeArrowDaskError(f"{where}: cannot write an empty image of shape {shape} (TCZYX)")
    dtype, note = _stored_dtype(np.dtype(image.dtype), where)
    wanted = opts.tile or (512, 512)
    tile = (min(wanted[0], _roundup16(shape[3])), min(wanted[1], _roundup16(shape[4])))
    shapes = _level_shapes(shape, opts.levels)
    estimate = 0
    for t, c, z, y, x in shapes:
        tiles = t * c * z * math.ceil(y / tile[0]) * math.ceil(x / tile[1])
        tile_bytes = tile[0] * tile[1] * dtype.itemsize
        estimate += tiles * (tile_bytes + 16) + t * c * z * 512
    if opts.compression == "lzw":
        estimate = estimate * 3 // 2  # LZW can expand incompressible 8-bit data by up to ~1.5x
    elif opts.compression is not None:
        estimate += estimate // 64  # zlib / zstd / lzma worst-case expansion is well under 1%
    estimate += 1 << 20  # OME-XML and headers
    bigtiff = estimate > _CLASSIC_TIFF_LIMIT if opts.bigtiff is None else bool(opts.bigtiff)
    predictor = opts.predictor
    if predictor is None:
        predictor = opts.compression is not None and dtype.kind in "ui"
    elif predictor and (dtype.kind == "b" or opts.compression is None):
        raise OmeArrowDaskError(f"{where}: predictor=True needs compression and non-bool pixels")
    method = "nearest" if image.meta.image_type == "label" else "mean"
    return TiffPlan(
        shapes, dtype, tile, opts.compression, bool(predictor), bigtiff, estimate, method, (note,) if note else ()
    )


def _options(options: dict[str, Any]) -> TiffWriteOptions:
    known = {f.name for f in fields(TiffWriteOptions)}
    unknown = sorted(set(options) - known)
    if unknown:
        hint = ""
        if "chunks" in unknown:
            hint = "; the tile shape is tile=(Y, X) (CLI --chunks 1,1,1,Y,X)"
        raise TypeError(f"export(how='ome-tiff') does not take {unknown}; it takes {sorted(known)}{hint}")
    return TiffWriteOptions(**options)


# ---------------------------------------------------------------------- OME-XML
def _positive(value: float | None) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) and value > 0 else None


def _signed_rgba(rgba: int) -> int:
    """ome-arrow's uint32 RGBA as OME's signed int32."""
    rgba = int(rgba) & 0xFFFFFFFF
    return rgba - (1 << 32) if rgba >= 1 << 31 else rgba


def ome_metadata(meta: ImageMeta, *, use_channel_colors: bool = True) -> tuple[dict[str, Any], list[str]]:
    """Return tifffile's OME ``metadata=`` for ``meta`` (axes TCZYX) and notes on what was left out.

    >>> from ome_arrow_dask.meta import ImageMeta, PhysicalSize, regular_chunks
    >>> m = ImageMeta((1, 1, 1, 4, 4), "u1", regular_chunks((1, 1, 1, 4, 4), (1, 1, 1, 4, 4)),
    ...               physical_size=PhysicalSize(x=0.5, y=0.5, x_unit="micrometer", y_unit="um"))
    >>> md, notes = ome_metadata(m)
    >>> md["PhysicalSizeX"], md["PhysicalSizeXUnit"], [ch["Name"] for ch in md["Channel"]]
    (0.5, 'µm', ['C0'])
    """
    md: dict[str, Any] = {"axes": "TCZYX"}
    notes: list[str] = []
    if meta.name:
        md["Name"] = str(meta.name)
    if meta.acquisition_datetime is not None:
        md["AcquisitionDate"] = meta.acquisition_datetime.isoformat()
    ps = meta.physical_size
    for axis in "XYZ":
        value = _positive(getattr(ps, axis.lower()))
        if value is None:
            continue
        unit_text = getattr(ps, f"{axis.lower()}_unit")
        unit = ome_length_unit(unit_text)
        if unit_text is not None and unit is None:
            notes.append(
                f"the physical size along {axis} ({value} {unit_text}) is left out: "
                f"{unit_text!r} is not an OME length unit"
            )
            continue
        md[f"PhysicalSize{axis}"] = value
        if unit is not None:
            md[f"PhysicalSize{axis}Unit"] = unit
    channels = []
    for ch in meta.channels:
        entry: dict[str, Any] = {"Name": str(ch.name)}
        if use_channel_colors and ch.color_rgba is not None:
            entry["Color"] = _signed_rgba(ch.color_rgba)
        for key, um in (("EmissionWavelength", ch.emission_um), ("ExcitationWavelength", ch.excitation_um)):
            positive = _positive(um)
            if positive is not None:
                entry[key] = round(positive * 1000.0, 6)
                entry[f"{key}Unit"] = "nm"
        if ch.illumination in _ILLUMINATION:
            entry["IlluminationType"] = ch.illumination
        channels.append(entry)
    md["Channel"] = channels
    return md, notes


def _resolution(meta: ImageMeta, level: int) -> dict[str, Any]:
    """TIFF XResolution / YResolution (pixels per cm) of ``level``; empty when unknown."""
    ps = meta.physical_size
    per_cm = []
    for axis in "xy":
        value, unit = _positive(getattr(ps, axis)), ome_length_unit(getattr(ps, f"{axis}_unit")) or "µm"
        if value is None or unit not in UM_PER_UNIT:
            return {}
        per_cm.append(1e4 / (value * UM_PER_UNIT[unit] * 2**level))
    return {"resolution": (per_cm[0], per_cm[1]), "resolutionunit": "CENTIMETER"}


# ---------------------------------------------------------------------- pixels
class _Spill:
    """An uncompressed TCZYX level kept in a temp file, written and read by row bands (no mmap)."""

    def __init__(self, path: Path, shape: Shape5, dtype: np.dtype) -> None:
        self.path, self.shape, self.dtype = path, shape, dtype
        self.row_bytes = shape[4] * dtype.itemsize
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)

    def _offset(self, plane: int, row: int) -> int:
        return (plane * self.shape[3] + row) * self.row_bytes

    def write(self, plane: int, row: int, block: np.ndarray) -> None:
        data = np.ascontiguousarray(block, self.dtype).data.cast("B")
        offset = self._offset(plane, row)
        while data:
            done = os.pwrite(self.fd, data, offset)
            data, offset = data[done:], offset + done

    def read(self, plane: int, planes: int, row: int, rows: int) -> np.ndarray:
        """``planes`` consecutive planes, rows ``row:row+rows`` each."""
        out = np.empty((planes, rows, self.shape[4]), self.dtype)
        view = out.data.cast("B")
        step = rows * self.row_bytes
        for i in range(planes):
            part, offset = view[i * step : (i + 1) * step], self._offset(plane + i, row)
            while part:
                got = os.preadv(self.fd, [part], offset)
                if got <= 0:
                    raise OmeArrowDaskError(f"{self.path}: the pyramid temp file is shorter than written")
                part, offset = part[got:], offset + got
        return out

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        self.path.unlink(missing_ok=True)


@dataclass
class _Progress:
    enabled: bool
    total: int
    done: int = 0

    def step(self, level: int) -> None:
        self.done += 1
        if self.enabled:
            end = "\n" if self.done == self.total else ""
            print(f"\rOME-TIFF: level {level}, plane {self.done}/{self.total}", end=end, file=sys.stderr, flush=True)


def _units(shape: Shape5, itemsize: int, zchunks: tuple[int, ...], tile_y: int, budget: int) -> Iterator[tuple]:
    """``(t, c, z0, z1, y0, y1)`` regions in TIFF page order, each at most ``budget`` bytes.

    Whole source Z chunks are read together while they fit (a chunk holding several planes
    is read once, and small planes do not cost one dask computation each); a chunk above
    the budget is split into groups of planes; a plane above the budget is read in bands
    of whole tile rows (even heights, so 2x binning of a band equals binning the plane).

    >>> [(u[2], u[3]) for u in _units((1, 1, 9, 16, 16), 2, (2, 2, 2, 3), 16, 5 * 512)]
    [(0, 4), (4, 9)]
    >>> [(u[2], u[3]) for u in _units((1, 1, 7, 16, 16), 2, (7,), 16, 5 * 512)]
    [(0, 5), (5, 7)]
    """
    t_n, c_n, _, y_n, x_n = shape
    plane = y_n * x_n * itemsize
    band = y_n if plane <= budget else max(tile_y, (budget // (x_n * itemsize)) // tile_y * tile_y)
    per_group = max(1, budget // plane) if plane <= budget else 1
    groups: list[tuple[int, int]] = []
    current: list[int] | None = None  # [start, stop) of whole chunks gathered so far
    z0 = 0
    for size in zchunks:
        z1 = z0 + size
        if current is not None and z1 - current[0] <= per_group:
            current[1] = z1
        else:
            if current is not None:
                groups.append((current[0], current[1]))
                current = None
            if size <= per_group:
                current = [z0, z1]
            else:
                groups.extend((s, min(s + per_group, z1)) for s in range(z0, z1, per_group))
        z0 = z1
    if current is not None:
        groups.append((current[0], current[1]))
    for t in range(t_n):
        for c in range(c_n):
            for za, zb in groups:
                for y0 in range(0, y_n, band):
                    yield t, c, za, zb, y0, min(y0 + band, y_n)


def _tiles(
    read: Any, shape: Shape5, zchunks: tuple[int, ...], plan_: TiffPlan, budget: int, spill: _Spill | None,
    progress: _Progress, level: int,
) -> Iterator[np.ndarray]:  # fmt: skip
    """Yield the tiles of one level in TIFF order; bin each unit into ``spill`` on the way."""
    ty, tx = plan_.tile
    _, c_n, z_n, y_n, x_n = shape
    for t, c, z0, z1, y0, y1 in _units(shape, plan_.dtype.itemsize, zchunks, ty, budget):
        block = np.asarray(read(t, c, z0, z1, y0, y1))
        if block.dtype != plan_.dtype:
            block = block.astype(plan_.dtype)
        if block.shape != (z1 - z0, y1 - y0, x_n):
            raise OmeArrowDaskError(
                f"level {level}: the plan returned a block of shape {block.shape} for T={t} C={c} Z={z0}:{z1} "
                f"Y={y0}:{y1}, expected {(z1 - z0, y1 - y0, x_n)}; the source does not match its metadata"
            )
        if spill is not None:
            small = downsample(block, plan_.method)
            for i in range(z1 - z0):
                spill.write((t * c_n + c) * z_n + z0 + i, y0 // 2, small[i])
            del small
        for i in range(z1 - z0):
            for ya in range(0, y1 - y0, ty):
                for xa in range(0, x_n, tx):
                    yield block[i, ya : ya + ty, xa : xa + tx]
            if y1 == y_n:
                progress.step(level)
        del block


def _dask_reader(image: WriteInput) -> Any:
    array = image.to_dask()

    def read(t: int, c: int, z0: int, z1: int, y0: int, y1: int) -> np.ndarray:
        return array[t, c, z0:z1, y0:y1, :].compute()

    return read


# ---------------------------------------------------------------------- files
def _temp_files(out: Path) -> list[Path]:
    """Return this writer's temp files for ``out`` left in its folder (by a killed run)."""
    pattern = re.compile(re.escape(out.name) + _TMP_NAME + "$")
    try:
        names = os.listdir(out.parent)
    except FileNotFoundError:
        return []
    return [out.parent / name for name in sorted(names) if pattern.match(name)]


def _write_file(image: WriteInput, tmp: Path, plan_: TiffPlan, opts: TiffWriteOptions, where: str) -> None:
    import tifffile

    meta = image.meta
    metadata, notes = ome_metadata(meta, use_channel_colors=opts.use_channel_colors)
    for note in (*plan_.notes, *notes):
        warnings.warn(f"{where}: {note}", UserWarning, stacklevel=4)
    codec: dict[str, Any] = {"compression": plan_.compression}
    if plan_.compression is not None and opts.compression_level is not None:
        codec["compressionargs"] = {"level": int(opts.compression_level)}
    if plan_.predictor:
        codec["predictor"] = "horizontal"
    budget = int(opts.buffer_bytes)
    planes = math.prod(plan_.shapes[0][:3])
    progress = _Progress(opts.progress, planes * len(plan_.shapes))
    read = _dask_reader(image)
    zchunks = tuple(int(n) for n in image.chunks[2])
    spills: list[_Spill] = []
    try:
        with tifffile.TiffWriter(tmp, bigtiff=plan_.bigtiff, ome=True) as tw:
            for k, shape in enumerate(plan_.shapes):
                spill = None
                if k + 1 < len(plan_.shapes):
                    spill = _Spill(Path(f"{tmp}.level{k + 1}"), plan_.shapes[k + 1], plan_.dtype)
                    spills.append(spill)
                tiles = _tiles(read, shape, zchunks, plan_, budget // 2, spill, progress, k)
                extra: dict[str, Any] = (
                    {"metadata": metadata, "subifds": len(plan_.shapes) - 1}
                    if k == 0
                    else {"metadata": None, "subfiletype": 1}
                )
                tw.write(
                    tiles,
                    shape=shape,
                    dtype=plan_.dtype,
                    photometric="minisblack",
                    tile=plan_.tile,
                    buffersize=max(budget // 2, 2 * plan_.tile[0] * plan_.tile[1] * plan_.dtype.itemsize),
                    software="ome-arrow-dask",
                    **_resolution(meta, k),
                    **codec,
                    **extra,
                )
                if k > 0:
                    spills.pop(0).close()  # this level is written: its temp file is no longer needed
                if spill is not None:
                    read, zchunks = _spill_reader(spill), (1,) * shape[2]
    finally:
        for spill in spills:
            spill.close()


def _spill_reader(spill: _Spill) -> Any:
    _, c_n, z_n, _, _ = spill.shape

    def read(t: int, c: int, z0: int, z1: int, y0: int, y1: int) -> np.ndarray:
        return spill.read((t * c_n + c) * z_n + z0, z1 - z0, y0, y1 - y0)

    return read


def _inspect(path: Path) -> Existing:
    """What is at the output ``path``: nothing, a file (replaceable) or a folder (refused)."""
    if path.is_dir():
        return Existing.foreign("is a folder; an OME-TIFF output is a file: choose a file name (.ome.tiff)")
    return Existing.output() if path.exists() else Existing("absent")


def write(image: WriteInput | OMEArrow, out: str | os.PathLike[str], **options: Any) -> str | os.PathLike[str]:
    """Write ``image`` (a :class:`~ome_arrow_dask.jobs.WriteInput` or an ``OMEArrow`` plan) as one OME-TIFF file.

    Returns ``out``.

    Options are the fields of :class:`TiffWriteOptions` (``levels``, ``tile``,
    ``compression``, ``compression_level``, ``predictor``, ``bigtiff``, ``overwrite``,
    ``use_channel_colors``, ``dim_order``, ``buffer_bytes``, ``progress``). Pixels are
    computed on the current dask scheduler one bounded unit at a time.

    Raises
    ------
    OmeArrowDaskError
        When ``out`` exists (without ``overwrite=True``), is a folder, the image is empty,
        its pixel type has no OME equivalent, or an option is invalid; nothing is written.
    OutputIsInputError
        When ``out`` is an input of the plan (nothing is touched).
    OutputInUseError
        When another running conversion writes ``out``.

    Examples
    --------
    >>> import numpy as np, tempfile, os, tifffile
    >>> from ome_arrow_dask import OMEArrow
    >>> path = os.path.join(tempfile.mkdtemp(), "img.ome.tiff")
    >>> _ = OMEArrow(np.arange(64, dtype="u1").reshape(8, 8)).export("ome-tiff", out=path, levels=2)
    >>> with tifffile.TiffFile(path) as tif:
    ...     [level.shape for level in tif.series[0].levels]
    [(8, 8), (4, 4)]
    """
    opts = _options(options)
    item = as_write_input(image)
    path = Path(os.path.abspath(os.fspath(out)))
    where = os.fspath(out)
    plan_ = _plan(item, opts, where)
    check_output_not_input(path, item.identity.input_paths, job_paths=(lock_path(path),))  # before touching anything
    decide(where, overwrite=opts.overwrite, resume=False, existing=_inspect(path))  # refused before any check
    item.identity.validate_inputs()  # e.g. every header of a pattern stack, before any output exists
    path.parent.mkdir(parents=True, exist_ok=True)
    with JobLock(path):  # a second job on this output is refused here, before it deletes or writes anything
        decide(where, overwrite=opts.overwrite, resume=False, existing=_inspect(path))  # none appeared meanwhile
        for leftover in _temp_files(path):  # of a killed run: we hold the lock, nobody else writes them
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()
        tmp = tmp_path(path)
        try:
            _write_file(item, tmp, plan_, opts, where)
            commit(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
    return out
