"""Units: byte counts for humans (and, later, physical length units shared by readers and writers)."""

from __future__ import annotations

__all__ = ["format_bytes"]


def format_bytes(n: int) -> str:
    """Human-readable byte count.

    >>> format_bytes(512), format_bytes(2 * 2**20), format_bytes(3 * 2**30 // 2)
    ('512 B', '2.0 MiB', '1.5 GiB')
    """
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")  # pragma: no cover
