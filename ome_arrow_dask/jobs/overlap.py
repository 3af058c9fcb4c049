"""Refuse a job whose output is one of its inputs, lies inside one, or contains one.

Checked before a writer touches anything, so ``overwrite=True`` can never delete an input:
paths are compared after resolving relative parts and symlinks, and again by inode (hard
links, bind mounts, case-insensitive file systems).
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from ..errors import OutputIsInputError
from .paths import file_id, is_url

__all__ = ["check_output_not_input"]


def _chain_ids(path: str, cache: dict[str, set[tuple[int, int]]]) -> set[tuple[int, int]]:
    """``(st_dev, st_ino)`` of ``path`` and of every existing folder above it."""
    if path in cache:
        return cache[path]
    parent = os.path.dirname(path)
    ids = set() if parent == path else set(_chain_ids(parent, cache))
    own = file_id(path)
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
    paths the job writes or deletes (its progress folder, lock file). A remote output
    (``s3://...``) is compared with the remote inputs by key prefix
    (:func:`~.object_store.check_url_not_input`).

    Raises
    ------
    OutputIsInputError
        Before anything is written or deleted.
    """
    out_text = os.fspath(out)
    if is_url(out_text):  # a remote output: compared with the remote inputs by key prefix
        from .object_store import check_url_not_input

        check_url_not_input(out_text, inputs, job_paths=[os.fspath(p) for p in job_paths])
        return
    inputs = [p for p in inputs if not is_url(p)]  # a remote input cannot be (or hold) a local output
    cache: dict[str, set[tuple[int, int]]] = {}
    targets = [os.path.realpath(os.fspath(p)) for p in (out, *job_paths)]
    for inp in inputs:
        real_in = os.path.realpath(inp)
        in_id = file_id(real_in)
        in_chain: set[tuple[int, int]] | None = None
        for target in targets:
            target_id = file_id(target)
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
