"""Make the README's "Look at it" screenshots: the Jupyter preview (headless Chromium) and napari.

Usage::

    python examples/look_at_it.py [IMAGE] [--out docs/images]

Without ``IMAGE`` a small two-channel OME-Zarr pyramid is generated. Writes
``jupyter_preview.html`` / ``.png`` (needs the ``chromium`` browser) and
``napari.png`` (needs ``ome-arrow-dask[napari]`` and an X display, e.g. ``xvfb-run``).
A step whose tool is missing is skipped with a message.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from ome_arrow_dask import Channel, OMEArrow, PhysicalSize
from ome_arrow_dask.sources.base import MetaOverride


def demo_image(folder: Path) -> Path:
    """A 2-channel 256x384 OME-Zarr with 3 pyramid levels (nuclei-like blobs and a gradient)."""
    yy, xx = np.mgrid[0:256, 0:384]
    rng = np.random.default_rng(0)
    blobs = np.zeros((256, 384))
    for y, x in rng.uniform((0, 0), (256, 384), (40, 2)):
        blobs += np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / 60.0)
    dapi = 19679 + 700 * np.clip(blobs, 0, 1)
    gfp = 19679 + 700 * (xx / 384.0) * (np.sin(yy / 9.0) > 0)
    data = np.stack([dapi, gfp])[None, :, None].astype("u2")
    img = OMEArrow(data)
    meta = img.meta.replace(
        channels=(Channel("DAPI", color_rgba=0x0000FFFF), Channel("GFP", color_rgba=0x00FF00FF)),
        physical_size=PhysicalSize(y=0.325, x=0.325, y_unit="µm", x_unit="µm"),
        name="demo",
    )
    out = folder / "demo.ome.zarr"
    OMEArrow(MetaOverride(img.source, meta)).export(
        "ome-zarr", out=out, levels=3, chunks=(1, 1, 1, 64, 64), overwrite=True  # regenerated on every run
    )
    return out


def jupyter_preview(image: str, out: Path) -> None:
    """Write the HTML preview and, when Chromium is installed, a screenshot of it."""
    page = out / "jupyter_preview.html"
    page.write_text(f"<html><body style='background:white'>{OMEArrow.scan(image)._repr_html_()}</body></html>")
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        print("skipped jupyter_preview.png: no chromium on PATH")
        return
    with tempfile.TemporaryDirectory() as profile:
        cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
        cmd += ["--hide-scrollbars", f"--user-data-dir={profile}", "--window-size=900,420"]
        cmd += [f"--screenshot={out / 'jupyter_preview.png'}", page.resolve().as_uri()]
        subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    print(f"wrote {out / 'jupyter_preview.png'}")


def napari_screenshot(image: str, out: Path) -> None:
    """Open ``image`` with this package's napari plugin and save the canvas."""
    try:
        import imagecodecs
        import napari
    except ImportError:
        print("skipped napari.png: pip install 'ome-arrow-dask[napari]'")
        return
    viewer = napari.Viewer(show=True)  # needs a display; use xvfb-run on a headless machine
    try:
        viewer.open(image, plugin="ome-arrow-dask")
        viewer.reset_view()
        rgba = viewer.screenshot(canvas_only=True, flash=False)
        (out / "napari.png").write_bytes(imagecodecs.png_encode(np.ascontiguousarray(rgba)))
        print(f"wrote {out / 'napari.png'}")
    finally:
        viewer.close()


def main() -> None:
    """Parse arguments and write the screenshots."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("image", nargs="?", help="any image ome-arrow-dask opens (default: a generated demo)")
    parser.add_argument("--out", default="look_at_it", help="output folder (default: ./look_at_it)")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    image = args.image or str(demo_image(out))
    jupyter_preview(image, out)
    napari_screenshot(image, out)


if __name__ == "__main__":
    main()
