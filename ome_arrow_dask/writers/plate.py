"""OME-NGFF plate writer: wells of field images, crash-safe and resumable like single images.

Layout (NGFF 0.5 on zarr v3 by default, 0.4 on zarr v2): ``<out>/<row>/<column>/<field>``,
every field a multiscale image written by :func:`ome_arrow_dask.writers.zarr.write`, so one
dask task writes one chunk (or shard), pyramids, crc32c checksums (v3), done-markers and
the resume rules are exactly those of single images.

Ordering (RELIABILITY.md §4.2, at plate scale):

1. the plate group is created (in a temp folder renamed into place) with
   ``ome_arrow_dask = {"status": "in_progress", "fingerprint": ...}``, together with every
   row group and every well group with its final ``well`` metadata: well metadata is
   written once, never rewritten per field;
2. each field image is written (its own ``in_progress`` -> ``complete``);
3. the plate's NGFF ``plate`` metadata and ``status: "complete"`` are written last, in
   one rewrite of the plate's metadata.

Whether the plate is created, overwritten, resumed or already done is decided by
:func:`ome_arrow_dask.jobs.decide`, as for every writer. ``resume=True`` keeps the fields
already complete (they are not reopened), finishes a field interrupted half way from its
done-markers, and refuses
(:class:`~ome_arrow_dask.errors.InputChangedError`) a plate started from other wells,
images or parameters. Readers refuse an unfinished plate
(:class:`~ome_arrow_dask.errors.IncompleteOutputError`). The whole job holds the lock
``<out>.lock``.

Rows and columns: NGFF lists every physical row and column; we list rows ``A`` up to the
last row with a well, and columns ``1`` up to the last column with a well, so ``rowIndex``
and ``columnIndex`` are the physical positions.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import TYPE_CHECKING, Any, Literal

from ..errors import OmeArrowDaskError, OutputInUseError
from ..jobs import (
    COMPLETE,
    IN_PROGRESS,
    STATUS_KEY,
    JobLock,
    WriteInput,
    check_output_not_input,
    creating_leftovers,
    creating_path,
    decide,
    fsync_dir,
    input_records,
    job_fingerprint,
    lock_path,
    progress_dir,
    records_digest,
    status_record,
)
from ..plate_model import column_name, parse_well_name, row_name
from ..sources._ngff import read_group_attrs
from . import zarr as zarr_writer
from ._input import as_write_input

if TYPE_CHECKING:
    from ..core import OMEArrow

__all__ = ["plate_metadata", "write_plate"]


def _as_image(value: Any, where: str) -> OMEArrow:
    from ..core import OMEArrow

    if isinstance(value, OMEArrow):
        return value
    if isinstance(value, (str, os.PathLike)):
        return OMEArrow.scan(value)
    try:
        return OMEArrow(value)
    except Exception as exc:
        raise OmeArrowDaskError(f"{where}: cannot use a {type(value).__name__} as a field image ({exc})") from exc


def normalize_wells(wells: Mapping[str, Any]) -> dict[tuple[int, int], list[OMEArrow]]:
    """``{(row, column): [field images]}`` from a mapping of well names to images or lists of them.

    A list or tuple is the well's fields in order; anything else is one field (an
    OMEArrow, an array, a path). Names may be ``"B/3"``, ``"B3"`` or ``"B03"``; two names
    of one well are refused.
    """
    if not isinstance(wells, Mapping) or not wells:
        raise OmeArrowDaskError("write_plate needs a non-empty mapping of well names ('B/3') to images")
    out: dict[tuple[int, int], list[OMEArrow]] = {}
    names: dict[tuple[int, int], str] = {}
    for name, value in wells.items():
        key = parse_well_name(name)
        if key in out:
            raise OmeArrowDaskError(f"wells {names[key]!r} and {name!r} name the same well")
        values = list(value) if isinstance(value, (list, tuple)) else [value]
        if not values:
            raise OmeArrowDaskError(f"well {name!r} has no field images; leave it out of the mapping instead")
        names[key] = name
        out[key] = [_as_image(v, f"well {name!r} field {i}") for i, v in enumerate(values)]
    return dict(sorted(out.items()))


def plate_metadata(
    wells: Sequence[tuple[int, int]], field_counts: Sequence[int], version: str, name: str | None = None
) -> dict[str, Any]:
    """The NGFF ``plate`` block for wells at 0-based (row, column) positions.

    >>> meta = plate_metadata([(1, 2)], [2], "0.5")
    >>> [r["name"] for r in meta["rows"]], len(meta["columns"]), meta["wells"], meta["field_count"]
    (['A', 'B'], 3, [{'path': 'B/3', 'rowIndex': 1, 'columnIndex': 2}], 2)
    """
    n_rows = 1 + max(r for r, _ in wells)
    n_cols = 1 + max(c for _, c in wells)
    block: dict[str, Any] = {
        "rows": [{"name": row_name(r)} for r in range(n_rows)],
        "columns": [{"name": column_name(c)} for c in range(n_cols)],
        "wells": [{"path": f"{row_name(r)}/{column_name(c)}", "rowIndex": r, "columnIndex": c} for r, c in wells],
        "acquisitions": [{"id": 0, "maximumfieldcount": max(field_counts)}],
        "field_count": max(field_counts),
    }
    if name:
        block["name"] = name
    block["version"] = version  # 0.5 keeps it under "ome" too; validators expect it in the plate block as well
    return block


def _well_attrs(n_fields: int, version: str) -> dict[str, Any]:
    well: dict[str, Any] = {"images": [{"path": str(i), "acquisition": 0} for i in range(n_fields)]}
    if version == "0.4":
        return {"well": {**well, "version": "0.4"}}
    return {"ome": {"version": "0.5", "well": well}}


def _fingerprint(
    plan: dict[tuple[int, int], list[WriteInput]],
    opts: zarr_writer.ZarrWriteOptions,
    name: str | None,
    inputs: tuple[str, ...] = (),
) -> str:
    """Digest of the field images (source token, selection, shape, dtype), the parameters and the input files.

    The input files' records (``opts.verify_inputs``) are included, so a file changed in
    place since a plate was started makes a resume refuse, as for single images.
    """
    wells = {
        f"{row_name(r)}/{column_name(c)}": [
            [img.identity.token, list(img.shape), str(img.dtype), img.meta.image_type] for img in images
        ]
        for (r, c), images in plan.items()
    }
    params = asdict(opts)
    for key in ("overwrite", "resume", "verify", "progress"):
        params.pop(key)
    records = records_digest(input_records(sorted(set(inputs)), opts.verify_inputs), opts.verify_inputs)
    doc = {"wells": wells, "options": params, "name": name, "layout": "plate-1", "inputs": records}
    return job_fingerprint(doc)


def _plate_status(out: str) -> Any:
    """The status attribute of the plate group ``out`` (None when absent)."""
    found = read_group_attrs(out)
    return found[0].get(STATUS_KEY) if found is not None else None


def _create(out: str, plan: dict[tuple[int, int], list[WriteInput]], version: str, status: dict[str, Any]) -> None:
    """Build the plate group, row groups and well groups (final well metadata) and rename them into place."""
    import zarr

    fmt: Literal[2, 3] = 3 if version == "0.5" else 2
    building = creating_path(out)
    try:
        root = zarr.open_group(building, mode="w", zarr_format=fmt, attributes={STATUS_KEY: status})
        for r in sorted({r for r, _ in plan}):
            root.create_group(row_name(r))
        for (r, c), images in plan.items():
            root.create_group(f"{row_name(r)}/{column_name(c)}", attributes=_well_attrs(len(images), version))
        os.rename(building, out)
    except Exception as exc:
        shutil.rmtree(building, ignore_errors=True)
        if os.path.exists(out):
            raise OutputInUseError(
                f"{out} was created by another process while this conversion was preparing it; nothing was changed"
            ) from exc
        raise
    fsync_dir(os.path.dirname(out))


def _field_complete(folder: str) -> bool:
    """True when the field image at ``folder`` was finished by our writer (reads one metadata file)."""
    try:
        found = read_group_attrs(folder)
    except OmeArrowDaskError:
        return False
    status = found[0].get(STATUS_KEY) if found is not None else None
    return isinstance(status, dict) and status.get("status") == "complete"


def _clean_creating(out: str) -> None:
    for building in creating_leftovers(out):
        shutil.rmtree(building, ignore_errors=True)


def write_plate(
    wells: Mapping[str, Any],
    out: str | os.PathLike[str],
    *,
    name: str | None = None,
    field_workers: int = 4,
    **options: Any,
) -> str | os.PathLike[str]:
    """Write a plate of wells to ``out`` as an OME-NGFF plate; return ``out``.

    Parameters
    ----------
    wells
        Well name (``"B/3"``, ``"B3"``, ``"B03"``) -> one field image, or a list of them
        (the well's fields in order). A field image is an :class:`OMEArrow`, an array
        (numpy, dask, ...) or a path :meth:`OMEArrow.scan` opens. Wells may have
        different numbers of fields.
    out
        The plate store to create (``screen1.ome.zarr``).
    name
        The plate name in the metadata.
    field_workers
        Fields written at once (each field's chunks are written by the dask scheduler;
        this overlaps the fixed per-field costs). 1 writes them one after another.
    **options
        Options of :class:`~ome_arrow_dask.writers.zarr.ZarrWriteOptions`, applied to
        every field: ``levels``, ``chunks``, ``shards``, ``version``, ``compressor``,
        ``clevel``, ``overwrite``, ``resume``, ``verify``, ``verify_inputs``, ``progress``.

    Raises
    ------
    OmeArrowDaskError
        ``out`` exists without ``overwrite`` / ``resume``, or invalid wells or options.
    InputChangedError
        With ``resume=True``, when the plate was started from other images or parameters.
    OutputInUseError
        Another running conversion writes ``out``.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> out = os.path.join(tempfile.mkdtemp(), "plate.ome.zarr")
    >>> _ = write_plate({"A/1": np.zeros((8, 8), "u2"), "A/2": [np.ones((8, 8), "u2")] * 2}, out, levels=2)
    >>> sorted(os.listdir(os.path.join(out, "A", "2")))
    ['0', '1', 'zarr.json']
    """
    opts = zarr_writer.ZarrWriteOptions(**options)
    if int(field_workers) < 1:
        raise OmeArrowDaskError(f"field_workers must be >= 1, got {field_workers}")
    field_workers = int(field_workers)
    plan = {key: [as_write_input(img) for img in images] for key, images in normalize_wells(wells).items()}
    root = os.path.abspath(os.fspath(out))
    inputs = tuple(p for images in plan.values() for img in images for p in img.identity.input_paths)
    check_output_not_input(root, inputs, job_paths=(progress_dir(root), lock_path(root)))
    fingerprint = _fingerprint(plan, opts, name, inputs)
    field_opts = {**asdict(opts), "overwrite": False, "resume": True}
    with JobLock(root):
        for images in plan.values():  # every field's headers, before overwrite deletes anything
            for image in images:
                image.identity.validate_inputs()
        existing = zarr_writer.inspect_output(root, read=_plate_status)
        decision = decide(
            root, overwrite=opts.overwrite, resume=opts.resume, fingerprint=fingerprint, existing=existing,
            noun="plate conversion",
        )  # fmt: skip
        if decision.fresh:
            zarr_writer._remove_output(root, str(progress_dir(root)))
        _clean_creating(root)
        if decision.mode == "done":
            return out
        if decision.fresh:
            os.makedirs(os.path.dirname(root) or ".", exist_ok=True)
            _create(root, plan, opts.version, status_record(IN_PROGRESS, fingerprint))
        todo = []
        for (r, c), images in plan.items():
            well = os.path.join(root, row_name(r), column_name(c))
            for i, image in enumerate(images):
                field = os.path.join(well, str(i))
                if decision.mode == "resume" and _field_complete(field):
                    continue  # finished by an earlier run of this same plate (same fingerprint)
                todo.append((image, field))
        _write_fields(todo, field_opts, field_workers)
        _finalize(root, plan, opts.version, fingerprint, name)
    return out


def _write_fields(todo: list[tuple[WriteInput, str]], field_opts: dict[str, Any], workers: int) -> None:
    """Write each field with the OME-Zarr writer, ``workers`` fields at a time; the first failure is raised.

    Each field is its own job (its graph of one task per chunk or shard runs on the current
    dask scheduler); a few run at once so that the per-field fixed costs (lock, metadata,
    fsyncs) overlap. After a failure no further field is started.
    """
    if workers <= 1 or len(todo) <= 1:
        for image, field in todo:
            zarr_writer.write(image, field, **field_opts)
        return
    from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ome-arrow-plate") as pool:
        futures = [pool.submit(zarr_writer.write, image, field, **field_opts) for image, field in todo]
        _, pending = wait(futures, return_when=FIRST_EXCEPTION)
        for future in pending:
            future.cancel()
        for future in futures:  # in submission order: the first failed field is reported
            if future.done() and not future.cancelled() and future.exception() is not None:
                raise future.exception()  # type: ignore[misc]


def _finalize(
    root: str, plan: dict[tuple[int, int], list[WriteInput]], version: str, fingerprint: str, name: str | None
) -> None:
    """Check every field is complete, then write the plate metadata and status complete at once."""
    import zarr

    for (r, c), images in plan.items():
        for i in range(len(images)):
            field = os.path.join(root, row_name(r), column_name(c), str(i))
            if not _field_complete(field):
                raise OmeArrowDaskError(f"{root}: field {field} is not complete; run again with resume=True")
    block = plate_metadata(list(plan), [len(v) for v in plan.values()], version, name)
    attrs: dict[str, Any] = {"plate": block} if version == "0.4" else {"ome": {"version": "0.5", "plate": block}}
    attrs[STATUS_KEY] = status_record(COMPLETE, fingerprint)
    zarr.open_group(root, mode="r+").attrs.put(attrs)
