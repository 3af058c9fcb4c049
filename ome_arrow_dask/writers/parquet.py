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

import json
import math
import os
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dask
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from dask.base import tokenize

from ..arrow_schema import (
    BYTE_CHUNK_STRUCT,
    CHUNK_GRID_STRUCT,
    LIST_CHUNK_STRUCT,
    OME_ARROW_BYTE_STRUCT,
    OME_ARROW_STRUCT,
    OME_ARROW_TYPE,
    OME_ARROW_VERSION,
    PIXELS_META_STRUCT,
    PLANE_STRUCT,
    channel_dicts,
    record_from_meta,
)
from ..errors import InputChangedError, OmeArrowDaskError
from ..graph import run_graph
from ..meta import ImageMeta, regular_chunks
from ._jobfiles import atomic_write_text, commit, progress_dir, tmp_path

if TYPE_CHECKING:
    from ..core import OMEArrow

MANIFEST = "_ome_arrow_dataset.json"
BATCH_BLOCKS = 8
"""Blocks computed together; memory stays near ``BATCH_BLOCKS`` chunks."""

FILE_METADATA = {b"ome.arrow.type": OME_ARROW_TYPE.encode(), b"ome.arrow.version": OME_ARROW_VERSION.encode()}
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


def default_chunk_shape(shape: Sequence[int]) -> tuple[int, int, int, int, int]:
    """``(1, 1, min(Z, 16), min(Y, 512), min(X, 512))``, at least 1 on every axis.

    >>> default_chunk_shape((3, 2, 40, 1000, 300))
    (1, 1, 16, 512, 300)
    """
    _t, _c, z, y, x = (int(s) for s in shape)
    return (1, 1, max(1, min(z, 16)), max(1, min(y, 512)), max(1, min(x, 512)))


def _chunk_shape(option: Sequence[int] | None, shape: Sequence[int], *, struct: bool) -> tuple[int, ...]:
    if option is None:
        return default_chunk_shape(shape)
    values = tuple(int(v) for v in option)
    if len(values) == 3:
        values = (1, 1, *values)
    if len(values) != 5 or any(v <= 0 for v in values):
        raise OmeArrowDaskError(f"chunk_shape must be 3 (ZYX) or 5 (TCZYX) positive sizes, got {option!r}")
    if struct and values[:2] != (1, 1):
        raise OmeArrowDaskError("the struct layout stores one T and one C per chunk: chunk_shape T and C must be 1")
    return tuple(min(v, max(s, 1)) for v, s in zip(values, shape, strict=True))


def iter_blocks(image: OMEArrow, chunk_shape: Sequence[int]) -> Iterator[tuple[tuple[int, ...], np.ndarray]]:
    """Yield ``(origin, block)`` over a regular grid in C order, computing a few blocks at a time."""
    array = image.to_dask()
    grid = regular_chunks(array.shape, chunk_shape)
    array = array.rechunk(grid)
    delayed = array.to_delayed()
    offsets = [np.concatenate([[0], np.cumsum(axis)[:-1]]).astype(int) for axis in grid]
    indices = list(np.ndindex(*delayed.shape))
    for start in range(0, len(indices), BATCH_BLOCKS):
        batch = indices[start : start + BATCH_BLOCKS]
        blocks = dask.compute(*[delayed[i] for i in batch])
        for index, block in zip(batch, blocks, strict=True):
            origin = tuple(int(offsets[axis][k]) for axis, k in enumerate(index))
            yield origin, np.ascontiguousarray(block)


def _writer(path: Path, schema: pa.Schema, compression: str | None, **kwargs: Any) -> pq.ParquetWriter:
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


def _chunk_row(image_id: str, chunk_id: int, origin: Sequence[int], block: np.ndarray) -> dict[str, list[Any]]:
    row: dict[str, list[Any]] = {"image_id": [image_id], "chunk_id": [chunk_id]}
    for axis, start, size in zip("tczyx", origin, block.shape, strict=True):
        row[axis], row[f"shape_{axis}"] = [start], [size]
    row["dtype"] = [block.dtype.name]
    row["pixel_bytes"] = [memoryview(block.reshape(-1).view(np.uint8))]
    return row


def _check_dir(out: Path) -> None:
    """Refuse to write into a directory that holds something other than an OME-Arrow dataset."""
    if (
        out.is_dir() and any(out.iterdir()) and not (out / MANIFEST).exists() and not (out / "chunks.parquet").exists()
    ):
        raise OmeArrowDaskError(f"{out}: exists and is not an OME-Arrow dataset; refusing to write into it")


def _prepare_dir(out: Path) -> None:
    _check_dir(out)
    if out.is_file():
        out.unlink()  # as ome-arrow's writer does
    out.mkdir(parents=True, exist_ok=True)
    (out / MANIFEST).unlink(missing_ok=True)  # an interrupted overwrite must read as incomplete


def write_dataset(
    image: OMEArrow,
    out: Path,
    *,
    chunk_shape: Sequence[int] | None = None,
    compression: str | None = "zstd",
    image_id: str | None = None,
    resume: bool = False,
    progress: bool = False,
) -> None:
    """Write the typed chunk dataset directory; resumable after a crash.

    Chunks are computed in parallel (one dask task per chunk), each committed as an
    uncompressed one-row part file in ``<out>.progress/parts/`` (temp + fsync + rename,
    so a part that exists is whole). Then the parts are compacted, in chunk order, into
    ``chunks.parquet`` (one row group per chunk, compressed once), followed by
    ``images.parquet``, ``index.parquet`` and, last, the manifest. ``resume=True`` keeps
    the parts of an interrupted run with the same fingerprint and computes only the rest.
    """
    meta = image.meta
    chunk = _chunk_shape(chunk_shape, meta.shape, struct=False)
    ident = image_id or meta.id or meta.name or "image-00000"
    _check_dir(out)  # before touching <out>.progress
    parts = _prepare_parts(image, out, chunk, compression, ident, resume)
    _prepare_dir(out)
    _write_parts(image, chunk, ident, parts, progress)
    n_chunks = math.prod(-(-size // step) for size, step in zip(meta.shape, chunk, strict=True))
    index_rows = _compact_parts(parts, out / "chunks.parquet", compression, n_chunks)
    images = pa.Table.from_pylist([_image_row(meta, ident, chunk, compression)], schema=IMAGE_SCHEMA)
    _write_table(images.replace_schema_metadata(DATASET_METADATA), out / "images.parquet", compression)
    index = pa.Table.from_pylist(index_rows, schema=INDEX_SCHEMA)
    _write_table(index.replace_schema_metadata(DATASET_METADATA), out / "index.parquet", compression)
    _write_manifest(out, meta, chunk, compression, len(index_rows))
    shutil.rmtree(parts.parent, ignore_errors=True)


def _prepare_parts(
    image: OMEArrow, out: Path, chunk: Sequence[int], compression: str | None, ident: str, resume: bool
) -> Path:
    """Return the parts folder: kept when resuming the same job, else started empty."""
    progress = progress_dir(out)
    fingerprint = tokenize(image.source.token, image.selection, tuple(chunk), compression, ident, str(image.dtype))
    job_file = progress / "job.json"
    if resume and job_file.exists():
        recorded = json.loads(job_file.read_text(encoding="utf-8")).get("fingerprint")
        if recorded != fingerprint:
            raise InputChangedError(
                f"{out}: the interrupted conversion in {progress} was started from another input or with other "
                "options; run without --resume (and with --overwrite) to start again"
            )
    else:
        shutil.rmtree(progress, ignore_errors=True)
    parts = progress / "parts"
    parts.mkdir(parents=True, exist_ok=True)
    atomic_write_text(job_file, json.dumps({"fingerprint": fingerprint}))
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


def _store_part(block: np.ndarray, ident: str, chunk_id: int, origin: tuple[int, ...], path: Path) -> int:
    table = pa.table(_chunk_row(ident, chunk_id, origin, np.ascontiguousarray(block)), schema=CHUNK_SCHEMA)
    _write_table(table, path, None)
    return 1


def _write_parts(image: OMEArrow, chunk: Sequence[int], ident: str, parts: Path, progress: bool) -> None:
    """One task per chunk not yet stored as a whole part file."""
    from dask.delayed import Delayed
    from dask.highlevelgraph import HighLevelGraph

    array = image.to_dask()
    grid = regular_chunks(array.shape, chunk)
    blocks = array.rechunk(grid)
    offsets = [np.concatenate([[0], np.cumsum(axis)[:-1]]).astype(int) for axis in grid]
    name = f"ome-arrow-parquet-part-{tokenize(blocks.name, str(parts))}"
    layer: dict[Any, Any] = {}
    for chunk_id, index in enumerate(np.ndindex(*blocks.numblocks)):
        path = _part_path(parts, chunk_id)
        if path.exists() and _part_is_whole(path):
            continue
        origin = tuple(int(offsets[axis][k]) for axis, k in enumerate(index))
        layer[(name, chunk_id)] = (_store_part, (blocks.name, *index), ident, chunk_id, origin, path)
    if not layer:
        return
    total = f"{name}-total"
    layer[total] = (sum, list(layer))
    graph = Delayed(total, HighLevelGraph.from_collections(total, layer, dependencies=[blocks]))
    run_graph(graph, progress)


def _compact_parts(parts: Path, final: Path, compression: str | None, n_chunks: int) -> list[dict[str, Any]]:
    """Stream the part files, in chunk order, into ``final`` (one row group each); return index rows."""
    paths = sorted(parts.glob("part-*.parquet"))
    if len(paths) != n_chunks:
        raise OmeArrowDaskError(f"{parts}: {len(paths)} of {n_chunks} chunk parts exist; run again with resume=True")
    tmp = tmp_path(final)
    index_rows = []
    schema = CHUNK_SCHEMA.with_metadata(DATASET_METADATA)
    try:
        with _writer(tmp, schema, compression, write_statistics=["chunk_id"]) as w:
            for expected_id, path in enumerate(paths):
                table = pq.read_table(path, schema=CHUNK_SCHEMA)
                row = table.slice(0, 1).to_pylist()[0]
                if row["chunk_id"] != expected_id:
                    raise OmeArrowDaskError(f"{path}: holds chunk {row['chunk_id']}, expected {expected_id}")
                w.write_table(table)
                origin = [row[a] for a in "tczyx"]
                shape = [row[f"shape_{a}"] for a in "tczyx"]
                index_rows.append(_index_row(row["image_id"], expected_id, origin, shape))
        commit(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
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


def _write_manifest(out: Path, meta: ImageMeta, chunk: Sequence[int], compression: str | None, count: int) -> None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        ours = version("ome-arrow-dask")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        ours = "unknown"

    files = {}
    for name in ("images.parquet", "chunks.parquet", "index.parquet"):
        footer = pq.read_metadata(out / name)
        files[name] = {
            "num_rows": footer.num_rows,
            "num_row_groups": footer.num_row_groups,
            "bytes": (out / name).stat().st_size,
        }
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
    }
    atomic_write_text(out / MANIFEST, json.dumps(manifest, indent=2))


# ---------------------------------------------------------------------- struct layout
def _check_uint16(block: np.ndarray, origin: Sequence[int]) -> np.ndarray:
    """List payloads store uint16: refuse values that would change."""
    if block.dtype == np.uint16:
        return block
    if block.dtype.kind not in "biuf" or (block.size and not _fits_uint16(block)):
        raise OmeArrowDaskError(
            f"payloads 'list' and 'planes' store pixels as uint16, but the {block.dtype} block at {tuple(origin)} "
            "holds values "
            "that are not integers in 0..65535; use payload='bytes' (keeps the dtype)"
        )
    return block.astype(np.uint16)


def _fits_uint16(block: np.ndarray) -> bool:
    if block.dtype.kind == "f":
        if not np.isfinite(block).all() or not np.array_equal(block, np.trunc(block)):
            return False
    return bool(block.min() >= 0 and block.max() <= 65535)


def _encode(block: np.ndarray, codec: str | None) -> bytes | memoryview:
    raw = memoryview(np.ascontiguousarray(block).reshape(-1).view(np.uint8))
    if codec is None:
        return raw
    return pa.Codec(codec).compress(raw, asbytes=True)


def _payload_entries(image: OMEArrow, chunk: Sequence[int], payload: str, codec: str | None) -> pa.Array:
    """The ``chunks`` (or ``planes``) list of one record, built block by block."""
    coords: dict[str, list[int]] = {k: [] for k in ("t", "c", "z", "y", "x", "shape_z", "shape_y", "shape_x")}
    parts: list[Any] = []
    dtypes: list[str] = []
    for origin, block in iter_blocks(image, chunk):
        for axis, start in zip("tczyx", origin, strict=True):
            coords[axis].append(start)
        for axis, size in zip("zyx", block.shape[2:], strict=True):
            coords[f"shape_{axis}"].append(size)
        if payload == "bytes":
            parts.append(_encode(block, codec))
            dtypes.append(block.dtype.name)
        else:
            parts.append(_check_uint16(block, origin).reshape(-1))
    if payload == "bytes":
        sizes = np.array([len(p) for p in parts], dtype=np.int64)
        offsets = pa.py_buffer(np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64))
        data = pa.py_buffer(b"".join(parts))
        values = pa.LargeBinaryArray.from_buffers(pa.large_binary(), len(parts), [None, offsets, data])
        fields = {
            **{k: pa.array(v, t) for (k, v), t in zip(coords.items(), _coord_types(), strict=True)},
            "dtype": pa.array(dtypes, pa.string()),
            "compression": pa.array([codec] * len(parts), pa.string()),
            "pixel_bytes": values,
        }
        return pa.StructArray.from_arrays(list(fields.values()), fields=list(BYTE_CHUNK_STRUCT))
    sizes = np.array([p.size for p in parts], dtype=np.int32)
    offsets = pa.array(np.concatenate([[0], np.cumsum(sizes)]).astype(np.int32))
    pixels = pa.ListArray.from_arrays(offsets, pa.array(np.concatenate(parts), pa.uint16()))
    if payload == "planes":
        arrays = [pa.array(coords["z"], _I32), pa.array(coords["t"], _I32), pa.array(coords["c"], pa.int16()), pixels]
        return pa.StructArray.from_arrays(arrays, fields=list(PLANE_STRUCT))
    arrays = [pa.array(v, t) for (k, v), t in zip(coords.items(), _coord_types(), strict=True)] + [pixels]
    return pa.StructArray.from_arrays(arrays, fields=list(LIST_CHUNK_STRUCT))


def _coord_types() -> list[pa.DataType]:
    return [_I32, pa.int16(), _I32, _I32, _I32, _I32, _I32, _I32]


def _one(value: Any, arrow_type: pa.DataType) -> pa.Array:
    return pa.array([value], type=arrow_type)


def _list_of(entries: pa.Array, struct_type: pa.DataType) -> pa.Array:
    return pa.ListArray.from_arrays(pa.array([0, len(entries)], pa.int32()), entries, type=pa.list_(struct_type))


def build_record(
    image: OMEArrow, *, payload: str = "bytes", chunk_shape: Sequence[int] | None = None, codec: str | None = None
) -> pa.StructArray:
    """A one-row ``OME_ARROW_BYTE_STRUCT`` / ``OME_ARROW_STRUCT`` array for ``image``."""
    meta = image.meta
    if payload == "planes":
        chunk: Sequence[int] = (1, 1, 1, meta.shape[3], meta.shape[4])
    else:
        chunk = _chunk_shape(chunk_shape, meta.shape, struct=True)
    entries = _payload_entries(image, chunk, payload, codec)
    record = record_from_meta(meta)
    struct_type = OME_ARROW_BYTE_STRUCT if payload == "bytes" else OME_ARROW_STRUCT
    grid = None
    if payload != "planes":
        grid = {"order": "TCZYX", "chunk_t": 1, "chunk_c": 1, "chunk_z": chunk[2], "chunk_y": chunk[3]}
        grid.update({"chunk_x": chunk[4], "chunk_order": "ZYX"})
    chunk_type = struct_type.field("chunks").type.value_type
    empty_chunks = pa.array([[]], pa.list_(chunk_type))
    arrays = {
        "type": _one(record["type"], pa.string()),
        "version": _one(record["version"], pa.string()),
        "id": _one(record["id"], pa.string()),
        "name": _one(record["name"], pa.string()),
        "image_type": _one(record["image_type"], pa.string()),
        "acquisition_datetime": _one(record["acquisition_datetime"], pa.timestamp("us")),
        "pixels_meta": _one(record["pixels_meta"], PIXELS_META_STRUCT),
        "chunk_grid": _one(grid, CHUNK_GRID_STRUCT),
        "chunks": empty_chunks if payload == "planes" else _list_of(entries, chunk_type),
        "planes": _list_of(entries, PLANE_STRUCT) if payload == "planes" else pa.array([[]], pa.list_(PLANE_STRUCT)),
        "masks": pa.nulls(1),
    }
    return pa.StructArray.from_arrays(list(arrays.values()), fields=list(struct_type))


def write_struct(
    image: OMEArrow,
    out: Path,
    *,
    payload: str = "bytes",
    chunk_shape: Sequence[int] | None = None,
    chunk_compression: str | None = None,
    column_name: str = "ome_arrow",
    compression: str | None = "zstd",
) -> None:
    """Write the single-row file (temp + rename)."""
    if payload not in ("bytes", "list", "planes"):
        raise OmeArrowDaskError(f"payload must be 'bytes', 'list' or 'planes', got {payload!r}")
    codec = None if chunk_compression in (None, "none") else str(chunk_compression).lower()
    if codec not in (None, "zstd", "lz4"):
        raise OmeArrowDaskError(f"chunk_compression must be None, 'zstd' or 'lz4', got {chunk_compression!r}")
    if codec is not None and payload != "bytes":
        raise OmeArrowDaskError("chunk_compression applies to payload='bytes' only")
    record = build_record(image, payload=payload, chunk_shape=chunk_shape, codec=codec)
    table = pa.Table.from_arrays([record], names=[column_name]).replace_schema_metadata(FILE_METADATA)
    if out.is_dir():
        raise OmeArrowDaskError(f"{out}: is a directory; layout='struct' writes a single file")
    _write_table(table, out, compression)


def write(
    image: OMEArrow,
    out: str | os.PathLike[str],
    *,
    layout: str = "dataset",
    **options: Any,
) -> str | os.PathLike[str]:
    """Write ``image`` as OME-Arrow Parquet; return ``out``.

    Parameters
    ----------
    image
        The plan to write (its selection, read block by block).
    out
        Directory (``layout="dataset"``) or file (``layout="struct"``).
    layout
        ``"dataset"`` (default; the typed chunk dataset ome-arrow's export writes) or
        ``"struct"`` (single-row file with one struct column).
    **options
        ``chunk_shape`` (TCZYX or ZYX), ``compression`` (Parquet codec, default zstd);
        dataset: ``image_id``, ``resume`` (finish an interrupted write of the same plan and
        options), ``progress``; struct: ``payload`` ("bytes", "list", "planes"),
        ``chunk_compression`` (None, "zstd", "lz4"), ``column_name`` (default "ome_arrow").
    """
    path = Path(os.fspath(out))
    if layout == "dataset":
        allowed = {"chunk_shape", "compression", "image_id", "resume", "progress"}
        func = write_dataset
    elif layout == "struct":
        allowed = {"chunk_shape", "compression", "payload", "chunk_compression", "column_name"}
        func = write_struct
    else:
        raise OmeArrowDaskError(f"layout must be 'dataset' or 'struct', got {layout!r}")
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise TypeError(f"export(how='parquet', layout={layout!r}) does not take {unknown}")
    if math.prod(image.shape) == 0:
        raise OmeArrowDaskError(f"cannot write an empty image of shape {image.shape}")
    func(image, path, **options)
    return out
