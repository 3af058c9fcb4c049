"""napari reader plugin (npe2): open OME-Zarr, OME-TIFF, OME-Arrow Parquet and TIFF folders lazily.

Registered through ``ome_arrow_dask/napari.yaml`` (entry point ``napari.manifest``), so
``napari image.ome.zarr`` or ``viewer.open(path, plugin="ome-arrow-dask")`` uses it.
Following napari-ome-zarr's conventions:

* every pyramid level (OME-Zarr datasets, OME-TIFF SubIFD levels) becomes one dask array
  of a multiscale layer, largest first; without a pyramid the layer holds one dask array;
* the channel axis is split (``channel_axis``) into one layer per channel, named and
  colored from the metadata (``omero`` / OME-XML / OME-Arrow channels), blended additively;
* ``scale`` comes from the physical sizes (Z, Y, X; 1 where unknown);
* contrast limits come from ``omero.channels[i].window`` (start / end) when the OME-Zarr
  has them, otherwise from robust percentiles of a bounded sample of the smallest level
  (:func:`ome_arrow_dask.preview.sample`), never from the full-resolution array;
* label images (``image_type`` "label", or an NGFF ``image-label`` group) become Labels layers,
  and an OME-Zarr image's NGFF ``labels/<name>`` images open with it as Labels layers.

Singleton T and Z axes are dropped, so a 2-D image opens as a 2-D layer. This module
does not import napari: a reader returns plain ``(data, kwargs, layer_type)`` tuples.
"""

from __future__ import annotations

import glob as _glob
import json
import os
from collections.abc import Callable
from typing import Any

from .colors import rgb_hex
from .errors import OmeArrowDaskError
from .meta import AXES

LayerData = tuple[Any, dict[str, Any], str]

_TIFF_SUFFIXES = (".tif", ".tiff")
_NAMED_COLORS = {
    (255, 0, 0): "red",
    (0, 255, 0): "green",
    (0, 0, 255): "blue",
    (255, 0, 255): "magenta",
    (0, 255, 255): "cyan",
    (255, 255, 0): "yellow",
    (255, 255, 255): "gray",
}


def _tiff_glob(folder: str) -> str | None:
    """``folder/*.tif`` (the most common TIFF suffix) when the folder holds TIFF files."""
    try:
        names = os.listdir(folder)
    except OSError:
        return None
    counts: dict[str, int] = {}
    for name in names:
        suffix = os.path.splitext(name)[1]
        if suffix.lower() in _TIFF_SUFFIXES:
            counts[suffix] = counts.get(suffix, 0) + 1
    if not counts:
        return None
    return os.path.join(folder, "*" + max(counts, key=lambda s: counts[s]))


def _as_glob(paths: list[str]) -> str | None:
    """One path of a one-element list; the folder's TIFF glob for a list of all its TIFF files."""
    texts = [os.fspath(p) for p in paths]
    if len(texts) == 1:
        return texts[0]
    folders = {os.path.dirname(os.path.abspath(t)) for t in texts}
    if len(folders) != 1 or not texts:
        return None
    pattern = _tiff_glob(folders.pop())
    if pattern is None or {os.path.abspath(t) for t in texts} != set(_glob.glob(pattern)):
        return None
    return pattern


def _resolve(path: str) -> str | None:
    """The path to open: ``path`` itself when a format claims it, a TIFF glob for a TIFF folder."""
    from .sources import FORMATS, _load

    for _, module_name in FORMATS:
        module = _load(module_name)
        if module is not None and module.probe(path):
            return path
    if os.path.isdir(path):
        return _tiff_glob(path)
    return None


def get_reader(path: str | list[str]) -> Callable[[str | list[str]], list[LayerData]] | None:
    """npe2 reader hook: a reader function when this package can open ``path``, else None.

    Cheap: it only runs the formats' probes (suffixes, marker files), no metadata is read.
    A list is accepted with one path, or when it is exactly the TIFF files of one folder
    (what a shell makes of ``napari folder/*.tif``): it is read as that glob.
    """
    if isinstance(path, list):
        joined = _as_glob(path)
        if joined is None:
            return None
        path = joined
    text = os.fspath(path)
    if _resolve(text) is None:
        return None
    return read


def _zarr_attrs(path: str) -> dict[str, Any]:
    """The NGFF attributes of an OME-Zarr group (``{}`` when absent or unreadable)."""
    for name in ("zarr.json", ".zattrs"):
        file = os.path.join(path, name)
        if not os.path.isfile(file) or os.path.getsize(file) > 16 * 2**20:
            continue
        try:
            with open(file, encoding="utf-8") as handle:
                doc = json.load(handle)
        except (OSError, ValueError):
            return {}
        attrs = doc.get("attributes", {}) if name == "zarr.json" else doc
        if not isinstance(attrs, dict):
            return {}
        ome = attrs.get("ome")
        return ome if isinstance(ome, dict) else attrs
    return {}


def _omero_windows(attrs: dict[str, Any], n: int) -> list[tuple[float, float]] | None:
    """``omero.channels[i].window`` (start, end) for all ``n`` channels, or None."""
    omero = attrs.get("omero")
    channels = omero.get("channels") if isinstance(omero, dict) else None
    if not isinstance(channels, list) or len(channels) != n:
        return None
    out = []
    for ch in channels:
        window = ch.get("window") if isinstance(ch, dict) else None
        if not isinstance(window, dict):
            return None
        start, end = window.get("start"), window.get("end")
        if not isinstance(start, (int, float)) or not isinstance(end, (int, float)) or not end > start:
            return None
        out.append((float(start), float(end)))
    return out


def _colormap(rgb: tuple[int, int, int]) -> Any:
    """A napari colormap name for a pure color, else a black-to-color napari Colormap."""
    name = _NAMED_COLORS.get((int(rgb[0]), int(rgb[1]), int(rgb[2])))
    if name is not None:
        return name
    from napari.utils.colormaps import Colormap

    hexname = rgb_hex(rgb, css=True)
    return Colormap([[0.0, 0.0, 0.0, 1.0], [rgb[0] / 255, rgb[1] / 255, rgb[2] / 255, 1.0]], name=hexname)


def _sample_limits(levels: list[Any], kept_channels: int) -> list[tuple[float, float]]:
    """Per-channel robust limits from a bounded sample of the smallest level."""
    from .preview import robust_limits, sample

    found = sample(levels[-1], max_channels=kept_channels, tcz=(0, 0, levels[-1].shape[2] // 2))
    if found is None:
        return [(0.0, 1.0)] * kept_channels
    return [robust_limits(plane, 0.1, 99.9) for plane in found.pixels]


def _ngff_label_layers(image: Any) -> list[LayerData]:
    """Labels layers for the NGFF label images stored with an OME-Zarr image (``labels/<name>``)."""
    if type(image.source).__module__ != "ome_arrow_dask.sources.zarr":
        return []
    try:
        found = image.labels
        paths = [os.path.join(found.root, "labels", name) for name in found]
    except (AttributeError, ImportError, OmeArrowDaskError, OSError):  # no labels support / unreadable group
        return []
    out: list[LayerData] = []
    for path in paths:
        for data, kwargs, kind in layers_for(path):
            if kind == "labels":
                out.append((data, {**kwargs, "name": os.path.basename(path)}, kind))  # the label image's name
    return out


def layers_for(path: str) -> list[LayerData]:
    """Open ``path`` (a file, store, dataset folder, TIFF folder or glob) as napari layer data."""
    from .core import OMEArrow
    from .preview import channel_colors, pyramid_path_levels

    target = _resolve(path) or path
    levels = pyramid_path_levels(target, OMEArrow.scan(target))
    base = levels[0]
    meta = base.meta
    C = base.shape[1]
    keep = [i for i, ax in enumerate(AXES) if ax in "YX" or (ax == "C" and C > 1) or (ax in "TZ" and base.shape[i] > 1)]
    index = tuple(slice(None) if i in keep else 0 for i in range(5))
    arrays = [level.to_dask()[index] for level in levels]
    kept = "".join(AXES[i] for i in keep)
    size = meta.physical_size
    spatial = {"T": 1.0, "Z": size.z or 1.0, "Y": size.y or 1.0, "X": size.x or 1.0}
    scale = [spatial[ax] for ax in kept if ax != "C"]
    attrs = _zarr_attrs(target) if os.path.isdir(target) else {}
    is_label = meta.image_type == "label" or "image-label" in attrs
    name = meta.name or os.path.basename(os.path.normpath(path))
    data: Any = arrays if len(arrays) > 1 else arrays[0]
    kwargs: dict[str, Any] = {"name": name, "scale": scale, "multiscale": len(arrays) > 1}
    kwargs["metadata"] = {"ome_arrow_dask": {"path": target, "levels": [lv.shape for lv in levels]}}
    if is_label:
        if C > 1:
            raise OmeArrowDaskError(f"{path}: a label image must have one channel, this one has C={C}")
        return [(data, kwargs, "labels")]
    windows = _omero_windows(attrs, C) if attrs else None
    limits = windows or _sample_limits(levels, C)
    colors = [_colormap(rgb) for rgb in channel_colors(meta.channels)]
    if C > 1:
        kwargs.update(
            channel_axis=kept.index("C"),
            name=list(meta.channel_names),
            colormap=colors,
            contrast_limits=limits,
            blending="additive",
        )
    else:
        kwargs.update(colormap=colors[0], contrast_limits=limits[0])
        kwargs["name"] = name if meta.channel_names[0] in ("C0", "") else f"{name} [{meta.channel_names[0]}]"
    return [(data, kwargs, "image"), *_ngff_label_layers(base)]


def read(path: str | list[str]) -> list[LayerData]:
    """npe2 reader: the layers of ``path`` (one path, or a one-element list)."""
    if isinstance(path, list):
        joined = _as_glob(path)
        if joined is None:
            raise ValueError(f"ome-arrow-dask reads one path, or all TIFF files of one folder; got {len(path)} paths")
        path = joined
    return layers_for(os.fspath(path))
