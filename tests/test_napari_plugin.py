"""The napari reader plugin, for real: npe2 discovery, napari's viewer model, and a rendered Qt viewer.

Also the ``omero.window`` the OME-Zarr writer derives from the data written (what every
viewer uses for contrast). The layer tests use ``napari.components.ViewerModel`` (napari's
own ``viewer.open`` path, no OpenGL needed); the rendering tests need an X display for
OpenGL: ``$DISPLAY``, else an ``Xvfb`` this module starts (Debian: ``apt install xvfb``),
else they are skipped with that reason.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from ome_arrow_dask import Channel, OMEArrow, PhysicalSize
from ome_arrow_dask.sources import zarr as zarr_source
from ome_arrow_dask.sources.base import MetaOverride

LOW, HIGH = 19679, 20425


def _described(data: np.ndarray, names: tuple[str, ...], colors: tuple[int, ...], **changes) -> OMEArrow:
    img = OMEArrow(data)
    meta = img.meta.replace(
        channels=tuple(Channel(n, color_rgba=c) for n, c in zip(names, colors, strict=True)),
        physical_size=PhysicalSize(y=0.5, x=0.5, y_unit="µm", x_unit="µm"),
        name="cells",
        **changes,
    )
    return OMEArrow(MetaOverride(img.source, meta))


def _two_channel() -> np.ndarray:
    rng = np.random.default_rng(7)
    data = rng.integers(LOW, HIGH + 1, (1, 2, 1, 64, 96)).astype("u2")
    data[0, 0, :, :, :48] = LOW  # left half dim in DAPI, right half dim in GFP: both colours show
    data[0, 1, :, :, 48:] = LOW
    return data


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("napari")
    img = _described(_two_channel(), ("DAPI", "GFP"), (0x0000FFFF, 0x00FF00FF))
    out = {"zarr": root / "cells.ome.zarr", "tiff": root / "cells.ome.tiff", "parquet": root / "cells.parquet"}
    img.export("ome-zarr", out=out["zarr"], levels=3, chunks=(1, 1, 1, 32, 32))
    img.export("ome-tiff", out=out["tiff"], levels=2)
    img.export("parquet", out=out["parquet"], layout="struct")
    labels = np.zeros((32, 32), "u2")
    labels[4:12, 4:12], labels[20:30, 8:16] = 1, 2
    out["labels"] = root / "labels.parquet"
    OMEArrow(labels, image_type="label").export("parquet", out=out["labels"], layout="struct")
    out["dataset"] = root / "cells_dataset"
    img.export("parquet", out=out["dataset"])
    return out


# ---------------------------------------------------------------- omero window on write (no napari needed)
def _omero(path: Path) -> dict:
    attrs = json.loads((path / "zarr.json").read_text())["attributes"]
    return attrs.get("ome", attrs)["omero"]


def test_zarr_window_comes_from_the_data_written(files) -> None:
    for channel in _omero(files["zarr"])["channels"]:
        window = channel["window"]
        assert LOW <= window["start"] < window["end"] <= HIGH  # was 0..65535: flat grey in every viewer
        assert (window["min"], window["max"]) == (0.0, 65535.0)


def test_zarr_window_of_float_and_flat_data(tmp_path) -> None:
    data = np.full((1, 1, 1, 8, 8), 3.5, "f4")
    data[..., 0, 0] = np.nan
    OMEArrow(data).export("ome-zarr", out=tmp_path / "f.zarr")
    window = _omero(tmp_path / "f.zarr")["channels"][0]["window"]
    assert (window["start"], window["end"]) == (3.5, 4.5)  # flat channel: widened by 1, NaN ignored


# ---------------------------------------------------------------- napari (model level, no OpenGL)
try:
    import napari
except ImportError:  # the writer tests above still run
    napari = None
needs_napari = pytest.mark.skipif(
    napari is None, reason="napari is not installed: pip install 'ome-arrow-dask[napari]'"
)


def _open(path: Path | str) -> list:
    import npe2
    from napari.components import ViewerModel

    npe2.PluginManager.instance().discover()  # napari.Viewer does this at start; the bare model does not
    return ViewerModel().open(str(path), plugin="ome-arrow-dask")


@needs_napari
def test_manifest_is_discovered_by_npe2() -> None:
    import npe2

    manager = npe2.PluginManager.instance()
    manager.discover()
    manifest = manager.get_manifest("ome-arrow-dask")
    assert [r.command for r in manifest.contributions.readers] == ["ome-arrow-dask.get_reader"]


@needs_napari
def test_zarr_pyramid_opens_as_multiscale_channel_layers(files) -> None:
    layers = _open(files["zarr"])
    assert [type(layer).__name__ for layer in layers] == ["Image", "Image"]
    assert [layer.name for layer in layers] == ["DAPI", "GFP"]
    assert [layer.colormap.name for layer in layers] == ["blue", "green"]
    windows = [ch["window"] for ch in _omero(files["zarr"])["channels"]]
    for layer, window in zip(layers, windows, strict=True):
        assert layer.multiscale
        assert [tuple(level.shape) for level in layer.data] == [(64, 96), (32, 48), (16, 24)]
        assert type(layer.data[0]).__module__.startswith("dask")
        np.testing.assert_allclose(layer.scale, [0.5, 0.5])
        assert tuple(layer.contrast_limits) == (window["start"], window["end"])
        assert layer.blending == "additive"


@needs_napari
def test_ome_tiff_subifd_levels_open_as_multiscale(files) -> None:
    layers = _open(files["tiff"])
    assert [layer.name for layer in layers] == ["DAPI", "GFP"]
    assert [layer.colormap.name for layer in layers] == ["blue", "green"]
    assert [tuple(level.shape) for level in layers[0].data] == [(64, 96), (32, 48)]
    low, high = layers[0].contrast_limits  # no omero window: robust limits of the smallest level
    assert LOW <= low < high <= HIGH


@needs_napari
@pytest.mark.parametrize("kind", ["parquet", "dataset"])
def test_parquet_file_and_dataset(files, kind) -> None:
    layers = _open(files[kind])
    assert [layer.name for layer in layers] == ["DAPI", "GFP"]
    assert not layers[0].multiscale and tuple(layers[0].data.shape) == (64, 96)
    np.testing.assert_allclose(layers[1].scale, [0.5, 0.5])
    low, high = layers[1].contrast_limits
    assert LOW <= low < high <= HIGH


@needs_napari
def test_label_image_opens_as_labels_layer(files) -> None:
    (layer,) = _open(files["labels"])
    assert type(layer).__name__ == "Labels"
    assert tuple(layer.data.shape) == (32, 32)
    assert set(np.unique(np.asarray(layer.data))) == {0, 1, 2}


@needs_napari
def test_ngff_labels_open_with_their_image(tmp_path) -> None:
    image = OMEArrow(np.arange(2 * 16 * 16, dtype="u2").reshape(2, 16, 16), dim_order="CYX")
    mask = np.zeros((16, 16), "u4")
    mask[2:6, 3:9] = 7
    out = tmp_path / "with_labels.ome.zarr"
    image.export("ome-zarr", out=out, levels=2, labels={"nuclei": OMEArrow(mask, image_type="label")})
    layers = _open(out)
    assert [type(layer).__name__ for layer in layers] == ["Image", "Image", "Labels"]
    labels = layers[2]
    assert labels.name == "nuclei" and labels.multiscale
    assert [tuple(level.shape) for level in labels.data] == [(16, 16), (8, 8)]
    np.testing.assert_array_equal(np.asarray(labels.data[0]), mask)


@needs_napari
def test_tiff_folder_and_glob_string(samples_dir) -> None:
    from ome_arrow_dask.napari_reader import get_reader

    folder = samples_dir / "nviz-artificial-4d-dataset"
    by_folder = _open(folder)
    pattern = f"{folder}{os.sep}*.tif"
    by_glob = get_reader(pattern)(pattern)  # napari's open() refuses paths that do not exist, so via npe2
    from napari.components import ViewerModel

    files = sorted(str(p) for p in folder.glob("*.tif"))  # plugins were discovered by _open above
    by_shell = ViewerModel().open(files, stack=True, plugin="ome-arrow-dask")
    assert len(by_shell) == len(by_folder)  # `napari --stack folder/*.tif`: the file list reads as the glob
    expected = OMEArrow.scan(f"{folder}{os.sep}*.tif")
    assert len(by_folder) == expected.shape[1] == 2
    ((_, kwargs, kind),) = by_glob
    assert kind == "image" and kwargs["name"] == list(expected.meta.channel_names) and kwargs["channel_axis"] == 0
    assert [layer.name for layer in by_folder] == list(expected.meta.channel_names)
    assert tuple(by_folder[0].data.shape) == tuple(s for s in expected.shape if s > 1 and s != expected.shape[1])
    assert len({layer.colormap.name for layer in by_folder}) == len(by_folder)  # distinct colours per channel


@needs_napari
def test_reader_declines_what_it_cannot_open(tmp_path) -> None:
    from ome_arrow_dask.napari_reader import get_reader

    (tmp_path / "notes.txt").write_text("hello")
    assert get_reader(str(tmp_path / "notes.txt")) is None
    assert get_reader(str(tmp_path)) is None  # a folder without images
    assert get_reader([str(tmp_path / "a.tif"), str(tmp_path / "b.tif")]) is None


# ---------------------------------------------------------------- reads: only the smallest level
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


def _strip_windows(store: Path) -> None:
    doc = json.loads((store / "zarr.json").read_text())
    for channel in doc["attributes"]["ome"]["omero"]["channels"]:
        del channel["window"]
    (store / "zarr.json").write_text(json.dumps(doc))


@needs_napari
def test_opening_reads_only_the_smallest_level(files, tmp_path, level_reads) -> None:
    _open(files["zarr"])
    assert level_reads == []  # omero windows give the contrast: no pixel read at all
    store = tmp_path / "nowindow.ome.zarr"
    shutil.copytree(files["zarr"], store)
    _strip_windows(store)
    layers = _open(store)
    assert level_reads and set(level_reads) == {2}  # contrast from level 2 (16x24) only
    low, high = layers[0].contrast_limits
    assert LOW <= low < high <= HIGH


@needs_napari
def test_opening_a_multi_gigabyte_pyramid_is_instant(tmp_path, level_reads) -> None:
    """An 8 GiB level 0 (never written) and a small level 1: opening touches level 1 only."""
    import zarr

    store = tmp_path / "big.ome.zarr"
    group = zarr.open_group(store, mode="w")
    full = group.create_array("0", shape=(1, 1, 1, 65536, 65536), chunks=(1, 1, 1, 4096, 4096), dtype="u2")
    small = group.create_array("1", shape=(1, 1, 1, 256, 256), chunks=(1, 1, 1, 256, 256), dtype="u2")
    small[...] = np.arange(256 * 256, dtype="u2").reshape(1, 1, 1, 256, 256)
    kinds = ["time", "channel", "space", "space", "space"]
    axes = [{"name": a, "type": t} for a, t in zip("tczyx", kinds, strict=True)]
    datasets = [
        {"path": str(k), "coordinateTransformations": [{"type": "scale", "scale": [1, 1, 1, 256.0**k, 256.0**k]}]}
        for k in range(2)
    ]
    group.attrs["ome"] = {"version": "0.5", "multiscales": [{"axes": axes, "datasets": datasets, "name": "big"}]}
    assert full.nbytes == 8 * 2**30
    start = time.perf_counter()
    (layer,) = _open(store)
    elapsed = time.perf_counter() - start
    assert elapsed < 5.0, f"opening took {elapsed:.1f} s"  # well under a second unloaded; CI machines are slow
    assert [tuple(level.shape) for level in layer.data] == [(65536, 65536), (256, 256)]
    assert set(level_reads) == {1}
    assert layer.contrast_limits[1] > layer.contrast_limits[0] > 0


# ---------------------------------------------------------------- the real Qt viewer, rendered
@pytest.fixture(scope="module")
def display():
    """An X display for OpenGL: ``$DISPLAY``, else an Xvfb started here (and stopped after)."""
    if os.environ.get("DISPLAY"):
        yield os.environ["DISPLAY"]
        return
    xvfb = shutil.which("Xvfb")
    if xvfb is None:
        pytest.skip("rendering needs an X display for OpenGL: set DISPLAY or install Xvfb (apt install xvfb)")
    read_fd, write_fd = os.pipe()
    proc = subprocess.Popen(
        [xvfb, "-displayfd", str(write_fd), "-screen", "0", "1280x1024x24", "-nolisten", "tcp"],
        pass_fds=(write_fd,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(write_fd)
    with os.fdopen(read_fd) as pipe:
        number = pipe.readline().strip()
    if not number:
        proc.kill()
        proc.wait()
        pytest.skip("Xvfb did not start")
    old = {key: os.environ.get(key) for key in ("DISPLAY", "QT_QPA_PLATFORM")}
    os.environ["DISPLAY"], os.environ["QT_QPA_PLATFORM"] = f":{number}", "xcb"
    try:
        yield os.environ["DISPLAY"]
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def viewer(display):
    # show=True on the (virtual) display: a hidden canvas renders black with napari 0.9 + Mesa
    viewer = napari.Viewer(show=True)
    yield viewer
    viewer.close()


@needs_napari
def test_qt_viewer_screenshot_shows_both_channel_colours(files, viewer) -> None:
    layers = viewer.open(str(files["zarr"]), plugin="ome-arrow-dask")
    assert [layer.name for layer in layers] == ["DAPI", "GFP"]
    viewer.reset_view()
    rgba = viewer.screenshot(canvas_only=True, flash=False)
    if os.environ.get("OME_ARROW_DASK_SCREENSHOTS"):  # keep it to look at (README images)
        import imagecodecs

        target = Path(os.environ["OME_ARROW_DASK_SCREENSHOTS"], "napari_two_channels.png")
        target.write_bytes(imagecodecs.png_encode(np.ascontiguousarray(rgba)))
    shot = rgba[..., :3].astype(int)
    assert shot.std() > 5, "the screenshot is blank"
    blue = (shot[..., 2] > 100) & (shot[..., 1] < 60)
    green = (shot[..., 1] > 100) & (shot[..., 2] < 60)
    assert blue.mean() > 0.05 and green.mean() > 0.05, "both channel colours appear side by side"
