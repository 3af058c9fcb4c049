"""The create / overwrite / resume decision of a job, taken once by every writer.

A writer describes what it found at its output (:class:`Existing`, from metadata only)
and :func:`decide` turns that, with the ``overwrite`` / ``resume`` options and the job's
fingerprint, into one :class:`JobDecision` or a refusal. The rules, the same for OME-Zarr,
plates, Parquet and OME-TIFF:

- ``overwrite`` and ``resume`` together are refused;
- something that is not an output of the writer's format (a user's folder, a file where
  a folder belongs) is refused, even with ``overwrite`` (it would be deleted);
- nothing there, or an empty folder: ``create``;
- an output there: ``overwrite`` replaces it; without options it is refused (naming
  ``resume`` when it holds an unfinished job); ``resume`` finishes it when its recorded
  fingerprint equals the job's (``done`` when it is complete already), and refuses it
  otherwise, naming the input files that changed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Literal

from ..errors import IncompleteOutputError, InputChangedError, OmeArrowDaskError
from .fingerprint import check_recorded_inputs
from .status import COMPLETE, IN_PROGRESS

__all__ = ["Existing", "JobDecision", "Mode", "decide", "exists_message"]

Mode = Literal["create", "overwrite", "resume", "done"]
"""``create``: nothing to keep; ``overwrite``: replace the output; ``resume``: finish it; ``done``: nothing to do."""

Kind = Literal["absent", "empty", "output", "foreign"]


@dataclass(frozen=True)
class Existing:
    """What a writer found at its output before deciding (no pixels read).

    Parameters
    ----------
    kind
        ``"absent"``, ``"empty"`` (an empty folder), ``"output"`` (an output of the
        writer's format: replaceable) or ``"foreign"`` (never touched).
    state
        Of an output: its recorded status (``"in_progress"`` / ``"complete"``), or None
        when it carries no record of ours.
    fingerprint
        Of an output: the fingerprint its status records.
    reason
        Of a foreign path: the refusal after the path (``"already exists and is not a zarr store; ..."``).
    damaged
        Of an output: why its job record cannot be trusted (the refusal of a resume).
    record
        Of an output: the job record of the interrupted run (``<out>.progress/job.json``), if read.
    """

    kind: Kind
    state: str | None = None
    fingerprint: str | None = None
    reason: str = ""
    damaged: str | None = None
    record: dict[str, Any] | None = None

    @classmethod
    def output(cls, status: Any = None, record: dict[str, Any] | None = None) -> Existing:
        """An output of the writer's format; ``status`` is its :data:`~.status.STATUS_KEY` value, if any."""
        if not isinstance(status, dict):
            return cls("output", record=record)
        fingerprint = status.get("fingerprint")
        state = status.get("status")
        return cls("output", state, fingerprint if isinstance(fingerprint, str) else None, record=record)

    @classmethod
    def foreign(cls, reason: str) -> Existing:
        """Something the writer must not write into or delete; ``reason`` follows the path in the refusal."""
        return cls("foreign", reason=reason)


@dataclass(frozen=True)
class JobDecision:
    """What a job does with its output: computed once by :func:`decide`, acted on by the writer."""

    out: str
    mode: Mode
    fingerprint: str
    existing: Existing

    @property
    def fresh(self) -> bool:
        """True when nothing of an earlier run is kept (``create`` or ``overwrite``)."""
        return self.mode in ("create", "overwrite")


def exists_message(out: str) -> str:
    """The refusal of an existing output without ``overwrite`` (the same words for every writer).

    >>> exists_message("a.zarr")
    'a.zarr already exists: pass overwrite=True (CLI --overwrite) to replace it'
    """
    return f"{out} already exists: pass overwrite=True (CLI --overwrite) to replace it"


def decide(
    out: str | os.PathLike[str],
    *,
    overwrite: bool,
    resume: bool,
    existing: Existing,
    fingerprint: str = "",
    inputs: dict[str, str] | None = None,
    verify_inputs: str = "stat",
    noun: str = "conversion",
) -> JobDecision:
    """Decide what a job does with ``out`` (see the module docstring for the rules).

    Parameters
    ----------
    out
        The output path, as named in messages.
    overwrite, resume
        The job's options.
    existing
        What is at ``out`` now.
    fingerprint
        The job's fingerprint (:func:`~.fingerprint.job_fingerprint`); empty for writers
        without resume (their outputs record none, so ``resume`` is refused).
    inputs, verify_inputs
        This job's input records: a refused resume compares them with ``existing.record``
        to name the input files that changed (:func:`~.fingerprint.check_recorded_inputs`).
    noun
        What is unfinished, in messages (``"conversion"``, ``"plate conversion"``).

    Raises
    ------
    OmeArrowDaskError
        Both options, a foreign path, or an existing output without a usable option.
    IncompleteOutputError
        ``resume`` of an output whose job record is damaged.
    InputChangedError
        ``resume`` of an output started from another input or with other parameters.

    Examples
    --------
    >>> decide("a.zarr", overwrite=False, resume=False, fingerprint="f", existing=Existing("absent")).mode
    'create'
    >>> done = Existing.output({"status": "complete", "fingerprint": "f"})
    >>> decide("a.zarr", overwrite=False, resume=True, fingerprint="f", existing=done).mode
    'done'
    """
    where = os.fspath(out)
    if overwrite and resume:
        raise OmeArrowDaskError("pass either overwrite=True or resume=True, not both")
    if existing.kind == "foreign":
        raise OmeArrowDaskError(f"{where} {existing.reason}")
    if existing.kind in ("absent", "empty"):
        return JobDecision(where, "create", fingerprint, existing)
    if overwrite:
        return JobDecision(where, "overwrite", fingerprint, existing)
    if not resume:
        if existing.state == IN_PROGRESS:
            raise OmeArrowDaskError(
                f"{where} holds an unfinished {noun}: pass resume=True (CLI --resume) to finish it "
                "or overwrite=True (CLI --overwrite) to start again"
            )
        raise OmeArrowDaskError(exists_message(where))
    if existing.damaged is not None:
        raise IncompleteOutputError(existing.damaged)
    if existing.state not in (IN_PROGRESS, COMPLETE) or existing.fingerprint is None:
        raise OmeArrowDaskError(exists_message(where))  # no record of a job of ours to finish
    if existing.fingerprint != fingerprint:
        if existing.record is not None and inputs is not None:
            check_recorded_inputs(where, existing.record, inputs, verify_inputs)  # names the changed input files
        raise InputChangedError(
            f"{where} was written from another input or with other parameters (fingerprint "
            f"{existing.fingerprint[:12]}... != {fingerprint[:12]}...); use overwrite=True to start again"
        )
    return JobDecision(where, "done" if existing.state == COMPLETE else "resume", fingerprint, existing)
