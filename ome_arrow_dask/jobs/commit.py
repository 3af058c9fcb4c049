"""How a job makes a file appear whole: write a temp name, make it durable, rename it onto the target.

Writers commit through a :class:`Committer`. :data:`LOCAL` is the POSIX protocol used on
local disks (temp file beside the target, ``fsync``, ``os.replace``, ``fsync`` of the
folder): a reader sees the old file or the whole new one, never a torn one. Stores
without rename (object stores) supply another committer with the same methods (a
write-once object per key, done markers as objects, metadata last); the module-level
functions are the local protocol.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Protocol, runtime_checkable

from .paths import tmp_path

__all__ = ["LOCAL", "Committer", "LocalCommitter", "atomic_write_text", "commit", "fsync_dir"]


@runtime_checkable
class Committer(Protocol):
    """Commits the files of a job so that each one appears whole or not at all."""

    def commit(self, tmp: str | os.PathLike[str], final: str | os.PathLike[str], *, sync_dir: bool = True) -> None:
        """Make the finished temp file ``tmp`` the file ``final``."""
        ...

    def atomic_write_text(self, path: str | os.PathLike[str], text: str, *, sync_dir: bool = True) -> None:
        """Replace ``path`` with ``text``: readers see the old content or the whole new one."""
        ...


def fsync_dir(folder: str | os.PathLike[str]) -> None:
    """Make a rename in ``folder`` durable (POSIX; a no-op where directories cannot be opened)."""
    with contextlib.suppress(OSError):
        fd = os.open(os.fspath(folder) or ".", os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class LocalCommitter:
    """The local-disk protocol: fsync the temp file, ``os.replace`` it, fsync the folder."""

    def commit(self, tmp: str | os.PathLike[str], final: str | os.PathLike[str], *, sync_dir: bool = True) -> None:
        """Fsync ``tmp`` and rename it to ``final``; fsync the folder unless ``sync_dir=False``."""
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, final)
        if sync_dir:
            fsync_dir(Path(final).parent)

    def atomic_write_text(self, path: str | os.PathLike[str], text: str, *, sync_dir: bool = True) -> None:
        """Write ``text`` to a temp name beside ``path`` and commit it (the temp file never stays behind)."""
        tmp = tmp_path(path)
        try:
            tmp.write_text(text, encoding="utf-8")
            self.commit(tmp, path, sync_dir=sync_dir)
        finally:
            tmp.unlink(missing_ok=True)


LOCAL = LocalCommitter()
"""The committer of local outputs."""


def commit(tmp: str | os.PathLike[str], final: str | os.PathLike[str], *, sync_dir: bool = True) -> None:
    """Fsync ``tmp`` and rename it to ``final``; fsync the folder unless ``sync_dir=False``."""
    LOCAL.commit(tmp, final, sync_dir=sync_dir)


def atomic_write_text(path: str | os.PathLike[str], text: str, *, sync_dir: bool = True) -> None:
    """Replace ``path`` with ``text`` atomically: readers see the old file or the whole new one."""
    LOCAL.atomic_write_text(path, text, sync_dir=sync_dir)
