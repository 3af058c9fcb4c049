"""Folders of per-field TIFFs (high-content screening exports) as plates of pattern stacks.

A plate template is a :mod:`~ome_arrow_dask.sources.patterns` template with three more
fields: ``{row}`` (letters ``B`` or 1-based numbers ``02``), ``{col}`` (1-based numbers;
``{column}`` is the same) and ``{field}`` (numbers), plus the usual ``{t}`` ``{c}`` ``{z}``
(``{x}`` ``{y}`` tiles, ``{}`` ignored). Opera Phenix / Operetta "Harmony" exports::

    r{row}c{col}f{field}p{z}-ch{c}sk{t}fk1fl1.tiff      # r02c05f01p01-ch1sk1fk1fl1.tiff = well B/5

The folder is listed once; each (row, column, field) becomes one
:class:`~ome_arrow_dask.sources.stack.StackSource` over its own files (its template is
the plate template with the well and field values filled in), so headers, fingerprints
and read checks are those of pattern stacks.

Checks, before anything is written:

* every field has a file for every (t, c, z, tile) combination found anywhere on the
  plate; a field that lacks some is refused
  (:class:`~ome_arrow_dask.errors.InconsistentInputError`) naming the well, the field and
  the missing values;
* fields are numbered without gaps from the plate's first field number: a well may have
  fewer fields than another (its last ones absent), but a well with ``f01`` and ``f03``
  and no ``f02`` is refused naming the missing field;
* two spellings of one well or field (``r2`` and ``r02``) are refused.

Field ``k`` of a well is the ``k``-th field number from the plate's first one
(Harmony ``f01`` is field 0).
"""

from __future__ import annotations

import os
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import InconsistentInputError, OmeArrowDaskError, SelectionError
from .plate_model import FieldRef, Plate, Well, column_name, row_index, row_name
from .sources.patterns import PatternError, check_file_part, trailing_letters

if TYPE_CHECKING:
    from .core import OMEArrow

__all__ = ["PlateTemplate", "compile_plate_template", "open_plate_folder", "scan_plate_folder"]

_FIELD = re.compile(r"\{([A-Za-z]*)(?::([^{}]*))?\}")
_PLATE_NAMES = {"row": "row", "col": "col", "column": "col", "field": "field"}
_AXIS_NAMES = ("t", "c", "z", "x", "y", "")


@dataclass(frozen=True)
class PlateTemplate:
    """A compiled plate template: a full-match regex and the template text around the plate fields."""

    text: str
    regex: re.Pattern[str]
    axis_groups: tuple[tuple[str, str], ...]  # (regex group, template label) of each t/c/z/x/y field
    spans: tuple[tuple[int, int, str], ...]  # (start, end, plate field name) in ``text``

    def field_template(self, values: dict[str, str]) -> str:
        """The template of one field: the plate fields replaced by their text in its file names."""
        out, pos = [], 0
        for start, end, name in self.spans:
            out += [self.text[pos:start], values[name]]
            pos = end
        out.append(self.text[pos:])
        return "".join(out)


def _spec(name: str, spec: str | None) -> str:
    """Regex of one field from its name and format spec (``02d`` fixes the width)."""
    if spec:
        m = re.fullmatch(r"0?(\d*)d", spec)
        if m is None:
            if spec == "s" and name not in ("row", "col", "field"):
                return ".+?"
            raise PatternError(f"unsupported format spec {{{name}:{spec}}}; use d or 0Nd (e.g. 02d)")
        return rf"\d{{{int(m.group(1))}}}" if m.group(1) else r"\d+"
    if name == "row":
        return r"[A-Za-z]+|\d+"
    if name == "":
        return ".*?"
    if name == "c":
        return ".+?"
    return r"\d+"


def compile_plate_template(text: str) -> PlateTemplate:
    """Compile a plate template with ``{row}``, ``{col}`` and ``{field}``.

    >>> tpl = compile_plate_template("r{row}c{col}f{field}p{z}-ch{c}sk{t}fk1fl1.tiff")
    >>> tpl.regex.fullmatch("r02c05f01p01-ch1sk1fk1fl1.tiff").group("row", "col", "field")
    ('02', '05', '01')
    >>> tpl.field_template({"row": "02", "col": "05", "field": "01"})
    'r02c05f01p{z}-ch{c}sk{t}fk1fl1.tiff'
    """
    check_file_part(text)
    parts, spans, axis_groups, seen = [], [], [], set()
    pos = 0
    for k, m in enumerate(_FIELD.finditer(text)):
        raw = m.group(1).lower()
        name = _PLATE_NAMES.get(raw, raw)
        if name not in _PLATE_NAMES.values() and name not in _AXIS_NAMES:
            raise PatternError(
                f"unknown field {m.group(0)!r} in plate template {text!r}; use {{row}} {{col}} {{field}} "
                "{t} {c} {z} {x} {y} or {}"
            )
        if name in seen and name:
            raise PatternError(f"field {{{name}}} appears twice in plate template {text!r}")
        seen.add(name)
        parts.append(re.escape(text[pos : m.start()]))
        regex = _spec(name, m.group(2))
        if name in ("row", "col", "field"):
            parts.append(f"(?P<{name}>{regex})")
            spans.append((m.start(), m.end(), name))
        else:
            parts.append(f"(?P<a{k}>{regex})")
            axis_groups.append((f"a{k}", trailing_letters(text[: m.start()]) + m.group(0)))
        pos = m.end()
    parts.append(re.escape(text[pos:]))
    missing = [f"{{{n}}}" for n in ("row", "col") if n not in seen]
    if missing:
        raise PatternError(f"plate template {text!r} needs {' and '.join(missing)} (and usually {{field}})")
    return PlateTemplate(text, re.compile("".join(parts), re.DOTALL), tuple(axis_groups), tuple(spans))


def _number(text: str, what: str, name: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise PatternError(f"{name}: {what} {text!r} must be a number from 1 (or row letters)")
    return int(text)


def _group(
    template: PlateTemplate, names: Iterable[str], root: str
) -> dict[tuple[int, int, int], tuple[dict[str, str], list[str], set[tuple[str, ...]]]]:
    """Files by (row, column, field number): the field's plate values, names and axis values."""
    groups: dict[tuple[int, int, int], tuple[dict[str, str], list[str], set[tuple[str, ...]]]] = {}
    for name in sorted(names):
        m = template.regex.fullmatch(name)
        if m is None:
            continue
        values = {k: m.group(k) for k in ("row", "col", "field") if k in template.regex.groupindex}
        values.setdefault("field", "")
        row_text = values["row"]
        r = row_index(row_text) if row_text.isalpha() else _number(row_text, "row", name) - 1
        key = (r, _number(values["col"], "column", name) - 1, int(values["field"]) if values["field"] else 0)
        entry = groups.setdefault(key, (values, [], set()))
        if entry[0] != values:
            raise PatternError(
                f"{root}: {name!r} and {entry[1][0]!r} spell well {row_name(key[0])}/{column_name(key[1])} "
                f"field {values['field'] or '-'} differently; rename the files so each well and field is spelt one way"
            )
        entry[1].append(name)
        entry[2].add(tuple(m.group(g) for g, _ in template.axis_groups))
    if not groups:
        raise PatternError(f"no files in {root} match the plate template {template.text!r}")
    return groups


def _describe(template: PlateTemplate, combos: Iterable[tuple[str, ...]]) -> str:
    labels = [label for _, label in template.axis_groups]
    shown = [", ".join(f"{label}={v}" for label, v in zip(labels, combo, strict=True)) for combo in combos]
    return "; ".join(shown[:8]) + (f"; ... ({len(shown)} in all)" if len(shown) > 8 else "")


def _check_complete(template: PlateTemplate, groups: dict, root: str) -> dict[tuple[int, int], list[tuple[int, Any]]]:
    """Wells -> [(field number, group)]: every field complete, field numbers without gaps."""
    combos = set().union(*(g[2] for g in groups.values()))
    for (r, c, f), (values, _, have) in sorted(groups.items()):
        lacking = sorted(combos - have)
        if lacking:
            raise InconsistentInputError(
                f"{root}: well {row_name(r)}/{column_name(c)} field {values['field'] or f} "
                f"({template.field_template(values)}) lacks {len(lacking)} file(s) that other fields have: "
                f"{_describe(template, lacking)}; add them, or move that field's files out of the folder"
            )
    first = min(f for _, _, f in groups)
    wells: dict[tuple[int, int], list[tuple[int, Any]]] = defaultdict(list)
    for (r, c, f), group in sorted(groups.items()):
        wells[(r, c)].append((f, group))
    for (r, c), fields in wells.items():
        numbers = [f for f, _ in fields]
        expected = list(range(first, first + len(numbers)))
        if numbers != expected:
            gap = next(e for e, n in zip(expected, numbers, strict=False) if e != n)
            raise InconsistentInputError(
                f"{root}: well {row_name(r)}/{column_name(c)} has fields {numbers} but not field {gap}; fields are "
                f"numbered from {first} without gaps (a well may lack only its last fields). Add the missing field "
                "or leave the well's later fields out"
            )
    return dict(sorted(wells.items()))


def scan_plate_folder(
    folder: str | os.PathLike[str], pattern: str, *, missing: str = "error", validate: bool = False
) -> dict[str, list[OMEArrow]]:
    """``{"B/3": [field 0, field 1, ...]}``: each field a lazy pattern stack over its own files.

    Lists ``folder`` once and reads one TIFF header per field (the stack's first file).
    ``missing`` and ``validate`` go to :func:`~ome_arrow_dask.sources.stack.open_stack`
    (``missing`` applies to files missing *inside* a field's own grid; a field lacking
    files that other fields have is always refused).

    Raises
    ------
    PatternError
        No file matches, a field name is malformed, or a well is spelt two ways.
    InconsistentInputError
        A field lacks files other fields have, or a well's field numbers have a gap.
    """
    from .core import OMEArrow
    from .sources.stack import list_files, open_stack

    root = os.path.abspath(os.fspath(folder))
    if not os.path.isdir(root):
        raise FileNotFoundError(f"no such folder: {root!r}")
    template = compile_plate_template(pattern)
    entries = list_files(root)
    not_files = sorted(name for name in entries.others if template.regex.fullmatch(name))
    if not_files:  # skipping one would silently drop a field or plane
        listed = ", ".join(os.path.join(root, name) for name in not_files[:10])
        raise InconsistentInputError(
            f"{listed}: named like a plate file (pattern {pattern!r}) but not a regular file "
            "(a folder or a broken link); skipping it would drop a field or plane, so move or rename it"
        )
    wells = _check_complete(template, _group(template, entries, root), root)
    out: dict[str, list[OMEArrow]] = {}
    for (r, c), fields in wells.items():
        images: list[OMEArrow] = []
        for _, (values, names, _) in fields:
            text = template.field_template(values)
            subset = {n: entries[n] for n in names}
            try:
                source = open_stack(root, text, missing=missing, validate=validate, entries=subset)
            except OmeArrowDaskError as exc:
                raise type(exc)(f"well {row_name(r)}/{column_name(c)} field {len(images)}: {exc}") from exc
            images.append(OMEArrow(source))
        out[f"{row_name(r)}/{column_name(c)}"] = images
    return out


def open_plate_folder(folder: str | os.PathLike[str], pattern: str, **options: Any) -> Plate:
    """A :class:`~ome_arrow_dask.plate.Plate` over a TIFF folder (see :func:`scan_plate_folder`).

    Fields have one level (``level=0``); rows and columns are listed from ``A`` / ``1``.
    """
    wells = scan_plate_folder(folder, pattern, **options)
    keys = {name: (row_index(name.split("/")[0]), int(name.split("/")[1]) - 1) for name in wells}
    n_rows = 1 + max(r for r, _ in keys.values())
    n_cols = 1 + max(c for _, c in keys.values())
    root = os.path.abspath(os.fspath(folder))

    def opener(images: list[OMEArrow]) -> Any:
        def open_field(index: int, level: int, opts: dict[str, Any]) -> OMEArrow:
            if level != 0 or opts:
                raise SelectionError(f"{root}: a TIFF folder field has one level and takes no options")
            return images[index]

        return open_field

    plate_wells = {
        name: Well(name, r, c, tuple(FieldRef(str(i)) for i in range(len(wells[name]))), opener(wells[name]), root)
        for name, (r, c) in keys.items()
    }
    return Plate(
        root,
        name=os.path.basename(root),
        version="folder",
        rows=tuple(row_name(r) for r in range(n_rows)),
        columns=tuple(column_name(c) for c in range(n_cols)),
        wells=plate_wells,
    )
