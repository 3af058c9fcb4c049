"""Names of a job's files beside its output: progress folder, lock, temp and staging names.

Every name is derived from the output path alone, so a reader that finds ``<out>.progress``
knows a conversion of ``out`` was interrupted, and a resumed job finds what the killed one left.
"""

from __future__ import annotations

import os
import re
import uuid
from pathlib import Path

__all__ = [
    "CREATING",
    "JOB_FILE",
    "creating_leftovers",
    "creating_path",
    "file_id",
    "is_url",
    "job_file",
    "lock_path",
    "progress_dir",
    "tmp_path",
]

CREATING = ".creating-"
"""Infix of the sibling folder a new store is built in before it is renamed onto the output."""

JOB_FILE = "job.json"
"""The job record in the progress folder: fingerprint, ``verify_inputs`` and the input records."""


def is_url(path: str) -> bool:
    """True for a remote path (``s3://...``, ``https://...``), which has no inode or local stat.

    >>> is_url("s3://bucket/a.zarr"), is_url("/data/a.zarr")
    (True, False)
    """
    return "://" in path


def progress_dir(out: str | os.PathLike[str]) -> Path:
    """The sibling folder holding the resume records of a conversion to ``out``.

    >>> progress_dir("/data/run1.ome.zarr/").name
    'run1.ome.zarr.progress'
    """
    return Path(f"{os.fspath(out).rstrip(os.sep)}.progress")


def job_file(out: str | os.PathLike[str]) -> Path:
    """The job record of a conversion to ``out``: ``<out>.progress/job.json``."""
    return progress_dir(out) / JOB_FILE


def lock_path(out: str | os.PathLike[str]) -> Path:
    """The lock file of a job writing ``out``: ``<out>.lock`` beside it.

    >>> lock_path("/data/run1.ome.zarr/").name
    'run1.ome.zarr.lock'
    """
    return Path(f"{os.fspath(out).rstrip(os.sep)}.lock")


def tmp_path(final: str | os.PathLike[str]) -> Path:
    """A unique temp name beside ``final`` (same folder, so the rename stays on one filesystem)."""
    final = Path(final)
    return final.with_name(f"{final.name}.{uuid.uuid4().hex}.tmp")


def creating_path(out: str | os.PathLike[str]) -> str:
    """A unique sibling folder to build a new store in: ``<out>.creating-<12 hex>``."""
    return f"{os.fspath(out)}{CREATING}{uuid.uuid4().hex[:12]}"


def creating_leftovers(out: str | os.PathLike[str]) -> list[str]:
    """The :func:`creating_path` folders of ``out`` that killed or refused runs left, as paths."""
    parent, base = os.path.split(os.fspath(out))
    pattern = re.compile(re.escape(base + CREATING) + r"[0-9a-f]{12}")
    try:
        names = os.listdir(parent or ".")
    except OSError:
        return []
    return [os.path.join(parent, name) for name in sorted(names) if pattern.fullmatch(name)]


def file_id(path: str) -> tuple[int, int] | None:
    """``(st_dev, st_ino)`` of ``path``; None when it does not exist."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)
