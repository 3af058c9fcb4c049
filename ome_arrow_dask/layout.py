"""Pure tensor-layout rules: parse layout strings and plan squeeze + transpose.

A layout is a string over ``TZCYX`` (``H``/``W`` are aliases for ``Y``/``X``), as in
ome-arrow. Tensor buffers are C-contiguous in ome-arrow's canonical ``TZCYX`` order
(restricted to the kept axes) and the layout is a transposed view of that buffer, so
``strides`` follow ome-arrow's and a permuted layout costs no copy.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .errors import LayoutError

CANONICAL = "TZCYX"
"""ome-arrow's internal tensor order (note: not the TCZYX array order)."""

_ALIASES = {"H": "Y", "W": "X"}


def parse_layout(layout: str) -> str:
    """Return ``layout`` upper-cased with H/W resolved, or raise :class:`LayoutError`.

    >>> parse_layout("chw")
    'CYX'
    >>> parse_layout("ZCYX")
    'ZCYX'
    """
    if not isinstance(layout, str) or not layout:
        raise LayoutError(f"layout must be a non-empty string over 'TZCYX' (H/W allowed), got {layout!r}")
    letters = "".join(_ALIASES.get(ch, ch) for ch in layout.upper())
    unknown = sorted(set(letters) - set(CANONICAL))
    if unknown:
        raise LayoutError(f"layout {layout!r} has unknown letters {unknown}; use letters from 'TZCYX' (H=Y, W=X)")
    if len(set(letters)) != len(letters):
        raise LayoutError(f"layout {layout!r} repeats an axis")
    return letters


def display_layout(letters: str) -> str:
    """Spell a layout with ome-arrow's H/W letters.

    >>> display_layout("TZCYX")
    'TZCHW'
    """
    return letters.replace("Y", "H").replace("X", "W")


def default_layout(n_t: int, n_z: int) -> str:
    """ome-arrow's default: ``CYX`` when one t and one z are selected, else ``TZCYX``.

    >>> default_layout(1, 1), default_layout(1, 3)
    ('CYX', 'TZCYX')
    """
    return "CYX" if n_t == 1 and n_z == 1 else "TZCYX"


@dataclass(frozen=True)
class LayoutPlan:
    """How to turn a TCZYX block into a tensor of ``layout``.

    ``buffer_axes`` are the kept axes in canonical TZCYX order (the contiguous buffer);
    ``permutation`` transposes the buffer into ``layout``; ``first_channel_only`` keeps
    channel 0 of the selection when C is dropped under ``channel_policy="first"``.
    """

    layout: str
    buffer_axes: str
    permutation: tuple[int, ...]
    first_channel_only: bool

    def shape(self, sizes: Mapping[str, int]) -> tuple[int, ...]:
        """Tensor shape for per-axis ``sizes`` (after any channel reduction)."""
        return tuple(sizes[ax] for ax in self.layout)

    def buffer_shape(self, sizes: Mapping[str, int]) -> tuple[int, ...]:
        """Shape of the contiguous buffer."""
        return tuple(sizes[ax] for ax in self.buffer_axes)


def plan_layout(layout: str, sizes: Mapping[str, int], channel_policy: str = "error") -> LayoutPlan:
    """Check that ``layout`` drops only singleton axes and plan the transpose.

    >>> plan_layout("YXC", {"T": 1, "Z": 1, "C": 3, "Y": 4, "X": 5}).permutation
    (1, 2, 0)
    >>> plan_layout("YX", {"T": 1, "Z": 1, "C": 3, "Y": 4, "X": 5}, "first").first_channel_only
    True
    """
    if channel_policy not in ("error", "first"):
        raise LayoutError(f"channel_policy must be 'error' or 'first', got {channel_policy!r}")
    letters = parse_layout(layout)
    first_channel_only = False
    for axis in CANONICAL:
        if axis in letters or sizes[axis] == 1:
            continue
        if axis == "C" and channel_policy == "first":
            first_channel_only = True
            continue
        hint = " (or channel_policy='first' to keep the first channel)" if axis == "C" else ""
        raise LayoutError(
            f"layout {layout!r} drops non-singleton dimension {axis!r} (size {sizes[axis]}); select a single "
            f"{axis.lower()} "
            f"or keep {axis} in the layout{hint}"
        )
    buffer_axes = "".join(ax for ax in CANONICAL if ax in letters)
    permutation = tuple(buffer_axes.index(ax) for ax in letters)
    return LayoutPlan(letters, buffer_axes, permutation, first_channel_only)
