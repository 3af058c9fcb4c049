"""OME-Zarr writer: NGFF 0.5 on zarr v3 (default) or NGFF 0.4 on zarr v2, crash-safe and resumable.

Every zarr array is created up front; then one dask task per *unit* (a shard when
sharded, else a chunk) computes its block, writes it through zarr and records a
done-marker in the sibling ``<out>.progress/`` folder. Units never share a chunk or
shard, so no two tasks read-modify-write the same key (the misaligned
``da.to_zarr`` path loses data). Pyramid level ``k`` is computed unit by unit from
the stored level ``k-1`` (2x mean in Y/X, or 2x stride for labels).

Ordering (RELIABILITY.md §4.2): the group attribute
``ome_arrow_dask = {"status": "in_progress", "fingerprint": ...}`` is written first;
the NGFF ``multiscales`` / ``omero`` metadata and ``status: "complete"`` are written
last, in one rewrite of the group metadata. Whether a job creates, overwrites, resumes
or has nothing to do is decided by :func:`ome_arrow_dask.jobs.decide`, as for every
writer: ``resume=True`` keeps the units whose markers exist and refuses
(:class:`~ome_arrow_dask.errors.InputChangedError`) when the fingerprint (source token,
selection and every output parameter) differs.

Codec pipeline (issue 19): chunks are encoded by the Rust ``zarrs`` pipeline when it is
installed (``pip install "ome-arrow-dask[fast]"``; ``codec_pipeline="default"`` or
``OME_ARROW_DASK_ZARR_PIPELINE=default`` forces zarr-python's own). zarrs writes keys in
place, so each unit goes to a staging copy of its array in ``<out>.progress/stage/`` and is
renamed over its key: a key in the output is always whole, as with zarr-python's temp +
rename. The pipeline is set with ``zarr.config.set`` around our own array opens only.

Remote outputs (``s3://...``, ``storage_options=``): no rename and no staging. Each unit
is one PUT through zarr's ``FsspecStore`` (zarr-python's pipeline), its done-marker an
object under ``<out>.progress/done-<fp>/``, the lock the object ``<out>.lock``; the
protocol is documented in :mod:`ome_arrow_dask.jobs.object_store`.

Odd Y/X sizes: level ``k`` has ``ceil(n / 2)`` pixels; the last row/column averages
the pixels that exist (edge replication), so no input pixel is dropped.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import re
import shutil
import socket
import threading
import uuid
import warnings
import zlib
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from dask.base import tokenize
from dask.delayed import Delayed
from dask.highlevelgraph import HighLevelGraph

from ..errors import OmeArrowDaskError, OutputInUseError
from ..graph import active_client, run_graph
from ..jobs import (
    IN_PROGRESS,
    STATUS_KEY,
    Existing,
    JobDecision,
    JobLock,
    WriteInput,
    atomic_write_text,
    check_output_not_input,
    check_verify_inputs,
    creating_leftovers,
    creating_path,
    decide,
    fsync_dir,
    is_url,
    job_fingerprint,
    lock_path,
    package_version,
    progress_dir,
    read_job_record,
    records_digest,
    status_record,
    write_job_record,
)
from . import _ngff_meta
from ._input import as_write_input

if TYPE_CHECKING:
    from ..core import OMEArrow
    from ..jobs import ObjectStoreLock, RemoteOutput
    from ..meta import ImageMeta
    from ..storage import Location

__all__ = ["ZarrWriteOptions", "downsample", "level_layouts", "read_status", "verify_units", "write"]

logger = logging.getLogger(__name__)

_COMPRESSORS = ("zstd", "lz4", "lz4hc", "zlib", "blosclz", "none")
Shape5 = tuple[int, int, int, int, int]

CODEC_PIPELINES = ("auto", "zarrs", "default")
"""Values of :attr:`ZarrWriteOptions.codec_pipeline`."""

PIPELINE_ENV = "OME_ARROW_DASK_ZARR_PIPELINE"
"""Environment variable that replaces ``codec_pipeline="auto"`` (``"default"`` forces zarr-python's own)."""

_PIPELINE_PATHS = {"zarrs": "zarrs.ZarrsCodecPipeline", "default": "zarr.core.codec_pipeline.BatchedCodecPipeline"}

_CONFIG_LOCK = threading.Lock()
"""Serialises our ``zarr.config.set`` blocks: two threads nesting them could leave the global config changed."""


_ZARRS_AVAILABLE: bool | None = None


def zarrs_available() -> bool:
    """True when the ``zarrs`` codec pipeline imports in this process (checked at most once)."""
    global _ZARRS_AVAILABLE
    if _ZARRS_AVAILABLE is None:
        try:
            import zarrs  # noqa: F401
        except Exception:  # not installed, or built for another zarr: use zarr-python's pipeline
            _ZARRS_AVAILABLE = False
        else:
            _ZARRS_AVAILABLE = True
    return _ZARRS_AVAILABLE


def codec_pipeline_choice(choice: str = "auto") -> str:
    """Validate a ``codec_pipeline`` option; ``"auto"`` takes :data:`PIPELINE_ENV` when that is set.

    >>> codec_pipeline_choice("default")
    'default'
    """
    if choice not in CODEC_PIPELINES:
        raise OmeArrowDaskError(f"codec_pipeline must be one of {CODEC_PIPELINES}, got {choice!r}")
    if choice == "auto":
        env = os.environ.get(PIPELINE_ENV, "").strip().lower()
        if env and env not in CODEC_PIPELINES:
            raise OmeArrowDaskError(f"environment variable {PIPELINE_ENV}={env!r}: expected one of {CODEC_PIPELINES}")
        choice = env or "auto"
    if choice == "zarrs" and not zarrs_available():
        raise OmeArrowDaskError(
            "codec_pipeline='zarrs' needs the zarrs package: pip install 'ome-arrow-dask[fast]' "
            "(or use codec_pipeline='auto', which falls back to zarr-python's pipeline)"
        )
    return choice


def _pipeline_path(choice: str) -> str | None:
    """The codec pipeline class for ``choice`` in this process; None leaves zarr's configuration alone."""
    if choice == "auto":
        return _PIPELINE_PATHS["zarrs"] if zarrs_available() else None
    if choice == "zarrs" and not zarrs_available():  # a worker without the package
        raise OmeArrowDaskError(
            "codec_pipeline='zarrs' but the zarrs package does not import on this worker: install it there "
            "(pip install 'ome-arrow-dask[fast]') or write with codec_pipeline='auto'"
        )
    return _PIPELINE_PATHS[choice]


@dataclass(frozen=True)
class ZarrWriteOptions:
    """Options of :func:`write` (validated on construction).

    Parameters
    ----------
    chunks
        TCZYX chunk shape; default ``(1, 1, min(Z, 16), min(Y, 512), min(X, 512))``.
    levels
        Number of pyramid levels (1 = full resolution only).
    version
        ``"0.5"`` (zarr v3) or ``"0.4"`` (zarr v2).
    compressor, clevel
        Blosc codec name (``"zstd"``, ``"lz4"``, ...) with bitshuffle, or ``"none"``.
    shards
        TCZYX shard shape (zarr v3 only); each a multiple of ``chunks``.
    overwrite, resume
        Replace an existing output; or finish an interrupted one with the same fingerprint.
    verify
        On resume, re-read every recorded unit and redo those whose stored chunks are
        missing or whose CRC32 differs from the record (costs one read of the output).
    verify_inputs
        How a resume checks that the input files did not change: ``"stat"`` (default; size,
        mtime and inode change time of every input file) or ``"content"`` (a BLAKE2b hash
        of every input byte, at the start and on every resume; accepts an identical copy).
    progress
        Show a progress bar: :class:`dask.diagnostics.ProgressBar` on local schedulers,
        :func:`distributed.progress` when a ``distributed.Client`` is active.
    codec_pipeline
        How chunks are encoded and written: ``"auto"`` (default: the Rust ``zarrs`` codec
        pipeline when the package is installed, ``pip install "ome-arrow-dask[fast]"``, else
        zarr-python's default pipeline; the environment variable
        ``OME_ARROW_DASK_ZARR_PIPELINE`` may set ``"default"`` or ``"zarrs"`` instead),
        ``"zarrs"`` (refused when not installed) or ``"default"``. Only our own array opens
        use it; the stored bytes decode the same through either.
    """

    chunks: tuple[int, ...] | None = None
    levels: int = 1
    version: str = "0.5"
    compressor: str = "zstd"
    clevel: int = 3
    shards: tuple[int, ...] | None = None
    overwrite: bool = False
    resume: bool = False
    verify: bool = False
    progress: bool = False
    verify_inputs: str = "stat"
    codec_pipeline: str = "auto"

    def __post_init__(self) -> None:
        object.__setattr__(self, "version", _ngff_meta.check_version(self.version))
        object.__setattr__(self, "codec_pipeline", codec_pipeline_choice(self.codec_pipeline))
        check_verify_inputs(self.verify_inputs)
        if int(self.levels) < 1:
            raise OmeArrowDaskError(f"levels must be >= 1, got {self.levels}")
        if self.compressor not in _COMPRESSORS:
            raise OmeArrowDaskError(f"compressor must be one of {_COMPRESSORS}, got {self.compressor!r}")
        if not 0 <= int(self.clevel) <= 9:
            raise OmeArrowDaskError(f"clevel must be 0..9, got {self.clevel}")
        if self.overwrite and self.resume:
            raise OmeArrowDaskError("pass either overwrite=True or resume=True, not both")
        if self.verify and not self.resume:
            raise OmeArrowDaskError("verify=True checks the units of a resumed job: pass resume=True (CLI --resume)")
        for name in ("chunks", "shards"):
            value = getattr(self, name)
            if value is not None:
                value = tuple(int(v) for v in value)
                if len(value) != 5 or min(value) < 1:
                    raise OmeArrowDaskError(f"{name} must be 5 positive sizes (TCZYX), got {getattr(self, name)}")
                object.__setattr__(self, name, value)
        if self.shards is not None and self.version == "0.4":
            raise OmeArrowDaskError("shards need zarr v3: use version='0.5'")


@dataclass(frozen=True)
class LevelLayout:
    """Shape, chunk, shard and unit (one task) shape of one pyramid level."""

    path: str
    shape: Shape5
    chunks: Shape5
    shards: Shape5 | None

    @property
    def unit(self) -> Shape5:
        """The region one task writes: a whole shard, else a whole chunk."""
        return self.shards or self.chunks

    @property
    def grid(self) -> tuple[int, ...]:
        """Number of units along each axis."""
        return tuple(math.ceil(s / u) if s else 0 for s, u in zip(self.shape, self.unit, strict=True))

    def region(self, index: tuple[int, ...]) -> tuple[slice, ...]:
        """The TCZYX slices of unit ``index`` (clipped at the array edge)."""
        return tuple(slice(i * u, min((i + 1) * u, s)) for i, u, s in zip(index, self.unit, self.shape, strict=True))


def check_levels(levels: int, y: int, x: int) -> None:
    """Refuse more pyramid levels than halving Y x X can make: the extra ones would all be 1 x 1.

    >>> check_levels(3, 4, 4)
    >>> check_levels(4, 4, 4)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ome_arrow_dask.errors.OmeArrowDaskError: levels must be at most 3 for a 4 x 4 image (level 2 is 1 x 1 ...), got 4
    """
    most, ly, lx = 1, y, x
    while ly > 1 or lx > 1:
        ly, lx, most = -(-ly // 2), -(-lx // 2), most + 1
    if int(levels) > most:
        raise OmeArrowDaskError(
            f"levels must be at most {most} for a {y} x {x} image (level {most - 1} is 1 x 1 pixel already), "
            f"got {levels}"
        )


def _level_shape(shape: Shape5, level: int) -> Shape5:
    t, c, z, y, x = shape
    for _ in range(level):
        y, x = -(-y // 2), -(-x // 2)
    return (t, c, z, y, x)


def _fit_shards(chunks: Shape5, wanted: tuple[int, ...], shards: tuple[int, ...], shape: Shape5) -> Shape5:
    """Shards of one level: whole axis when the chunk was clipped, else at most the axis rounded up."""
    out = []
    for c, w, s, n in zip(chunks, wanted, shards, shape, strict=True):
        out.append(c if c < w else c * max(1, min(s // c, math.ceil(n / c))))
    return tuple(out)  # type: ignore[return-value]


def level_layouts(shape: Shape5, opts: ZarrWriteOptions) -> list[LevelLayout]:
    """Plan every pyramid level: shapes halve in Y/X (ceil); chunks and shards are clipped."""
    _, _, z, y, x = shape
    wanted = opts.chunks or (1, 1, min(z, 16), min(y, 512), min(x, 512))
    if opts.shards is not None:
        for size_c, size_s in zip(wanted, opts.shards, strict=True):
            if size_s % size_c:
                raise OmeArrowDaskError(f"shards {opts.shards} must be multiples of chunks {tuple(wanted)}")
    check_levels(opts.levels, y, x)
    layouts = []
    for k in range(int(opts.levels)):
        lshape = _level_shape(shape, k)
        chunks = tuple(max(1, min(w, n)) for w, n in zip(wanted, lshape, strict=True))
        shards = None if opts.shards is None else _fit_shards(chunks, wanted, opts.shards, lshape)  # type: ignore[arg-type]
        layouts.append(LevelLayout(str(k), lshape, chunks, shards))  # type: ignore[arg-type]
    return layouts


# ---------------------------------------------------------------------- pixels
def downsample(block: np.ndarray, method: str) -> np.ndarray:
    """Bin Y/X by 2: ``"mean"`` (edge pixels of odd sizes average what exists) or ``"nearest"``.

    Integer means are rounded half to even and keep the dtype.

    >>> downsample(np.arange(9, dtype="u1").reshape(1, 1, 1, 3, 3), "mean")[0, 0, 0].tolist()
    [[2, 4], [6, 8]]
    """
    if method == "nearest":
        return np.ascontiguousarray(block[..., ::2, ::2])
    ny, nx = block.shape[-2:]
    if ny % 2 or nx % 2:
        pad = ((0, 0),) * (block.ndim - 2) + ((0, ny % 2), (0, nx % 2))
        block = np.pad(block, pad, mode="edge")
    if block.dtype.kind in "ui":
        return _mean2_integer(block)
    work = block.astype(np.result_type(block.dtype, np.float64))
    lead = work.shape[:-2]
    binned = work.reshape(*lead, work.shape[-2] // 2, 2, work.shape[-1] // 2, 2).mean(axis=(-3, -1))
    if block.dtype.kind == "b":
        return binned >= 0.5
    if block.dtype.kind in "ui":
        binned = np.rint(binned)
    return binned.astype(block.dtype)


def _mean2_integer(block: np.ndarray) -> np.ndarray:
    """Exact 2x2 mean of an even-sized integer block, rounded half to even (as ``np.rint``).

    Up to 16-bit the four values are summed in 32 bits, 32-bit in int64, one plane at a time so
    the temporaries stay in cache. 64-bit values are split into ``x // 4`` and ``x % 4`` so no
    partial sum overflows the dtype.
    """
    if block.dtype.itemsize <= 4:
        return _mean2_narrow(block)
    views = (block[..., ::2, ::2], block[..., 1::2, ::2], block[..., ::2, 1::2], block[..., 1::2, 1::2])
    quotient = views[0] // 4 + views[1] // 4 + views[2] // 4 + views[3] // 4  # each in [min/4, max/4]: fits
    remainder = sum(((v % 4).astype(np.int64) for v in views), np.zeros((), np.int64))
    quotient = quotient + (remainder // 4).astype(block.dtype)
    remainder = remainder % 4
    quotient += ((remainder > 2) | ((remainder == 2) & (quotient % 2 == 1))).astype(quotient.dtype)
    return quotient.astype(block.dtype)


def _mean2_narrow(block: np.ndarray) -> np.ndarray:
    """:func:`_mean2_integer` for 8- to 32-bit integers: row pairs, then column pairs, then rounding.

    With ``s`` the sum of a 2x2 window, ``(s + 1 + (s >> 2 & 1)) >> 2`` is ``s / 4`` rounded half
    to even (``>>`` floors, also for negative sums). About 6x faster than summing four strided
    views of the whole block, which matters because level 1 is binned from every level-0 unit.
    """
    wide = np.int64 if block.dtype.itemsize == 4 else np.int32 if block.dtype.kind == "i" else np.uint32
    ny, nx = block.shape[-2:]
    out = np.empty((*block.shape[:-2], ny // 2, nx // 2), block.dtype)
    if out.size == 0:
        return out
    rows = np.empty((ny // 2, nx), wide)
    total = np.empty((ny // 2, nx // 2), wide)
    parity = np.empty_like(total)
    for plane, dest in zip(block.reshape(-1, ny, nx), out.reshape(-1, ny // 2, nx // 2), strict=True):
        np.add(plane[0::2], plane[1::2], out=rows, dtype=wide)
        np.add(rows[:, 0::2], rows[:, 1::2], out=total)
        np.right_shift(total, 2, out=parity)
        np.bitwise_and(parity, 1, out=parity)
        parity += 1
        total += parity
        total >>= 2
        dest[...] = total
    return out


_ARRAY_CACHE: dict[tuple[str, ...], Any] = {}
"""Arrays opened by the tasks of a running job, keyed by (root, path, pipeline, job): one open per process."""

_ARRAY_CACHE_SIZE = 64

_STAGE_LOCK = threading.Lock()
"""Held while a level's metadata is copied into the stage and opened there."""


def _forget_job(job: str) -> None:
    """Drop the cached arrays of a finished run of :func:`write`."""
    with _CONFIG_LOCK:
        for key in [k for k in _ARRAY_CACHE if k[-1] == job]:
            del _ARRAY_CACHE[key]


def _open_array(root: str, path: str, pipeline: str | None, job: str, loc: Location | None = None) -> Any:
    """Open ``root/path`` (mode ``r+``, ``write_empty_chunks``) with codec pipeline class ``pipeline``.

    ``loc``: the output is remote; ``root`` is its URL and the array is opened through
    zarr's ``FsspecStore`` (:meth:`~ome_arrow_dask.storage.Location.zarr_store`).

    The pipeline is chosen when an array object is made, and ``zarr.config.set`` changes
    zarr's process-wide configuration, so it wraps only the open (and ``with_config``, which
    makes a new array object) under a lock; two threads nesting such blocks could otherwise
    leave the global configuration changed. Arrays are cached per ``job`` (one run of
    :func:`write`), so a task does not re-read ``zarr.json`` and rebuild the pipeline.
    """
    import zarr

    key = (root, path, str(pipeline), job)
    with _CONFIG_LOCK:
        array = _ARRAY_CACHE.get(key)
        if array is not None:
            return array
        with zarr.config.set({} if pipeline is None else {"codec_pipeline.path": pipeline}):
            store = root if loc is None else loc.zarr_store(read_only=False)
            array = zarr.open_array(store=store, path=path, mode="r+").with_config({"write_empty_chunks": True})
        if job:
            while len(_ARRAY_CACHE) >= _ARRAY_CACHE_SIZE:
                _ARRAY_CACHE.pop(next(iter(_ARRAY_CACHE)))
            _ARRAY_CACHE[key] = array
    return array


def _staging_root(stage: str) -> str:
    """The staging folder of this process under ``stage`` (a zombie worker of a previous run has its own)."""
    return os.path.join(stage, f"{socket.gethostname()}-{os.getpid()}")


def _staging_array(root: str, path: str, stage: str, job: str) -> Any:
    """The zarrs-pipeline array that units are written to before they are renamed into ``root``.

    It is a copy of the level's metadata in :func:`_staging_root`, so a unit's key has the same
    relative path in both stores.
    """
    folder = _staging_root(stage)
    with _STAGE_LOCK:  # two tasks of one level must not copy the metadata while the other opens it
        with _CONFIG_LOCK:
            cached = _ARRAY_CACHE.get((folder, path, _PIPELINE_PATHS["zarrs"], job))
        if cached is not None:
            return cached
        os.makedirs(os.path.join(folder, path), exist_ok=True)
        for name in ("zarr.json", ".zarray", ".zattrs"):
            source = os.path.join(root, path, name)
            if os.path.isfile(source):
                copy = os.path.join(folder, path, f"{name}.{uuid.uuid4().hex}.tmp")
                shutil.copyfile(source, copy)
                os.replace(copy, os.path.join(folder, path, name))
        return _open_array(folder, path, _PIPELINE_PATHS["zarrs"], job)


def _unit_key(array: Any, region: tuple[slice, ...]) -> str:
    """The store key (a shard, else a chunk) that the unit starting at ``region`` writes."""
    unit = array.shards or array.chunks
    return array.metadata.encode_chunk_key(tuple(s.start // u for s, u in zip(region, unit, strict=True)))


@dataclass(frozen=True)
class _Target:
    """A picklable handle to one zarr array of the output (opened inside tasks).

    ``pipeline`` is a :attr:`ZarrWriteOptions.codec_pipeline` value, resolved in the process
    that runs the task. ``stage`` is where the zarrs pipeline writes: its filesystem store
    writes keys in place, so each unit is written to a staging copy of the array and then
    renamed over its key (atomic, as zarr-python's LocalStore does with temp + rename). ``job``
    identifies one run of :func:`write` (the cache of opened arrays is per run). ``loc``: a
    remote output (``root`` is its URL), written through zarr-python's own pipeline, one
    atomic PUT per key (:mod:`ome_arrow_dask.jobs.object_store`).
    """

    root: str
    path: str
    pipeline: str = "auto"
    stage: str | None = None
    job: str = ""
    loc: Location | None = None

    def open(self) -> Any:
        """The array, opened with this target's codec pipeline."""
        if self.loc is not None:
            return _open_array(self.root, self.path, _PIPELINE_PATHS["default"], self.job, self.loc)
        return _open_array(self.root, self.path, _pipeline_path(self.pipeline), self.job)

    def record(self, marker: str, text: str) -> None:
        """Commit the done-marker ``marker`` (a file, or an object of a remote output) holding ``text``."""
        if self.loc is None:
            atomic_write_text(marker, text, sync_dir=False)  # one folder fsync per unit is too many
        else:
            from ..jobs import ObjectStoreCommitter

            ObjectStoreCommitter(self.loc.options).atomic_write_text(marker, text)

    def write(self, region: tuple[slice, ...], block: np.ndarray) -> None:
        """Store the whole unit ``region``; its key is replaced atomically whichever pipeline encodes it."""
        if self.loc is not None:  # one PUT per key: atomic on object stores
            self.open()[region] = block
            return
        pipeline = _pipeline_path(self.pipeline)
        if pipeline != _PIPELINE_PATHS["zarrs"] or self.stage is None:
            if pipeline == _PIPELINE_PATHS["zarrs"]:  # zarrs writes keys in place: only through a stage
                pipeline = _PIPELINE_PATHS["default"]
            _open_array(self.root, self.path, pipeline, self.job)[region] = block
            return
        staged = _staging_array(self.root, self.path, self.stage, self.job)
        key = _unit_key(staged, region)
        source = os.path.join(_staging_root(self.stage), self.path, *key.split("/"))
        target = os.path.join(self.root, self.path, *key.split("/"))
        with contextlib.suppress(FileNotFoundError):
            os.remove(source)  # what a failed attempt left must never be renamed into the output
        staged[region] = block
        if not os.path.isfile(source):
            # zarrs 0.2 writes no key for a unit equal to the fill value, even with write_empty_chunks=True;
            # zarr-python keeps every key (a missing key must mean "not written"), so it writes this one
            _open_array(self.root, self.path, _PIPELINE_PATHS["default"], self.job)[region] = block
            return
        os.makedirs(os.path.dirname(target), exist_ok=True)
        os.replace(source, target)


def _crc32(block: np.ndarray) -> int:
    """CRC32 of a block's C-order bytes, without copying a contiguous block."""
    return zlib.crc32(np.ascontiguousarray(block).data.cast("B"))


def _marker_name(index: tuple[int, ...]) -> str:
    return ".".join(map(str, index)) + ".done"


def _marker_path(progress_dir: str, level: str, index: tuple[int, ...]) -> str:
    if is_url(progress_dir):
        return f"{progress_dir}/{level}/{_marker_name(index)}"
    return os.path.join(progress_dir, level, _marker_name(index))


def _store_unit(block: np.ndarray, target: _Target, region: tuple[slice, ...], marker: str, fingerprint: str) -> int:
    """Write one unit, then its done-marker (data first, record after)."""
    target.write(region, block)
    record = {"fingerprint": fingerprint, "crc32": _crc32(block)}
    target.record(marker, json.dumps(record))
    return 1


def _store_and_bin(
    block: np.ndarray, target: _Target, region: tuple[slice, ...], marker: str, fingerprint: str, bin_method: str | None
) -> np.ndarray | int:
    """Store one unit; return its 2x-binned block when the next level takes it from memory, else 1."""
    _store_unit(block, target, region, marker, fingerprint)
    return downsample(block, bin_method) if bin_method else 1


def _store_from_parts(
    parts: list[np.ndarray],
    n_x: int,
    target: _Target,
    region: tuple[slice, ...],
    marker: str,
    fingerprint: str,
    bin_method: str | None,
) -> np.ndarray | int:
    """Assemble a unit from the binned blocks of the previous level's units (row-major in Y, X) and store it."""
    rows = [np.concatenate(parts[i : i + n_x], axis=4) for i in range(0, len(parts), n_x)]
    block = np.concatenate(rows, axis=3)
    expected = tuple(s.stop - s.start for s in region)
    if block.shape != expected:  # a planning error, never data: refuse rather than write a wrong unit
        raise OmeArrowDaskError(f"pyramid unit {region} assembled to shape {block.shape}, expected {expected}")
    return _store_and_bin(block, target, region, marker, fingerprint, bin_method)


def _downsample_unit(
    previous: _Target,
    target: _Target,
    region: tuple[slice, ...],
    method: str,
    marker: str,
    fingerprint: str,
    bin_method: str | None,
    _after: list[Any],
) -> np.ndarray | int:
    """Read the 2x region of the stored previous level, bin it, and store it as one unit.

    ``_after`` lists the results of the previous level's units written in this run, so
    this task runs once they are stored.
    """
    prev = previous.open()
    src = tuple(slice(2 * s.start, min(2 * s.stop, prev.shape[i])) if i >= 3 else s for i, s in enumerate(region))
    block = downsample(np.asarray(prev[src]), method)
    return _store_and_bin(block, target, region, marker, fingerprint, bin_method)


# ---------------------------------------------------------------------- job state
def read_status(out: str | os.PathLike[str], storage_options: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """Return the ``ome_arrow_dask`` group attribute of ``out`` (None when absent or not zarr).

    ``out`` may be a URL (``storage_options`` as for :func:`write`).
    """
    import zarr

    if is_url(os.fspath(out)):
        from ..jobs import RemoteOutput
        from ..storage import location

        status = _remote_status(RemoteOutput(location(os.fspath(out), storage_options)))
        return status if isinstance(status, dict) else None
    try:
        group = zarr.open_group(os.fspath(out), mode="r")
    except Exception:  # not a zarr group (or unreadable): not ours
        return None
    status = dict(group.attrs).get(STATUS_KEY)
    return status if isinstance(status, dict) else None


def _fingerprint(image: WriteInput, layouts: list[LevelLayout], opts: ZarrWriteOptions, inputs: str = "") -> str:
    params = {
        "source": image.identity.token,
        "dtype": str(image.dtype),
        "layouts": [asdict(layout) for layout in layouts],
        "version": opts.version,
        "compressor": [opts.compressor, int(opts.clevel)],
        "package": package_version(),
        "inputs": inputs,  # digest of the input files' records (see jobs.fingerprint.input_records)
    }
    return job_fingerprint(params)


def _looks_like_zarr(path: str) -> bool:
    return any(os.path.isfile(os.path.join(path, m)) for m in ("zarr.json", ".zgroup", ".zarray"))


def inspect_output(out: str, read: Any = None) -> Existing:
    """What is at the zarr output ``out`` (:class:`~ome_arrow_dask.jobs.Existing`), from metadata only.

    ``read`` returns the status attribute of a zarr store (default :func:`read_status`);
    the plate writer passes its own. A folder that is not a zarr store, or a file, is
    foreign: never written into or deleted, ``overwrite`` or not.
    """
    if not os.path.exists(out):
        return Existing("absent")
    refuse = "refusing to write into it or delete it (also with overwrite=True): choose another output path"
    if not os.path.isdir(out):
        return Existing.foreign(f"already exists and is a file, not a zarr store; {refuse}")
    if not os.listdir(out):
        return Existing("empty")
    if not _looks_like_zarr(out):
        return Existing.foreign(f"already exists and is not a zarr store; {refuse}")
    try:
        record = read_job_record(out)
    except OmeArrowDaskError:  # a damaged record only loses the names of the changed inputs
        record = None
    return Existing.output((read or read_status)(out), record)


def _remove_output(out: str, progress_dir: str) -> None:
    """Delete the output ``out`` (an empty folder or a zarr store, see :func:`inspect_output`) and its records."""
    shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(progress_dir, ignore_errors=True)


def _decide(root: str, opts: ZarrWriteOptions, job: dict[str, Any]) -> JobDecision:
    """The job's :class:`~ome_arrow_dask.jobs.JobDecision`; prepares ``root`` for a fresh start."""
    remote: RemoteOutput | None = job.get("remote")
    decision = decide(
        root,
        overwrite=opts.overwrite,
        resume=opts.resume,
        fingerprint=job["fingerprint"],
        existing=inspect_output(root) if remote is None else remote.inspect(_remote_status(remote)),
        inputs=job["inputs"],
        verify_inputs=opts.verify_inputs,
    )
    if decision.fresh and remote is not None:  # the new job record first, then the old markers and objects go
        remote.clear(_job_record(job), status_keys=("zarr.json", ".zattrs"))
    elif decision.fresh:  # records without their output are stale; an empty folder is replaced by the new store
        _remove_output(root, job["progress_dir"])
    return decision


def _job_record(job: dict[str, Any]) -> dict[str, Any]:
    """The job record (``job.json``): status in progress, fingerprint, how inputs are checked, input records."""
    status = status_record(IN_PROGRESS, job["fingerprint"], units=job["units"])
    return {**status, "verify_inputs": job["opts"].verify_inputs, "inputs": job["inputs"]}


def _remote_status(remote: RemoteOutput) -> Any:
    """The status attribute of a remote zarr output (``zarr.json``, else v2 ``.zattrs``); None when absent."""
    for name in ("zarr.json", ".zattrs"):
        raw = remote.read(name)
        if raw is None:
            continue
        try:
            doc = json.loads(raw.decode("utf-8"))
        except ValueError:
            return None  # damaged metadata: not a record of ours
        attrs = doc.get("attributes", {}) if name == "zarr.json" and isinstance(doc, dict) else doc
        return attrs.get(STATUS_KEY) if isinstance(attrs, dict) else None
    return None


def _crc32c() -> Any:
    from zarr.codecs import Crc32cCodec

    return Crc32cCodec()


def _compressors(opts: ZarrWriteOptions) -> Any:
    """Blosc (bitshuffle) codec, then a crc32c checksum on zarr v3 (v2 has no checksum codec)."""
    if opts.compressor == "none":
        return None if opts.version == "0.4" else [_crc32c()]
    if opts.version == "0.4":
        import numcodecs

        return numcodecs.Blosc(cname=opts.compressor, clevel=int(opts.clevel), shuffle=numcodecs.Blosc.BITSHUFFLE)
    from zarr.codecs import BloscCname, BloscCodec

    cname = BloscCname(opts.compressor)  # validated in ZarrWriteOptions
    return [BloscCodec(cname=cname, clevel=int(opts.clevel), shuffle="bitshuffle"), _crc32c()]


def _create(out: str, image: WriteInput, layouts: list[LevelLayout], job: dict[str, Any]) -> None:
    """Create the group (status in_progress), every level array, and ``job.json``.

    The store is built in a sibling temp folder and renamed into place, so a crash
    while creating leaves either no output or a complete, empty ``in_progress`` one.
    """
    opts: ZarrWriteOptions = job["opts"]
    status = status_record(IN_PROGRESS, job["fingerprint"], units=job["units"])
    write_job_record(out, _job_record(job))
    building = creating_path(out)
    try:
        _build_store(building, image, layouts, opts, status)
        os.rename(building, out)
    except Exception as exc:
        shutil.rmtree(building, ignore_errors=True)  # never leave a half-built store behind
        if os.path.exists(out):
            raise OutputInUseError(
                f"{out} was created by another process while this conversion was preparing it "
                f"(a writer that does not take the lock {lock_path(out)}?); nothing of it was changed"
            ) from exc
        raise
    fsync_dir(os.path.dirname(out))


def _build_store(
    building: str, image: WriteInput, layouts: list[LevelLayout], opts: ZarrWriteOptions, status: dict[str, Any]
) -> None:
    """Create the group (with ``status``) and every level array in the folder ``building``."""
    import zarr

    v3 = opts.version == "0.5"
    zarr.open_group(building, mode="w", zarr_format=3 if v3 else 2, attributes={STATUS_KEY: status})
    for layout in layouts:
        _create_level(building, layout, image, opts)


def _create_level(
    store: Any, layout: LevelLayout, image: WriteInput, opts: ZarrWriteOptions, *, overwrite: bool = False
) -> None:
    """Create the (empty) array of one pyramid level in ``store`` (a path or a zarr store).

    ``overwrite``: replace what is at the level's path (zarr deletes every object below it first).
    """
    import zarr

    v3 = opts.version == "0.5"
    extra: dict[str, Any] = (
        {"dimension_names": _ngff_meta.AXIS_NAMES, "shards": layout.shards}
        if v3
        else {"chunk_key_encoding": {"name": "v2", "separator": "/"}}
    )
    zarr.create_array(
        store,
        name=layout.path,
        shape=layout.shape,
        chunks=layout.chunks,
        dtype=image.dtype,
        compressors=_compressors(opts),
        fill_value=0,
        zarr_format=3 if v3 else 2,
        config={"write_empty_chunks": True},
        overwrite=overwrite,
        **extra,
    )


def _level_document(layout: LevelLayout, image: WriteInput, opts: ZarrWriteOptions) -> dict[str, Any]:
    """The array metadata document (``zarr.json`` / ``.zarray``) this job writes for ``layout``, attributes left out."""
    from zarr.storage import MemoryStore

    documents: dict[str, Any] = {}
    _create_level(MemoryStore(store_dict=documents), layout, image, opts)
    name = "zarr.json" if opts.version == "0.5" else ".zarray"
    document = json.loads(documents[f"{layout.path}/{name}"].to_bytes())
    document.pop("attributes", None)
    return document


def _same_level(raw: bytes, expected: dict[str, Any]) -> bool:
    """True when the stored metadata document ``raw`` describes the array ``expected`` (attributes aside)."""
    try:
        found = json.loads(raw.decode("utf-8"))
    except ValueError:
        return False
    if not isinstance(found, dict):
        return False
    found.pop("attributes", None)
    return found == expected


def _create_remote(remote: RemoteOutput, image: WriteInput, layouts: list[LevelLayout], job: dict[str, Any]) -> None:
    """Create what is missing or not this job's of a remote output: the group (status in progress), every level.

    The job record exists already (written first, by :meth:`RemoteOutput.clear` or the
    killed run). Each metadata document is one PUT; after a kill while creating, a resume
    creates the rest. What a resume keeps must be this job's own: a group whose status
    names another fingerprint gets this job's status (its old attributes go), and a level
    whose metadata document differs from the one this job writes (shape, dtype, chunks,
    shards, format, codecs: what a killed overwrite of another image left) is created
    again, its objects and this job's markers of it deleted (a level not created yet
    costs one LIST of its empty prefix). The new image is never written through another
    array's metadata.
    """
    import zarr

    opts: ZarrWriteOptions = job["opts"]
    fmt: Literal[2, 3] = 3 if opts.version == "0.5" else 2
    status = status_record(IN_PROGRESS, job["fingerprint"], units=job["units"])
    store = remote.loc.zarr_store(read_only=False)
    try:
        group = zarr.open_group(store, mode="r", zarr_format=fmt)
    except (FileNotFoundError, zarr.errors.GroupNotFoundError):
        group = None
    recorded = None if group is None else dict(group.attrs).get(STATUS_KEY)
    if group is None or not isinstance(recorded, dict) or recorded.get("fingerprint") != job["fingerprint"]:
        if isinstance(recorded, dict):
            logger.warning("%s: replacing the group metadata another conversion left", remote.url)
        other = (".zgroup", ".zattrs", ".zarray") if fmt == 3 else ("zarr.json", ".zarray")
        remote.loc.delete_many(list(other))  # another format's root documents: not this job's
        if group is None:
            zarr.create_group(store, zarr_format=fmt, attributes={STATUS_KEY: status})
        else:  # v2 killed between .zgroup and .zattrs, or another job's group: this job's status only
            zarr.open_group(store, mode="r+", zarr_format=fmt).attrs.put({STATUS_KEY: status})
    name = "zarr.json" if fmt == 3 else ".zarray"
    for layout in layouts:
        expected = _level_document(layout, image, opts)
        found = remote.read(f"{layout.path}/{name}")
        if found is not None and _same_level(found, expected):
            continue
        # absent (not created yet, or a killed overwrite left only the old data or another format's
        # documents) or another array's: whatever lies below the level's prefix is not this job's
        _create_level(store, layout, image, opts, overwrite=True)
        if found is not None:
            logger.warning("%s: level %s held another array's metadata; created it again", remote.url, layout.path)
            remote.units_prefix("done", job["fingerprint"]).join(layout.path).delete(prefix=True)


_ZARR_PARTIAL = re.compile(r".+\.[0-9a-f]{32}\.partial")
"""zarr's LocalStore temp names: ``<key>.<uuid4 hex>.partial`` (renamed into place when whole)."""


def _clean_leftovers(out: str) -> int:
    """Remove what a killed run of *this* output left: zarr temp writes and half-built stores.

    Called only once ``out`` is known to be ours (being created, or resumed).
    """
    removed = 0
    for building in creating_leftovers(out):
        shutil.rmtree(building, ignore_errors=True)
        removed += 1
    for folder, _, files in os.walk(out):
        for name in files:
            if _ZARR_PARTIAL.fullmatch(name):
                with contextlib.suppress(OSError):
                    os.remove(os.path.join(folder, name))
                    removed += 1
    return removed


def _done_units(progress_dir: str, level: str, fingerprint: str) -> set[str]:
    """Names of the units of ``level`` whose markers exist and carry ``fingerprint``."""
    folder = os.path.join(progress_dir, level)
    os.makedirs(folder, exist_ok=True)
    done = set()
    for name in os.listdir(folder):
        path = os.path.join(folder, name)
        if name.endswith(".tmp"):
            with contextlib.suppress(OSError):
                os.remove(path)
            continue
        try:
            with open(path, encoding="utf-8") as fh:
                record = json.load(fh)
        except (OSError, ValueError):
            continue
        if isinstance(record, dict) and record.get("fingerprint") == fingerprint:
            done.add(name)
    return done


def _unit_key_path(out: str, layout: LevelLayout, index: tuple[int, ...], v3: bool) -> str:
    """File holding unit ``index`` (a shard or a chunk) in a local store."""
    parts = [str(i) for i in index]
    return os.path.join(out, layout.path, *(["c", *parts] if v3 else parts))


def _read_record(marker: str, loc: Location | None = None) -> dict[str, Any]:
    if loc is not None:  # a marker object of a remote output
        from ..storage import Location

        return json.loads(Location(marker, loc.options).read_bytes())
    with open(marker, encoding="utf-8") as fh:
        return json.load(fh)


def _unit_is_intact(
    out: str,
    layout: LevelLayout,
    index: tuple[int, ...],
    marker: str,
    v3: bool,
    pipeline: str = "auto",
    remote_keys: set[str] | None = None,
    loc: Location | None = None,
) -> bool:
    """True when the unit's key exists and its decoded pixels match the recorded CRC32.

    ``remote_keys``, ``loc``: the keys below a remote output (one LIST) and its location.
    """
    if remote_keys is not None:
        parts = [str(i) for i in index]
        if "/".join([layout.path, *(["c", *parts] if v3 else parts)]) not in remote_keys:
            return False
    elif not os.path.isfile(_unit_key_path(out, layout, index, v3)):
        return False
    try:
        block = np.asarray(_Target(out, layout.path, pipeline, loc=loc).open()[layout.region(index)])
        return _crc32(block) == _read_record(marker, loc).get("crc32")
    except Exception:  # undecodable chunk (crc32c codec, blosc): redo the unit
        return False


def verify_units(out: str, layouts: list[LevelLayout], job: dict[str, Any]) -> list[str]:
    """Drop the records of units whose stored data is missing or differs; return their markers."""
    v3 = job["opts"].version == "0.5"
    remote: RemoteOutput | None = job.get("remote")
    keys = None if remote is None else set(remote.loc.find())
    loc = None if remote is None else remote.loc
    done = _done_map(job, layouts)
    dropped = []
    for layout in layouts:
        for index in np.ndindex(*layout.grid):
            marker = _marker_path(job["progress_dir"], layout.path, index)
            if _marker_name(index) not in done[layout.path]:
                continue
            if not _unit_is_intact(out, layout, index, marker, v3, job["opts"].codec_pipeline, keys, loc):
                if loc is None:
                    os.remove(marker)
                else:
                    from ..storage import Location

                    Location(marker, loc.options).delete()
                dropped.append(marker)
    return dropped


def _done_map(job: dict[str, Any], layouts: list[LevelLayout]) -> dict[str, set[str]]:
    """Names of the done-markers of every level: one listing per level locally, one LIST in all remotely.

    Remote markers carry the fingerprint in their prefix (``<out>.progress/done-<fp>/``),
    so they are not read one by one.
    """
    remote: RemoteOutput | None = job.get("remote")
    if remote is None:
        return {layout.path: _done_units(job["progress_dir"], layout.path, job["fingerprint"]) for layout in layouts}
    done: dict[str, set[str]] = {layout.path: set() for layout in layouts}
    for key in remote.units_done("done", job["fingerprint"]):
        level, _, name = key.partition("/")
        if level in done and name.endswith(".done") and "/" not in name:
            done[level].add(name)
    return done


# ---------------------------------------------------------------------- graphs
def _contributors(layouts: list[LevelLayout], k: int, index: tuple[int, ...]) -> list[tuple[int, ...]]:
    """Units of level ``k - 1`` whose 2x-binned pixels make up unit ``index`` of level ``k`` (row-major Y, X)."""
    region, prev = layouts[k].region(index), layouts[k - 1]
    ranges = []
    for axis in (3, 4):
        lo, hi = 2 * region[axis].start, min(2 * region[axis].stop, prev.shape[axis])
        ranges.append(range(lo // prev.unit[axis], -(-hi // prev.unit[axis])))
    return [(*index[:3], y, x) for y in ranges[0] for x in ranges[1]]


def _consumer(layouts: list[LevelLayout], k: int, index: tuple[int, ...]) -> tuple[int, ...]:
    """The unit of level ``k + 1`` that unit ``index`` of level ``k`` feeds."""
    region, nxt = layouts[k].region(index), layouts[k + 1]
    return (*index[:3], region[3].start // 2 // nxt.unit[3], region[4].start // 2 // nxt.unit[4])


def _binnable(layouts: list[LevelLayout], k: int) -> bool:
    """True when level ``k``'s units can be binned one by one.

    That needs the same T/C/Z units as level ``k + 1`` and even Y/X unit sizes (or one
    unit spanning the axis), so that no 2x2 window straddles two units.
    """
    this, nxt = layouts[k], layouts[k + 1]
    even = all(this.unit[a] % 2 == 0 or this.unit[a] >= this.shape[a] for a in (3, 4))
    return even and this.unit[:3] == nxt.unit[:3]


def _pyramid_graph(image: WriteInput, out: str, layouts: list[LevelLayout], job: dict[str, Any]) -> Delayed | None:
    """One task per unit not yet done, all levels in one graph; None when nothing is left.

    Level ``k + 1`` units are assembled from the binned blocks that level ``k``'s tasks
    return (no re-read of level ``k``) when all their contributors are written in this
    run; otherwise (after a resume) they read level ``k`` back from the store.
    """
    from ..meta import regular_chunks

    progress_dir, fingerprint, method = job["progress_dir"], job["fingerprint"], job["method"]
    n = len(layouts)
    names = [f"ome-arrow-zarr-write-{tokenize(fingerprint, k)}" for k in range(n)]
    todo = []
    done_map = _done_map(job, layouts)
    for layout in layouts:
        done = done_map[layout.path]
        todo.append({i for i in np.ndindex(*layout.grid) if _marker_name(i) not in done})
    from_memory: list[set[tuple[int, ...]]] = [set()]
    for k in range(1, n):
        ok = _binnable(layouts, k - 1)
        from_memory.append({i for i in todo[k] if ok and all(c in todo[k - 1] for c in _contributors(layouts, k, i))})
    blocks = image.array
    units = regular_chunks(layouts[0].shape, layouts[0].unit)
    if blocks.chunks != units:  # dask's own method choice imports distributed (0.2-0.5 s) to look for a client
        blocks = blocks.rechunk(units, method=None if active_client() is not None else "tasks")
    layer: dict[Any, Any] = {}
    unconsumed = []
    for k, layout in enumerate(layouts):
        target = _Target(out, layout.path, job["opts"].codec_pipeline, job["stage"], job["run"], job.get("loc"))
        for index in sorted(todo[k]):
            feeds_next = k + 1 < n and _consumer(layouts, k, index) in from_memory[k + 1]
            bin_method = method if feeds_next else None
            marker = _marker_path(progress_dir, layout.path, index)
            region = layout.region(index)
            key = (names[k], *index)
            if k == 0:
                layer[key] = (_store_and_bin, (blocks.name, *index), target, region, marker, fingerprint, bin_method)
            elif index in from_memory[k]:
                parts = [(names[k - 1], *c) for c in _contributors(layouts, k, index)]
                n_x = len({c[4] for c in _contributors(layouts, k, index)})
                layer[key] = (_store_from_parts, parts, n_x, target, region, marker, fingerprint, bin_method)
            else:
                after = [(names[k - 1], *c) for c in _contributors(layouts, k, index) if c in todo[k - 1]]
                pipeline, loc = job["opts"].codec_pipeline, job.get("loc")
                previous = _Target(out, layouts[k - 1].path, pipeline, None, job["run"], loc)
                args = (target, region, method, marker, fingerprint, bin_method, after)
                layer[key] = (_downsample_unit, previous, *args)
            if not feeds_next:
                unconsumed.append(key)
    if not layer:
        return None
    final = f"ome-arrow-zarr-write-{tokenize(fingerprint)}-total"
    layer[final] = (sum, unconsumed)  # only tasks returning 1: binned blocks are released by their consumer
    graph = HighLevelGraph.from_collections(final, layer, dependencies=[blocks])  # type: ignore[list-item]  # dask types Array.__dask_scheduler__ as a plain function, not the staticmethod its protocol names
    return Delayed(final, graph)


def _written_windows(out: str, key: str, meta: ImageMeta) -> list[dict[str, float]] | None:
    """``omero`` windows from the smallest level just written: per-channel min / max.

    The level is read whole when it holds at most ``preview.PREVIEW_MAX_BYTES``; otherwise a
    bounded sample of one plane (see :func:`ome_arrow_dask.preview.sample_array`). Labels, bools,
    complex data and channels without finite values keep the dtype-range window.
    """
    import dask.array as da
    import zarr

    from ..preview import PREVIEW_MAX_BYTES, sample_array

    if meta.image_type == "label" or meta.dtype.kind not in "uif" or 0 in meta.shape:
        return None
    try:
        array = zarr.open_array(store=_store_of(out), path=key, mode="r")
        if math.prod(array.shape) * meta.dtype.itemsize <= PREVIEW_MAX_BYTES:
            pixels = np.moveaxis(np.asarray(array[...]), 1, 0).reshape(array.shape[1], -1)
        else:
            found = sample_array(da.from_zarr(array), max_channels=array.shape[1])
            if found is None:
                return None
            pixels = found.pixels.reshape(found.pixels.shape[0], -1)
    except Exception as exc:  # display metadata must not fail a finished write; the damage stays for readers
        warnings.warn(
            f"{out}/{key}: could not read the written level back to set the omero display window ({exc}); "
            "the dtype range is used instead. Check the output with resume=True, verify=True (CLI --resume --verify)",
            stacklevel=2,
        )
        return None
    windows = []
    for values in pixels:
        finite = values[np.isfinite(values)] if values.dtype.kind == "f" else values
        if not finite.size:
            return None
        windows.append(_ngff_meta.data_window(meta.dtype, float(finite.min()), float(finite.max())))
    return windows


def _stage_folder(root: str, progress: str, opts: ZarrWriteOptions) -> str | None:
    """Where zarrs-encoded units are staged before their rename into ``root``; None writes through zarr-python.

    Staged keys of a killed run were never renamed, so they are deleted unread. A stage on
    another filesystem than the output (no atomic rename) falls back to zarr-python's pipeline.
    """
    if opts.codec_pipeline == "default" or (opts.codec_pipeline == "auto" and not zarrs_available()):
        return None
    stage = os.path.join(progress, "stage")
    os.makedirs(stage, exist_ok=True)
    for name in os.listdir(stage):  # the folder itself stays: progress watchers may be listing it
        shutil.rmtree(os.path.join(stage, name), ignore_errors=True)
    if os.stat(stage).st_dev != os.stat(root).st_dev:
        if opts.codec_pipeline == "zarrs":
            raise OmeArrowDaskError(
                f"codec_pipeline='zarrs' stages units in {stage}, which is on another filesystem than {root} "
                "(no atomic rename): use codec_pipeline='auto' or 'default'"
            )
        return None
    return stage


def _finalize(out: str, image: WriteInput, layouts: list[LevelLayout], job: dict[str, Any]) -> None:
    """Check every unit has a record, then write NGFF metadata and status complete at once."""
    import zarr

    done_map = _done_map(job, layouts)
    for layout in layouts:
        done = done_map[layout.path]
        if len(done) != math.prod(layout.grid):
            raise OmeArrowDaskError(
                f"{out}: level {layout.path} has {len(done)} of {math.prod(layout.grid)} units recorded; "
                "run again with resume=True"
            )
    opts: ZarrWriteOptions = job["opts"]
    paths = [layout.path for layout in layouts]
    remote: RemoteOutput | None = job.get("remote")
    if remote is not None:
        from ..storage import RemoteURL

        out = RemoteURL(remote.loc)  # the URL, carrying its storage options (see _store_of)
        job["lock"].check()  # a writer that lost its lock must not mark the output complete
    windows = _written_windows(out, layouts[-1].path, image.meta)
    attrs = _ngff_meta.group_attributes(image.meta, paths, job["method"], opts.version, windows)
    attrs[STATUS_KEY] = status_record("complete", job["fingerprint"], units=job["units"])
    zarr.open_group(_store_of(out, writable=True), mode="r+").attrs.put(attrs)  # one PUT remotely: atomic
    _drop_progress(job)


def _store_of(out: str, *, writable: bool = False) -> Any:
    """What zarr opens for the output ``out``: its path, or a remote output's ``FsspecStore``.

    A remote output is passed as a :class:`~ome_arrow_dask.storage.RemoteURL` (its
    location, with the storage options, travels with it).
    """
    loc = getattr(out, "loc", None)
    return out if loc is None else loc.zarr_store(read_only=not writable)


def _drop_progress(job: dict[str, Any]) -> None:
    """Remove the job's records (the progress folder, or a remote output's progress prefix)."""
    remote: RemoteOutput | None = job.get("remote")
    if remote is None:
        shutil.rmtree(job["progress_dir"], ignore_errors=True)
    else:
        remote.finish()


def write(image: WriteInput | OMEArrow, out: str | os.PathLike[str], **options: Any) -> str | os.PathLike[str]:
    """Write ``image`` (a :class:`~ome_arrow_dask.jobs.WriteInput` or an ``OMEArrow`` plan) as OME-Zarr to ``out``.

    Returns ``out``.

    Options are the fields of :class:`ZarrWriteOptions` (``chunks``, ``levels``,
    ``version``, ``compressor``, ``clevel``, ``shards``, ``overwrite``, ``resume``,
    ``verify``, ``verify_inputs``, ``progress``). Runs on the current dask scheduler
    (threads by default, or a ``distributed.Client``); each task writes whole chunks or
    shards. The job holds the lock ``<out>.lock`` while it runs.

    ``out`` may be a URL (``s3://bucket/out.ome.zarr``; ``storage_options=`` gives
    credentials, ``endpoint_url``, ...): written through zarr's ``FsspecStore`` with
    zarr-python's codec pipeline, crash-safe and resumable by the protocol of
    :mod:`ome_arrow_dask.jobs.object_store` (done markers as objects, NGFF metadata and
    ``complete`` last, the lock object ``<out>.lock``). An existing remote output is
    replaced (``overwrite``) only when a job of ours wrote it.

    Raises
    ------
    OmeArrowDaskError
        When ``out`` exists (without ``overwrite`` / ``resume``) or options are invalid.
    OutputIsInputError
        When ``out`` is an input of the plan, lies inside one or contains one (nothing is touched).
    OutputInUseError
        When another running conversion writes ``out``.
    InputChangedError
        With ``resume=True``, when ``out`` was started from another input or parameters,
        or an input file changed since (even with its mtime restored).

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from ome_arrow_dask import OMEArrow
    >>> path = os.path.join(tempfile.mkdtemp(), "img.ome.zarr")
    >>> _ = OMEArrow(np.zeros((8, 8), "u1")).export("ome-zarr", out=path, levels=2)
    >>> read_status(path)["status"]
    'complete'
    """
    storage_options = options.pop("storage_options", None)  # remote outputs only
    if is_url(os.fspath(out)) and options.get("codec_pipeline") == "zarrs":
        raise OmeArrowDaskError(
            f"{os.fspath(out)}: codec_pipeline='zarrs' writes local stores only; a remote output is written "
            "through zarr-python's pipeline (use codec_pipeline='auto' or 'default')"
        )
    opts = ZarrWriteOptions(**options)
    item = as_write_input(image)
    if is_url(os.fspath(out)):
        _write_remote(item, os.fspath(out), opts, storage_options)
        return out
    root = os.path.abspath(os.fspath(out))
    inputs = item.identity.input_paths
    check_output_not_input(root, inputs, job_paths=(progress_dir(root), lock_path(root)))  # before touching anything
    layouts = level_layouts(item.shape, opts)  # type: ignore[arg-type]
    with JobLock(root):  # a second job on this output is refused here, before it deletes or writes anything
        _run_job(item, root, layouts, opts)
    return out


def _write_remote(image: WriteInput, url: str, opts: ZarrWriteOptions, storage_options: Any) -> None:
    """Write to an object store (see :mod:`ome_arrow_dask.jobs.object_store`); holds ``<out>.lock`` while it runs."""
    from ..jobs import ObjectStoreLock, RemoteOutput
    from ..storage import location

    remote = RemoteOutput(location(url, storage_options))
    inputs = image.identity.input_paths
    check_output_not_input(remote.url, inputs, job_paths=(remote.progress.url, remote.lock.url))
    layouts = level_layouts(image.shape, opts)  # type: ignore[arg-type]
    with ObjectStoreLock(remote) as lock:  # a second live writer is refused before anything is deleted or written
        _run_job(image, remote.url, layouts, opts, remote, lock)


def _run_job(
    image: WriteInput,
    root: str,
    layouts: list[LevelLayout],
    opts: ZarrWriteOptions,
    remote: RemoteOutput | None = None,
    lock: ObjectStoreLock | None = None,
) -> None:
    """Create, resume or finish the output ``root``; the caller holds its lock (``lock`` for a ``remote`` one)."""
    records = image.identity.input_records(opts.verify_inputs)
    fingerprint = _fingerprint(image, layouts, opts, records_digest(records, opts.verify_inputs))
    job: dict[str, Any] = {
        "opts": opts,
        "fingerprint": fingerprint,
        "inputs": records,
        "progress_dir": str(progress_dir(root)) if remote is None else remote.units_prefix("done", fingerprint).url,
        "units": sum(math.prod(layout.grid) for layout in layouts),
        "method": "nearest" if image.meta.image_type == "label" else "mean",
        "remote": remote,
        "loc": None if remote is None else remote.loc,
        "lock": lock,
    }
    image.identity.validate_inputs()  # e.g. every header of a pattern stack, before any output is touched
    decision = _decide(root, opts, job)
    if remote is None:
        _clean_leftovers(root)  # ours (we hold the lock): half-built stores of a crashed or refused run
    if decision.mode == "done":
        _drop_progress(job)  # a kill during finalize may leave records
        return
    if remote is not None:
        _create_remote(remote, image, layouts, job)  # what a kill while creating left out, or all of it
        if opts.verify and not decision.fresh:
            verify_units(root, layouts, job)
    elif decision.fresh:
        os.makedirs(os.path.dirname(root) or ".", exist_ok=True)
        _create(root, image, layouts, job)
    elif opts.verify:
        verify_units(root, layouts, job)
    stage = None if remote is not None else _stage_folder(root, job["progress_dir"], opts)
    job["stage"], job["run"] = stage, uuid.uuid4().hex
    graph = _pyramid_graph(image, root, layouts, job)
    try:
        if graph is not None:
            run_graph(graph, opts.progress)
    finally:
        _forget_job(job["run"])
    _finalize(root, image, layouts, job)
