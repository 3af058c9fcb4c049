"""Channel colors: ome-arrow's packed ``0xRRGGBBAA`` to RGB, hex spellings, the palette for uncoloured channels.

One palette serves the preview (:mod:`.preview`, the Jupyter thumbnail and napari) and
the OME-Zarr writer's ``omero`` block, so a channel without a color is shown and written
in the same color.
"""

from __future__ import annotations

__all__ = ["PALETTE", "default_color", "rgb_hex", "rgba_to_rgb"]

RGB = tuple[int, int, int]

PALETTE: tuple[RGB, ...] = (
    (0, 255, 0),
    (255, 0, 255),
    (0, 255, 255),
    (255, 0, 0),
    (0, 0, 255),
    (255, 255, 0),
    (255, 128, 0),
)
"""Colors of channels the metadata gives none, by channel index (green, magenta, cyan, red, blue, yellow, orange)."""

WHITE: RGB = (255, 255, 255)
"""The color of a single uncoloured channel (shown grey)."""


def rgba_to_rgb(rgba: int) -> RGB:
    """``(r, g, b)`` of ome-arrow's packed ``0xRRGGBBAA`` (alpha dropped; bits above 32 ignored).

    >>> rgba_to_rgb(0x00FF00FF), rgba_to_rgb(-16776961)  # OME-XML stores the same value signed
    ((0, 255, 0), (255, 0, 0))
    """
    value = int(rgba) & 0xFFFFFFFF
    return (value >> 24) & 0xFF, (value >> 16) & 0xFF, (value >> 8) & 0xFF


def rgb_hex(rgb: RGB, *, css: bool = False) -> str:
    """``"RRGGBB"`` (NGFF ``omero`` colors), or ``"#rrggbb"`` with ``css=True`` (HTML, napari colormap names).

    >>> rgb_hex((0, 128, 255)), rgb_hex((0, 128, 255), css=True)
    ('0080FF', '#0080ff')
    """
    r, g, b = (int(v) for v in rgb)
    return f"#{r:02x}{g:02x}{b:02x}" if css else f"{r:02X}{g:02X}{b:02X}"


def default_color(index: int, n_channels: int) -> RGB:
    """The color of uncoloured channel ``index`` of ``n_channels``: white when alone, else :data:`PALETTE`.

    >>> default_color(0, 1), default_color(1, 3), default_color(7, 8)
    ((255, 255, 255), (255, 0, 255), (0, 255, 0))
    """
    return WHITE if n_channels == 1 else PALETTE[index % len(PALETTE)]
