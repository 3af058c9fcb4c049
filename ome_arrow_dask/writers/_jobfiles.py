"""Files of a conversion job on disk: temp names, atomic commits, the progress folder and the job's safety.

Both writers commit every file the same way (write a temp file beside the target,
fsync, ``os.replace``, fsync the folder) and keep their resume records in the sibling
``<out>.progress/`` folder, which the readers also look for to name an interrupted job.

Before a writer touches anything it

1. refuses an output that is one of the job's inputs, lies inside one, or contains one
   (:func:`check_output_not_input`; symlinks, relative paths, hard links and bind mounts
   are resolved), so ``overwrite`` can never delete an input;
2. takes the ownership lock ``<out>.lock`` (:class:`JobLock`): an exclusive ``flock`` on
   that file, which the kernel releases when the owner exits or is killed, so a crashed
   job's successor takes over at once while a second live job is refused with a message
   naming the owner (pid, host, start time, command) written in the file;
3. fingerprints its inputs (:func:`input_records`): size, mtime *and* inode change time of
   every input file (``ctime`` cannot be set back by user tools, so a file changed in place
   with its mtime restored is caught), or with ``verify_inputs="content"`` a BLAKE2b hash
   of every byte. A resume whose inputs differ from the recorded ones is refused.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import hashlib
import json
import os
import shlex
import socket
import sys
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from ..errors import InputChangedError, OmeArrowDaskError, OutputInUseError, OutputIsInputError

__all__ = [
    "VERIFY_INPUTS",
    "JobLock",
    "atomic_write_text",
    "changed_inputs",
    "check_output_not_input",
    "check_recorded_inputs",
    "check_verify_inputs",
    "commit",
    "fsync_dir",
    "image_input_paths",
    "input_change_message",
    "input_records",
    "lock_path",
    "progress_dir",
    "records_digest",
    "tmp_path",
]


def progress_dir(out: str | os.PathLike[str]) -> Path:
    """The sibling folder holding the resume records of a conversion to ``out``.

    >>> progress_dir("/data/run1.ome.zarr/").name
    'run1.ome.zarr.progress'
    """
    return Path(f"{os.fspath(out).rstrip(os.sep)}.progress")


def tmp_path(final: str | os.PathLike[str]) -> Path:
    """A unique temp name beside ``final`` (same folder, so the rename stays on one filesystem)."""
    final = Path(final)
    return final.with_name(f"{final.name}.{uuid.uuid4().hex}.tmp")


def fsync_dir(folder: str | os.PathLike[str]) -> None:
    """Make a rename in ``folder`` durable (POSIX; a no-op where directories cannot be opened)."""
    with contextlib.suppress(OSError):
        fd = os.open(os.fspath(folder) or ".", os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def commit(tmp: str | os.PathLike[str], final: str | os.PathLike[str], *, sync_dir: bool = True) -> None:
    """Fsync ``tmp`` and rename it to ``final``; fsync the folder unless ``sync_dir=False``."""
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, final)
    if sync_dir:
        fsync_dir(Path(final).parent)


def atomic_write_text(path: str | os.PathLike[str], text: str, *, sync_dir: bool = True) -> None:
    """Replace ``path`` with ``text`` atomically: readers see the old file or the whole new one."""
    tmp = tmp_path(path)
    try:
        tmp.write_text(text, encoding="utf-8")
        commit(tmp, path, sync_dir=sync_dir)
    finally:
        tmp.unlink(missing_ok=True)


# ---------------------------------------------------------------------- output vs inputs
def image_input_paths(image: Any) -> tuple[str, ...]:
    """The files and folders ``image`` reads (empty for in-memory data), as absolute paths."""
    getter = getattr(image, "input_paths", None)
    if not callable(getter):
        return ()
    return tuple(p if _is_url(p) else os.path.abspath(p) for p in getter())


def _is_url(path: str) -> bool:
    """A remote input (``s3://...``, ``https://...``): fingerprinted by its source token, not on disk."""
    return "://" in path


def _file_id(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def _chain_ids(path: str, cache: dict[str, set[tuple[int, int]]]) -> set[tuple[int, int]]:
    """``(st_dev, st_ino)`` of ``path`` and of every existing folder above it."""
    if path in cache:
        return cache[path]
    parent = os.path.dirname(path)
    ids = set() if parent == path else set(_chain_ids(parent, cache))
    own = _file_id(path)
    if own is not None:
        ids.add(own)
    cache[path] = ids
    return ids


def _within(inner: str, outer: str) -> bool:
    """True when the (resolved, absolute) path ``inner`` is ``outer`` or lies below it."""
    return inner == outer or inner.startswith(outer.rstrip(os.sep) + os.sep)


def check_output_not_input(
    out: str | os.PathLike[str], inputs: Iterable[str], *, job_paths: Iterable[str | os.PathLike[str]] = ()
) -> None:
    """Refuse a job whose output is one of its inputs, lies inside one, or contains one.

    Paths are compared after resolving relative parts and symlinks, and again by inode
    (hard links, bind mounts, case-insensitive file systems). ``job_paths`` are further
    paths the job writes or deletes (its progress folder, lock file).

    Raises
    ------
    OutputIsInputError
        Before anything is written or deleted.
    """
    cache: dict[str, set[tuple[int, int]]] = {}
    out_text = os.fspath(out)
    targets = [os.path.realpath(os.fspath(p)) for p in (out, *job_paths)]
    for inp in inputs:
        real_in = os.path.realpath(inp)
        in_id = _file_id(real_in)
        in_chain: set[tuple[int, int]] | None = None
        for target in targets:
            target_id = _file_id(target)
            if _within(target, real_in) or (in_id is not None and in_id in _chain_ids(target, cache)):
                where = "is the input" if target_id is not None and target_id == in_id else "lies inside the input"
                raise OutputIsInputError(
                    f"{out_text}: the output {where} {inp}; writing there would change or delete the input. "
                    "Choose another output path"
                )
            if target_id is not None and in_chain is None:
                in_chain = _chain_ids(real_in, cache)
            if _within(real_in, target) or (target_id is not None and target_id in (in_chain or ())):
                raise OutputIsInputError(
                    f"{out_text}: the input {inp} lies inside the output; replacing the output would delete "
                    "the input. Choose another output path"
                )


# ---------------------------------------------------------------------- input fingerprints
VERIFY_INPUTS = ("stat", "content")
"""How a resumed job checks that its inputs did not change: file metadata, or every byte."""

_HASH_BLOCK = 1 << 20


def check_verify_inputs(value: str) -> str:
    """Validate the ``verify_inputs`` option."""
    if value not in VERIFY_INPUTS:
        raise OmeArrowDaskError(f"verify_inputs must be one of {VERIFY_INPUTS}, got {value!r}")
    return value


def _walk_files(path: str) -> Iterator[tuple[str, str]]:
    """``(path relative to the input, full path)`` of every file of an input, sorted."""
    if not os.path.isdir(path):
        yield "", path
        return
    for folder, dirs, files in os.walk(path):
        dirs.sort()
        for name in sorted(files):
            full = os.path.join(folder, name)
            yield os.path.relpath(full, path), full


def _digest_file(digest: Any, full: str, rel: str, mode: str) -> None:
    digest.update(os.fsencode(rel) + b"\0")
    try:
        st = os.stat(full)
    except FileNotFoundError:
        digest.update(b"missing\0")
        return
    if mode == "stat":
        # ctime is set by the kernel on every change (write, rename, chmod, utime) and cannot be
        # restored by user tools: a file rewritten in place with its mtime set back still differs
        digest.update(f"{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}\0".encode())
        return
    digest.update(f"{st.st_size}\0".encode())
    with open(full, "rb") as fh:
        while block := fh.read(_HASH_BLOCK):
            digest.update(block)


def input_records(paths: Iterable[str], mode: str = "stat") -> dict[str, str]:
    """Fingerprint every input: ``{path: digest}``.

    ``mode="stat"`` covers the name, size, mtime and inode change time of each file (for
    a folder, of every file in it); ``mode="content"`` the name, size and a BLAKE2b hash of
    the bytes (reads every input once; accepts an identical copy of the input).
    """
    check_verify_inputs(mode)
    records = {}
    for path in paths:
        if _is_url(path):
            if mode == "content":
                raise OmeArrowDaskError(
                    f"{path}: verify_inputs='content' hashes local files and this input is remote; remote inputs "
                    "are checked by their ETag and size (part of the job fingerprint), so use verify_inputs='stat'"
                )
            records[path] = "remote: ETag and size in the source token"
            continue
        digest = hashlib.blake2b(digest_size=20)
        for rel, full in _walk_files(path):
            _digest_file(digest, full, rel, mode)
        records[path] = digest.hexdigest()
    return records


def records_digest(records: dict[str, str], mode: str) -> str:
    """One digest for all of a job's input records (part of the job fingerprint)."""
    text = json.dumps([mode, sorted(records.items())])
    return hashlib.blake2b(text.encode(), digest_size=20).hexdigest()


def changed_inputs(recorded: Any, current: dict[str, str]) -> list[str]:
    """Inputs whose record differs from ``recorded`` (the job file's ``inputs``), added or removed."""
    if not isinstance(recorded, dict):
        return []
    return sorted(p for p in set(recorded) | set(current) if recorded.get(p) != current.get(p))


def input_change_message(out: str | os.PathLike[str], changed: list[str], mode: str) -> str:
    """The refusal of a resume whose input files ``changed`` (from :func:`changed_inputs`)."""
    how = "their bytes differ" if mode == "content" else "size, modification or inode change time differ"
    listed = ", ".join(changed[:5]) + (f" and {len(changed) - 5} more" if len(changed) > 5 else "")
    return (
        f"{os.fspath(out)}: the input changed since the interrupted conversion started ({how}): {listed}; "
        "resuming would mix old and new pixels. Start again with overwrite=True (CLI --overwrite)"
    )


def check_recorded_inputs(out: str | os.PathLike[str], recorded: Any, inputs: dict[str, str], mode: str) -> None:
    """Refuse a resume whose input check or input files differ from the interrupted job's records.

    ``recorded`` is the job file of the interrupted run (``verify_inputs`` and ``inputs``);
    job files without input records (older versions) are left to the fingerprint check.

    Raises
    ------
    OmeArrowDaskError
        When the interrupted run used another ``verify_inputs`` setting.
    InputChangedError
        Naming the input files that changed.
    """
    if not isinstance(recorded, dict) or not isinstance(recorded.get("inputs"), dict):
        return
    was = recorded.get("verify_inputs", "stat")
    if was != mode:
        raise OmeArrowDaskError(
            f"{os.fspath(out)}: the interrupted conversion was started with verify_inputs={was!r} "
            f"(CLI --verify-inputs {was}); resume it with the same setting"
        )
    changed = changed_inputs(recorded["inputs"], inputs)
    if changed:
        raise InputChangedError(input_change_message(out, changed, mode))


# ---------------------------------------------------------------------- ownership lock
def lock_path(out: str | os.PathLike[str]) -> Path:
    """The lock file of a job writing ``out``: ``<out>.lock`` beside it.

    >>> lock_path("/data/run1.ome.zarr/").name
    'run1.ome.zarr.lock'
    """
    return Path(f"{os.fspath(out).rstrip(os.sep)}.lock")


def _boot_id() -> str | None:
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as fh:
            return fh.read().strip()
    except OSError:
        return None


def _process_start(pid: int) -> int | None:
    """Start time of ``pid`` in clock ticks since boot (Linux), to tell a reused pid apart."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            text = fh.read()
        return int(text[text.rindex(b")") + 2 :].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


def _owner_alive(owner: dict[str, Any]) -> bool:
    """Liveness from the lock file's content (used only where ``flock`` is unavailable)."""
    if owner.get("host") != socket.gethostname() or owner.get("boot_id") != _boot_id():
        return True  # another machine, or unknown: assume it runs (the message says how to break the lock)
    pid = owner.get("pid")
    if not isinstance(pid, int) or not _pid_alive(pid):
        return False
    recorded, now = owner.get("process_start"), _process_start(pid)
    return recorded is None or now is None or recorded == now


def _describe_owner(owner: dict[str, Any] | None) -> str:
    if not owner:
        return "another conversion (it has not yet written its details)"
    command = owner.get("command")
    text = f"another conversion (pid {owner.get('pid')} on host {owner.get('host')}, started {owner.get('started')}"
    if command:
        text += f": {command}"
    return text + ")"


class JobLock:
    """Exclusive ownership of an output for one conversion, safe against crashes.

    The lock is an exclusive, non-blocking :func:`fcntl.flock` on ``<out>.lock``. The
    kernel releases it when the owner exits or is killed, so a crashed job's successor
    takes over immediately, and a pid reused by an unrelated process cannot keep it. The
    file holds the owner's pid, host, boot id, process start time, start date, job id and
    command, for the refusal message. On file systems without ``flock`` the lock file is
    created with ``O_EXCL`` and a stale one (owner on this host, no longer running) is
    taken over.

    Parameters
    ----------
    out
        The output path the job writes.

    Raises
    ------
    OutputInUseError
        From :meth:`acquire` (and ``with``) when another running job holds the output.
    """

    def __init__(self, out: str | os.PathLike[str]) -> None:
        self.out = os.fspath(out)
        self.path = lock_path(out)
        self.job_id = uuid.uuid4().hex
        self.previous: dict[str, Any] | None = None
        """The details of a crashed owner this job took over from, if any."""
        self._fd: int | None = None

    def _details(self) -> bytes:
        pid = os.getpid()
        owner = {
            "pid": pid,
            "host": socket.gethostname(),
            "boot_id": _boot_id(),
            "process_start": _process_start(pid),
            "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "job_id": self.job_id,
            "command": shlex.join(sys.argv) if sys.argv and sys.argv[0] not in ("", "-", "-c") else None,
            "output": os.path.abspath(self.out),
        }
        return json.dumps(owner, indent=1).encode()

    @staticmethod
    def _read(fd: int) -> dict[str, Any] | None:
        with contextlib.suppress(OSError, ValueError):
            os.lseek(fd, 0, os.SEEK_SET)
            data = json.loads(os.read(fd, 1 << 16).decode("utf-8", "replace"))
            return data if isinstance(data, dict) else None
        return None

    def _refuse(self, owner: dict[str, Any] | None) -> OutputInUseError:
        return OutputInUseError(
            f"{self.out} is being written by {_describe_owner(owner)}; two conversions must not write one output. "
            f"Wait for it to finish, or stop that process and resume with resume=True (CLI --resume); "
            f"lock file {self.path}"
        )

    def acquire(self) -> JobLock:
        """Take the lock (creating ``<out>.lock``); refuse when a running job holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX
            return self._acquire_exclusive()
        for _ in range(100):  # retried only when the file is replaced while we lock it
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                owner = self._read(fd)
                os.close(fd)
                if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise self._refuse(owner) from exc
                if exc.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                    return self._acquire_exclusive()
                raise
            st, now = os.fstat(fd), _file_id(os.fspath(self.path))
            if now != (st.st_dev, st.st_ino):  # the previous owner removed the file as we opened it
                os.close(fd)
                continue
            self.previous = self._read(fd)
            self._write(fd)
            self._fd = fd
            return self
        raise OutputInUseError(f"{self.out}: could not take the lock {self.path} (it keeps being replaced)")

    def _write(self, fd: int) -> None:
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, self._details())
        os.fsync(fd)

    def _acquire_exclusive(self) -> JobLock:
        """Fallback without ``flock``: ``O_EXCL`` creation, takeover of a dead owner's file."""
        for _ in range(100):
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                try:
                    fd = os.open(self.path, os.O_RDONLY)
                except FileNotFoundError:
                    continue
                owner = self._read(fd)
                os.close(fd)
                if owner is None or _owner_alive(owner):
                    raise self._refuse(owner) from None
                stale = f"{self.path}.{self.job_id}.stale"
                try:
                    os.rename(self.path, stale)  # only one successor wins the rename
                except FileNotFoundError:
                    continue
                fd = os.open(stale, os.O_RDONLY)
                moved = self._read(fd)
                os.close(fd)
                if moved is not None and moved.get("job_id") != owner.get("job_id"):
                    # another successor replaced the dead owner's file first: we moved its live lock aside
                    with contextlib.suppress(OSError):
                        os.link(stale, self.path)  # put it back (fails only if a third job created one)
                    os.remove(stale)
                    raise self._refuse(moved) from None
                self.previous = owner
                os.remove(stale)
                continue
            self._write(fd)
            self._fd = fd
            return self
        raise OutputInUseError(f"{self.out}: could not take the lock {self.path} (it keeps being replaced)")

    def release(self) -> None:
        """Remove the lock file and release the lock (the file goes first, while still held)."""
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            held = os.fstat(self._fd)
            if _file_id(os.fspath(self.path)) == (held.st_dev, held.st_ino):
                os.remove(self.path)
        os.close(self._fd)  # closing releases the flock
        self._fd = None

    def __enter__(self) -> JobLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
