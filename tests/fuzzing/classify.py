"""Turn one worker result into an outcome.

Outcomes (the columns of the summary table):

``ok_same``
    The read succeeded, without a warning, with the unmutated input's shape.
``ok_warned``
    The read succeeded and emitted a ``UserWarning`` (e.g. ``MissingDataWarning``).
``ok_changed_allowed``
    The read returned another shape, silently, after a metadata edit that legitimately changes
    the shape (:data:`SHAPE_CHANGE_ALLOWED`).
``ok_recast``
    The read succeeded with the edited declared pixel type and values EQUAL to the unmutated read's,
    where the stored payload has no dtype of its own (see :func:`recast_reason`).
``ok_changed_shape``
    **Failure**: a SILENT SHAPE CHANGE (another shape, no warning, no error).
``ok_undetected``
    **Failure**: damage that can never be valid data (:data:`MUST_REFUSE`: a zarr chunk key that is a
    directory, a chunk symlinked out of the store, a declared pixel type that disagrees with the
    chunks, ...) read silently.
``inconsistent``
    **Failure**: two read paths disagree (``to_numpy()`` vs the dask graph vs ``slice_lazy``).
``clear_error``
    An :class:`~ome_arrow_dask.errors.OmeArrowDaskError`, ``FileNotFoundError`` or ``PermissionError``
    whose message names the input, a file inside it or its folder.
``raw_error``
    **Failure**: any other exception, or ours without a file name.
``hang`` / ``crash`` / ``memory``
    **Failures**: past the timeout; the worker died; ``MemoryError`` or the address-space cap hit.
``control_failed``
    **Failure**: the UNMUTATED seed input (kind ``identity``, read once per input) did not read cleanly.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

OUTCOMES = (
    "ok_same",
    "ok_warned",
    "ok_changed_allowed",
    "ok_recast",
    "clear_error",
    "ok_changed_shape",
    "ok_undetected",
    "inconsistent",
    "raw_error",
    "hang",
    "crash",
    "memory",
    "control_failed",
)
FAILURES = frozenset(
    {"ok_changed_shape", "ok_undetected", "inconsistent", "raw_error", "hang", "crash", "memory", "control_failed"}
)

SHAPE_CHANGE_ALLOWED = frozenset({"ngff_swap_axes", "ngff_remove_level"})
"""Mutation kinds that change the image legitimately: the metadata still describes valid data
(axes swapped consistently in every place they are named; a pyramid level dropped from the list)."""

MUST_REFUSE = frozenset(
    {
        "zarr_chunk_dir",
        "zarr_chunk_remove",
        "zarr_symlink_out",
        "zarr_chunk_truncate",
        "parquet_dtype_disagree",
        "pattern_remove_file",
        "pattern_replace_shape",
        "pattern_replace_dtype",
        "pattern_zero_ifd",
        "pattern_dir_for_file",
    }
)
"""Mutation kinds whose result is never valid data: reading them without an error or a warning is
silent wrong data (issue 21). A missing zarr chunk is an error by default (``missing="error"``)."""

RECAST_KINDS = frozenset({"parquet_dtype_disagree"})
"""Kinds where a lossless read in the declared type is legitimate for some payloads (:func:`recast_reason`)."""

DTYPE_META_STORED = "uint16"
"""The chunk dtype of ome-arrow 0.1.0's ``clamp_to_uint16=True, dtype_meta=X`` byte layout."""


def recast_reason(result: dict[str, Any], params: dict[str, Any], baseline_values: str | None) -> str | None:
    """Why a read in an edited declared type is not silent wrong data, or None when it is.

    ``parquet_dtype_disagree`` edits only the declaration. Two payloads carry no dtype of their
    own, so the declaration is the only type information and the reader honours it with a
    value-checked cast (a value the declared type cannot hold is refused):

    * ``list<uint16>`` chunks and planes (ome-arrow's list layout, our list / planes payloads);
    * byte chunks that are ALL ``uint16``: exactly what ome-arrow 0.1.0 writes itself with
      ``from_numpy(..., clamp_to_uint16=True, dtype_meta=X, chunk_encoding="bytes")``, which the
      reader must keep reading (tests/test_parquet_damage.py::test_ome_arrow_dtype_meta_layout_still_reads).

    Such a read is accepted only when its values EQUAL the unmutated read's (``values`` digests,
    computed as float64) and its dtype is the new declared one: no value changed, only the type
    a user asked the file to have. Byte chunks in any other dtype, and dataset chunks (their
    ``dtype`` column), carry their own type: any disagreement must be refused, never accepted here.
    """
    payload = params.get("payload")
    if payload in ("list", "planes"):
        why = f"{payload} payload (list<uint16>) has no dtype of its own"
    elif payload == "bytes" and params.get("stored_dtypes") == [DTYPE_META_STORED]:
        why = "all-uint16 byte chunks are ome-arrow's dtype_meta= layout"
    else:
        return None
    if baseline_values is None or result.get("values") != baseline_values:
        return None
    if params.get("new") is None or result.get("dtype") != params["new"]:
        return None
    return f"declared {params.get('old')} -> {params['new']}: {why}; values equal the stored ones"


OUR_BASE = "ome_arrow_dask.errors.OmeArrowDaskError"
CLEAR_BUILTINS = ("builtins.FileNotFoundError", "builtins.PermissionError")
GENERIC_NAMES = frozenset({"zarr.json", ".zarray", ".zattrs", ".zgroup", ".zmetadata", "c", "0", "1"})


def names_for(input_root: str | os.PathLike[str], limit: int = 400) -> set[str]:
    """Strings that identify the input in a message: its name, and names of files and folders inside.

    Generic zarr names (``zarr.json``, ``0``, ``c``) are left out: they say nothing about which input.
    """
    root = Path(input_root)
    names = {root.name, str(root)}
    if root.is_dir():
        for i, path in enumerate(root.rglob("*")):
            if i >= limit:
                break
            if path.name not in GENERIC_NAMES and len(path.name) >= 3:
                names.add(path.name)
            rel = path.relative_to(root).as_posix()
            if "/" in rel:
                names.add(rel)
    return {n for n in names if n}


def names_the_input(message: str, names: Iterable[str]) -> bool:
    """True when ``message`` contains one of ``names``."""
    return any(name in message for name in names)


def classify(
    result: dict[str, Any],
    *,
    kind: str,
    baseline_shape: Iterable[int] | None,
    names: Iterable[str],
    params: dict[str, Any] | None = None,
    baseline_values: str | None = None,
) -> tuple[str, str]:
    """Return ``(outcome, reason)`` for one worker ``result``.

    Parameters
    ----------
    result
        The worker's reply (``status`` ``ok`` / ``error`` / ``timeout`` / ``inconsistent``), or a
        runner-made ``{"status": "crash" | "hang", ...}``.
    kind
        The mutation kind (``"identity"`` for the unmutated control).
    baseline_shape
        The unmutated input's shape.
    names
        What a clear message may name (:func:`names_for`).
    params
        What the mutator did; ``{"must_refuse": True}`` adds the :data:`MUST_REFUSE` expectation to
        one case, ``{"in_read_level": False}`` (damage to a pyramid level the read
        does not touch) and ``not_applicable`` lift the :data:`MUST_REFUSE` expectation.
    baseline_values
        The unmutated read's value digest (``values``), for :func:`recast_reason`.
    """
    status = result.get("status")
    if status in ("crash", "hang"):
        return str(status), str(result.get("message", ""))
    if status == "timeout":
        return "hang", "past the per-case timeout (in-worker alarm)"
    if status == "inconsistent":
        return "inconsistent", str(result.get("message", ""))
    if status == "error":
        return _classify_error(result, names)
    if status != "ok":
        return "raw_error", f"unknown worker status {status!r}"
    if any(w.get("user") for w in result.get("warnings", [])):
        return "ok_warned", result["warnings"][0]["message"]
    if baseline_shape is not None and list(result.get("shape", [])) != list(baseline_shape):
        why = f"shape {tuple(result.get('shape', []))} instead of {tuple(baseline_shape)}"
        return ("ok_changed_allowed" if kind in SHAPE_CHANGE_ALLOWED else "ok_changed_shape"), why
    params = params or {}
    if kind in RECAST_KINDS:
        why = recast_reason(result, params, baseline_values)
        if why is not None:
            return "ok_recast", why
    must_refuse = kind in MUST_REFUSE or bool(params.get("must_refuse"))
    if must_refuse and params.get("in_read_level", True) and "not_applicable" not in params:
        return "ok_undetected", f"{kind} read without an error or a warning"
    return "ok_same", ""


def _classify_error(result: dict[str, Any], names: Iterable[str]) -> tuple[str, str]:
    mro = result.get("mro", [])
    message = str(result.get("message", ""))
    head = f"{result.get('exc_type')}: {message.splitlines()[0] if message else ''}"
    if "builtins.MemoryError" in mro:
        return "memory", head
    ours = OUR_BASE in mro
    if not ours and not any(name in mro for name in CLEAR_BUILTINS):
        return "raw_error", head
    text = message + " " + str(result.get("filename") or "")
    if not names_the_input(text, names):
        return "raw_error", f"{head} (names no file)"
    return "clear_error", head


def signature(case: dict[str, Any]) -> str:
    """A short key grouping failures of the same cause: format, kind, outcome, exception type, message start."""
    import re

    message = str(case.get("reason", ""))
    message = re.sub(r"(/[^\s'\":,]+)+", "<path>", message)
    message = re.sub(r"\d+", "N", message)[:90]
    return f"{case['format']} | {case['kind']} | {case['outcome']} | {message}"
