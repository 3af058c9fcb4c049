"""Conversion jobs: the files, fingerprints, lock and decision every writer and reader shares.

One job writes one output ``out``. Before it touches anything it

1. refuses an output that is one of its inputs, lies inside one, or contains one
   (:func:`check_output_not_input`), so ``overwrite`` can never delete an input;
2. takes the ownership lock ``<out>.lock`` (:class:`JobLock`): a second live job is
   refused, a crashed job's successor takes over at once;
3. fingerprints its inputs and parameters (:mod:`.fingerprint`) and decides once whether it
   creates, overwrites, resumes or has nothing to do (:func:`decide` -> :class:`JobDecision`).

While it runs its resume records live in ``<out>.progress/`` (:mod:`.paths`), every file is
committed whole (:mod:`.commit`: temp name, fsync, rename on local disks) and the output's
status record says ``in_progress`` until ``complete`` is written last (:mod:`.status`).

Modules: ``paths`` (names), ``commit`` (atomic commits), ``status`` (status key, job
record), ``fingerprint`` (input records, job fingerprint), ``lock`` (:class:`JobLock`),
``overlap`` (output vs inputs), ``decision`` (:class:`JobDecision`), ``write_input``
(:class:`WriteInput`, what writers take), ``object_store`` (the same promise on object
stores, which have no rename: write-once objects, done markers as objects, metadata last,
:class:`ObjectStoreLock`).
"""

from __future__ import annotations

from .commit import LOCAL, Committer, LocalCommitter, atomic_write_text, commit, fsync_dir
from .decision import Existing, JobDecision, Mode, decide, exists_message
from .fingerprint import (
    VERIFY_INPUTS,
    changed_inputs,
    check_recorded_inputs,
    check_verify_inputs,
    input_change_message,
    input_records,
    job_fingerprint,
    package_version,
    records_digest,
)
from .lock import JobLock
from .object_store import ObjectStoreCommitter, ObjectStoreLock, RemoteOutput, check_url_not_input
from .overlap import check_output_not_input
from .paths import (
    CREATING,
    JOB_FILE,
    creating_leftovers,
    creating_path,
    is_url,
    job_file,
    lock_path,
    progress_dir,
    tmp_path,
)
from .status import COMPLETE, IN_PROGRESS, STATUS_KEY, read_job_record, status_record, write_job_record
from .write_input import WriteIdentity, WriteInput, from_plan, image_input_paths

__all__ = [
    "COMPLETE",
    "CREATING",
    "IN_PROGRESS",
    "JOB_FILE",
    "LOCAL",
    "STATUS_KEY",
    "VERIFY_INPUTS",
    "Committer",
    "Existing",
    "JobDecision",
    "JobLock",
    "LocalCommitter",
    "Mode",
    "ObjectStoreCommitter",
    "ObjectStoreLock",
    "RemoteOutput",
    "WriteIdentity",
    "WriteInput",
    "atomic_write_text",
    "changed_inputs",
    "check_output_not_input",
    "check_recorded_inputs",
    "check_url_not_input",
    "check_verify_inputs",
    "commit",
    "creating_leftovers",
    "creating_path",
    "decide",
    "exists_message",
    "from_plan",
    "fsync_dir",
    "image_input_paths",
    "input_change_message",
    "input_records",
    "is_url",
    "job_file",
    "job_fingerprint",
    "lock_path",
    "package_version",
    "progress_dir",
    "read_job_record",
    "records_digest",
    "status_record",
    "tmp_path",
    "write_job_record",
]
