"""One palette: the preview and the OME-Zarr ``omero`` block color uncoloured channels alike."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from ome_arrow_dask import OMEArrow
from ome_arrow_dask.colors import PALETTE, default_color, rgb_hex, rgba_to_rgb
from ome_arrow_dask.meta import Channel
from ome_arrow_dask.preview import channel_colors
from ome_arrow_dask.sources.base import ArraySource, MetaOverride


def _written_colors(out: str) -> list[str]:
    with open(os.path.join(out, "zarr.json"), encoding="utf-8") as fh:
        attrs = json.load(fh)["attributes"]
    return [ch["color"] for ch in attrs["ome"]["omero"]["channels"]]


@pytest.mark.parametrize("n_channels", [1, 2, 3, len(PALETTE) + 1])
def test_written_colors_of_uncoloured_channels_are_the_preview_colors(tmp_path, n_channels):
    img = OMEArrow(np.arange(n_channels * 64, dtype="u2").reshape(1, n_channels, 1, 8, 8))
    assert all(ch.color_rgba is None for ch in img.meta.channels)
    out = str(tmp_path / "img.ome.zarr")
    img.export("ome-zarr", out=out)
    shown = channel_colors(img.meta.channels)
    assert _written_colors(out) == [rgb_hex(rgb) for rgb in shown]
    # reopened, the written colors are the metadata colors: the preview shows the same channels alike
    assert channel_colors(OMEArrow.scan(out).meta.channels) == shown


def test_given_colors_are_written_and_shown_as_given(tmp_path):
    data = np.zeros((1, 2, 1, 8, 8), "u1")
    source = ArraySource(data, "TCZYX")
    channels = (Channel("DAPI", color_rgba=0x0000FFFF), Channel("GFP", color_rgba=0x00FF00FF))
    img = OMEArrow(MetaOverride(source, source.meta.replace(channels=channels)))
    out = str(tmp_path / "img.ome.zarr")
    img.export("ome-zarr", out=out)
    assert channel_colors(img.meta.channels) == [(0, 0, 255), (0, 255, 0)]
    assert _written_colors(out) == ["0000FF", "00FF00"]


def test_conversions():
    assert rgba_to_rgb(0x11223344) == (0x11, 0x22, 0x33)
    assert rgba_to_rgb(0xFF0000FF - 2**32) == (255, 0, 0)  # OME-XML's signed spelling
    assert rgb_hex((1, 171, 255)) == "01ABFF"
    assert rgb_hex((1, 171, 255), css=True) == "#01abff"
    assert [default_color(i, 3) for i in range(3)] == list(PALETTE[:3])
    assert default_color(len(PALETTE), len(PALETTE) + 1) == PALETTE[0]
    assert default_color(0, 1) == (255, 255, 255)
