"""Write OME-Arrow Parquet that ome-arrow 0.1.0 reads, one block at a time.

``layout="dataset"`` (default) writes what ome-arrow's ``export(how="parquet")`` writes,
the typed chunk dataset directory: ``images.parquet``, ``chunks.parquet`` (one row group
per chunk, chunk ids in T→C→Z→Y→X order), ``index.parquet`` and, last,
``_ome_arrow_dataset.json``. Each file is written to a temporary name, fsynced and
renamed; a stale manifest is removed first, so an interrupted write is visibly
incomplete. ``images.parquet`` carries extra columns ome-arrow ignores
(``physical_size_*``, units, ``acquisition_datetime``) and full channel dicts in
``channels_json``.

``layout="struct"`` writes a single-row file with one struct column: the byte payload
(``payload="bytes"``, dtype preserved, optional per-chunk ``chunk_compression``), the
list payload (``payload="list"``: ``list<uint16>`` chunks, values must be
uint16-representable) or planes (``payload="planes"``, readable by pre-0.1 readers and
ome-arrow's ``slice``). A single row must be assembled in memory, so this layout holds
the encoded payload (not the decoded image) in memory.

Every file has page checksums (``write_page_checksum=True``). Default chunk shape:
``(1, 1, min(Z, 16), min(Y, 512), min(X, 512))``.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from dask.base import tokenize

from ..arrow.codec import encode_record, resolve_chunk_shape
from ..arrow.schema import FILE_METADATA, OME_ARROW_TYPE, OME_ARROW_VERSION, channel_dicts
from ..errors import IncompleteOutputError, OmeArrowDaskError
from ..graph import run_graph
from ..jobs import (
    COMPLETE,
    IN_PROGRESS,
    STATUS_KEY,
    Existing,
    JobDecision,
    JobLock,
    WriteInput,
    atomic_write_text,
    check_output_not_input,
    check_verify_inputs,
    commit,
    decide,
    is_url,
    job_fingerprint,
    lock_path,
    package_version,
    progress_dir,
    read_job_record,
    records_digest,
    status_record,
    tmp_path,
    write_job_record,
)
from ..meta import ImageMeta, regular_chunks
from ._input import as_write_input

if TYPE_CHECKING:
    from ..core import OMEArrow
    from ..jobs import ObjectStoreLock, RemoteOutput
    from ..storage import Location

MANIFEST = "_ome_arrow_dataset.json"
DATASET_METADATA = {**FILE_METADATA, b"ome.arrow.layout": b"typed-chunk-dataset"}

_I32 = pa.int32()
IMAGE_SCHEMA = pa.schema(
    [
        ("image_id", pa.string()),
        ("name", pa.string()),
        ("image_type", pa.string()),
        ("dtype", pa.string()),
        *((f"size_{a}", _I32) for a in "tczyx"),
        ("layout", pa.string()),
        *((f"chunk_{a}", _I32) for a in "tczyx"),
        ("compression", pa.string()),
        ("channels_json", pa.string()),
        *((f"physical_size_{a}", pa.float64()) for a in "xyz"),
        *((f"physical_size_{a}_unit", pa.string()) for a in "xyz"),
        ("acquisition_datetime", pa.timestamp("us", tz="UTC")),
    ]
)
"""ome-arrow's images table plus extra columns it ignores (after ``channels_json``)."""

_COORDS = [(a, _I32) for a in "tczyx"] + [(f"shape_{a}", _I32) for a in "tczyx"]
CHUNK_SCHEMA = pa.schema(
    [
        ("image_id", pa.string()),
        ("chunk_id", pa.int64()),
        *_COORDS,
        ("dtype", pa.string()),
        ("pixel_bytes", pa.large_binary()),
    ]
)
INDEX_SCHEMA = pa.schema(
    [
        ("image_id", pa.string()),
        ("chunk_id", pa.int64()),
        ("row_group_id", _I32),
        ("row_index_in_group", _I32),
        ("fragment_path", pa.string()),
        *_COORDS,
    ]
)


def _writer(path: Any, schema: pa.Schema, compression: str | None, **kwargs: Any) -> pq.ParquetWriter:
    kwargs.setdefault("use_dictionary", False)  # dictionary pages over pixel payloads only cost
    return pq.ParquetWriter(path, schema, compression=compression or "none", write_page_checksum=True, **kwargs)


def _write_table(table: pa.Table, final: Path, compression: str | None) -> None:
    tmp = tmp_path(final)
    try:
        with _writer(tmp, table.schema, compression) as writer:
            writer.write_table(table)
        commit(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)


def _table_bytes(table: pa.Table, compression: str | None) -> bytes:
    """``table`` as the bytes of a Parquet file (for one PUT to an object store)."""
    sink = pa.BufferOutputStream()
    with _writer(sink, table.schema, compression) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


# ---------------------------------------------------------------------- dataset layout
def _image_row(meta: ImageMeta, image_id: str, chunk: Sequence[int], compression: str | None) -> dict[str, Any]:
    ps = meta.physical_size
    row: dict[str, Any] = {
        "image_id": image_id,
        "name": meta.name if meta.name is not None else image_id,
        "image_type": meta.image_type,
        "dtype": meta.dtype.name,
        "layout": "block",
        "compression": compression,
        "channels_json": json.dumps(channel_dicts(meta)),
        "acquisition_datetime": meta.acquisition_datetime,
    }
    for axis, size, step in zip("tczyx", meta.shape, chunk, strict=True):
        row[f"size_{axis}"], row[f"chunk_{axis}"] = size, step
    for axis in "xyz":
        row[f"physical_size_{axis}"] = getattr(ps, axis)
        row[f"physical_size_{axis}_unit"] = getattr(ps, f"{axis}_unit")
    return row


def _chunk_row(image_id: str, chunk_id: int, origin: Sequence[int], block: np.ndarray) -> dict[str, Any]:
    """The columns of one chunk row; ``pixel_bytes`` wraps ``block``'s memory without a copy.

    ``pixel_bytes`` is built from buffers, not with ``pa.array([memoryview(...)])``: pyarrow
    (26.0.1 at least) never releases the buffer export of a converted memoryview, which kept
    every written block alive (peak memory grew by one chunk per part file).
    """
    row: dict[str, Any] = {"image_id": [image_id], "chunk_id": [chunk_id]}
    for axis, start, size in zip("tczyx", origin, block.shape, strict=True):
        row[axis], row[f"shape_{axis}"] = [start], [size]
    row["dtype"] = [block.dtype.name]
    data = np.ascontiguousarray(block).reshape(-1).view(np.uint8)
    offsets = pa.py_buffer(np.array([0, data.size], dtype=np.int64))
    row["pixel_bytes"] = pa.LargeBinaryArray.from_buffers(pa.large_binary(), 1, [None, offsets, pa.py_buffer(data)])
    return row


_REFUSE_FOREIGN = "refusing to write into it or delete it (also with overwrite=True): choose another output path"


def inspect_dataset(out: Path) -> Existing:
    """What is at the dataset output ``out`` (:class:`~ome_arrow_dask.jobs.Existing`), from metadata only.

    A folder holding anything but an OME-Arrow dataset is foreign. The job record in
    ``<out>.progress`` makes an output in progress even before the folder exists (parts are
    written first); a complete dataset carries its status in the manifest. A file is an
    output (``overwrite`` replaces it by a dataset, as ome-arrow's writer does).
    """
    occupied = out.is_dir() and any(out.iterdir())
    if occupied and not (out / MANIFEST).exists() and not (out / "chunks.parquet").exists():
        return Existing.foreign(f"already exists and is not an OME-Arrow dataset; {_REFUSE_FOREIGN}")
    try:
        record = read_job_record(out)
    except IncompleteOutputError as exc:
        return Existing(kind="output", state=IN_PROGRESS, damaged=str(exc))
    if record is not None:  # an interrupted job of ours, whether or not it created the folder yet
        return Existing.output({**record, "status": IN_PROGRESS}, record)
    if not os.path.lexists(out):
        return Existing("absent")
    if out.is_dir() and not occupied:
        return Existing("empty")
    return Existing.output(_manifest_status(out) if out.is_dir() else None)


def _manifest_status(out: Path) -> Any:
    """The status our writer records in the manifest (None when absent or unreadable)."""
    try:
        return json.loads((out / MANIFEST).read_text(encoding="utf-8")).get(STATUS_KEY)
    except (OSError, ValueError, AttributeError):
        return None


def _fingerprint(image: WriteInput, chunk: Sequence[int], compression: str | None, ident: str, inputs: str) -> str:
    """The job fingerprint (:func:`~ome_arrow_dask.jobs.job_fingerprint`, as every writer computes it)."""
    params = {
        "layout": "typed-chunk-dataset",
        "source": image.identity.token,
        "dtype": str(image.dtype),
        "chunk_shape": [int(c) for c in chunk],
        "compression": compression,
        "image_id": ident,
        "package": package_version(),
        "inputs": inputs,  # digest of the input files' records (see jobs.fingerprint.input_records)
    }
    return job_fingerprint(params)


def _prepare_dir(out: Path) -> None:
    if out.is_file():
        out.unlink()  # as ome-arrow's writer does
    out.mkdir(parents=True, exist_ok=True)
    (out / MANIFEST).unlink(missing_ok=True)  # an interrupted overwrite must read as incomplete


def write_dataset(  # noqa: PLR0913 - the dataset layout's writer options
    image: WriteInput,
    out: Path,
    *,
    chunk_shape: Sequence[int] | None = None,
    compression: str | None = "zstd",
    image_id: str | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = False,
    verify_inputs: str = "stat",
) -> None:
    """Write the typed chunk dataset directory; resumable after a crash.

    Chunks are computed in parallel (one dask task per chunk), each committed as an
    uncompressed one-row part file in ``<out>.progress/parts/`` (temp + fsync + rename,
    so a part that exists is whole). Then the parts are compacted, in chunk order, into
    ``chunks.parquet`` (one row group per chunk, compressed once), followed by
    ``images.parquet``, ``index.parquet`` and, last, the manifest. ``resume=True`` keeps
    the parts of an interrupted run with the same fingerprint and computes only the rest;
    ``verify_inputs`` (``"stat"`` or ``"content"``) says how it checks that the input files
    did not change (see :func:`~ome_arrow_dask.jobs.input_records`). What happens to an
    existing ``out`` is decided by :func:`~ome_arrow_dask.jobs.decide`, as for every writer;
    the caller holds the job lock.
    """
    meta = image.meta
    chunk = resolve_chunk_shape(chunk_shape, meta.shape, struct=False)
    ident = image_id or meta.id or meta.name or "image-00000"
    mode = check_verify_inputs(verify_inputs)
    inputs = image.identity.input_records(mode)
    fingerprint = _fingerprint(image, chunk, compression, ident, records_digest(inputs, mode))
    existing = inspect_dataset(out)  # before touching <out>.progress
    decision = decide(
        out, overwrite=overwrite, resume=resume, fingerprint=fingerprint, existing=existing, inputs=inputs,
        verify_inputs=mode,
    )  # fmt: skip
    if decision.mode == "done":
        return
    parts = _prepare_parts(out, decision, inputs, mode)
    _prepare_dir(out)
    _write_parts(image, chunk, ident, parts, progress)
    n_chunks = math.prod(-(-size // step) for size, step in zip(meta.shape, chunk, strict=True))
    index_rows = _compact_parts(parts, out / "chunks.parquet", compression, n_chunks, progress)
    _phase_title(3, "writing images.parquet, index.parquet and the manifest", progress)
    with _PhaseBar(3, progress) as bar:
        images = pa.Table.from_pylist([_image_row(meta, ident, chunk, compression)], schema=IMAGE_SCHEMA)
        _write_table(images.replace_schema_metadata(DATASET_METADATA), out / "images.parquet", compression)
        bar.update()
        index = pa.Table.from_pylist(index_rows, schema=INDEX_SCHEMA)
        _write_table(index.replace_schema_metadata(DATASET_METADATA), out / "index.parquet", compression)
        bar.update()
        _write_manifest(out, meta, chunk, compression, len(index_rows), fingerprint)
        bar.update()
    shutil.rmtree(parts.parent, ignore_errors=True)


def _prepare_parts(out: Path, decision: JobDecision, inputs: dict[str, str], verify_inputs: str) -> Path:
    """Return the parts folder: kept when the decision resumes the job, else started empty."""
    progress = progress_dir(out)
    if decision.fresh:
        shutil.rmtree(progress, ignore_errors=True)
    parts = progress / "parts"
    parts.mkdir(parents=True, exist_ok=True)
    status = status_record(IN_PROGRESS, decision.fingerprint)
    write_job_record(out, {**status, "verify_inputs": verify_inputs, "inputs": inputs})
    for leftover in parts.glob("*.tmp"):
        leftover.unlink(missing_ok=True)
    return parts


def _part_path(parts: Path, chunk_id: int) -> Path:
    return parts / f"part-{chunk_id:09d}.parquet"


def _part_is_whole(path: Path) -> bool:
    try:
        return pq.read_metadata(path).num_rows == 1
    except (OSError, pa.ArrowException):
        return False


def _store_part(block: np.ndarray, ident: str, chunk_id: int, origin: tuple[int, ...], path: Path | Location) -> int:
    """Store one chunk as a one-row part file (temp + rename), or as one write-once object (one PUT)."""
    table = pa.table(_chunk_row(ident, chunk_id, origin, np.ascontiguousarray(block)), schema=CHUNK_SCHEMA)
    if isinstance(path, Path):
        _write_table(table, path, None)
    else:
        path.write_bytes(_table_bytes(table, None))
    return 1


DATASET_PHASES = 3
"""Phases of a dataset write shown with ``progress=True``: parts, compaction, small files."""


def _phase_title(phase: int, text: str, enabled: bool) -> None:
    """Print ``[phase/3] text`` on its own line (the stream dask's ProgressBar draws on)."""
    if enabled:
        sys.stdout.write(f"[{phase}/{DATASET_PHASES}] {text}\n")
        sys.stdout.flush()


class _PhaseBar:
    """A text progress bar for a phase the writer runs itself, drawn like dask's ProgressBar.

    Used as a context manager around ``total`` steps, each reported with :meth:`update`;
    redraws at most every ``dt`` seconds and always at the end. Prints nothing unless
    ``enabled``.
    """

    def __init__(self, total: int, enabled: bool, *, width: int = 40, dt: float = 0.1) -> None:
        self.total = total
        self.enabled = enabled
        self.done = 0
        self._width = width
        self._dt = dt
        self._start = time.perf_counter()
        self._drawn = -math.inf
        self._shown = -1  # steps done at the last draw

    def __enter__(self) -> _PhaseBar:
        self._start = time.perf_counter()
        self._draw()
        return self

    def update(self, steps: int = 1) -> None:
        """Count ``steps`` more steps done; redraw when ``dt`` has passed or the phase is done."""
        self.done += steps
        if self.done >= self.total or time.perf_counter() - self._drawn >= self._dt:
            self._draw()

    def _draw(self) -> None:
        if not self.enabled:
            return
        from dask.utils import format_time

        now = time.perf_counter()
        self._drawn, self._shown = now, self.done
        frac = min(self.done / self.total, 1.0) if self.total else 1.0
        bar = "#" * int(self._width * frac)
        sys.stdout.write(
            f"\r[{bar:<{self._width}}] | {int(100 * frac)}% Completed | {self.done}/{self.total} | "
            f"{format_time(now - self._start)}"
        )
        sys.stdout.flush()

    def __exit__(self, *exc: object) -> None:
        if self._shown != self.done:
            self._draw()
        if self.enabled:
            sys.stdout.write("\n")
            sys.stdout.flush()


def _write_parts(image: WriteInput, chunk: Sequence[int], ident: str, parts: Path | Location, progress: bool) -> None:
    """One task per chunk not yet stored as a whole part file (or part object under a remote prefix: one LIST)."""
    from dask.delayed import Delayed
    from dask.highlevelgraph import HighLevelGraph

    array = image.to_dask()
    grid = regular_chunks(array.shape, chunk)
    blocks = array.rechunk(grid)
    offsets = [np.concatenate([[0], np.cumsum(axis)[:-1]]).astype(int) for axis in grid]
    name = f"ome-arrow-parquet-part-{tokenize(blocks.name, str(parts))}"
    layer: dict[Any, Any] = {}
    stored = None if isinstance(parts, Path) else set(parts.find())  # part objects are whole once listed
    for chunk_id, index in enumerate(np.ndindex(*blocks.numblocks)):
        path: Path | Location
        if isinstance(parts, Path):
            path = _part_path(parts, chunk_id)
            if path.exists() and _part_is_whole(path):
                continue
        else:
            path = parts.join(_part_path(Path(), chunk_id).name)
            if path.name in (stored or ()):
                continue
        origin = tuple(int(offsets[axis][k]) for axis, k in enumerate(index))
        layer[(name, chunk_id)] = (_store_part, (blocks.name, *index), ident, chunk_id, origin, path)
    n_chunks = math.prod(blocks.numblocks)
    if not layer:
        _phase_title(1, f"all {n_chunks} chunk parts already written in {_shown(parts)}", progress)
        return
    _phase_title(1, f"writing {len(layer)} of {n_chunks} chunk parts into {_shown(parts)}", progress)
    total = f"{name}-total"
    layer[total] = (sum, list(layer))
    graph = Delayed(total, HighLevelGraph.from_collections(total, layer, dependencies=[blocks]))
    run_graph(graph, progress)


def _compact_parts(
    parts: Path, final: Path, compression: str | None, n_chunks: int, progress: bool = False
) -> list[dict[str, Any]]:
    """Stream the part files, in chunk order, into ``final`` (one row group each); return index rows.

    One part (one chunk) is in memory at a time: it is read, written as its own row group
    and dropped before the next is read; only the small index rows accumulate.
    """
    paths = sorted(parts.glob("part-*.parquet"))
    if len(paths) != n_chunks:
        raise OmeArrowDaskError(f"{parts}: {len(paths)} of {n_chunks} chunk parts exist; run again with resume=True")
    _phase_title(2, f"compacting {n_chunks} chunk parts into {final}", progress)
    tmp = tmp_path(final)
    try:
        with _writer(tmp, _COMPACT_SCHEMA, compression, write_statistics=["chunk_id"]) as w:
            index_rows = _compact_into(w, ((path, lambda p=path: p) for path in paths), n_chunks, progress)
        commit(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
    return index_rows


_COMPACT_SCHEMA = CHUNK_SCHEMA.with_metadata(DATASET_METADATA)


def _compact_into(writer: pq.ParquetWriter, parts: Any, n_chunks: int, progress: bool) -> list[dict[str, Any]]:
    """Write the parts ``(name, source)`` in chunk order, one row group each; return the index rows.

    One part (one chunk) is in memory at a time: it is read, written and dropped before
    the next; only the small index rows accumulate.
    """
    index_rows = []
    with _PhaseBar(n_chunks, progress) as bar:
        for expected_id, (where, source) in enumerate(parts):
            table = pq.read_table(source(), schema=CHUNK_SCHEMA)
            row = table.drop_columns(["pixel_bytes"]).to_pylist()[0]  # no Python copy of the pixels
            if row["chunk_id"] != expected_id:
                raise OmeArrowDaskError(f"{where}: holds chunk {row['chunk_id']}, expected {expected_id}")
            writer.write_table(table)
            del table  # release this chunk before reading the next
            origin = [row[a] for a in "tczyx"]
            shape = [row[f"shape_{a}"] for a in "tczyx"]
            index_rows.append(_index_row(row["image_id"], expected_id, origin, shape))
            bar.update()
    return index_rows


def _index_row(image_id: str, chunk_id: int, origin: Sequence[int], shape: Sequence[int]) -> dict[str, Any]:
    row: dict[str, Any] = {
        "image_id": image_id,
        "chunk_id": chunk_id,
        "row_group_id": chunk_id,
        "row_index_in_group": 0,
        "fragment_path": "chunks.parquet",
    }
    for axis, start, size in zip("tczyx", origin, shape, strict=True):
        row[axis], row[f"shape_{axis}"] = int(start), int(size)
    return row


def _write_manifest(
    out: Path, meta: ImageMeta, chunk: Sequence[int], compression: str | None, count: int, fingerprint: str
) -> None:
    files = {}
    for name in ("images.parquet", "chunks.parquet", "index.parquet"):
        footer = pq.read_metadata(out / name)
        files[name] = _file_entry(footer, (out / name).stat().st_size)
    manifest = _manifest(meta, chunk, compression, count, fingerprint, files)
    atomic_write_text(out / MANIFEST, json.dumps(manifest, indent=2))


def _file_entry(footer: pq.FileMetaData, size: int) -> dict[str, int]:
    """The manifest's record of one table file."""
    return {"num_rows": footer.num_rows, "num_row_groups": footer.num_row_groups, "bytes": int(size)}


def _manifest(
    meta: ImageMeta,
    chunk: Sequence[int],
    compression: str | None,
    count: int,
    fingerprint: str,
    files: dict[str, dict[str, int]],
) -> dict[str, Any]:
    """The dataset manifest (``status: complete``, with our status record and the ``files`` written)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        ours = version("ome-arrow-dask")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        ours = "unknown"
    size_mb = math.prod(chunk) * meta.dtype.itemsize / 2**20
    manifest = {
        "type": OME_ARROW_TYPE,
        "version": OME_ARROW_VERSION,
        "layout": "typed-chunk-dataset",
        "image_count": 1,
        "chunk_count": count,
        "choice": {
            "layout": "block",
            "chunk_shape": list(chunk),
            "compression": compression,
            "rationale": f"ome-arrow-dask export: chunk_shape={tuple(chunk)}, about {size_mb:.3g} MB per chunk",
        },
        "package_versions": {"ome-arrow-dask": ours, "pyarrow": pa.__version__},
        "status": "complete",
        "files": files,
        STATUS_KEY: status_record(COMPLETE, fingerprint),  # what a resume compares (ome-arrow ignores it)
    }
    return manifest


# ---------------------------------------------------------------------- struct layout
def write_struct(
    image: WriteInput,
    out: Path,
    *,
    payload: str = "bytes",
    chunk_shape: Sequence[int] | None = None,
    chunk_compression: str | None = None,
    column_name: str = "ome_arrow",
    compression: str | None = "zstd",
) -> None:
    """Write the single-row file (temp + rename)."""
    table = _struct_table(image, payload, chunk_shape, chunk_compression, column_name)
    if out.is_dir():
        raise OmeArrowDaskError(f"{out}: is a directory; layout='struct' writes a single file")
    _write_table(table, out, compression)


def _struct_table(
    image: WriteInput,
    payload: str = "bytes",
    chunk_shape: Sequence[int] | None = None,
    chunk_compression: str | None = None,
    column_name: str = "ome_arrow",
) -> pa.Table:
    """The one-row table of the struct layout (the encoded payload is in memory)."""
    if payload not in ("bytes", "list", "planes"):
        raise OmeArrowDaskError(f"payload must be 'bytes', 'list' or 'planes', got {payload!r}")
    codec = None if chunk_compression in (None, "none") else str(chunk_compression).lower()
    if codec not in (None, "zstd", "lz4"):
        raise OmeArrowDaskError(f"chunk_compression must be None, 'zstd' or 'lz4', got {chunk_compression!r}")
    if codec is not None and payload != "bytes":
        raise OmeArrowDaskError("chunk_compression applies to payload='bytes' only")
    record = encode_record(image.to_dask(), image.meta, payload=payload, chunk_shape=chunk_shape, codec=codec)
    return pa.Table.from_arrays([record], names=[column_name]).replace_schema_metadata(FILE_METADATA)


def write(
    image: WriteInput | OMEArrow,
    out: str | os.PathLike[str],
    *,
    layout: str = "dataset",
    **options: Any,
) -> str | os.PathLike[str]:
    """Write ``image`` as OME-Arrow Parquet; return ``out``.

    Parameters
    ----------
    image
        What to write (:class:`~ome_arrow_dask.jobs.WriteInput`, or an ``OMEArrow`` plan), read block by block.
    out
        Directory (``layout="dataset"``) or file (``layout="struct"``).
    layout
        ``"dataset"`` (default; the typed chunk dataset ome-arrow's export writes) or
        ``"struct"`` (single-row file with one struct column).
    **options
        ``chunk_shape`` (TCZYX or ZYX), ``compression`` (Parquet codec, default zstd);
        dataset: ``image_id``, ``resume`` (finish an interrupted write of the same plan and
        options), ``verify_inputs`` (how a resume checks the input files: ``"stat"``, the
        default, or ``"content"``), ``progress``; struct: ``payload`` ("bytes", "list", "planes"),
        ``chunk_compression`` (None, "zstd", "lz4"), ``column_name`` (default "ome_arrow");
        both: ``overwrite`` (replace an existing output; without it an existing ``out`` is refused),
        ``storage_options`` (for a URL ``out``: credentials, ``endpoint_url``, ...).

    ``out`` may be a URL (``s3://bucket/cells.ome.parquet``): the dataset is written by the
    protocol of :mod:`ome_arrow_dask.jobs.object_store` (each chunk part a write-once
    object, compacted into ``chunks.parquet`` in one upload that appears only when whole,
    the manifest last), resumable as on disk. An existing remote dataset is replaced
    (``overwrite``) only when a job of ours wrote it.

    Raises
    ------
    OmeArrowDaskError
        When ``out`` exists (without ``overwrite`` / ``resume``), is a folder of other files
        (refused even with ``overwrite``), or options are invalid.
    OutputIsInputError
        When ``out`` is an input of the plan, lies inside one or contains one (nothing is touched).
    OutputInUseError
        When another running conversion writes ``out`` (it holds ``<out>.lock``).
    InputChangedError
        With ``resume=True``, when an input file changed since the interrupted run started.
    """
    storage_options = options.pop("storage_options", None)  # remote outputs only
    overwrite = bool(options.pop("overwrite", False))
    if layout == "dataset":
        allowed = {"chunk_shape", "compression", "image_id", "resume", "progress", "verify_inputs"}
    elif layout == "struct":
        allowed = {"chunk_shape", "compression", "payload", "chunk_compression", "column_name"}
    else:
        raise OmeArrowDaskError(f"layout must be 'dataset' or 'struct', got {layout!r}")
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise TypeError(f"export(how='parquet', layout={layout!r}) does not take {unknown}")
    item = as_write_input(image)
    if math.prod(item.shape) == 0:
        raise OmeArrowDaskError(f"cannot write an empty image of shape {item.shape}")
    if is_url(os.fspath(out)):
        _write_remote(item, os.fspath(out), layout, overwrite, storage_options, options)
        return out
    path = Path(os.fspath(out))
    check_output_not_input(path, item.identity.input_paths, job_paths=(progress_dir(path), lock_path(path)))
    with JobLock(path):  # a second job on this output is refused before it deletes or writes anything
        item.identity.validate_inputs()  # e.g. every header of a pattern stack, before any output is touched
        if layout == "dataset":
            write_dataset(item, path, overwrite=overwrite, **options)
        else:
            decide(path, overwrite=overwrite, resume=False, existing=_inspect_file(path))
            write_struct(item, path, **options)
    return out


def _inspect_file(out: Path) -> Existing:
    """What is at the struct-layout output ``out``: nothing, a file (replaceable) or a folder (refused)."""
    if out.is_dir():
        return Existing.foreign("is a directory; layout='struct' writes a single file: choose a file name (.parquet)")
    return Existing.output() if os.path.lexists(out) else Existing("absent")


# ---------------------------------------------------------------------- object stores
def _shown(parts: Path | Location) -> str:
    return str(parts) if isinstance(parts, Path) else parts.url


def _write_remote(
    item: WriteInput, url: str, layout: str, overwrite: bool, storage_options: Any, options: dict[str, Any]
) -> None:
    """Write to an object store (see :mod:`ome_arrow_dask.jobs.object_store`); holds ``<out>.lock`` while it runs."""
    from ..jobs import ObjectStoreLock, RemoteOutput
    from ..storage import location

    remote = RemoteOutput(location(url, storage_options))
    check_output_not_input(remote.url, item.identity.input_paths, job_paths=(remote.progress.url, remote.lock.url))
    with ObjectStoreLock(remote) as lock:  # a second live writer is refused before anything is deleted or written
        item.identity.validate_inputs()  # e.g. every header of a pattern stack, before any output is touched
        if layout == "dataset":
            write_dataset_remote(item, remote, lock, overwrite=overwrite, **options)
            return
        version = remote.loc.head()
        existing = (
            Existing.output()
            if version is not None
            else Existing.foreign("is a prefix holding objects; layout='struct' writes a single object")
            if remote.occupied()
            else Existing("absent")
        )
        decide(remote.url, overwrite=overwrite, resume=False, existing=existing)
        compression = options.pop("compression", "zstd")
        remote.loc.write_bytes(_table_bytes(_struct_table(item, **options), compression))


def _remote_manifest_status(remote: RemoteOutput) -> Any:
    """Our status record in a remote dataset's manifest (None when absent or unreadable)."""
    raw = remote.read(MANIFEST)
    try:
        return None if raw is None else json.loads(raw.decode("utf-8")).get(STATUS_KEY)
    except (ValueError, AttributeError):
        return None


def write_dataset_remote(  # noqa: PLR0913 - the dataset layout's writer options
    image: WriteInput,
    remote: RemoteOutput,
    lock: ObjectStoreLock,
    *,
    chunk_shape: Sequence[int] | None = None,
    compression: str | None = "zstd",
    image_id: str | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = False,
    verify_inputs: str = "stat",
) -> None:
    """:func:`write_dataset` on an object store; the caller holds ``lock``.

    The job record ``<out>.progress/job.json`` is written first. Every chunk becomes a
    one-row part object under ``<out>.progress/parts-<fp>/`` (one PUT: a part that is
    listed is whole, so it is its own done marker). The parts are then streamed, in chunk
    order, into ``<out>/chunks.parquet`` as one upload that appears only when complete
    (a failed one is aborted); ``images.parquet`` and ``index.parquet`` follow, the
    manifest last (after a check that the lock is still ours), then the progress prefix
    is deleted. ``resume=True`` lists the parts once and computes only the missing ones.
    """
    meta = image.meta
    chunk = resolve_chunk_shape(chunk_shape, meta.shape, struct=False)
    ident = image_id or meta.id or meta.name or "image-00000"
    mode = check_verify_inputs(verify_inputs)
    inputs = image.identity.input_records(mode)
    fingerprint = _fingerprint(image, chunk, compression, ident, records_digest(inputs, mode))
    decision = decide(
        remote.url, overwrite=overwrite, resume=resume, fingerprint=fingerprint,
        existing=remote.inspect(_remote_manifest_status(remote)), inputs=inputs, verify_inputs=mode,
    )  # fmt: skip
    if decision.mode == "done":
        remote.finish()  # a kill while the records were deleted may leave some
        return
    if decision.fresh:
        record = {**status_record(IN_PROGRESS, fingerprint), "verify_inputs": mode, "inputs": inputs}
        remote.clear(record, status_keys=(MANIFEST,))
    parts = remote.units_prefix("parts", fingerprint)
    _write_parts(image, chunk, ident, parts, progress)
    n_chunks = math.prod(-(-size // step) for size, step in zip(meta.shape, chunk, strict=True))
    final = remote.loc.join("chunks.parquet")
    index_rows = _compact_parts_remote(parts, final, compression, n_chunks, progress)
    _phase_title(3, "writing images.parquet, index.parquet and the manifest", progress)
    with _PhaseBar(3, progress) as bar:
        files: dict[str, dict[str, int]] = {}
        images = pa.Table.from_pylist([_image_row(meta, ident, chunk, compression)], schema=IMAGE_SCHEMA)
        index = pa.Table.from_pylist(index_rows, schema=INDEX_SCHEMA)
        for name, table in (("images.parquet", images), ("index.parquet", index)):
            data = _table_bytes(table.replace_schema_metadata(DATASET_METADATA), compression)
            remote.loc.join(name).write_bytes(data)
            files[name] = _file_entry(pq.read_metadata(pa.BufferReader(data)), len(data))
            bar.update()
        handle, (_, size) = final.open_checked()
        with handle:
            files["chunks.parquet"] = _file_entry(pq.read_metadata(handle), size)
        lock.check()  # a writer that lost its lock must not mark the output complete
        order = ("images.parquet", "chunks.parquet", "index.parquet")  # as the local writer lists them
        manifest = _manifest(meta, chunk, compression, len(index_rows), fingerprint, {n: files[n] for n in order})
        remote.loc.join(MANIFEST).write_bytes(json.dumps(manifest, indent=2).encode("utf-8"))
        bar.update()
    remote.finish()


def _compact_parts_remote(
    parts: Location, final: Location, compression: str | None, n_chunks: int, progress: bool
) -> list[dict[str, Any]]:
    """:func:`_compact_parts` from part objects (one LIST, one GET each) into the object ``final``.

    ``final`` is written as one upload that becomes visible only when it completes; on a
    failure it is aborted (a SIGKILL leaves at most an unfinished multipart upload, which
    is never an object).
    """
    from ..storage import remote_error

    names = sorted(name for name in parts.find() if name.startswith("part-") and name.endswith(".parquet"))
    if len(names) != n_chunks:
        raise OmeArrowDaskError(
            f"{parts.url}: {len(names)} of {n_chunks} chunk parts exist; run again with resume=True"
        )
    _phase_title(2, f"compacting {n_chunks} chunk parts into {final.url}", progress)
    try:
        handle = final.filesystem().open(final.path, "wb")
    except Exception as exc:
        raise remote_error(final.url, exc, writing=True) from exc
    try:
        with _writer(handle, _COMPACT_SCHEMA, compression, write_statistics=["chunk_id"]) as w:
            sources = ((parts.join(n).url, lambda n=n: pa.BufferReader(parts.join(n).read_bytes())) for n in names)
            index_rows = _compact_into(w, sources, n_chunks, progress)
    except BaseException:
        with contextlib.suppress(Exception):
            handle.discard()  # abort the upload: no partial chunks.parquet ever appears
        handle.closed = True
        raise
    try:
        handle.close()  # completes the upload: the object appears whole
    except Exception as exc:
        raise remote_error(final.url, exc, writing=True) from exc
    return index_rows
