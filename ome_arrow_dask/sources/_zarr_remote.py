"""The zarr store wrapper for remote OME-Zarr reads (imported only for URLs)."""

from __future__ import annotations

import threading
from typing import Any

from zarr.abc.store import ByteRequest, RangeByteRequest, SuffixByteRequest
from zarr.core.buffer import Buffer, BufferPrototype, default_buffer_prototype
from zarr.storage import WrapperStore

from ..errors import CorruptInputError, RemoteAccessError
from ..storage import remote_error
from . import _ngff
from ._blosc import BLOSC_HEADER, check_blosc_header

__all__ = ["RemoteStore"]

METADATA_KEYS = ("zarr.json", ".zarray", ".zattrs", ".zgroup", ".zmetadata")
"""Object names zarr reads as metadata documents (cached, absent ones too)."""

INDEX_CACHE_BYTES = 32 * 2**20
"""Shard index bytes cached per store."""


class RemoteStore(WrapperStore):
    """A read-only remote zarr store that saves requests and checks what arrives.

    Metadata documents are fetched once per process, absent ones too (zarr probes
    ``.zgroup``, ``.zattrs``, ``.zmetadata`` when the format is not pinned), and refused
    above :data:`~ome_arrow_dask.sources._ngff.MAX_METADATA_BYTES`; shard indexes are
    cached (up to :data:`INDEX_CACHE_BYTES`), so each shard's index is fetched once;
    absent chunk keys are recorded for the source's ``missing`` policy; whole blosc chunks
    are checked against their header; library errors become
    :class:`~ome_arrow_dask.errors.RemoteAccessError` naming the URL.

    Parameters
    ----------
    store
        zarr's ``FsspecStore`` (read-only).
    url
        The store's URL, for messages.
    """

    def __init__(self, store: Any, url: str) -> None:
        super().__init__(store)
        self._url = url
        self._meta: dict[str, Buffer | None] = {}
        self._index: dict[tuple[str, ByteRequest], Buffer] = {}
        self._index_cached = 0
        self._absent: set[str] = set()
        self._lock = threading.Lock()
        self._index_size: int | None = None
        self._blosc: tuple[bool, int | None, str] = (False, None, url)

    def _with_store(self, store: Any) -> RemoteStore:
        return type(self)(store, self._url)

    def configure(self, index_bytes: int | None, blosc: bool, blosc_nbytes: int | None, where: str) -> None:
        """Set the shard index size (to cache it) and the blosc check of the array being read."""
        self._index_size = index_bytes
        self._blosc = (blosc, blosc_nbytes, where)

    def absent_among(self, keys: list[str]) -> list[str]:
        """Which of ``keys`` were answered "not found" so far."""
        with self._lock:
            return [k for k in keys if k in self._absent]

    async def _fetch(self, key: str, prototype: BufferPrototype, byte_range: ByteRequest | None) -> Buffer | None:
        try:
            value = await self._store.get(key, prototype, byte_range)
        except Exception as exc:
            raise remote_error(f"{self._url}/{key}", exc) from exc
        if value is None:
            with self._lock:
                self._absent.add(key)
        elif byte_range is not None:
            self._check_range(key, byte_range, len(value))
        return value

    def _check_range(self, key: str, byte_range: ByteRequest, size: int) -> None:
        """Refuse an answer longer than the byte range asked for: a server that ignores ``Range``."""
        if isinstance(byte_range, RangeByteRequest):
            asked = byte_range.end - byte_range.start
        elif isinstance(byte_range, SuffixByteRequest):
            asked = byte_range.suffix
        else:
            return
        if size > asked:
            raise RemoteAccessError(
                f"{self._url}/{key}: asked for {asked:,} bytes (HTTP Range), the server sent {size:,}: it does not "
                "support range requests, which sharded zarr arrays need; serve the store from a server that does "
                "(nginx, S3, most static hosts) or download it"
            )

    def _is_index(self, byte_range: ByteRequest | None) -> bool:
        if isinstance(byte_range, SuffixByteRequest):
            return True
        return (
            isinstance(byte_range, RangeByteRequest)
            and byte_range.start == 0
            and self._index_size is not None
            and byte_range.end == self._index_size
        )

    async def _metadata(self, key: str, prototype: BufferPrototype) -> Buffer | None:
        if key not in self._meta:
            value = await self._fetch(key, prototype, None)
            if value is not None and len(value) > _ngff.MAX_METADATA_BYTES:
                raise CorruptInputError(
                    f"{self._url}/{key}: metadata of {len(value):,} bytes exceeds the limit "
                    f"{_ngff.MAX_METADATA_BYTES:,}"
                )
            self._meta[key] = value
        return self._meta[key]

    async def get(self, key: str, prototype: BufferPrototype, byte_range: ByteRequest | None = None) -> Buffer | None:
        """Fetch ``key`` (metadata and shard indexes from the cache when seen before)."""
        if byte_range is None and key.rsplit("/", 1)[-1] in METADATA_KEYS:
            return await self._metadata(key, prototype)
        if self._is_index(byte_range):
            assert byte_range is not None
            cached = self._index.get((key, byte_range))
            if cached is not None:
                return cached
            value = await self._fetch(key, prototype, byte_range)
            if value is not None and self._index_cached + len(value) <= INDEX_CACHE_BYTES:
                self._index[(key, byte_range)] = value
                self._index_cached += len(value)
            return value
        value = await self._fetch(key, prototype, byte_range)
        if value is not None and byte_range is None and self._blosc[0]:
            raw = value.to_bytes()
            check_blosc_header(self._blosc[2], key, raw[:BLOSC_HEADER], len(raw), self._blosc[1])
        return value

    async def exists(self, key: str) -> bool:
        """Metadata keys answer from the cache (one GET at most); others ask the store."""
        if key.rsplit("/", 1)[-1] in METADATA_KEYS:
            return await self._metadata(key, default_buffer_prototype()) is not None
        return await super().exists(key)
