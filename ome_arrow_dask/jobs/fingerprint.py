"""Fingerprints of a job: its input files' records and one digest of everything that defines the output.

A resumed job must produce the bytes the interrupted one would have. Its fingerprint
(:func:`job_fingerprint`) covers the plan's identity token (source token and selection;
remote sources put their ETag and size in the token), the writer's parameters, the
package version and a digest of the input records (:func:`input_records`): size, mtime
*and* inode change time of every input file (``ctime`` cannot be set back by user tools,
so a file changed in place with its mtime restored is caught), or with
``verify_inputs="content"`` a BLAKE2b hash of every byte. A resume whose fingerprint
differs is refused, naming the input files that changed (:func:`check_recorded_inputs`).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from ..errors import InputChangedError, OmeArrowDaskError
from .paths import is_url

__all__ = [
    "VERIFY_INPUTS",
    "changed_inputs",
    "check_recorded_inputs",
    "check_verify_inputs",
    "input_change_message",
    "input_records",
    "job_fingerprint",
    "package_version",
    "records_digest",
]

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
        if is_url(path):
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


def package_version() -> str:
    """The installed version of ome-arrow-dask (``"unknown"`` in a bare source tree)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ome-arrow-dask")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "unknown"


def job_fingerprint(doc: Mapping[str, Any]) -> str:
    """SHA-256 of ``doc`` as canonical JSON: the one fingerprint function of every writer.

    ``doc`` holds what defines the output (identity token, parameters, input records digest,
    package version); values that JSON cannot hold are written with ``str``.

    >>> job_fingerprint({"a": 1, "b": [2]}) == job_fingerprint({"b": [2], "a": 1})
    True
    """
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()
