"""A job's status records: the status key in the output's metadata and the job record in its progress folder.

Every output of ours carries ``{STATUS_KEY: {"status": "in_progress" | "complete",
"fingerprint": ...}}``: OME-Zarr images and plates in their group attributes, Parquet
datasets in their manifest. ``in_progress`` is written first and ``complete`` last, so a
reader that finds ``in_progress`` (or a ``<out>.progress`` folder) refuses the output. The
job record ``<out>.progress/job.json`` holds the fingerprint and the input records of the
running job, to name the input files that changed when a resume is refused.
"""

from __future__ import annotations

import json
import os
from typing import Any

from ..errors import IncompleteOutputError
from .commit import atomic_write_text
from .paths import job_file

__all__ = [
    "COMPLETE",
    "IN_PROGRESS",
    "STATUS_KEY",
    "read_job_record",
    "status_record",
    "write_job_record",
]

STATUS_KEY = "ome_arrow_dask"
"""Metadata key (group attribute, manifest entry) holding ``{"status": ..., "fingerprint": ...}``."""

IN_PROGRESS = "in_progress"
COMPLETE = "complete"


def status_record(state: str, fingerprint: str, **extra: Any) -> dict[str, Any]:
    """The value stored under :data:`STATUS_KEY`.

    >>> status_record(COMPLETE, "ab12", units=4)
    {'status': 'complete', 'fingerprint': 'ab12', 'units': 4}
    """
    if state not in (IN_PROGRESS, COMPLETE):
        raise ValueError(f"state must be {IN_PROGRESS!r} or {COMPLETE!r}, got {state!r}")
    return {"status": state, "fingerprint": fingerprint, **extra}


def write_job_record(out: str | os.PathLike[str], record: dict[str, Any]) -> None:
    """Write ``<out>.progress/job.json`` atomically (creating the progress folder)."""
    path = job_file(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(record, indent=1))


def read_job_record(out: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The job record of an interrupted conversion to ``out``; None when there is none.

    Raises
    ------
    IncompleteOutputError
        When the record exists but is damaged (not a JSON object), naming the file.
    """
    path = job_file(out)
    try:
        record: Any = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:  # ValueError covers bad JSON and non-UTF-8 bytes
        record = exc
    if not isinstance(record, dict):
        raise IncompleteOutputError(
            f"{path}: the record of the interrupted conversion is damaged, so its parts cannot be trusted; "
            "run without --resume to start again"
        ) from (record if isinstance(record, Exception) else None)
    return record
