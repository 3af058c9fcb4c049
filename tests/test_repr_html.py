"""Jupyter preview: a colored composite from bounded reads, stated in the HTML, checked in a real browser."""

from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
from pathlib import Path

import imagecodecs
import numpy as np
import pytest
from counting import CountingSource

from ome_arrow_dask import Channel, OMEArrow
from ome_arrow_dask.preview import channel_colors, sample
from ome_arrow_dask.sources import zarr as zarr_source
from ome_arrow_dask.sources.base import MetaOverride


def _png(html: str) -> np.ndarray:
    match = re.search(r"data:image/png;base64,([A-Za-z0-9+/=]+)", html)
    assert match, "no thumbnail in the HTML"
    return imagecodecs.png_decode(base64.b64decode(match.group(1)))


def _two_channel(colors=(0x0000FFFF, 0x00FF00FF)) -> OMEArrow:
    rng = np.random.default_rng(3)
    data = rng.integers(19679, 20426, (1, 2, 1, 96, 128)).astype("u2")
    data[0, 0, :, :, :64] = 19679  # DAPI bright on the right, GFP on the left
    data[0, 1, :, :, 64:] = 19679
    img = OMEArrow(data)
    meta = img.meta.replace(channels=(Channel("DAPI", color_rgba=colors[0]), Channel("GFP", color_rgba=colors[1])))
    return OMEArrow(MetaOverride(img.source, meta))


def _colour_fractions(rgb: np.ndarray) -> tuple[float, float]:
    rgb = rgb.astype(int)
    blue = (rgb[..., 2] > 120) & (rgb[..., 1] < 60)
    green = (rgb[..., 1] > 120) & (rgb[..., 2] < 60)
    return float(blue.mean()), float(green.mean())


@pytest.fixture
def level_reads(monkeypatch) -> list[int]:
    """Record the pyramid level of every zarr chunk read."""
    seen: list[int] = []
    original_chunk, original_box = zarr_source.ZarrSource.read_chunk, zarr_source.ZarrSource.read_chunk_box

    def read_chunk(self, coords):
        seen.append(self._level)
        return original_chunk(self, coords)

    def read_chunk_box(self, first, stop):
        seen.append(self._level)
        return original_box(self, first, stop)

    monkeypatch.setattr(zarr_source.ZarrSource, "read_chunk", read_chunk)
    monkeypatch.setattr(zarr_source.ZarrSource, "read_chunk_box", read_chunk_box)
    return seen


def test_composite_uses_metadata_colours_and_is_not_grey() -> None:
    rgb = _png(_two_channel()._repr_html_())
    assert rgb.ndim == 3 and rgb.shape[2] == 3
    blue, green = _colour_fractions(rgb)
    assert blue > 0.2 and green > 0.2  # the two halves in their channel colours, not a grey single channel


def test_all_white_channels_get_a_palette() -> None:
    white = 0xFFFFFFFF  # ome-arrow's default color for every channel
    img = _two_channel((white, white))
    assert channel_colors(img.meta.channels)[:2] == [(0, 255, 0), (255, 0, 255)]
    rgb = _png(img._repr_html_()).astype(int)
    assert (np.abs(rgb[..., 0] - rgb[..., 1]) > 100).mean() > 0.2  # colored, not grey


def test_pyramid_preview_reads_only_the_smallest_level(tmp_path, level_reads) -> None:
    path = tmp_path / "p.ome.zarr"
    _two_channel().export("ome-zarr", out=path, levels=3, chunks=(1, 1, 1, 32, 32))
    html = OMEArrow.scan(path)._repr_html_()
    assert level_reads and set(level_reads) == {2}
    assert "pyramid level 2" in html and "DAPI" in html and "<svg" in html  # what it read, channels, chunk diagram
    blue, green = _colour_fractions(_png(html))
    assert blue > 0.2 and green > 0.2


def test_large_plane_without_pyramid_stays_within_the_byte_budget() -> None:
    data = np.random.default_rng(0).integers(0, 4000, (1, 2, 1, 512, 512)).astype("u2")
    counting = CountingSource(data, chunks=(1, 1, 1, 64, 64))  # 8 KiB chunks, 1 MiB in all
    found = sample(OMEArrow(counting), max_bytes=256 * 1024)
    assert found is not None and found.crop is not None
    assert found.bytes_read <= 256 * 1024
    assert counting.total_reads * 64 * 64 * 2 <= 256 * 1024  # what was actually read
    assert "centre crop" in found.describe() and "budget 256.0 KiB" in found.describe()


def test_strided_sample_of_a_small_plane_reads_it_whole_once() -> None:
    data = np.arange(2 * 300 * 500, dtype="u2").reshape(1, 2, 1, 300, 500)
    counting = CountingSource(data, chunks=(1, 1, 1, 300, 500))
    found = sample(OMEArrow(counting))
    assert found.crop is None and found.step == 2 and found.pixels.shape == (2, 150, 250)
    assert counting.total_reads == 2
    np.testing.assert_array_equal(found.pixels, data[0, :, 0, ::2, ::2])


@pytest.mark.parametrize(
    "relative",
    [
        "ome-artificial-5d-datasets/multi-channel.ome.tiff",
        "ome-artificial-5d-datasets/multi-channel-z-series.ome.tiff",
        "nviz-artificial-4d-dataset/*.tif",
    ],
)
def test_every_sample_format_gets_a_coloured_preview(samples_dir, relative) -> None:
    img = OMEArrow.scan(str(samples_dir / relative))
    html = img._repr_html_()
    rgb = _png(html).astype(int)
    assert rgb.std() > 1, "blank preview"
    if img.shape[1] > 1:
        assert (rgb.max(axis=2) - rgb.min(axis=2) > 40).mean() > 0.01, "multichannel preview is grey"
    assert "read " in html and "budget" in html


def test_parquet_preview(tmp_path) -> None:
    _two_channel().export("parquet", out=tmp_path / "d")
    blue, green = _colour_fractions(_png(OMEArrow.scan(tmp_path / "d")._repr_html_()))
    assert blue > 0.2 and green > 0.2


def test_empty_image_and_failed_read_do_not_raise() -> None:
    assert "the image is empty" in OMEArrow(np.zeros((0, 4), "u1"))._repr_html_()

    class Broken(CountingSource):
        def read_chunk(self, chunk_coords):
            raise OSError("disk on fire")

    html = OMEArrow(Broken(np.zeros((1, 1, 1, 8, 8), "u1")))._repr_html_()
    assert "reading it failed: disk on fire" in html


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.mark.skipif(_chromium() is None, reason="needs headless Chromium (Debian: apt install chromium)")
def test_html_renders_in_headless_chromium(tmp_path) -> None:
    page = tmp_path / "preview.html"
    page.write_text(f"<html><body style='background:white'>{_two_channel()._repr_html_()}</body></html>")
    shot = Path(os.environ.get("OME_ARROW_DASK_SCREENSHOTS", tmp_path)) / "jupyter_preview.png"
    cmd = [
        _chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--hide-scrollbars",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--window-size=900,420",
        f"--screenshot={shot}",
        page.as_uri(),
    ]
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    rgb = imagecodecs.png_decode(shot.read_bytes())[..., :3]
    blue, green = _colour_fractions(rgb)
    assert blue > 0.005 and green > 0.005, "the browser shows the coloured thumbnail"
    assert (rgb.min(axis=2) > 240).mean() > 0.3  # and the white page with the tables around it


def test_tensor_views_have_reprs_without_reading(tmp_path) -> None:
    from ome_arrow_dask import LazyTensorView, TensorView

    source = CountingSource(np.arange(2 * 3 * 4 * 5, dtype="u2").reshape(1, 2, 3, 4, 5))
    view = OMEArrow(source).tensor_view(t=0, layout="CZYX")
    text, html = repr(view), view._repr_html_()
    assert source.total_reads == 0  # metadata only
    assert "shape=(2, 3, 4, 5)" in text and "uint16" in text and "nbytes=240" in text
    assert isinstance(view, (TensorView, LazyTensorView))
    for cell in ("<th>C</th>", "<th>Z</th>", "<td>2</td>", "<td>5</td>", "uint16", "240 B"):
        assert cell in html, cell


def test_chunk_diagram_of_a_zero_length_axis_is_left_out() -> None:
    from types import SimpleNamespace

    from ome_arrow_dask.render import _chunk_diagram

    assert _chunk_diagram(SimpleNamespace(chunks=((0,), (1,), (1,), (4,), (4,)))) == ""
    assert _chunk_diagram(SimpleNamespace(chunks=((1,), (2,), (1,), (4,), (4,)))).startswith("<svg")
