"""Conversion jobs on object stores (``s3://``, ``gs://``, ...): the commit protocol without rename.

An object store has no rename and no folders, but every PUT of one object is atomic: a
reader sees the old object or the whole new one, never a torn one (S3, GCS and Azure all
promise this, also for multipart uploads, which appear only when completed). A job
writing the output ``<out>`` (a URL) keeps the promise of the local protocol with these
objects, all named from ``<out>`` alone:

``<out>.progress/job.json``
    The job manifest: fingerprint, ``verify_inputs`` and the input records. Written
    **first**, before any object of the output, and deleted **last**. Its presence makes
    the prefix ours: a resume compares its fingerprint (another job is refused, naming the
    input files that changed), and ``overwrite`` may delete the output only while it, or
    our status record in the output's metadata, is there. Any other object under
    ``<out>/`` is foreign and never deleted, ``overwrite`` or not.
``<out>/...``
    The output's data objects (zarr chunks or shards, Parquet tables): each written once,
    whole, by one task, so two tasks never read-modify-write one object.
``<out>.progress/<kind>-<fp>/...``
    Per-unit done markers (``kind`` ``done``; ``fp`` the first 16 hex digits of the
    fingerprint), each PUT *after* its unit's data object. Parquet parts are write-once
    objects under ``parts-<fp>/`` and are their own markers. One LIST of this prefix tells
    a resume which units are done; the rest are (re)written. A zombie task of an
    overwritten job with another fingerprint writes under another prefix and is ignored.
``<out>`` metadata (zarr ``zarr.json`` / ``.zattrs``, Parquet ``_ome_arrow_dataset.json``)
    The status record (:data:`~.status.STATUS_KEY`) says ``in_progress`` from the start;
    the NGFF metadata (``multiscales``, ``omero``) or the dataset manifest with
    ``complete`` is written **last**, in one PUT, after every marker has been listed.
    Until then our readers refuse the output (:class:`~ome_arrow_dask.errors.IncompleteOutputError`
    naming the URL and ``--resume``) and other readers find no image (no ``multiscales``,
    no manifest). The progress prefix is a sibling, so NGFF readers and copies of a
    finished output never see it.
``<out>.lock``
    One writer per output (:class:`ObjectStoreLock`).

Overwriting keeps the invariant "a marker exists only while its unit's data exists": the
new job manifest is written first (the prefix stays ours if the overwrite is killed), then
the status record and every metadata document (``zarr.json``, ``.zarray``, ... at every
level) are deleted, then the old markers, then the old data objects. No old array
metadata survives a killed overwrite for a resume to write the new image through.

Nothing here renames; the local protocol (temp file, fsync, ``os.replace``) is
:mod:`.commit`. :class:`ObjectStoreCommitter` implements its :class:`~.commit.Committer`
protocol with PUTs.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ..errors import IncompleteOutputError, OmeArrowDaskError, OutputInUseError, OutputIsInputError
from .decision import Existing
from .status import COMPLETE, IN_PROGRESS, STATUS_KEY

if TYPE_CHECKING:
    from ..storage import Location

__all__ = [
    "HEARTBEAT_S",
    "STALE_AFTER_S",
    "ObjectStoreCommitter",
    "ObjectStoreLock",
    "RemoteOutput",
    "check_url_not_input",
]

logger = logging.getLogger(__name__)

STALE_AFTER_S = 120.0
"""A lock whose heartbeat is older than this (by the store's clock) belongs to a dead writer."""

HEARTBEAT_S = 20.0
"""How often a running writer refreshes its lock object."""

METADATA_NAMES = frozenset({"zarr.json", ".zarray", ".zattrs", ".zgroup"})
"""Names of the metadata documents of a zarr output (v3, v2), at any level: deleted first by an overwrite."""

_CONDITIONAL = ("s3", "s3a")
"""Protocols with conditional writes (``If-None-Match: *``, ``If-Match: <ETag>``): a real lock."""


class ObjectStoreCommitter:
    """The :class:`~.commit.Committer` of object stores: every commit is one atomic PUT.

    Paths are URLs below the store the ``options`` reach. ``sync_dir`` is accepted for
    the protocol and has no meaning here.
    """

    def __init__(self, options: dict[str, Any]) -> None:
        self.options = options

    def _loc(self, path: str | os.PathLike[str]) -> Location:
        from ..storage import Location

        return Location(os.fspath(path), self.options)

    def commit(self, tmp: str | os.PathLike[str], final: str | os.PathLike[str], *, sync_dir: bool = True) -> None:
        """Upload the finished local file ``tmp`` as the object ``final`` (it appears whole) and remove ``tmp``."""
        del sync_dir
        from ..storage import remote_error

        loc = self._loc(final)
        try:
            loc.filesystem().put_file(os.fspath(tmp), loc.path)
        except Exception as exc:
            raise remote_error(loc.url, exc, writing=True) from exc
        finally:
            with contextlib.suppress(OSError):
                os.remove(tmp)

    def atomic_write_text(self, path: str | os.PathLike[str], text: str, *, sync_dir: bool = True) -> None:
        """PUT ``text`` (UTF-8) as the object ``path``."""
        del sync_dir
        self._loc(path).write_bytes(text.encode("utf-8"))

    def write_bytes(self, path: str | os.PathLike[str], data: bytes) -> None:
        """PUT ``data`` as the object ``path``."""
        self._loc(path).write_bytes(data)


def _norm(url: str) -> str:
    """``s3a://b/k/`` -> ``s3://b/k``: one spelling per object, for comparisons."""
    scheme, _, rest = url.partition("://")
    scheme = {"s3a": "s3", "gcs": "gs"}.get(scheme.lower(), scheme.lower())
    return f"{scheme}://{rest.strip('/')}"


def _url_within(inner: str, outer: str) -> bool:
    return inner == outer or inner.startswith(outer + "/")


def check_url_not_input(out: str, inputs: Iterable[str], *, job_paths: Iterable[str] = ()) -> None:
    """Refuse a remote output that is one of the job's remote inputs, lies inside one, or contains one.

    URLs are compared by key prefix (``s3a://`` is ``s3://``); local inputs cannot overlap
    a remote output. ``job_paths`` are the job's further objects (progress prefix, lock).

    Raises
    ------
    OutputIsInputError
        Before anything is written or deleted.
    """
    targets = [_norm(p) for p in (out, *job_paths)]
    for inp in inputs:
        if "://" not in inp:
            continue
        source = _norm(inp)
        for target in targets:
            if _url_within(target, source):
                where = "is the input" if target == source else "lies inside the input"
                raise OutputIsInputError(
                    f"{out}: the output {where} {inp}; writing there would change or delete the input. "
                    "Choose another output URL"
                )
            if _url_within(source, target):
                raise OutputIsInputError(
                    f"{out}: the input {inp} lies inside the output; replacing the output would delete "
                    "the input. Choose another output URL"
                )


class RemoteOutput:
    """The objects of one job writing the output ``loc`` on an object store (see the module docstring).

    Picklable (a :class:`~ome_arrow_dask.storage.Location` and names).
    """

    def __init__(self, loc: Location) -> None:
        from ..storage import Location

        if loc.protocol in ("http", "https"):
            raise OmeArrowDaskError(f"{loc.url}: HTTP(S) URLs are read-only; write to s3://, gs://, ... or a path")
        self.loc = loc
        self.progress = Location(loc.url + ".progress", loc.options)
        self.lock = Location(loc.url + ".lock", loc.options)
        self.committer = ObjectStoreCommitter(loc.options)

    @property
    def url(self) -> str:
        """The output's URL."""
        return self.loc.url

    @property
    def job_url(self) -> str:
        """The job manifest ``<out>.progress/job.json``."""
        return self.progress.url + "/job.json"

    def units_prefix(self, kind: str, fingerprint: str) -> Location:
        """``<out>.progress/<kind>-<first 16 hex digits of fingerprint>``: where this job's unit records go."""
        return self.progress.join(f"{kind}-{fingerprint[:16]}")

    def units_done(self, kind: str, fingerprint: str) -> set[str]:
        """Keys (relative to :meth:`units_prefix`) of the unit records there: one LIST."""
        return set(self.units_prefix(kind, fingerprint).find())

    def read(self, key: str) -> bytes | None:
        """The object ``<out>/<key>`` (one GET), None when absent."""
        try:
            return self.loc.join(key).read_bytes()
        except FileNotFoundError:
            return None

    def read_job_record(self) -> dict[str, Any] | None:
        """The job manifest of an unfinished job; None when there is none.

        Raises
        ------
        IncompleteOutputError
            When it exists but is damaged, naming the URL.
        """
        from ..storage import Location

        try:
            raw: Any = Location(self.job_url, self.loc.options).read_bytes()
        except FileNotFoundError:
            return None
        try:
            record = json.loads(raw.decode("utf-8"))
        except ValueError as exc:
            record = exc
        if not isinstance(record, dict):
            raise IncompleteOutputError(
                f"{self.job_url}: the record of the interrupted conversion is damaged, so its parts cannot be "
                "trusted; run with overwrite=True (CLI --overwrite) to start again"
            )
        return record

    def write_job_record(self, record: dict[str, Any]) -> None:
        """PUT the job manifest (before any object of the output)."""
        self.committer.atomic_write_text(self.job_url, json.dumps(record, indent=1))

    def occupied(self) -> bool:
        """True when any object lies under ``<out>/`` (one LIST)."""
        return bool(self.loc.find())

    def inspect(self, status: Any) -> Existing:
        """What is at the output (:class:`~.decision.Existing`), given the status record its metadata holds.

        The job manifest wins over the output's status (it exists only while a job is
        unfinished). Objects that carry neither are foreign: never written into or deleted.
        """
        try:
            record = self.read_job_record()
        except IncompleteOutputError as exc:
            return Existing(kind="output", state=IN_PROGRESS, damaged=str(exc))
        if record is not None:
            if (
                isinstance(status, dict)
                and status.get("status") == COMPLETE
                and (status.get("fingerprint") == record.get("fingerprint"))
            ):
                return Existing.output(status, record)  # killed while its records were deleted: finished
            return Existing.output({**record, "status": IN_PROGRESS}, record)
        if isinstance(status, dict) and isinstance(status.get("fingerprint"), str):
            return Existing.output(status)
        if self.occupied():
            return Existing.foreign(
                f"holds objects that no ome-arrow-dask conversion recorded (no {STATUS_KEY} status, no job record "
                f"{self.job_url}); refusing to write there or delete them (also with overwrite=True): "
                "choose another output URL"
            )
        return Existing("absent")

    def clear(self, record: dict[str, Any], status_keys: Iterable[str] = ()) -> None:
        """Start again: the new job manifest ``record`` first, then delete the old output.

        Deleted in this order: the objects ``status_keys`` (those carrying the status
        record: ``zarr.json``, the dataset manifest) together with every metadata document
        (:data:`METADATA_NAMES`, at every level), then the old markers, then the old
        output's data objects. A kill at any point leaves an output of ours in progress
        whose markers all name units whose data is still there, and no old array metadata
        that a resume could mistake for its own and write the new image through.
        """
        self.write_job_record(record)
        keys = sorted(self.loc.find())
        first = set(status_keys) | {key for key in keys if key.rpartition("/")[2] in METADATA_NAMES}
        self.loc.delete_many(sorted(first))
        self.progress.delete_many([key for key in self.progress.find() if key != "job.json"])
        self.loc.delete(prefix=True)  # LISTed again: also what a zombie task of the old job wrote meanwhile

    def finish(self) -> None:
        """Delete the progress prefix: the markers first (batched), the job manifest last."""
        self.progress.delete_many([key for key in self.progress.find() if key != "job.json"])
        self.progress.join("job.json").delete()

    def __repr__(self) -> str:
        return f"RemoteOutput({self.loc.describe()!r})"


# ---------------------------------------------------------------------- lock
def _precondition_failed(exc: BaseException) -> bool:
    from ..storage import _status

    return _status(exc) == 412 or "PreconditionFailed" in f"{type(exc).__name__}{exc}" or "pre-condition" in str(exc)


def _http_date(text: str | None) -> float | None:
    if not text:
        return None
    from email.utils import parsedate_to_datetime

    try:
        return parsedate_to_datetime(text).timestamp()
    except (TypeError, ValueError):
        return None


class ObjectStoreLock:
    """One writer per remote output: the object ``<out>.lock``, created conditionally, kept alive by a heartbeat.

    On S3 the lock object is created with ``If-None-Match: *`` (only one writer's PUT
    succeeds), refreshed every ``heartbeat`` seconds with ``If-Match`` on its own ETag (a
    writer that lost the lock learns it at the next beat, and :meth:`check` refuses to
    finish), taken over with ``If-Match`` on the dead owner's ETag (only one successor
    wins) and deleted with ``If-Match`` (never another writer's lock). Other object stores
    get an advisory lock (read, then write: two writers starting in the same instant can
    both pass).

    A lock is stale, and taken over, when its owner is a process on this machine (same
    host, boot and PID namespace: containers sharing a kernel have their own pids) that no
    longer runs, or when its last heartbeat is older than
    ``stale_after`` seconds by the store's own clock (the ``Date`` of the answer minus the
    object's ``Last-Modified``, so clock skew between machines does not matter; an advisory
    lock compares the time its owner wrote in it with this machine's clock).

    Raises
    ------
    OutputInUseError
        From :meth:`acquire` when a live writer holds the lock (its host, pid, start and
        command are named, and when it becomes stale).
    """

    def __init__(self, remote: RemoteOutput, *, stale_after: float = STALE_AFTER_S, heartbeat: float = HEARTBEAT_S):
        self.remote = remote
        self.loc = remote.lock
        self.stale_after = float(stale_after)
        self.heartbeat = float(heartbeat)
        self.job_id = uuid.uuid4().hex
        self.previous: dict[str, Any] | None = None
        """The details of a dead owner this job took over from, if any."""
        self.lost: str | None = None
        self._etag: str | None = None
        self._beats = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._mutex = threading.Lock()

    # -- requests
    @property
    def _conditional(self) -> bool:
        return self.loc.protocol in _CONDITIONAL

    def _bucket_key(self) -> tuple[str, str]:
        bucket, _, key = self.loc.path.partition("/")
        return bucket, key

    def _body(self) -> bytes:
        from .lock import owner_record

        owner = {
            **owner_record(self.job_id, self.remote.url),
            "heartbeat_s": self.heartbeat,
            "stale_after_s": self.stale_after,
            "beat": self._beats,
            "beat_at": time.time(),  # the advisory lock's clock (conditional stores use the store's own)
        }
        return json.dumps(owner, indent=1).encode()

    def _put(self, body: bytes, **condition: str) -> str:
        """PUT the lock object under ``condition`` (``IfNoneMatch`` / ``IfMatch``); return its ETag."""
        from ..storage import remote_error

        fs = self.loc.filesystem()
        if not self._conditional:
            self.loc.write_bytes(body)
            return ""
        bucket, key = self._bucket_key()
        try:
            answer = fs.call_s3("put_object", Bucket=bucket, Key=key, Body=body, **condition)
        except Exception as exc:
            if _precondition_failed(exc) or (condition.get("IfMatch") and isinstance(exc, FileNotFoundError)):
                raise _Conflict from exc
            raise remote_error(self.loc.url, exc, writing=True) from exc
        return str(answer.get("ETag", ""))

    def _get(self) -> tuple[dict[str, Any] | None, str, float | None] | None:
        """``(owner details, ETag, age in seconds by the store's clock)`` of the lock; None when absent."""
        from fsspec.asyn import sync

        from ..storage import remote_error

        if not self._conditional:
            try:
                raw = self.loc.read_bytes()
            except FileNotFoundError:
                return None
            owner = _parse_owner(raw)
            beat_at = None if owner is None else owner.get("beat_at")
            return owner, "", time.time() - beat_at if isinstance(beat_at, (int, float)) else None
        fs = self.loc.filesystem()
        bucket, key = self._bucket_key()

        async def get() -> tuple[bytes, dict[str, Any]]:
            answer = await fs._call_s3("get_object", Bucket=bucket, Key=key)
            body = answer["Body"]
            try:
                return await body.read(), answer
            finally:
                body.close()

        try:
            raw, answer = sync(fs.loop, get)
        except Exception as exc:
            error = remote_error(self.loc.url, exc)
            if isinstance(error, FileNotFoundError):
                return None
            raise error from exc
        now = _http_date(answer.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date"))
        modified = answer.get("LastModified")
        age = now - modified.timestamp() if now is not None and modified is not None else None
        return _parse_owner(raw), str(answer.get("ETag", "")), age

    def _delete(self, etag: str) -> None:
        if not self._conditional:
            self.loc.delete()
            return
        fs = self.loc.filesystem()
        bucket, key = self._bucket_key()
        with contextlib.suppress(Exception):  # gone or replaced: not ours to delete any more
            fs.call_s3("delete_object", Bucket=bucket, Key=key, IfMatch=etag)

    # -- protocol
    def _stale(self, owner: dict[str, Any] | None, age: float | None) -> bool:
        from .lock import _owner_alive, _same_process_space

        if owner is not None and owner.get("boot_id") and _same_process_space(owner):
            return not _owner_alive(owner)  # a process of this machine and PID namespace: its pid says
        limit = self.stale_after
        if owner is not None and isinstance(owner.get("stale_after_s"), (int, float)):
            limit = max(limit, float(owner["stale_after_s"]))  # the owner's own promise wins when longer
        return age is not None and age > limit

    def _refuse(self, owner: dict[str, Any] | None, age: float | None) -> OutputInUseError:
        from .lock import _describe_owner

        beat = "" if age is None else f" (last heartbeat {age:.0f} s ago; stale after {self.stale_after:.0f} s)"
        return OutputInUseError(
            f"{self.remote.url} is being written by {_describe_owner(owner)}{beat}; two conversions must not write "
            "one output. Wait for it to finish, or stop that process and resume with resume=True (CLI --resume) "
            f"once its lock is stale; lock object {self.loc.url}"
        )

    def acquire(self) -> ObjectStoreLock:
        """Take the lock (or a dead owner's), then start the heartbeat."""
        for _ in range(20):
            if self._conditional:
                try:
                    self._etag = self._put(self._body(), IfNoneMatch="*")
                    break
                except _Conflict:
                    pass
            found = self._get()
            if found is None:
                if self._conditional:
                    continue  # released meanwhile: try again
                self._etag = self._put(self._body())  # advisory: no conditional create
                break
            owner, etag, age = found
            if not self._stale(owner, age):
                raise self._refuse(owner, age)
            try:
                self._etag = self._put(self._body(), IfMatch=etag) if self._conditional else self._put(self._body())
            except _Conflict:
                continue  # another successor took it first: look again
            from .lock import _describe_owner

            logger.info("%s: took over the stale lock of %s", self.remote.url, _describe_owner(owner))
            self.previous = owner
            break
        else:
            raise OutputInUseError(f"{self.remote.url}: could not take the lock {self.loc.url} (it keeps changing)")
        self._stop.clear()
        if self.heartbeat > 0:
            self._thread = threading.Thread(target=self._beat, name=f"lock-heartbeat {self.loc.url}", daemon=True)
            self._thread.start()
        return self

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat):
            with self._mutex:
                if self._stop.is_set():
                    return
                self._beats += 1
                try:
                    if self._conditional:
                        self._etag = self._put(self._body(), IfMatch=self._etag or "")
                    else:
                        self._put(self._body())
                except _Conflict:
                    self.lost = (
                        f"{self.remote.url}: another writer took over the lock {self.loc.url} (this job's heartbeat "
                        "was late, e.g. the machine was suspended); this job stops without marking the output "
                        "complete"
                    )
                    return
                except Exception as exc:  # a failed beat: try again at the next one
                    logger.warning("%s: lock heartbeat failed (%s); retrying", self.remote.url, exc)

    def check(self) -> None:
        """Raise :class:`OutputInUseError` if another writer took the lock over (before writing ``complete``)."""
        if self.lost:
            raise OutputInUseError(self.lost)

    def release(self) -> None:
        """Stop the heartbeat and delete the lock object (only while it is still ours)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        with self._mutex:
            if self._etag is not None and not self.lost:
                self._delete(self._etag)
            self._etag = None

    def __enter__(self) -> ObjectStoreLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


class _Conflict(Exception):
    """A conditional request found the lock object in another state."""


def _parse_owner(raw: bytes) -> dict[str, Any] | None:
    with contextlib.suppress(ValueError):
        data = json.loads(raw.decode("utf-8", "replace"))
        return data if isinstance(data, dict) else None
    return None
