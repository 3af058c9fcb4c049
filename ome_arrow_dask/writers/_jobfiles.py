"""Files of a conversion job on disk: temp names, atomic commits and the progress folder.

Both writers commit every file the same way (write a temp file beside the target,
fsync, ``os.replace``, fsync the folder) and keep their resume records in the sibling
``<out>.progress/`` folder, which the readers also look for to name an interrupted job.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path

__all__ = ["atomic_write_text", "commit", "fsync_dir", "progress_dir", "tmp_path"]


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
