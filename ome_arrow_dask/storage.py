"""One storage layer for local paths and remote URLs (``s3://``, ``gs://``, ``http(s)://``, ...).

A URL plus ``storage_options`` (credentials, ``anon``, ``endpoint_url``, HTTP ``headers``)
becomes a :class:`Location`: a small picklable value that hands each source what it
needs, built on fsspec (the ``remote`` extra: ``pip install 'ome-arrow-dask[remote]'``):

- zarr: :meth:`Location.zarr_store`, zarr's own ``FsspecStore`` over an async filesystem
  (s3fs, gcsfs, aiohttp-backed HTTP). ``ObjectStore`` over obstore was not chosen: zarr
  marks it experimental, it is an extra compiled dependency, and with the request
  settings below the two issue the same requests; the bottleneck on a cloud store is the
  number of round trips, which is what this layer minimises.
- tifffile: :meth:`Location.open`, an fsspec file object (ranged reads of the tiles and
  strips a selection needs).
- pattern folders: :meth:`Location.listing`, one LIST at scan time.
- Parquet: :meth:`Location.arrow_filesystem`, a ``pyarrow.fs`` filesystem.

Remote libraries are imported here only. Local paths never come here: the sources keep
their local fast paths.

Request settings (defaults; any ``storage_options`` key given wins):

- S3: ``max_concurrency=1`` (s3fs otherwise sends a HEAD before every whole-object GET,
  and a HEAD + LIST for every absent key), botocore ``retries`` in ``standard`` mode with
  5 attempts (500, 502, 503, 504, throttling and dropped connections, exponential backoff
  with jitter). With no credentials anywhere (environment, profiles, instance roles)
  ``anon=True`` is used and said once in an INFO log line, so public buckets just work.
- HTTP(S): an aiohttp client middleware retries idempotent requests answered 500, 502,
  503 or 504, or cut off, with exponential backoff (:data:`HTTP_RETRIES` attempts).
- GCS with a custom ``endpoint_url`` (or ``STORAGE_EMULATOR_HOST``): gcsfs's plain JSON-API
  filesystem (its default class probes a gRPC API an emulator does not serve); gcsfs's own
  retries. Pass ``token="anon"`` for public buckets and emulators.

Objects read after their size and version are known are *pinned* (:meth:`Location.pin`):
no further HEAD, and reads conditional on the ETag (S3, HTTP), so a replaced object raises
:class:`~ome_arrow_dask.errors.InputChangedError` rather than being read with a stale layout.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import logging
import os
import threading
from collections.abc import Mapping
from typing import Any

from .errors import CorruptInputError, InputChangedError, RemoteAccessError

__all__ = [
    "HTTP_RETRIES",
    "INSTALL_HINT",
    "Location",
    "RemoteURL",
    "is_network_error",
    "is_remote",
    "location",
    "redact",
    "remote_error",
]

logger = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'ome-arrow-dask[remote]'"
"""What to install for remote URLs."""

HTTP_RETRIES = 5
"""Attempts for an HTTP(S) request answered 5xx or cut off (backoff 0.1, 0.2, 0.4, ... s)."""

_RETRY_STATUS = frozenset({500, 502, 503, 504})
_SECRET_WORDS = ("key", "secret", "token", "password", "auth", "credential", "session", "header", "cookie", "sas")
_CREDENTIAL_OPTIONS = ("anon", "key", "secret", "token", "profile", "session", "username", "password")
_ANON_LOGGED: set[str] = set()
_FS_CACHE: dict[tuple[Any, ...], Any] = {}
_FS_LOCK = threading.Lock()


def is_remote(path: object) -> bool:
    """True for a URL with a scheme other than ``file://`` (``s3://b/k``, ``https://h/p``).

    >>> is_remote("s3://bucket/img.zarr"), is_remote("/data/img.zarr"), is_remote("file:///data/x")
    (True, False, False)
    """
    if not isinstance(path, str) or "://" not in path:
        return False
    scheme = path.split("://", 1)[0]
    return bool(scheme) and scheme.isascii() and scheme.replace("+", "").isalnum() and scheme != "file"


def _import_fsspec() -> Any:
    try:
        import fsspec
    except ImportError as exc:
        raise ImportError(f"reading remote URLs needs fsspec: {INSTALL_HINT}") from exc
    return fsspec


def redact(options: Mapping[str, Any]) -> str:
    """Storage options for display: names only for anything that may hold a secret.

    >>> redact({"anon": True, "key": "AKIA...", "endpoint_url": "http://127.0.0.1:9000"})
    'anon=True, endpoint_url=http://127.0.0.1:9000, key=***'
    """
    shown = []
    for name in sorted(options):
        value = options[name]
        if name in ("config_kwargs", "client_kwargs") and isinstance(value, Mapping):
            inner = redact(value)
            shown.append(f"{name}={{{inner}}}" if inner else name)
        elif any(word in name.lower() for word in _SECRET_WORDS) or isinstance(value, (Mapping, list, tuple)):
            shown.append(f"{name}=***")
        else:
            shown.append(f"{name}={value}")
    return ", ".join(shown)


def _has_aws_credentials() -> bool:
    """Whether botocore's usual chain (environment, profiles, instance role) finds credentials."""
    try:
        import botocore.session
    except ImportError:
        return True  # let s3fs report what is missing
    try:
        return botocore.session.Session().get_credentials() is not None
    except Exception:  # a broken profile: let s3fs say so on the first request
        return True


def _resolve_options(protocol: str, options: Mapping[str, Any], url: str) -> dict[str, Any]:
    """Fill in this layer's request defaults (see the module docstring); given options win."""
    out = dict(options)
    if protocol in ("s3", "s3a"):
        out.setdefault("max_concurrency", 1)
        config = dict(out.get("config_kwargs") or {})
        config.setdefault("retries", {"max_attempts": 5, "mode": "standard"})
        out["config_kwargs"] = config
        if not any(name in out for name in _CREDENTIAL_OPTIONS) and not _has_aws_credentials():
            out["anon"] = True
            bucket = url.split("://", 1)[1].split("/", 1)[0]
            if bucket not in _ANON_LOGGED:
                _ANON_LOGGED.add(bucket)
                logger.info("no AWS credentials found: reading s3://%s anonymously (anon=True)", bucket)
    return out


async def _retry_middleware(request: Any, handler: Any) -> Any:
    """Aiohttp client middleware: retry idempotent requests on 5xx and dropped connections."""
    import asyncio

    import aiohttp

    delay = 0.1
    for attempt in range(1, HTTP_RETRIES + 1):
        last = attempt == HTTP_RETRIES or request.method not in ("GET", "HEAD")
        try:
            response = await handler(request)
            if response.status not in _RETRY_STATUS or last:
                if request.method == "GET" and response.status < 300:
                    await response.read()  # a body cut short is retried here too, never returned in part
                return response
            response.release()
        except (TimeoutError, aiohttp.ClientConnectionError, aiohttp.ClientPayloadError):
            if last:
                raise
        await asyncio.sleep(delay)
        delay *= 2
    raise AssertionError("unreachable")  # pragma: no cover


def _filesystem(protocol: str, options: dict[str, Any], asynchronous: bool) -> Any:
    """An fsspec filesystem for ``protocol`` (cached per process, options and mode)."""
    from dask.base import tokenize

    cache_key = (protocol, tokenize(options), asynchronous, os.getpid())
    with _FS_LOCK:
        fs = _FS_CACHE.get(cache_key)
    if fs is not None:
        return fs
    fsspec = _import_fsspec()
    kwargs = dict(options)
    if protocol in ("http", "https"):
        client = dict(kwargs.get("client_kwargs") or {})
        client.setdefault("middlewares", (_retry_middleware,))
        kwargs["client_kwargs"] = client
    try:
        if protocol in ("gs", "gcs") and (kwargs.get("endpoint_url") or os.environ.get("STORAGE_EMULATOR_HOST")):
            fs = _plain_gcsfs()(asynchronous=asynchronous, skip_instance_cache=True, **kwargs)
        else:
            fs = fsspec.filesystem(protocol, asynchronous=asynchronous, skip_instance_cache=True, **kwargs)
    except ImportError as exc:
        needed = exc.name or "a filesystem package"
        raise ImportError(f"reading {protocol}:// URLs needs {needed}: {INSTALL_HINT}") from exc
    except ValueError as exc:
        raise ImportError(f"no filesystem for {protocol}:// URLs ({exc}); {INSTALL_HINT}") from exc
    with _FS_LOCK:
        if not _FS_CACHE:
            atexit.register(_close_async_sessions)
        _FS_CACHE[cache_key] = fs
    return fs


def _plain_gcsfs() -> Any:
    """The JSON-API filesystem of gcsfs, for a custom endpoint (an emulator, a GCS-compatible store).

    gcsfs's default class first asks the Storage Control gRPC API for the bucket's layout
    (zonal / hierarchical namespace), which an emulator or another endpoint does not serve:
    each attempt would wait out a 60 s retry before falling back to this class anyway.
    """
    from gcsfs.core import GCSFileSystem  # type: ignore[import-untyped,import-not-found,unused-ignore]

    return GCSFileSystem


def _close_async_sessions() -> None:
    """At exit, close the sessions of async filesystems (zarr's) while their loop still runs.

    fsspec closes sessions of the synchronous instances itself; without this, aiohttp
    prints "Unclosed client session" for each async one when the interpreter ends.
    """
    with _FS_LOCK:
        items = [fs for (_, _, asynchronous, pid), fs in _FS_CACHE.items() if asynchronous and pid == os.getpid()]
    if not items:
        return
    loop = None
    with contextlib.suppress(Exception):
        from zarr.core.sync import _get_loop  # the loop zarr runs the async filesystems in

        loop = _get_loop()
    for fs in items:
        with contextlib.suppress(Exception):
            session = getattr(fs, "_session", None)  # HTTP
            if session is not None:
                type(fs).close_session(loop, session)
            s3 = getattr(fs, "_s3", None)  # s3fs
            if s3 is not None:
                type(fs).close_session(loop, s3)


class Location:
    """A remote URL plus its storage options; picklable, so it travels to dask workers.

    ``repr`` and :meth:`describe` never show credentials (see :func:`redact`).

    Parameters
    ----------
    url
        ``protocol://...`` (a trailing slash is dropped).
    options
        Storage options as resolved by :func:`location`.
    """

    def __init__(self, url: str, options: Mapping[str, Any] | None = None) -> None:
        self.url = url.rstrip("/") if not url.endswith("://") else url
        self.options = dict(options or {})
        self.pinned: tuple[str, int] | None = None

    def pin(self, version: str, size: int) -> Location:
        """A copy pinned to the object as :meth:`stat` saw it: ``(version, size)`` known, so no HEAD is needed again.

        :meth:`stat` answers from the pin, :meth:`open` needs no HEAD, and its reads are
        conditional on the version where the protocol allows (S3 ``IfMatch``, HTTP
        ``If-Match`` on an ETag): an object replaced since gives
        :class:`~ome_arrow_dask.errors.InputChangedError`, never bytes of the new object
        read with the old layout.
        """
        out = Location(self.url, self.options)
        out.pinned = (str(version), int(size))
        return out

    @property
    def protocol(self) -> str:
        """The URL scheme (``s3``, ``https``, ...)."""
        return self.url.split("://", 1)[0]

    @property
    def name(self) -> str:
        """The last path component."""
        return self.url.rstrip("/").rsplit("/", 1)[-1]

    @property
    def path(self) -> str:
        """The path fsspec expects: the full URL for HTTP, ``bucket/key`` otherwise."""
        return self.url if self.protocol in ("http", "https") else self.url.split("://", 1)[1]

    def join(self, *parts: str) -> Location:
        """A location below this one (``parts`` are ``/``-separated keys)."""
        keys = [p.strip("/") for p in parts if p and p.strip("/")]
        return Location("/".join([self.url, *keys]), self.options)

    def filesystem(self, asynchronous: bool = False) -> Any:
        """The fsspec filesystem (async for zarr's store), cached per process."""
        return _filesystem(self.protocol, self.options, asynchronous)

    def zarr_store(self, read_only: bool = True) -> Any:
        """A zarr ``FsspecStore`` rooted at this URL (read-only unless ``read_only=False``, for writers)."""
        from zarr.storage import FsspecStore

        return FsspecStore(fs=self.filesystem(asynchronous=True), path=self.path, read_only=read_only)

    def open(self, *, block_size: int = 2**16, cache_type: str = "readahead") -> Any:
        """A binary file object with ranged reads (``block_size`` bytes of read-ahead).

        A pinned location (:meth:`pin`) opens without a HEAD, its reads conditional on the version.
        ``cache_type="none"``: each read fetches exactly the bytes asked for (no read-ahead).
        """
        if self.pinned is not None:
            return self._open_pinned(block_size, cache_type)
        try:
            return self.filesystem().open(self.path, "rb", block_size=block_size, cache_type=cache_type)
        except Exception as exc:
            raise remote_error(self.url, exc) from exc

    def _open_pinned(self, block_size: int, cache_type: str = "readahead") -> Any:
        assert self.pinned is not None
        version, size = self.pinned
        fs = self.filesystem()
        etag = version if version.startswith(('"', 'W/"')) else ""  # an ETag, not a Last-Modified date
        kwargs: dict[str, Any] = {}
        if etag and self.protocol in ("http", "https") and not etag.startswith("W/"):
            kwargs["headers"] = {**dict(getattr(fs, "kwargs", {}).get("headers") or {}), "If-Match": etag}
        try:
            fh = fs.open(self.path, "rb", block_size=block_size, cache_type=cache_type, size=size, **kwargs)
        except Exception as exc:
            raise remote_error(self.url, exc) from exc
        if self.protocol in ("s3", "s3a") and isinstance(getattr(fh, "read_kw", None), dict):
            fh.details = {"name": self.path, "size": size, "type": "file", "ETag": version}  # s3fs would HEAD
            if etag:
                fh.read_kw = {**fh.read_kw, "IfMatch": etag}  # what s3fs itself sends after its own HEAD
        return fh

    def head(self) -> tuple[str, int] | None:
        """``(version, size)`` of the object, or None when there is none (a folder, or absent); never lists.

        One HEAD on S3 (s3fs's ``info`` would LIST the prefix after a 404). HTTP: a HEAD (and
        fsspec's GET fallback); an HTML answer is a folder's index page, not an object. Other
        protocols: the filesystem's ``info`` (gcsfs lists the prefix when there is no object).
        """
        fs = self.filesystem()
        try:
            if self.protocol in ("s3", "s3a"):
                bucket, _, key = self.path.partition("/")
                out = fs.call_s3("head_object", fs.kwargs, Bucket=bucket, Key=key)  # as s3fs's own info() calls it
                return _version(out, out.get("ContentLength"))
            info = fs.info(self.path)
        except Exception as exc:
            error = remote_error(self.url, exc)
            if isinstance(error, FileNotFoundError):
                return None
            raise error from exc
        if info.get("type") == "directory" or info.get("mimetype") == "text/html":
            return None
        return _version(info, info.get("size"))

    def open_checked(self, *, block_size: int = 2**16) -> tuple[Any, tuple[str, int]]:
        """:meth:`open` plus ``(version, size)`` as :meth:`stat` gives them, in one HEAD together."""
        fs = self.filesystem()
        try:
            if self.protocol in ("http", "https"):  # HTTPFile keeps no ETag: HEAD here, hand it the size
                version = self.stat()
                fh = fs.open(self.path, "rb", block_size=block_size, cache_type="readahead", size=version[1])
                return fh, version
            fh = fs.open(self.path, "rb", block_size=block_size, cache_type="readahead")
        except Exception as exc:
            raise remote_error(self.url, exc) from exc
        return fh, _version(getattr(fh, "details", {}) or {}, fh.size)

    def stat(self) -> tuple[str, int]:
        """``(version, size)``: one HEAD (none when pinned); version is the ETag (or Last-Modified), else ``""``."""
        if self.pinned is not None:
            return self.pinned
        try:
            info = self.filesystem().info(self.path)
        except Exception as exc:
            raise remote_error(self.url, exc) from exc
        if info.get("type") == "directory":
            raise IsADirectoryError(f"{self.url} is a folder (prefix), not an object")
        return _version(info, info.get("size"))

    def read_bytes(self) -> bytes:
        """The whole object (one GET)."""
        try:
            return self.filesystem().cat_file(self.path)
        except Exception as exc:
            raise remote_error(self.url, exc) from exc

    def listing(self) -> dict[str, tuple[int, str]]:
        """``{name: (size, version)}`` of the objects directly under this prefix: one LIST.

        The store pages long listings (S3: 1,000 keys a request). HTTP folders are read
        from their index page, without sizes (-1) or versions (``""``).
        """
        fs = self.filesystem()
        try:
            fs.invalidate_cache(self.path)
            entries = fs.ls(self.path, detail=True)
        except FileNotFoundError as exc:
            raise FileNotFoundError(f"no such folder (prefix): {self.url}") from exc
        except Exception as exc:
            raise remote_error(self.url, exc) from exc
        out = {}
        for entry in entries:
            if entry.get("type", "file") != "file":
                continue
            size = entry.get("size")
            out[str(entry["name"]).rstrip("/").rsplit("/", 1)[-1]] = (
                -1 if size is None else int(size),
                _version(entry, 0)[0],
            )
        return out

    def write_bytes(self, data: bytes) -> None:
        """Store ``data`` as this object: one PUT, so readers see the old object or the whole new one."""
        try:
            self.filesystem().pipe_file(self.path, data)
        except Exception as exc:
            raise remote_error(self.url, exc, writing=True) from exc

    def find(self) -> dict[str, int]:
        """``{key relative to this prefix: size}`` of every object below it: one LIST (paged), no recursion.

        An absent prefix gives ``{}``.
        """
        fs = self.filesystem()
        try:
            fs.invalidate_cache(self.path)
            found = fs.find(self.path + "/", detail=True)
        except FileNotFoundError:
            return {}
        except Exception as exc:
            raise remote_error(self.url, exc) from exc
        start = len(self.path.rstrip("/")) + 1
        return {
            str(name)[start:]: int(info.get("size") or 0)
            for name, info in found.items()
            if info.get("type", "file") == "file" and str(name).startswith(self.path.rstrip("/") + "/")
        }

    def delete(self, *, prefix: bool = False) -> None:
        """Delete this object, or with ``prefix=True`` every object below this prefix (LIST + batched DELETEs).

        Deleting what is not there is no error.
        """
        if prefix:
            self.delete_many(sorted(self.find()))
            return
        fs = self.filesystem()
        try:
            fs.rm_file(self.path)
        except FileNotFoundError:
            pass
        except Exception as exc:
            raise remote_error(self.url, exc, writing=True) from exc

    def delete_many(self, keys: list[str]) -> None:
        """Delete the objects ``keys`` (relative to this prefix) in batched requests (S3: 1,000 keys a request)."""
        if not keys:
            return
        fs = self.filesystem()
        try:
            fs.rm([f"{self.path}/{key}" for key in keys])
            fs.invalidate_cache(self.path)
        except FileNotFoundError:
            pass
        except Exception as exc:
            raise remote_error(self.url, exc, writing=True) from exc

    def arrow_filesystem(self) -> tuple[Any, str]:
        """``(pyarrow.fs.FileSystem, path)`` for Parquet reads (fsspec-backed)."""
        from pyarrow.fs import FSSpecHandler, PyFileSystem

        return PyFileSystem(FSSpecHandler(self.filesystem())), self.path

    def describe(self) -> str:
        """The URL and the storage options with secrets hidden."""
        shown = redact({k: v for k, v in self.options.items() if k not in ("config_kwargs", "max_concurrency")})
        return f"{self.url} ({shown})" if shown else self.url

    def __repr__(self) -> str:
        return f"Location({self.describe()!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Location) and (self.url, self.options, self.pinned) == (
            other.url,
            other.options,
            other.pinned,
        )

    def __hash__(self) -> int:
        return hash(self.url)

    def __dask_tokenize__(self) -> object:
        from dask.base import tokenize

        return ("Location", self.url, tokenize(self.options), self.pinned)


def _version(info: Mapping[str, Any], size: object) -> tuple[str, int]:
    """``(ETag or Last-Modified or "", size)`` from an fsspec info dict."""
    version = next((str(info[k]) for k in ("ETag", "etag", "LastModified", "Last-Modified") if info.get(k)), "")
    return version, int(size or 0)  # type: ignore[call-overload]


class RemoteURL(str):
    """A URL string that carries its :class:`Location`, for code written against path strings.

    It formats, compares and hashes as the URL (never showing storage options) and pickles
    with its location, so a source that stores it as its ``path`` travels to workers whole.
    """

    loc: Location

    def __new__(cls, loc: Location) -> RemoteURL:
        """Make the URL string of ``loc``, carrying ``loc``."""
        obj = super().__new__(cls, loc.url)
        obj.loc = loc
        return obj

    def __reduce__(self) -> tuple[Any, ...]:
        return (RemoteURL, (self.loc,))

    def __dask_tokenize__(self) -> object:
        return self.loc.__dask_tokenize__()


def location(url: str, storage_options: Mapping[str, Any] | None = None) -> Location:
    """Resolve ``url`` and ``storage_options`` into a :class:`Location` (no request except a credential lookup).

    Raises
    ------
    ImportError
        When fsspec (or the protocol's filesystem package) is not installed; names the extra.
    """
    if storage_options is not None and not isinstance(storage_options, Mapping):
        raise TypeError(f"storage_options must be a dict, got {type(storage_options).__name__}")
    _import_fsspec()
    protocol = url.split("://", 1)[0]
    return Location(url, _resolve_options(protocol, storage_options or {}, url))


@functools.lru_cache(maxsize=1)
def _http_errors() -> tuple[type[BaseException], ...]:
    try:
        import aiohttp
    except ImportError:
        return ()
    return (aiohttp.ClientError,)


def _status(exc: BaseException) -> int | None:
    """The HTTP status of ``exc`` or of the errors it was raised from (botocore, aiohttp)."""
    seen = 0
    while exc is not None and seen < 8:
        status = getattr(exc, "status", None)
        if isinstance(status, int):
            return status
        code = getattr(exc, "response", None)
        if isinstance(code, dict):
            value = code.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if isinstance(value, int):
                return value
        exc, seen = exc.__cause__ or exc.__context__, seen + 1  # type: ignore[assignment]
    return None


def is_network_error(exc: BaseException) -> bool:
    """True for errors of the request itself (denied, unreachable, cut off), not of the data."""
    status = _status(exc)
    return isinstance(exc, (PermissionError, ConnectionError, TimeoutError, *_http_errors())) or (
        isinstance(status, int) and status >= 400
    )


def remote_error(url: str, exc: BaseException, *, writing: bool = False) -> Exception:
    """Map a library error for ``url`` to ours, saying what to do; pass our own errors through.

    ``writing``: the request wrote or deleted (the messages say so).
    """
    if isinstance(exc, (RemoteAccessError, CorruptInputError, InputChangedError)):
        return exc
    text = f"{type(exc).__name__}: {exc}"
    status = _status(exc)
    if status == 412 or "PreconditionFailed" in text or type(exc).__name__ == "FileExpired":  # If-Match failed
        return InputChangedError(f"{url}: the object changed after it was opened (its ETag differs); open it again")
    if status != 404 and isinstance(exc, FileNotFoundError) and status is not None:
        exc = exc.__cause__ or exc  # fsspec's HTTP info() turns any failure into FileNotFoundError
        text = f"{type(exc).__name__}: {exc}"
    if status == 404 or (status is None and isinstance(exc, FileNotFoundError)):
        return FileNotFoundError(f"no such object: {url} ({text})")
    denied = isinstance(exc, PermissionError) or status in (401, 403) or "AccessDenied" in text or "Forbidden" in text
    if writing and denied:
        return RemoteAccessError(
            f"{url}: write access denied ({text}). Pass credentials allowed to write there "
            "(storage_options={'key': ..., 'secret': ...}, a profile, or the AWS_* environment variables); "
            "anonymous access (anon=True) cannot write"
        )
    if writing and (isinstance(exc, (ConnectionError, TimeoutError, *_http_errors())) or status):
        return RemoteAccessError(
            f"{url}: the write failed after retries ({text}). Check the URL, the network and the endpoint "
            "(storage_options={'endpoint_url': ...}), then run the conversion again with resume=True (CLI --resume)"
        )
    if writing:
        return RemoteAccessError(f"{url}: cannot write ({text})")
    if denied:
        return RemoteAccessError(
            f"{url}: access denied ({text}). Pass credentials (storage_options={{'key': ..., 'secret': ...}}, "
            "a profile, or the AWS_* environment variables; HTTP: storage_options={'headers': {...}}), "
            "or anon=True for a public bucket"
        )
    if isinstance(exc, (ConnectionError, TimeoutError, *_http_errors())) or status:
        return RemoteAccessError(
            f"{url}: the request failed after retries ({text}). Check the URL, the network and the endpoint "
            "(storage_options={'endpoint_url': ...}), then run again; nothing was returned"
        )
    return RemoteAccessError(f"{url}: cannot read ({text})")
