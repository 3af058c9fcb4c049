"""Pure selection algebra: per-axis indices that compose like NumPy's ``x[a][b]``.

An axis index is either a ``range`` (a slice, possibly strided) or a ``tuple`` of
non-negative ints (an index list, order and duplicates kept). Both index *source*
coordinates. Composing keeps that form: a later index addresses the positions of the
earlier one, so ``compose(a, b)`` selects ``x[a][b]``.

>>> compose(range(10), slice(2, 8))
range(2, 8)
>>> compose(range(2, 8), (0, 3))
(2, 5)
>>> compose((7, 1, 4), slice(1, None))
(1, 4)
"""

from __future__ import annotations

import operator
from collections.abc import Iterable
from typing import SupportsIndex

from .errors import SelectionError
from .meta import tczyx

AxisIndex = range | tuple[int, ...]
Selection = tuple[AxisIndex, AxisIndex, AxisIndex, AxisIndex, AxisIndex]


def full_selection(shape: Iterable[int]) -> Selection:
    """Return the identity selection of an array of ``shape``.

    >>> full_selection((1, 2, 1, 4, 4))
    (range(0, 1), range(0, 2), range(0, 1), range(0, 4), range(0, 4))
    """
    return tczyx(range(int(n)) for n in shape)


def selection_shape(selection: Selection) -> tuple[int, ...]:
    """Return the shape a selection produces.

    >>> selection_shape((range(1), (0, 0, 1), range(0, 9, 4), range(3), range(0)))
    (1, 3, 3, 3, 0)
    """
    return tuple(len(index) for index in selection)


def is_identity(selection: Selection, shape: Iterable[int]) -> bool:
    """True when ``selection`` selects every element of ``shape`` in order.

    >>> is_identity((range(2), range(3)), (2, 3))
    True
    >>> is_identity((range(2), (0, 1, 2)), (2, 3))
    False
    """
    return all(isinstance(index, range) and index == range(int(n)) for index, n in zip(selection, shape, strict=True))


def _as_int(value: object, what: str) -> int:
    """``operator.index(value)``, raising :class:`SelectionError` for anything that is not an integer."""
    try:
        if not isinstance(value, SupportsIndex):  # float, str, None, ...: what operator.index refuses
            raise TypeError(f"{type(value).__name__!r} object cannot be interpreted as an integer")
        return operator.index(value)
    except TypeError as exc:
        raise SelectionError(f"{what} must be an integer, got {value!r}") from exc


def normalize_index(index: int | slice | range | Iterable[int] | None, size: int, axis: str) -> AxisIndex:
    """Normalise a user index along one axis of length ``size`` to range or tuple form.

    ``None`` selects everything, an ``int`` (negative wraps) keeps the axis with length
    1, a ``slice`` follows Python semantics (step honoured), and an iterable of ints is
    kept in order with duplicates. Out-of-range ints raise :class:`SelectionError`.

    >>> normalize_index(None, 3, "t")
    range(0, 3)
    >>> normalize_index(-1, 3, "t")
    range(2, 3)
    >>> normalize_index(slice(0, 3, 2), 5, "z")
    range(0, 3, 2)
    >>> normalize_index([1, 1, 0], 2, "t")
    (1, 1, 0)
    """
    if index is None:
        return range(size)
    if isinstance(index, slice):
        if index.step is not None and _as_int(index.step, f"{axis} slice step") == 0:
            raise SelectionError(f"{axis} slice step cannot be zero")
        return range(size)[index]
    if isinstance(index, range):
        return normalize_index(tuple(index), size, axis)
    if isinstance(index, Iterable) and not isinstance(index, (str, bytes)):
        return tuple(_check_position(_as_int(i, f"{axis} index"), size, axis) for i in index)
    position = _as_int(index, f"{axis} index")
    position = _check_position(position, size, axis)
    return range(position, position + 1)


def _check_position(position: int, size: int, axis: str) -> int:
    if not -size <= position < size:
        raise SelectionError(
            f"{axis} index {position} out of range for an axis of size {size} (valid: 0..{size - 1} or -{size}..-1)"
        )
    return position % size


def half_open_bounds(lo: int, hi: int, size: int, axis: str) -> range:
    """Validate ome-arrow style half-open bounds ``0 <= lo < hi <= size``.

    >>> half_open_bounds(2, 5, 8, "x")
    range(2, 5)
    """
    lo, hi = _as_int(lo, f"{axis}_min"), _as_int(hi, f"{axis}_max")
    if not 0 <= lo < hi <= size:
        raise SelectionError(
            f"invalid {axis} bounds [{lo}, {hi}): need 0 <= {axis}_min < {axis}_max <= {size} "
            f"(the current size along {axis.upper()})"
        )
    return range(lo, hi)


def compose(outer: AxisIndex, inner: AxisIndex | slice) -> AxisIndex:
    """Return the axis index equal to applying ``outer`` then ``inner``.

    ``inner`` addresses positions ``0..len(outer)-1`` of the result of ``outer``.

    >>> compose(range(0, 20, 2), range(1, 4))
    range(2, 8, 2)
    >>> compose(range(5, 9), (3, 0, 0))
    (8, 5, 5)
    """
    if isinstance(inner, slice):
        return outer[inner]
    ends = (inner[0], inner[-1]) if isinstance(inner, range) and len(inner) else inner
    if len(ends) and (min(ends) < 0 or max(ends) >= len(outer)):
        raise SelectionError(f"index {format_index(inner)} out of range for an axis of size {len(outer)}")
    if isinstance(inner, range) and isinstance(outer, range):
        if not len(inner):
            return range(outer.start, outer.start)
        return range(
            outer.start + outer.step * inner.start,
            outer.start + outer.step * inner.stop,
            outer.step * inner.step,
        )
    return tuple(outer[i] for i in inner)


def compose_selection(outer: Selection, inner: Iterable[AxisIndex]) -> Selection:
    """Compose two 5-D selections axis by axis.

    >>> compose_selection(full_selection((1, 1, 4, 8, 8)), (range(1), range(1), (1, 3), range(2, 4), range(8)))
    (range(0, 1), range(0, 1), (1, 3), range(2, 4), range(0, 8))
    """
    return tczyx(compose(o, i) for o, i in zip(outer, inner, strict=True))


def format_index(index: AxisIndex) -> str:
    """Render an axis index compactly for ``explain()``.

    >>> format_index(range(3, 9))
    '3:9'
    >>> format_index(range(0, 9, 4))
    '0:9:4'
    >>> format_index((0, 2))
    '[0, 2]'
    """
    if isinstance(index, range):
        if index.step == 1:
            return f"{index.start}:{index.stop}"
        return f"{index.start}:{index.stop}:{index.step}"
    if len(index) > 8:
        head = ", ".join(str(i) for i in index[:4])
        return f"[{head}, ... {len(index)} indices]"
    return "[" + ", ".join(str(i) for i in index) + "]"
