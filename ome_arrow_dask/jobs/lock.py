"""The ownership lock of a job: one running conversion per output, released by the kernel on a crash."""

from __future__ import annotations

import contextlib
import datetime
import errno
import json
import os
import shlex
import socket
import uuid
from typing import Any

from ..errors import OutputInUseError
from .paths import file_id, lock_path
from .redact import redacted_command

__all__ = ["JobLock", "lock_path"]


def _boot_id() -> str | None:
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as fh:
            return fh.read().strip()
    except OSError:
        return None


def _pid_namespace() -> str | None:
    """The PID namespace of this process (``pid:[4026531836]``), None where ``/proc`` does not say.

    Containers sharing a kernel share the host name (often) and the boot id, but not their
    pids: a pid is meaningful only within the namespace that recorded it.
    """
    try:
        return os.readlink("/proc/self/ns/pid")
    except (OSError, AttributeError):
        return None


def _same_process_space(owner: dict[str, Any]) -> bool:
    """True when the lock ``owner`` ran on this machine (host, boot) in this PID namespace: its pid can be checked.

    A lock written before the namespace was recorded (no ``pid_ns`` key) is judged by host and boot alone.
    """
    return (
        owner.get("host") == socket.gethostname()
        and owner.get("boot_id") == _boot_id()
        and ("pid_ns" not in owner or owner["pid_ns"] == _pid_namespace())
    )


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
    if not _same_process_space(owner):
        return True  # another machine or container, or unknown: assume it runs (the message says how to break it)
    pid = owner.get("pid")
    if not isinstance(pid, int) or not _pid_alive(pid):
        return False
    recorded, now = owner.get("process_start"), _process_start(pid)
    return recorded is None or now is None or recorded == now


def _describe_owner(owner: dict[str, Any] | None) -> str:
    if not owner:
        return "another conversion (it has not yet written its details)"
    command = owner.get("command")
    if isinstance(command, str):  # masked when recorded; masked again for a lock written by an older version
        try:
            command = redacted_command(shlex.split(command))
        except ValueError:
            command = None
    text = f"another conversion (pid {owner.get('pid')} on host {owner.get('host')}, started {owner.get('started')}"
    if command:
        text += f": {command}"
    return text + ")"


def owner_record(job_id: str, output: str) -> dict[str, Any]:
    """Who holds a lock: this process (pid, host, boot, PID namespace, start), the job and its redacted command."""
    pid = os.getpid()
    return {
        "pid": pid,
        "host": socket.gethostname(),
        "boot_id": _boot_id(),
        "pid_ns": _pid_namespace(),
        "process_start": _process_start(pid),
        "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "job_id": job_id,
        "command": redacted_command(),
        "output": output,
    }


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
        return json.dumps(owner_record(self.job_id, os.path.abspath(self.out)), indent=1).encode()

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
            st, now = os.fstat(fd), file_id(os.fspath(self.path))
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
            if file_id(os.fspath(self.path)) == (held.st_dev, held.st_ino):
                os.remove(self.path)
        os.close(self._fd)  # closing releases the flock
        self._fd = None

    def __enter__(self) -> JobLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
