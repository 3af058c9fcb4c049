"""Filename patterns: four syntaxes compiled to one regex with named groups plus an axis map.

Pure parsing only (no I/O): a folder listing goes in, a grid of file names comes out.

Syntaxes (:func:`compile_pattern` picks one with :func:`detect_syntax`):

* **template** ``img_ch{c}_stack{t:04d}_{}msec_{x}x_{y}y_{z}z.tif``: ``{t}`` ``{c}`` ``{z}``
  are T/C/Z indices, ``{x}`` ``{y}`` tile positions, ``{}`` a varying field that is ignored;
  ``{t:04d}`` fixes the width, ``{c:s}`` allows any text.
* **regex** with named groups ``t c z x y`` (any case); other named groups are ignored.
* **brackets** ``E99_C<111,222>_ZS<000-021>.tif``: Bio-Formats ``<a-b>`` / ``<a-b:step>`` /
  ``<a,b,c>`` tokens with ome-arrow's rules: the letters right before ``<`` name the axis
  (:data:`BRACKET_TOKENS`; unknown letters mean C, series letters mean T); ranges are
  zero-padded to the longer bound; the index is the position in the token's list.
* **glob** ``*.tif``: files are matched with :mod:`fnmatch`; :func:`infer_pattern` then turns
  numeric fields that vary into axes by the letters around them. High-content screening
  names are recognised first (:func:`hcs_fields`): the wavelength field (Cellomics
  ``..._D03f00d0.tif`` ``d#``, MetaXpress/ImageXpress ``..._A01_s1_w2.tif`` ``w#``) is C,
  and the well and site (``f#`` / ``s#``) fields are not axes: names that vary in them are
  refused with a pattern for one site.

Why not ``tifffile.parse_filenames``: it uses ``re.search`` (not a full match), numbers every
axis ``max - min + 1`` from the parsed minimum (a missing first or last file is invisible,
bracket lists cannot fix the origin) and maps strings only through a caller-built category
table. Here matching is one ``fullmatch`` per name; the index rules are in :func:`axis_index_map`.
"""

from __future__ import annotations

import fnmatch
import itertools
import math
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

import numpy as np

from ..errors import PatternError, ResourceLimitError, UnsafePathError
from ..meta import Shape5, tczyx

if TYPE_CHECKING:  # typeshed describes CPython's regex parser under its pre-3.11 names only
    import sre_constants as _re_constants
    import sre_parse as _re_parser
else:  # the same modules; importing the old names warns (DeprecationWarning) since 3.11
    from re import _constants as _re_constants
    from re import _parser as _re_parser

GRID_AXES = "TCZYX"
MAX_PATTERN_LENGTH = 1000
MAX_GRID_POSITIONS = 10_000_000

BRACKET_TOKENS: dict[str, str] = {
    **dict.fromkeys(("c", "ch", "w", "wavelength"), "C"),
    **dict.fromkeys(("t", "tl", "tp", "timepoint"), "T"),
    **dict.fromkeys(("z", "zs", "sec", "fp", "focal", "focalplane"), "Z"),
    **dict.fromkeys(("s", "sp", "series"), "T"),
}
"""ome-arrow's axis tokens (letters before ``<``); series map to T (ome-arrow's default)."""

INFER_PREFIX: dict[str, str] = {
    **dict.fromkeys(("c", "ch", "w", "wavelength", "channel"), "C"),
    **dict.fromkeys(("t", "tl", "tp", "timepoint", "time", "stack", "sk"), "T"),
    **dict.fromkeys(("z", "zs", "sec", "fp", "focal", "focalplane", "p", "plane", "slice"), "Z"),
}
"""Letters right before a numeric field that name its axis during inference."""

INFER_SUFFIX: dict[str, str | None] = {
    "x": "X",
    "y": "Y",
    "z": "Z",
    "t": "T",
    "c": "C",
    "ch": "C",
    "nm": "C",
    "ms": None,
    "msec": None,
    "msecabs": None,
    "us": None,
}
"""Letters right after a numeric field (LLSM ``000x_000y_000z_0000t``); None: a timestamp."""


@dataclass(frozen=True)
class Field:
    """One variable part of a file name.

    ``group`` names the regex group; ``axis`` is one of TCZYX or None (ignored);
    ``label`` is how the field was written; ``choices`` maps value text to an index
    (bracket tokens); ``prefix`` / ``suffix`` are the letters around the field.
    """

    group: str
    axis: str | None
    label: str
    choices: tuple[tuple[str, int], ...] | None = None
    prefix: str = ""
    suffix: str = ""
    note: str = ""


@dataclass(frozen=True)
class Pattern:
    """A compiled filename pattern: a full-match regex and the fields it captures."""

    syntax: str
    text: str
    regex: re.Pattern[str]
    fields: tuple[Field, ...]

    def match(self, names: Iterable[str]) -> list[tuple[str, dict[str, str]]]:
        """Return ``(name, {group: value})`` for each name the pattern fully matches."""
        groups = [f.group for f in self.fields]
        fullmatch = self.regex.fullmatch
        out = []
        for name in names:
            m = fullmatch(name)
            if m is not None:
                values = m.group(*groups) if len(groups) > 1 else (m.group(groups[0]),) if groups else ()
                out.append((name, dict(zip(groups, values, strict=True))))
        return out


@dataclass(frozen=True)
class AxisMap:
    """How one field's values become indices along one axis (``labels[i]`` is index i)."""

    axis: str
    field: Field
    labels: tuple[str, ...]
    rule: str


@dataclass(frozen=True)
class FileGrid:
    """Files placed on a T, C, Z, Y-tile, X-tile grid; ``missing`` lists empty positions."""

    shape: Shape5
    files: tuple[tuple[tuple[int, ...], str], ...]
    missing: tuple[tuple[int, ...], ...]
    axes: tuple[AxisMap, ...]
    ignored: tuple[Field, ...]

    def channel_names(self) -> tuple[str, ...] | None:
        """Names for the C axis when a field defines it, else None."""
        for amap in self.axes:
            if amap.axis == "C":
                return tuple(channel_name(label, amap.field) for label in amap.labels)
        return None

    def describe_position(self, position: Sequence[int]) -> str:
        """Name a grid position by its axis indices and field values.

        >>> f = Field("f0", "Z", "z{z}", prefix="z")
        >>> g = FileGrid((1, 1, 2, 1, 1), (), (), (AxisMap("Z", f, ("0", "1"), "numeric"),), ())
        >>> g.describe_position((0, 0, 1, 0, 0))
        'z=1 (z1)'
        """
        parts = []
        for amap in self.axes:
            k = position[GRID_AXES.index(amap.axis)]
            parts.append(f"{amap.axis.lower()}={k} ({amap.field.prefix}{amap.labels[k]}{amap.field.suffix})")
        return ", ".join(parts) or "the only position"


# --------------------------------------------------------------------------- helpers
def natural_key(text: str) -> tuple[object, ...]:
    """Sort key that orders digit runs by value (``z2`` before ``z10``).

    >>> sorted(["z10", "z2", "z1", "Z3"], key=natural_key)
    ['z1', 'z2', 'Z3', 'z10']
    """
    return tuple(int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", text))


def natural_sorted(values: Iterable[str]) -> list[str]:
    """Sort strings naturally; ties (``z01`` / ``z1``) by the text itself.

    >>> natural_sorted(["img10.tif", "img9.tif", "img09.tif"])
    ['img09.tif', 'img9.tif', 'img10.tif']
    """
    return sorted(values, key=lambda v: (natural_key(v), v))


def trailing_letters(text: str) -> str:
    """The run of ASCII letters at the end of ``text``.

    >>> trailing_letters("E99_ZS"), trailing_letters("x_")
    ('ZS', '')
    """
    m = re.search(r"[A-Za-z]+$", text)
    return m.group(0) if m else ""


def leading_letters(text: str) -> str:
    """The run of ASCII letters at the start of ``text``.

    >>> leading_letters("msecAbs_000x"), leading_letters(".tif")
    ('msecAbs', '')
    """
    m = re.match(r"[A-Za-z]+", text)
    return m.group(0) if m else ""


def channel_name(value: str, field: Field) -> str:
    """Channel name for a C field value: text as is, numbers with their letters.

    >>> channel_name("111", Field("f0", "C", "C<111,222>", prefix="C"))
    'C111'
    >>> channel_name("488", Field("f0", "C", "{c}nm", suffix="nm"))
    '488nm'
    >>> channel_name("DAPI", Field("f0", "C", "w<DAPI,GFP>", prefix="w"))
    'DAPI'
    """
    if not value.isdigit():
        return value
    if field.prefix:
        return f"{field.prefix}{value}"
    return f"{value}{field.suffix}" if field.suffix else value


def check_file_part(text: str) -> None:
    """Refuse a file-name pattern that names another folder (``..``, absolute, separators).

    >>> check_file_part("img_{z}.tif")
    >>> check_file_part("../../etc/*")
    Traceback (most recent call last):
    ...
    ome_arrow_dask.errors.UnsafePathError: pattern '../../etc/*' leaves its folder; ...
    """
    if "/" not in text:
        return
    if text.startswith("/") or ".." in text.split("/"):
        raise UnsafePathError(f"pattern {text!r} leaves its folder; patterns match file names in one folder only")
    raise PatternError(
        f"pattern {text!r} contains a folder separator; pass the folder as the path and the file-name part as pattern="
    )


# --------------------------------------------------------------------------- syntaxes
_TEMPLATE_FIELD = re.compile(r"\{([A-Za-z]*)(?::([^{}]*))?\}")
_BRACKET_TOKEN = re.compile(r"<([^<>]*)>")


def detect_syntax(text: str) -> str:
    r"""Which pattern syntax ``text`` is written in.

    >>> [detect_syntax(t) for t in (r"a_(?P<z>\d+).tif", "C<1,2>.tif", "z{z}.tif", "*.tif")]
    ['regex', 'brackets', 'template', 'glob']
    """
    if "(?P<" in text:
        return "regex"
    if "<" in text and ">" in text:
        return "brackets"
    if _TEMPLATE_FIELD.search(text):
        return "template"
    return "glob"


def _spec_regex(name: str, spec: str | None) -> str:
    r"""Regex for one template field from its name and format spec.

    >>> print(_spec_regex("t", "04d"), _spec_regex("z", None), _spec_regex("c", None))
    \d{4} \d+ .+?
    """
    if spec in (None, ""):
        return {"": ".*?", "c": ".+?"}.get(name, r"\d+")
    m = re.fullmatch(r"(0?)(\d*)d", spec)
    if m and m.group(1) and m.group(2):
        return rf"\d{{{int(m.group(2))}}}"
    if m:
        return r"\d+"
    if spec == "s":
        return ".+?"
    raise PatternError(f"unsupported format spec {{{name}:{spec}}}; use d, 0Nd (e.g. 04d) or s")


def _add_field(fields: list[Field], field: Field) -> None:
    taken = {f.axis: f.label for f in fields if f.axis}
    if field.axis and field.axis in taken:
        raise PatternError(
            f"fields {taken[field.axis]!r} and {field.label!r} both map to axis {field.axis}; "
            "use {} for the one to ignore"
        )
    fields.append(field)


def compile_template(text: str) -> Pattern:
    """Compile a ``{t}``/``{c}``/``{z}``/``{x}``/``{y}``/``{}`` template.

    >>> p = compile_template("ch{c}_stack{t:04d}_{}msec.tif")
    >>> [(f.axis, f.label) for f in p.fields]
    [('C', '{c}'), ('T', '{t:04d}'), (None, '{}')]
    >>> p.match(["ch0_stack0001_123msec.tif", "other.tif"])
    [('ch0_stack0001_123msec.tif', {'f0': '0', 'f1': '0001', 'f2': '123'})]
    """
    parts: list[str] = []
    fields: list[Field] = []
    pos = 0
    for k, m in enumerate(_TEMPLATE_FIELD.finditer(text)):
        name = m.group(1).lower()
        if len(name) > 1 or (name and name not in "tczxy"):
            raise PatternError(
                f"unknown template field {m.group(0)!r} in {text!r}; use {{t}} {{c}} {{z}} {{x}} {{y}} or {{}}"
            )
        parts.append(re.escape(text[pos : m.start()]))
        parts.append(f"(?P<f{k}>{_spec_regex(name, m.group(2))})")
        prefix, suffix = trailing_letters(text[: m.start()]), leading_letters(text[m.end() :])
        _add_field(fields, Field(f"f{k}", name.upper() or None, m.group(0), prefix=prefix, suffix=suffix))
        pos = m.end()
    parts.append(re.escape(text[pos:]))
    return Pattern("template", text, re.compile("".join(parts), re.DOTALL), tuple(fields))


def _has_nested_repeat(node: _re_parser.SubPattern, inside: bool = False) -> bool:
    """True when a parsed regex repeats something that itself repeats without bound."""
    for op, arg in node.data:
        if op in (_re_constants.MAX_REPEAT, _re_constants.MIN_REPEAT):
            # a repeat's argument is (min, max, subpattern); typeshed's union of argument types lacks it
            _, hi, sub = cast(tuple[int, int, _re_parser.SubPattern], arg)
            unbounded = hi == _re_constants.MAXREPEAT
            if (inside and unbounded) or _has_nested_repeat(sub, inside or unbounded):
                return True
        elif isinstance(arg, (list, tuple, _re_parser.SubPattern)):
            subs = [a for a in arg if isinstance(a, _re_parser.SubPattern)] if isinstance(arg, (list, tuple)) else [arg]
            if isinstance(arg, tuple) and len(arg) == 2 and isinstance(arg[1], list):
                subs += [a for a in arg[1] if isinstance(a, _re_parser.SubPattern)]
            if any(_has_nested_repeat(s, inside) for s in subs):
                return True
    return False


def compile_regex(text: str) -> Pattern:
    r"""Compile a user regex; named groups ``t c z x y`` (any case) are axes, others ignored.

    Refuses long patterns and nested unbounded repeats such as ``(a+)+`` (catastrophic
    backtracking).

    >>> p = compile_regex(r".*_ch(?P<c>\d+)_.*_stack(?P<T>\d+)_.*\.tif")
    >>> [(f.group, f.axis, f.prefix) for f in p.fields]
    [('c', 'C', 'ch'), ('T', 'T', 'stack')]
    >>> compile_regex("(a+)+$")
    Traceback (most recent call last):
    ...
    ome_arrow_dask.errors.PatternError: regex '(a+)+$' nests unbounded repeats ...
    """
    if len(text) > MAX_PATTERN_LENGTH:
        raise PatternError(f"regex of {len(text)} characters is longer than {MAX_PATTERN_LENGTH}")
    try:
        regex = re.compile(text)
        nested = _has_nested_repeat(_re_parser.parse(text))
    except re.error as exc:
        raise PatternError(f"invalid regex {text!r}: {exc}") from exc
    if nested:
        raise PatternError(
            f"regex {text!r} nests unbounded repeats (catastrophic backtracking); "
            "rewrite it or use a template such as 'img_{z}.tif'"
        )
    fields: list[Field] = []
    for name, _ in sorted(regex.groupindex.items(), key=lambda kv: kv[1]):
        axis = name.upper() if len(name) == 1 and name.upper() in GRID_AXES else None
        start = text.find(f"(?P<{name}>")
        _add_field(fields, Field(name, axis, f"(?P<{name}>)", prefix=trailing_letters(text[:start])))
    return Pattern("regex", text, regex, tuple(fields))


def bracket_choices(token: str) -> tuple[tuple[str, int], ...]:
    """Value -> index pairs of one ``<...>`` token (ome-arrow's rules).

    Ranges are zero-padded to the longer bound; when the bounds differ in width the
    unpadded spelling is accepted too.

    >>> bracket_choices("0-2")
    (('0', 0), ('1', 1), ('2', 2))
    >>> bracket_choices("8-12:2")
    (('08', 0), ('10', 1), ('12', 2), ('8', 0))
    >>> bracket_choices("DAPI,GFP")
    (('DAPI', 0), ('GFP', 1))
    """
    m = re.fullmatch(r"(\d+)-(\d+)(?::(\d+))?", token.strip())
    if m is None:
        items = [item.strip() for item in token.split(",")]
        if not all(items):
            raise PatternError(f"empty choice in <{token}>")
        return tuple((item, i) for i, item in enumerate(items))
    lo, hi, step = int(m.group(1)), int(m.group(2)), int(m.group(3) or 1)
    if lo > hi or step <= 0:
        raise PatternError(
            f"invalid range <{token}>: expected <low-high> or <low-high:step> with low <= high, step > 0"
        )
    width = max(len(m.group(1)), len(m.group(2)))
    values = range(lo, hi + 1, step)
    pairs = [(str(v).zfill(width), i) for i, v in enumerate(values)]
    if len(m.group(1)) != len(m.group(2)):
        pairs += [(str(v), i) for i, v in enumerate(values) if str(v) != str(v).zfill(width)]
    return tuple(pairs)


def _glob_regex(text: str) -> str:
    r"""Regex for a literal run that may hold ``*`` / ``?`` wildcards.

    >>> print(_glob_regex("a.*_?"))
    a\..*?_.
    """
    return "".join(".*?" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in text)


def compile_brackets(text: str) -> Pattern:
    """Compile an ome-arrow / Bio-Formats ``<a-b>`` / ``<a,b>`` pattern.

    >>> p = compile_brackets("E99_C<111,222>_ZS<000-021>.tif")
    >>> [(f.axis, f.label, f.prefix) for f in p.fields]
    [('C', 'C<111,222>', 'C'), ('Z', 'ZS<000-021>', 'ZS')]
    >>> compile_brackets("x_D03f00d<0-2>.tif").fields[0].axis
    'C'
    """
    parts: list[str] = []
    fields: list[Field] = []
    pos = 0
    for k, m in enumerate(_BRACKET_TOKEN.finditer(text)):
        before = text[pos : m.start()]
        letters = trailing_letters(before)
        choices = bracket_choices(m.group(1))
        axis = BRACKET_TOKENS.get(letters.lower(), "C")
        alternatives = "|".join(re.escape(v) for v, _ in sorted(choices, key=lambda c: -len(c[0])))
        parts += [_glob_regex(before), f"(?P<f{k}>{alternatives})"]
        label = f"{letters}{m.group(0)}"
        _add_field(fields, Field(f"f{k}", axis, label, choices, letters, leading_letters(text[m.end() :])))
        pos = m.end()
    parts.append(_glob_regex(text[pos:]))
    return Pattern("brackets", text, re.compile("".join(parts), re.DOTALL), tuple(fields))


def compile_pattern(text: str) -> Pattern:
    """Compile ``text`` in the syntax :func:`detect_syntax` finds (a glob has no fields yet).

    >>> compile_pattern("*.tif").syntax, compile_pattern("*.tif").fields
    ('glob', ())
    """
    check_file_part(text)
    syntax = detect_syntax(text)
    if syntax == "regex":
        return compile_regex(text)
    if syntax == "brackets":
        return compile_brackets(text)
    if syntax == "template":
        return compile_template(text)
    if syntax == "glob":
        return Pattern("glob", text, re.compile(fnmatch.translate(text)), ())
    raise AssertionError(syntax)  # pragma: no cover


# --------------------------------------------------------------------------- inference
def _classify(prefix: str, suffix: str) -> tuple[str | None, str]:
    """Axis for a numeric field from the letters around it, and why.

    >>> _classify("ZS", ""), _classify("", "x"), _classify("", "msec"), _classify("img", "")
    (('Z', "letters 'ZS' before"), ('X', "letters 'x' after"), (None, 'timestamp'), ('?', 'no axis letters'))
    """
    if prefix.lower() in INFER_PREFIX:
        return INFER_PREFIX[prefix.lower()], f"letters {prefix!r} before"
    if suffix.lower() in INFER_SUFFIX:
        axis = INFER_SUFFIX[suffix.lower()]
        return (axis, f"letters {suffix!r} after") if axis else (None, "timestamp")
    return "?", "no axis letters"


_WELL_ROW = re.compile(r"(?:^|[^A-Za-z])[A-P]$")


@dataclass(frozen=True)
class HcsField:
    """Role of one numeric field in a high-content screening (plate) file name."""

    role: str  # "well", "site" or "wavelength"
    vendor: str


def hcs_fields(skeleton: Sequence[str]) -> dict[int, HcsField]:
    """Find the well, site and wavelength fields of plate file names (by field index).

    ``skeleton`` is the literal text around the numeric fields (field ``i`` lies between
    ``skeleton[i]`` and ``skeleton[i + 1]``). Recognised: Cellomics / ArrayScan
    ``<plate>_<well>f<field>d<channel>`` (the ExampleHuman sample
    ``AS_09125_050116030001_D03f00d0.tif``) and MetaXpress / ImageXpress
    ``<plate>_<well>[_s<site>]_w<wavelength>``. A well is a row letter A-P right after
    ``_`` (or the start) followed by its column number.

    >>> roles = hcs_fields(("AS_", "_", "_D", "f", "d", ".tif"))
    >>> {i: f.role for i, f in roles.items()}
    {2: 'well', 3: 'site', 4: 'wavelength'}
    >>> {i: f.role for i, f in hcs_fields(("Plate_A", "_s", "_w", ".tif")).items()}
    {0: 'well', 1: 'site', 2: 'wavelength'}
    >>> hcs_fields(("img_C", "_z", ".tif"))
    {}
    """
    for i in range(len(skeleton) - 2):
        if not _WELL_ROW.search(skeleton[i]):
            continue
        after = tuple(skeleton[i + 1 : i + 3])
        roles: tuple[str, ...]
        if after == ("f", "d"):
            vendor, roles = "Cellomics/ArrayScan", ("well", "site", "wavelength")
        elif after == ("_s", "_w"):
            vendor, roles = "MetaXpress/ImageXpress", ("well", "site", "wavelength")
        elif after[0] == "_w":
            vendor, roles = "MetaXpress/ImageXpress", ("well", "wavelength")
        else:
            continue
        return {i + k: HcsField(role, vendor) for k, role in enumerate(roles)}
    return {}


def _hcs_refusal(
    text: str,
    skeleton: Sequence[str],
    values: Sequence[Sequence[str]],
    roles: dict[int, HcsField],
    varying: Sequence[int],
) -> PatternError:
    """The error for plate names that vary in their well or site field, with a glob for one site."""
    first = values[0]
    parts = []
    for i, literal in enumerate(skeleton[:-1]):
        parts.append(literal)
        parts.append("*" if roles.get(i, HcsField("", "")).role == "wavelength" else first[i])
    parts.append(skeleton[-1])
    one_site = "".join(parts)
    described = ", ".join(
        f"{roles[i].role} {trailing_letters(skeleton[i])}#{leading_letters(skeleton[i + 1])} "
        f"({len({row[i] for row in values})} values)"
        for i in varying
    )
    return PatternError(
        f"cannot infer axes for {text!r}: these {roles[varying[0]].vendor} plate file names vary in {described}; "
        f"each well and site is a separate image: open one site at a time, e.g. {one_site!r} "
        "(or pass pattern= with a template that puts the site on an axis, e.g. {t})"
    )


def _is_function_of(target: Sequence[str], keys: Sequence[tuple[str, ...]]) -> bool:
    """True when each key maps to one value of ``target`` (the field adds no dimension).

    >>> _is_function_of(["a", "b", "c"], [("0",), ("1",), ("2",)])
    True
    >>> _is_function_of(["a", "b"], [("0",), ("0",)])
    False
    """
    seen: dict[tuple[str, ...], str] = {}
    return all(seen.setdefault(key, value) == value for key, value in zip(keys, target, strict=True))


def _split_names(names: Sequence[str]) -> tuple[tuple[str, ...], list[list[str]]]:
    skeletons: dict[tuple[str, ...], list[str]] = defaultdict(list)
    for name in names:
        parts = re.split(r"(\d+)", name)
        skeletons[tuple(parts[0::2])].append(name)
    if len(skeletons) > 1:
        examples = "; ".join(group[0] for group in list(skeletons.values())[:4])
        raise PatternError(
            f"cannot infer axes: the {len(names)} names do not share one structure (e.g. {examples}); "
            "pass pattern= with a template such as 'img_ch{c}_z{z}.tif'"
        )
    skeleton = next(iter(skeletons))
    return skeleton, [re.split(r"(\d+)", name)[1::2] for name in names]


def _resolve_fields(
    candidates: list[tuple[int, str | None, str]], columns: list[list[str]]
) -> dict[int, tuple[str | None, str]]:
    """Pick one field per axis; drop fields that follow the chosen ones; place one unknown on Z/T."""
    chosen: dict[str, int] = {}
    result: dict[int, tuple[str | None, str]] = {}
    if not candidates:
        return result
    for i, axis, why in candidates:
        if axis in (None, "?"):
            continue
        if axis in chosen:
            j = chosen[axis]
            if not (
                _is_function_of(columns[i], [(v,) for v in columns[j]]) and len(set(columns[i])) == len(set(columns[j]))
            ):
                raise PatternError(
                    f"two numeric fields both look like axis {axis}; pass pattern= to say which is which"
                )
            result[i] = (None, f"same as field {j} ({axis})")
            continue
        chosen[axis] = i
        result[i] = (axis, why)
    keys = list(zip(*(columns[j] for j in chosen.values()), strict=True)) if chosen else [()] * len(columns[0])
    needed = []
    for i, axis, why in candidates:
        if axis in (None, "?") and _is_function_of(columns[i], keys):
            result[i] = (None, "timestamp" if axis is None else "follows the other fields")
        elif axis in (None, "?"):
            needed.append((i, why))
    free = [a for a in "ZT" if a not in chosen]
    if len(needed) > 1 or (needed and not free):
        raise PatternError(
            f"cannot infer axes: {len(needed)} varying numeric fields have no axis letters; pass pattern= "
            "(e.g. 'img_{t}_{z}.tif')"
        )
    for i, why in needed:
        result[i] = (free[0], f"{why}: the only varying field left")
    return result


def infer_pattern(text: str, names: Sequence[str]) -> Pattern:
    """Turn the numeric fields that vary across ``names`` into axes (the glob ``text``'s files).

    >>> names = [f"E99_C{c}_ZS{z:03d}.tif" for c in (111, 222) for z in range(3)]
    >>> p = infer_pattern("*.tif", names)
    >>> [(f.label, f.axis) for f in p.fields if f.note]
    [('C#', 'C'), ('ZS#', 'Z')]
    >>> [(f.label, f.axis) for f in infer_pattern("*", ["a1.tif", "a2.tif", "a10.tif"]).fields]
    [('a#', 'Z')]
    """
    if not names:
        raise PatternError(f"no files match {text!r}")
    skeleton, values = _split_names(names)
    columns = [list(col) for col in zip(*values, strict=True)] if values[0] else []
    roles = hcs_fields(skeleton)
    varying = [i for i, column in enumerate(columns) if len(set(column)) > 1]
    positional = [i for i in varying if i in roles and roles[i].role != "wavelength"]
    if positional:
        raise _hcs_refusal(text, skeleton, values, roles, positional)
    candidates: list[tuple[int, str | None, str]] = []
    for i in varying:
        prefix, suffix = trailing_letters(skeleton[i]), leading_letters(skeleton[i + 1])
        if i in roles:
            candidates.append((i, "C", f"{roles[i].vendor} wavelength {prefix}#{suffix}"))
        else:
            candidates.append((i, *_classify(prefix, suffix)))
    resolved = _resolve_fields(candidates, columns)
    fields, parts = [], []
    for i, literal in enumerate(skeleton[:-1]):
        prefix, suffix = trailing_letters(literal), leading_letters(skeleton[i + 1])
        role = f"{roles[i].role} {prefix}{columns[i][0]}" if i in roles and columns else ""
        axis, why = resolved.get(i, (None, role))
        label = f"{prefix}#{suffix}"
        fields.append(Field(f"f{i}", axis, label, prefix=prefix, suffix=suffix, note=why))
        parts += [re.escape(literal), f"(?P<f{i}>\\d+)"]
    parts.append(re.escape(skeleton[-1]))
    return Pattern("inferred", text, re.compile("".join(parts)), tuple(fields))


# --------------------------------------------------------------------------- grid
def axis_index_map(field: Field, values: Iterable[str]) -> tuple[dict[str, int], tuple[str, ...], str]:
    """Map a field's values to indices: ``(value -> index, labels, rule)``.

    Bracket choices give the index; C and non-integer values are categories in natural
    order; T/Z integers are dense from the smallest (gaps are missing files); X/Y tile
    integers are dense with their common step (pixel offsets 0, 512, 1024 -> 0, 1, 2).

    >>> axis_index_map(Field("f", "Z", "z{z}"), ["0", "2", "3"])[:2]
    ({'0': 0, '2': 2, '3': 3}, ('0', '1', '2', '3'))
    >>> axis_index_map(Field("f", "C", "C{c}"), ["222", "111"])[:2]
    ({'111': 0, '222': 1}, ('111', '222'))
    >>> axis_index_map(Field("f", "X", "{x}x"), ["0000", "1024", "0512"])[:2]
    ({'0000': 0, '0512': 1, '1024': 2}, ('0000', '0512', '1024'))
    """
    distinct = natural_sorted(set(values))
    if field.choices is not None:
        lookup = dict(field.choices)
        listed = [""] * (max(lookup.values()) + 1)
        for value, index in reversed(field.choices):
            listed[index] = value
        return lookup, tuple(listed), "listed in the pattern"
    if field.axis == "C" or not all(v.isdigit() for v in distinct):
        return {v: i for i, v in enumerate(distinct)}, tuple(distinct), "categories in natural order"
    numbers = sorted({int(v) for v in distinct})
    step = 1 if field.axis in ("T", "Z") else math.gcd(*(b - a for a, b in itertools.pairwise(numbers))) or 1
    lookup = {v: (int(v) - numbers[0]) // step for v in distinct}
    width = len(distinct[0]) if len({len(v) for v in distinct}) == 1 else 0
    labels = tuple(str(numbers[0] + k * step).zfill(width) for k in range((numbers[-1] - numbers[0]) // step + 1))
    return lookup, labels, "integers" + (f" in steps of {step}" if step > 1 else "")


def _positions(pattern: Pattern, matched: list[tuple[str, dict[str, str]]]) -> tuple[list[AxisMap], np.ndarray]:
    """Axis maps of the fields, and each matched name's (T, C, Z, Y, X) grid position (one row each)."""
    axes, columns = [], []
    for field in pattern.fields:
        if field.axis is None:
            continue
        values = [groups[field.group] for _, groups in matched]
        lookup, labels, rule = axis_index_map(field, values)
        axes.append(AxisMap(field.axis, field, labels, rule))
        columns.append((GRID_AXES.index(field.axis), [lookup[v] for v in values]))
    positions = np.zeros((len(matched), 5), dtype=np.int64)
    for axis_index, column in columns:
        positions[:, axis_index] = column
    return sorted(axes, key=lambda a: GRID_AXES.index(a.axis)), positions


def _no_match(text: str, names: Sequence[str]) -> str:
    """The message for a pattern no file matches: what the folder holds instead.

    >>> _no_match("E99_C{c}_Z{z}.tif", ["E99_C111_ZS000.tif", "a.tif", "b.tif", "c.tif"])
    "no files match 'E99_C{c}_Z{z}.tif'; the folder holds 4 files, e.g. 'E99_C111_ZS000.tif', 'a.tif', 'b.tif'"
    >>> _no_match("z{z}.tif", [])
    "no files match 'z{z}.tif'; the folder holds no files"
    """
    if not names:
        return f"no files match {text!r}; the folder holds no files"
    shown = ", ".join(repr(n) for n in names[:3])
    return f"no files match {text!r}; the folder holds {len(names)} files, e.g. {shown}"


def build_grid(pattern: Pattern, names: Iterable[str]) -> FileGrid:
    """Place the names ``pattern`` matches on a TCZYX grid; list duplicates as an error.

    >>> p = compile_template("z{z}.tif")
    >>> g = build_grid(p, ["z0.tif", "z1.tif", "z10.tif", "z2.tif", "notes.txt"])
    >>> g.shape, g.missing[:2], [n for _, n in g.files][:4]
    ((1, 1, 11, 1, 1), ((0, 0, 3, 0, 0), (0, 0, 4, 0, 0)), ['z0.tif', 'z1.tif', 'z2.tif', 'z10.tif'])
    """
    names = sorted(names)  # plain sort: deterministic; positions order the files
    matched = pattern.match(names)
    if not matched:
        raise PatternError(_no_match(pattern.text, names))
    axes, positions = _positions(pattern, matched)
    shape = [1] * 5
    for amap in axes:
        shape[GRID_AXES.index(amap.axis)] = len(amap.labels)
    n_positions = math.prod(shape)
    if n_positions > MAX_GRID_POSITIONS:
        raise ResourceLimitError(
            f"pattern {pattern.text!r} spreads {len(matched)} files over a grid of {n_positions:,} positions "
            f"(shape {tuple(shape)}); check which fields are axes"
        )
    flat = np.ravel_multi_index(tuple(positions.T), shape)
    order = np.argsort(flat, kind="stable")
    same = np.flatnonzero(flat[order][1:] == flat[order][:-1])
    if same.size:
        first, second = order[same[0]], order[same[0] + 1]
        raise PatternError(
            f"files {matched[first][0]!r} and {matched[second][0]!r} land on the same position "
            f"{tuple(positions[first].tolist())} (TCZYX); a field that tells them apart is ignored or missing "
            "from the pattern"
        )
    present = np.zeros(n_positions, dtype=bool)
    present[flat] = True
    missing = tuple(map(tuple, np.argwhere(~present.reshape(shape)).tolist()))
    files = tuple(zip(map(tuple, positions[order].tolist()), (matched[k][0] for k in order.tolist()), strict=True))
    ignored = tuple(f for f in pattern.fields if f.axis is None)
    return FileGrid(tczyx(shape), files, missing, tuple(axes), ignored)


def grid_for(text: str, names: Iterable[str]) -> tuple[Pattern, FileGrid]:
    r"""Compile ``text`` and place ``names`` on its grid; the pattern returned is the one used.

    A glob that matches nothing is tried as a regex (ome-arrow's regex mode, e.g.
    ``E99_C111_ZS.*\.tif``); patterns without fields have their axes inferred.

    >>> p, g = grid_for(r"E99_ZS.*\.tif", ["E99_ZS00.tif", "E99_ZS01.tif"])
    >>> p.syntax, g.shape
    ('inferred', (1, 1, 2, 1, 1))
    """
    names = list(names)
    pattern = compile_pattern(text)
    if pattern.syntax == "glob" and not any(pattern.regex.fullmatch(n) for n in names):
        try:
            pattern = compile_regex(text)
        except PatternError:
            pass
    if not pattern.fields and pattern.syntax in ("glob", "regex"):
        matched = [name for name, _ in pattern.match(names)]
        if not matched:
            raise PatternError(_no_match(text, sorted(names)))
        pattern, names = infer_pattern(text, matched), matched
    return pattern, build_grid(pattern, names)
