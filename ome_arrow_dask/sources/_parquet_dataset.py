"""OME-Arrow typed chunk dataset directories (``write_ome_arrow_dataset`` / ``export("parquet")``).

The directory is recognised by its manifest ``_ome_arrow_dataset.json`` (required: a
directory without it is an unfinished write) whatever its suffix. Opening reads the
manifest, ``images.parquet`` and ``index.parquet`` (or, without an index, the
non-pixel columns of ``chunks.parquet``) and checks the manifest's counts. Each chunk
read opens ``chunks.parquet`` (footer parsed once per process) and reads one row
group's ``chunk_id``, ``dtype`` and ``pixel_bytes`` columns, with page checksums
verified. A chunk whose own ``dtype`` differs from the image's ``images.parquet`` dtype
raises :class:`~ome_arrow_dask.errors.CorruptInputError` (both writers store them equal).

Reopening a local dataset whose files are unchanged (same inode, mtime, size and ctime
of the manifest, ``images.parquet``, ``index.parquet`` and every fragment; files changed
within the last :data:`RACY_NS` are never trusted) reuses that open's tables from a small
per-process cache (:data:`MAX_CACHED_OPENS_BYTES`); anything else is read afresh.

Over a URL (a :class:`~ome_arrow_dask.storage.Location`) nothing is listed: the layout's
file names are fixed, and ``index.parquet`` names any other fragments. Opening makes
:data:`OPEN_REQUESTS`. A crop read in one call (:meth:`DatasetSource.read_chunk_box`)
reads each file's touched row groups with one ``read_row_groups`` call, whose
``pre_buffer`` coalesces their column ranges into few ranged GETs (one for neighbouring
row groups); a chunk read alone is one ranged GET of its row group's columns. Reads are
conditional on the ETag seen at open, without read-ahead.
"""

from __future__ import annotations

import json
import os
import posixpath
import time
import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from dask.base import tokenize

from ..arrow.schema import (
    as_utc,
    channels_from_dicts,
    dtype_from_string,
    int_field,
    physical_size_from_dict,
    stored_dtype,
    text_field,
)
from ..errors import CorruptInputError, IncompleteOutputError, OmeArrowDaskError, UnsafePathError
from ..jobs.paths import progress_dir
from ..limits import check_chunk_grid
from ..lowering import ReadPlan
from ..lru import LRUCache
from ..meta import ImageMeta
from ..sources.base import ChunkCoords, SourceBase, chunk_slices
from ..storage import Location, RemoteURL
from ._parquet_common import (
    Fingerprint,
    as_python,
    build_grid_index,
    coalesced_ranges,
    corrupt,
    decode_bytes,
    fingerprint,
    integer_column,
    read_footer,
    read_row_groups,
)
from ._parquet_layout import MANIFEST

MAX_MANIFEST_BYTES = 16 * 2**20
_AXES = "tczyx"
_INDEX_COLUMNS = ["image_id", "chunk_id", *_AXES, *(f"shape_{a}" for a in _AXES)]
READ_COLUMNS = ["chunk_id", "dtype", "pixel_bytes"]
"""The ``chunks.parquet`` columns a chunk read fetches."""

OPEN_REQUESTS = (
    "GET _ome_arrow_dataset.json, GET images.parquet, GET index.parquet (whole: it is the chunk index), "
    "HEAD + ranged GET of the chunks.parquet footer (per fragment)"
)
"""What opening a remote dataset requests (no LIST); a URL that is not an object adds its HEAD first."""


class RemoteRoot:
    """A remote dataset folder: formats as its URL; ``root / name`` is the object's :class:`RemoteURL`."""

    def __init__(self, loc: Location) -> None:
        self.loc = loc

    def __truediv__(self, name: str) -> RemoteURL:
        return RemoteURL(self.loc.join(name))

    def __str__(self) -> str:
        return self.loc.url


def _get(url: RemoteURL, limit: int | None = None) -> bytes | None:
    """The whole object (one GET), None when absent; ``limit`` bytes at most."""
    try:
        data = url.loc.read_bytes()
    except FileNotFoundError:
        return None
    if limit is not None and len(data) > limit:
        raise CorruptInputError(f"{url}: larger than {limit} bytes")
    return data


def read_manifest(root: Path) -> dict[str, Any]:
    """Parse the manifest; its absence means the writer did not finish."""
    path = root / MANIFEST
    if isinstance(root, RemoteRoot):
        raw = _get(path, MAX_MANIFEST_BYTES)
        job = Location(f"{root.loc.url}.progress/job.json", root.loc.options)  # see jobs.object_store
        if raw is None and _get(RemoteURL(job)) is not None:
            raise IncompleteOutputError(
                f"{root}: no {MANIFEST} manifest yet: its conversion was interrupted or is still running "
                f"({root}.progress/job.json records it). Finish it by running the same conversion again with "
                "resume=True (CLI --resume)"
            )
        if raw is None:
            raise FileNotFoundError(
                f"{root}: neither a Parquet object nor a dataset folder holding {MANIFEST} (an unfinished dataset "
                "write has no manifest yet); check the URL"
            )
        return _parse_manifest(raw, path)
    if not path.is_file():
        hint = (
            f"; {progress_dir(root)} holds an interrupted conversion: run it again with resume=True (CLI --resume)"
            if progress_dir(root).is_dir()
            else ""
        )
        raise IncompleteOutputError(
            f"{root}: no {MANIFEST} manifest; the dataset is incomplete (its writer did not finish) "
            f"or is not an OME-Arrow dataset{hint}"
        )
    if path.stat().st_size > MAX_MANIFEST_BYTES:
        raise CorruptInputError(f"{path}: manifest larger than {MAX_MANIFEST_BYTES} bytes")
    return _parse_manifest(path.read_bytes(), path)


def _parse_manifest(raw: bytes, path: object) -> dict[str, Any]:
    try:
        manifest = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise CorruptInputError(f"{path}: not valid JSON ({type(exc).__name__}: {exc})") from exc
    if not isinstance(manifest, dict):
        raise CorruptInputError(f"{path}: the manifest is not a JSON object")
    layout = manifest.get("layout", "typed-chunk-dataset")
    if layout != "typed-chunk-dataset":
        raise CorruptInputError(f"{path}: unsupported dataset layout {layout!r} (expected 'typed-chunk-dataset')")
    if manifest.get("status", "complete") != "complete":
        raise IncompleteOutputError(f"{path}: the manifest says status={manifest.get('status')!r}")
    return manifest


def _read_table(path: Path | RemoteURL, columns: list[str] | None = None) -> pa.Table:
    source: Any = path
    if isinstance(path, RemoteURL):  # one GET of the whole (small) table
        raw = _get(path)
        if raw is None:
            raise IncompleteOutputError(f"{path}: missing; the dataset is incomplete")
        source = pa.BufferReader(raw)
    elif not path.is_file():
        raise IncompleteOutputError(f"{path}: missing; the dataset is incomplete")
    try:
        table = pq.read_table(source, columns=columns, page_checksum_verification=True)
        table.column_names  # noqa: B018 - decodes the names: a damaged footer can hold names that are not UTF-8
    except (OSError, pa.ArrowException, ValueError, KeyError) as exc:
        raise corrupt(str(path), exc) from exc
    return table


def _check_count(manifest: dict[str, Any], key: str, actual: int, where: Path | str) -> None:
    declared = manifest.get(key)
    if declared is not None and declared != actual:
        raise IncompleteOutputError(f"{where}: manifest {key}={declared!r} but the dataset holds {actual}")


def _column(table: pa.Table, name: str, where: Path | str) -> pa.ChunkedArray:
    """A required column of a dataset table; its absence names the file and the column."""
    if name not in table.column_names:
        raise CorruptInputError(
            f"{where}: no {name!r} column (columns: {table.column_names[:20]}); the table is damaged or was not "
            "written by an OME-Arrow dataset writer"
        )
    return table.column(name)


def _image_row(images: pa.Table, image_id: str | None, root: Path) -> dict[str, Any]:
    where = root / "images.parquet"
    ids = [str(v) for v in as_python(_column(images, "image_id", where), str(where), "column 'image_id'")]
    if not ids:
        raise CorruptInputError(f"{root}/images.parquet: no images")
    if len(set(ids)) != len(ids):
        raise CorruptInputError(f"{root}/images.parquet: duplicate image_id values")
    if image_id is None:
        index = 0
    elif str(image_id) in ids:
        index = ids.index(str(image_id))
    else:
        shown = ", ".join(repr(i) for i in ids[:10]) + (", ..." if len(ids) > 10 else "")
        raise OmeArrowDaskError(f"{root}: no image_id {image_id!r}; the dataset holds {shown}")
    return as_python(images.slice(index, 1), str(where), f"row {index}")[0]


def _safe_fragment(root: Path | RemoteRoot, fragment: object) -> str:
    """Resolve an index ``fragment_path``; it must stay inside the dataset directory."""
    text = str(fragment or "chunks.parquet")
    if isinstance(root, RemoteRoot):  # object keys: no links to resolve, only ``..`` and absolute names
        key = posixpath.normpath(text.replace("\\", "/"))
        if key.startswith(("/", "../")) or key in ("..", ".") or "://" in text or ":" in key.split("/")[0]:
            raise UnsafePathError(
                f"{root}/index.parquet: fragment_path {text!r} points outside the dataset directory"
            )
        return key
    candidate = Path(text)
    resolved_root = root.resolve()
    resolved = (resolved_root / candidate).resolve()
    if candidate.is_absolute() or resolved_root not in resolved.parents:
        raise UnsafePathError(f"{root}/index.parquet: fragment_path {text!r} points outside the dataset directory")
    return os.path.relpath(resolved, resolved_root)


def _int_columns(table: pa.Table, names: list[str], where: str) -> dict[str, np.ndarray]:
    out = {}
    for name in names:
        if name not in table.column_names:
            raise CorruptInputError(f"{where}: missing column {name!r}")
        out[name] = integer_column(table.column(name), where, f"column {name!r}")
    return out


def _select_image(table: pa.Table, image_id: str, where: Path | str) -> pa.Table:
    """The rows of ``table`` whose ``image_id`` column equals ``image_id``."""
    ids = _column(table, "image_id", where)
    if not (pa.types.is_string(ids.type) or pa.types.is_large_string(ids.type)):
        try:
            ids = ids.cast(pa.string())
        except pa.ArrowException as exc:
            raise CorruptInputError(f"{where}: column 'image_id' has type {ids.type}, expected strings") from exc
    try:
        return table.filter(pc.equal(ids, image_id))
    except pa.ArrowException as exc:
        raise corrupt(str(where), exc) from exc


def _row_positions(footer: pq.FileMetaData) -> tuple[np.ndarray, np.ndarray]:
    sizes = np.array([footer.row_group(i).num_rows for i in range(footer.num_row_groups)], dtype=np.int64)
    groups = np.repeat(np.arange(len(sizes)), sizes)
    starts = np.repeat(np.cumsum(sizes) - sizes, sizes)
    return groups, np.arange(int(sizes.sum())) - starts


MAX_CACHED_OPENS_BYTES = 64 * 2**20
"""Bound on the opened local datasets kept per process (their chunk index arrays, 64 KiB at least each)."""

RACY_NS = 2 * 10**9
"""A file changed this recently (ns) is not trusted to be told apart by its timestamps: no cache entry."""

FileState = tuple[int, int, int, int] | None
"""``(inode, mtime_ns, size, ctime_ns)`` of a file, None when absent."""

_OPENED: LRUCache[tuple[str, str, str | None], tuple[dict[str, FileState], dict[str, Any]]] = LRUCache(
    MAX_CACHED_OPENS_BYTES,
    cost=lambda entry: max(2**16, sum(v.nbytes for v in entry[1].values() if isinstance(v, np.ndarray))),
)


def _file_states(root: str, names: Iterable[str]) -> dict[str, FileState]:
    """The :data:`FileState` of each file ``names`` of the dataset folder ``root``."""
    out: dict[str, FileState] = {}
    for name in names:
        try:
            st = os.stat(os.path.join(root, name))
        except OSError:
            out[name] = None
        else:
            out[name] = (st.st_ino, st.st_mtime_ns, st.st_size, st.st_ctime_ns)
    return out


def _settled(states: Iterable[FileState]) -> bool:
    """Whether every file was last changed over :data:`RACY_NS` ago, so that a rewrite gets another timestamp."""
    now = time.time_ns()
    return all(s is None or now - max(s[1], s[3]) > RACY_NS for s in states)


def _copied(state: dict[str, Any]) -> dict[str, Any]:
    """A source's attributes with their dicts copied (the arrays are shared: nothing writes to them)."""
    return {k: dict(v) if isinstance(v, dict) else v for k, v in state.items()}


class DatasetSource(SourceBase):
    """One image of an OME-Arrow typed chunk dataset directory.

    Parameters
    ----------
    path
        The dataset directory (any name; ``.ome.parquet`` is usual), or its
        :class:`~ome_arrow_dask.storage.Location` for a URL.
    image_id
        Which image; default the first row of ``images.parquet``.
    """

    def __init__(self, path: str | Location, image_id: str | None = None) -> None:
        if isinstance(path, Location):
            self._open(path, image_id)
            return
        key = (os.path.abspath(path), os.fspath(path), image_id)
        found = _OPENED.get(key)
        if found is not None and found[0] == _file_states(key[0], found[0]):
            self.__dict__.update(_copied(found[1]))  # no file changed since that open: reuse its tables
            return
        before = _file_states(key[0], (MANIFEST, "images.parquet", "index.parquet"))
        self._open(path, image_id)
        after = _file_states(key[0], [*before, *self._fragments])
        unchanged = all(after[name] == state for name, state in before.items()) and all(
            after[f] is not None and after[f][1:3] == self._fingerprints[f]  # type: ignore[index]
            for f in self._fragments
        )
        if unchanged and _settled(after.values()):  # what was read is what the states describe
            _OPENED.put(key, (after, _copied(self.__dict__)))

    def _open(self, path: str | Location, image_id: str | None) -> None:
        root: Any
        self._urls: dict[str, RemoteURL] = {}  # remote: each fragment pinned to the version seen at open
        if isinstance(path, Location):
            root = RemoteRoot(path)
            self.path: str = RemoteURL(path)
        else:
            self.path, root = path, Path(path)
        manifest = read_manifest(root)
        self._remote_index: pa.Table | None = None
        if isinstance(root, RemoteRoot):  # the manifest's own bytes (one GET, no HEAD)
            raw = json.dumps(manifest, sort_keys=True).encode()
            self._fingerprints: dict[str, Fingerprint] = {MANIFEST: (zlib.crc32(raw), len(raw))}
            images = self._fetch_remote_tables(root, manifest)
        else:
            self._fingerprints = {MANIFEST: fingerprint(str(root / MANIFEST))}
            images = _read_table(root / "images.parquet")
        _check_count(manifest, "image_count", images.num_rows, root / MANIFEST)
        row = _image_row(images, image_id, root)
        self.image_id = str(row["image_id"])
        self._where = f"{root} (image {self.image_id!r})"
        entries = self._load_entries(root, manifest)
        self._init_grid(row, entries)

    # ------------------------------------------------------------------ opening
    def _fetch_remote_tables(self, root: RemoteRoot, manifest: dict[str, Any]) -> pa.Table:
        """``images.parquet``, ``index.parquet`` and the ``chunks.parquet`` footer, fetched concurrently.

        They are independent objects: one round trip of latency instead of three. Errors
        surface in the order a sequential open would raise them (images, footer, index).
        Returns the images table; the index is kept for :meth:`_load_entries`.
        """
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=3) as pool:
            images = pool.submit(_read_table, root / "images.parquet")
            footer = pool.submit(self._fragment_footer, root, "chunks.parquet")
            index = pool.submit(_remote_index, root, manifest)
            table = images.result()
            footer.result()
            self._remote_index = index.result()
        return table

    def _fragment_footer(self, root: Path | RemoteRoot, fragment: str) -> pq.FileMetaData:
        if isinstance(root, RemoteRoot):
            if fragment not in self._urls:
                url = root / fragment
                version = url.loc.head()
                if version is None:
                    raise IncompleteOutputError(f"{url}: missing; the dataset is incomplete")
                self._urls[fragment] = RemoteURL(url.loc.pin(*version))
                self._fingerprints[fragment] = fingerprint(self._urls[fragment])  # from the pin: no request
            return read_footer(self._urls[fragment], self._fingerprints[fragment])
        path = root / fragment
        if not path.is_file():
            raise IncompleteOutputError(f"{path}: missing; the dataset is incomplete")
        if fragment not in self._fingerprints:
            self._fingerprints[fragment] = fingerprint(str(path))
        return read_footer(str(path), self._fingerprints[fragment])

    def _load_entries(self, root: Path | RemoteRoot, manifest: dict[str, Any]) -> dict[str, np.ndarray]:
        chunks_footer = self._fragment_footer(root, "chunks.parquet")
        _check_count(manifest, "chunk_count", chunks_footer.num_rows, root / MANIFEST)
        index_path = root / "index.parquet"
        index = self._remote_index if isinstance(root, RemoteRoot) else None  # fetched at open
        self._remote_index = None
        if index is not None or (isinstance(index_path, Path) and index_path.exists()):
            index = _read_table(index_path) if index is None else index
            _check_count(manifest, "chunk_count", index.num_rows, index_path)
            index = _select_image(index, self.image_id, index_path)
            cols = _int_columns(index, [*_INDEX_COLUMNS[1:], "row_group_id", "row_index_in_group"], str(index_path))
            fragments = (
                as_python(index.column("fragment_path"), str(index_path), "column 'fragment_path'")
                if "fragment_path" in index.column_names
                else []
            )
            safe = {f: _safe_fragment(root, f) for f in set(fragments)}  # resolve each distinct path once
            names = sorted(set(safe.values())) or ["chunks.parquet"]
            lookup = {f: i for i, f in enumerate(names)}
            cols["fragment"] = np.array([lookup[safe[f]] for f in fragments] or [0] * index.num_rows)
            self._fragments = tuple(names)
            self._check_positions(root, cols, index_path)
            return cols
        table = _read_table(root / "chunks.parquet", columns=_INDEX_COLUMNS)
        groups, rows = _row_positions(chunks_footer)
        table = table.append_column("_position", pa.array(np.arange(table.num_rows, dtype=np.int64)))
        table = _select_image(table, self.image_id, root / "chunks.parquet")
        positions = table.column("_position").to_numpy()
        cols = _int_columns(table, _INDEX_COLUMNS[1:], str(root / "chunks.parquet"))
        cols["row_group_id"], cols["row_index_in_group"] = groups[positions], rows[positions]
        cols["fragment"] = np.zeros(len(positions), dtype=np.int64)
        self._fragments = ("chunks.parquet",)
        return cols

    def _check_positions(self, root: Path | RemoteRoot, cols: dict[str, np.ndarray], where: Path | str) -> None:
        """Every index entry must name an existing row of its fragment."""
        for k, fragment in enumerate(self._fragments):
            footer = self._fragment_footer(root, fragment)
            sizes = np.array([footer.row_group(i).num_rows for i in range(footer.num_row_groups)], dtype=np.int64)
            mine = cols["fragment"] == k
            rg, row = cols["row_group_id"][mine], cols["row_index_in_group"][mine]
            bad = (rg < 0) | (rg >= len(sizes))
            bad |= ~bad & ((row < 0) | (row >= sizes[np.clip(rg, 0, max(len(sizes) - 1, 0))]))
            if bad.any():
                i = int(np.flatnonzero(mine)[np.flatnonzero(bad)[0]])
                raise IncompleteOutputError(
                    f"{where}: chunk_id {int(cols['chunk_id'][i])} points at row group {int(cols['row_group_id'][i])} "
                    f"row {int(cols['row_index_in_group'][i])}, which {fragment} does not have"
                )

    def _init_grid(self, row: dict[str, Any], cols: dict[str, np.ndarray]) -> None:
        where = self._where
        sep = "/" if isinstance(self.path, RemoteURL) else os.sep
        images, label = f"{self.path}{sep}images.parquet", f"row {self.image_id!r}"
        dtype = dtype_from_string(row.get("dtype"), f"{where} images.parquet dtype")
        shape, chunk_shape = [], []
        for ax in _AXES:
            size, step = (
                int_field(row, f"{name}_{ax}", images, label=f"{label} column {name}_{ax}", minimum=1)
                for name in ("size", "chunk")
            )
            if size is None or step is None:
                raise CorruptInputError(f"{where}: images.parquet has size_{ax}={size!r}, chunk_{ax}={step!r}")
            shape.append(size)
            chunk_shape.append(min(step, size))
        check_chunk_grid(where, shape, chunk_shape, dtype)
        origins = np.stack([cols[a] for a in _AXES], axis=1)
        sizes = np.stack([cols[f"shape_{a}"] for a in _AXES], axis=1)
        chunks, self._entry_of = build_grid_index(where, shape, chunk_shape, origins, sizes)
        self._row_group = cols["row_group_id"].astype(np.int32)
        self._row_in_group = cols["row_index_in_group"].astype(np.int32)
        self._chunk_id = cols["chunk_id"]
        self._fragment = cols["fragment"].astype(np.int16)
        self._meta = ImageMeta(
            shape=tuple(shape),  # type: ignore[arg-type]
            dtype=dtype,
            chunks=chunks,
            channels=_channels(row.get("channels_json"), shape[1], images, label),
            physical_size=physical_size_from_dict(row, float32=False, where=images, label=f"{label} column "),
            id=self.image_id,
            name=text_field(row, "name"),
            image_type=text_field(row, "image_type"),
            acquisition_datetime=as_utc(row.get("acquisition_datetime")),
        )

    # ------------------------------------------------------------------ Source protocol

    @property
    def token(self) -> str:
        """``tokenize(path, image_id, fingerprints of the manifest and chunk files)``."""
        return tokenize(self.path, self.image_id, sorted(self._fingerprints.items()))

    def input_paths(self) -> tuple[str, ...]:
        """The dataset directory (its URL when remote)."""
        return (self.path if isinstance(self.path, RemoteURL) else os.path.abspath(self.path),)

    def describe(self) -> str:
        """Format, directory and image id."""
        return f"OME-Arrow Parquet dataset {self.path} (image {self.image_id!r})"

    def row_groups_for(self, read_plan: ReadPlan) -> np.ndarray:
        """Distinct ``(fragment, row group)`` pairs the plan reads, as an ``(n, 2)`` array."""
        cells = self._entry_of[np.ix_(*read_plan.touched)].reshape(-1)
        pairs = np.stack([self._fragment[cells], self._row_group[cells]], axis=1)
        return np.unique(pairs, axis=0) if len(pairs) else pairs

    def explain_reads(self, read_plan: ReadPlan) -> list[str]:
        """Name the row groups of ``chunks.parquet`` the plan reads."""
        pairs = self.row_groups_for(read_plan)
        total = len(np.unique(np.stack([self._fragment, self._row_group], axis=1), axis=0))
        shown = ""
        if 0 < len(pairs) <= 8:
            shown = ": " + ", ".join(str(int(rg)) for _, rg in pairs)
        files = ", ".join(self._fragments)
        lines = [
            f"parquet: reads {len(pairs)} of {total} row groups of {files} (columns {', '.join(READ_COLUMNS)}){shown}",
            "parquet: metadata from _ome_arrow_dataset.json, images.parquet and index.parquet (no pixel columns)",
        ]
        if self._urls:
            gets = sum(
                coalesced_ranges(
                    read_footer(self._urls[name], self._fingerprints[name]),
                    pairs[pairs[:, 0] == k, 1].tolist(),
                    READ_COLUMNS,
                )
                for k, name in enumerate(self._fragments)
            )
            lines.append(
                f"requests: {gets} ranged GET (each file's touched row groups read in one call, their column ranges "
                f"coalesced by pre_buffer; {len(pairs)}, one per row group, where the scheduler reads chunk by chunk: "
                "large reads, a distributed client; conditional on the ETag seen at open), no LIST, no HEAD; "
                "opening made: " + OPEN_REQUESTS
            )
        return lines

    def read_chunk(self, chunk_coords: ChunkCoords) -> np.ndarray:
        """Read one row of one row group and decode it (5-D TCZYX, native byte order)."""
        from ..meta import tczyx

        return self.read_chunk_box(chunk_coords, tczyx(c + 1 for c in chunk_coords))

    def read_chunk_box(self, first: ChunkCoords, stop: ChunkCoords) -> np.ndarray:
        """Read the chunks ``first`` (inclusive) to ``stop`` (exclusive) into one TCZYX array.

        Each fragment's touched row groups are read in one ``read_row_groups`` call (over a
        URL ``pre_buffer`` coalesces their column ranges into few ranged GETs), and every
        chunk's bytes are copied straight into its place in the output.
        """
        from ..meta import tczyx

        box = tuple(range(int(a), int(b)) for a, b in zip(first, stop, strict=True))
        lo = [chunk_slices(self._meta, tczyx(int(a) for a in first))[i].start for i in range(5)]
        last = chunk_slices(self._meta, tczyx(int(b) - 1 for b in stop))
        out = np.empty(tuple(last[i].stop - lo[i] for i in range(5)), dtype=self._meta.dtype)
        cells = np.stack([g.reshape(-1) for g in np.meshgrid(*box, indexing="ij")], axis=1)
        entries = self._entry_of[tuple(cells.T)]
        for k in np.unique(self._fragment[entries]):
            mine = self._fragment[entries] == k
            fragment = self._fragments[int(k)]
            path = self._urls[fragment] if self._urls else os.path.join(self.path, fragment)
            groups = np.unique(self._row_group[entries[mine]]).tolist()
            wheres = {
                tczyx(int(c) for c in coords): f"{path} chunk_id {int(self._chunk_id[entry])} "
                f"(row group {int(self._row_group[entry])}) at grid {tuple(int(c) for c in coords)}"
                for coords, entry in zip(cells[mine], entries[mine], strict=True)
            }
            where = next(iter(wheres.values()))
            if len(wheres) > 1:
                shown = ", ".join(str(g) for g in groups[:8]) + (", ..." if len(groups) > 8 else "")
                where += f" and {len(wheres) - 1} more chunk(s) (row groups {shown})"
            try:
                table, offsets = read_row_groups(path, self._fingerprints[fragment], groups, READ_COLUMNS, where)
            except CorruptInputError:
                if len(groups) > 1:  # name the damaged chunk, not the batch: reread group by group (error path only)
                    self._raise_for_damaged_group(path, fragment, groups, wheres, entries[mine])
                raise
            ends = [*offsets[1:].tolist(), table.num_rows]
            bounds = dict(zip(groups, zip(offsets.tolist(), ends, strict=True), strict=True))
            for (coords, where), entry in zip(wheres.items(), entries[mine], strict=True):
                spans = zip(chunk_slices(self._meta, coords), lo, strict=True)
                region = tuple(slice(s.start - o, s.stop - o) for s, o in spans)
                start, end = bounds[int(self._row_group[entry])]
                row = int(self._row_in_group[entry])
                self._decode_into(out[region], table, row, start, end, int(self._chunk_id[entry]), where)
        return out

    def _raise_for_damaged_group(
        self, path: Any, fragment: str, groups: list[int], wheres: dict[Any, str], entries: np.ndarray
    ) -> None:
        """Reread ``groups`` one at a time and let the first damaged one raise, naming its own chunk."""
        first_where: dict[int, str] = {}
        for where, entry in zip(wheres.values(), entries, strict=True):
            first_where.setdefault(int(self._row_group[entry]), where)
        for group in groups:
            read_row_groups(path, self._fingerprints[fragment], [group], READ_COLUMNS, first_where[int(group)])

    def _decode_into(
        self, target: np.ndarray, table: pa.Table, row: int, start: int, end: int, chunk_id: int, where: str
    ) -> None:
        """Check that ``row`` of the row group at rows ``start:end`` of ``table`` is ``chunk_id``; copy it over."""
        if row >= end - start or as_python(table.column("chunk_id")[start + row], where, "chunk_id") != chunk_id:
            raise CorruptInputError(f"{where}: row {row} of the row group is not chunk {chunk_id}")
        row += start
        dtype = stored_dtype(as_python(table.column("dtype")[row], where, "dtype"), where)
        if dtype_from_string(dtype.str, where) != self._meta.dtype:  # byte order alone is no disagreement
            raise CorruptInputError(
                f"{where}: the chunk's own dtype is {dtype.name} but images.parquet declares {self._meta.dtype.name} "
                f"for image {self.image_id!r}; every chunk of a dataset is stored in its image's type (ome-arrow's "
                "and our writers both write them equal), so the dataset contradicts itself: it is damaged or "
                "images.parquet was edited; rewrite it from its source"
            )
        payload = table.column("pixel_bytes")[row]
        if not (pa.types.is_binary(payload.type) or pa.types.is_large_binary(payload.type)):
            raise CorruptInputError(f"{where}: pixel_bytes has type {payload.type}, expected binary")
        if not payload.is_valid:
            raise CorruptInputError(f"{where}: pixel_bytes is null")
        raw = payload.as_buffer()
        if len(raw) != target.size * dtype.itemsize:
            decode_bytes(raw, dtype, target.shape, None, where)  # raises, naming the sizes
        target[...] = np.frombuffer(raw, dtype=dtype).reshape(target.shape)  # byte order converts here


def _remote_index(root: RemoteRoot, manifest: dict[str, Any]) -> pa.Table | None:
    """``index.parquet`` of a remote dataset (one GET), None when the dataset has none.

    Our writer's manifest lists its files; ome-arrow's does not, so there a 404 says it.
    """
    files = manifest.get("files")
    if isinstance(files, dict) and "index.parquet" not in files:
        return None
    url = root / "index.parquet"
    raw = _get(url)
    if raw is None:
        if isinstance(files, dict):
            raise IncompleteOutputError(f"{url}: missing though the manifest lists it; the dataset is incomplete")
        return None
    try:
        table = pq.read_table(pa.BufferReader(raw), page_checksum_verification=True)
        table.column_names  # noqa: B018 - see _read_table
    except (OSError, pa.ArrowException, ValueError, KeyError) as exc:
        raise corrupt(str(url), exc) from exc
    return table


def _channels(text: object, size_c: int, where: str, label: str) -> tuple[Any, ...]:
    """Channels from an images row's ``channels_json``; unparsable JSON gives defaults, wrong types raise."""
    if not isinstance(text, str) or len(text) > MAX_MANIFEST_BYTES:
        return ()
    try:
        entries = json.loads(text)
    except (ValueError, RecursionError):
        return ()
    return channels_from_dicts(entries, size_c, where, f"{label} channels_json")
