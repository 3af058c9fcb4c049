"""OME-NGFF label images: ``<image>/labels/<name>`` beside an OME-Zarr image.

Writing: ``img.export("ome-zarr", out=..., labels={"nuclei": OMEArrow(mask, image_type="label")})``
writes the image, then each label image with the same OME-Zarr writer (one task per
chunk, crash-safe, ``resume=`` as for the image) and as many pyramid levels as the image,
binned by 2x nearest neighbour (stride) so no label value is invented; the dtype is kept
(integers only, as NGFF requires). Each label group carries ``image-label`` metadata:
``colors`` (one per label value present, from ``colors=`` or generated), optional
``properties`` and ``source`` (``../../``, the image). The ``labels`` group listing the
names is written last, so a reader sees only finished label images.

A label value may come as an :class:`~ome_arrow_dask.core.OMEArrow`, an array, or a dict
``{"image": ..., "colors": {value: (r, g, b, a)}, "properties": {value: {...}}}``.
Listing the label values for generated colors reads the written label image once.
This module does not import :mod:`ome_arrow_dask.core` (which imports it): arrays become
plans through the ``open_plan`` the caller passes (``OMEArrow`` from ``export``), plans
are relabelled and opened through their own type.

Reading: ``img.labels`` maps each name to an OMEArrow with ``image_type="label"`` at the
same pyramid level as ``img`` (metadata only until read).
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from .errors import CorruptInputError, InconsistentInputError, OmeArrowDaskError, UnsupportedSourceError
from .sources import _ngff

if TYPE_CHECKING:
    from .core import OMEArrow
    from .jobs import WriteInput

__all__ = ["Labels", "PreparedLabel", "labels_of", "prepare_labels", "write_labels"]

MAX_COLORS = 65536
"""Most label values listed in ``image-label.colors``; above it colors are left out (viewers pick their own)."""


def _color(value: int) -> list[int]:
    """A stable, distinct-looking RGBA for a label value (0, the background, is transparent).

    >>> _color(0), len(_color(7))
    ([0, 0, 0, 0], 4)
    """
    if value == 0:
        return [0, 0, 0, 0]
    h = zlib.crc32(int(value).to_bytes(8, "little", signed=True))
    return [64 + (h & 0xBF), 64 + ((h >> 8) & 0xBF), 64 + ((h >> 16) & 0xBF), 255]


class PreparedLabel(NamedTuple):
    """One label image checked by :func:`prepare_labels`: the plan (image type ``"label"``), colors, properties."""

    image: OMEArrow
    colors: dict[int, Any]
    properties: dict[int, dict[str, Any]]


def _is_plan(value: object) -> bool:
    """A lazy image plan (an ``OMEArrow`` or a subclass), told by its surface: this module does not import core."""
    return all(hasattr(value, name) for name in ("to_dask", "meta", "source", "selection", "with_source"))


def _as_label(
    name: str, value: Any, image: OMEArrow | WriteInput, open_plan: Callable[[Any], OMEArrow] | None
) -> PreparedLabel:
    colors: dict[int, Any] = {}
    properties: dict[int, dict[str, Any]] = {}
    if isinstance(value, Mapping):
        colors = dict(value.get("colors") or {})
        properties = dict(value.get("properties") or {})
        value = value.get("image")
    if _is_plan(value):
        label = value
    elif open_plan is not None:
        label = open_plan(value)
    else:
        raise OmeArrowDaskError(
            f"label image {name!r} is a {type(value).__name__}; pass an image plan: OMEArrow(mask, image_type='label')"
        )
    if label.meta.image_type != "label":
        label = type(label)(label, image_type="label")
    if label.dtype.kind not in "ui":
        raise OmeArrowDaskError(
            f"label image {name!r} has dtype {label.dtype}; NGFF labels are integers: cast it (e.g. .astype('uint32'))"
        )
    want = (image.shape[0], 1, *image.shape[2:])
    if tuple(label.shape) != want:
        raise InconsistentInputError(
            f"label image {name!r} has shape {tuple(label.shape)} (TCZYX); the image {tuple(image.shape)} needs "
            f"{want}: one channel and the image's T, Z, Y and X sizes"
        )
    return PreparedLabel(label, colors, properties)


def _check_name(name: object) -> str:
    if not isinstance(name, str) or not name or "/" in name or "\\" in name or name in (".", "..", "labels"):
        raise OmeArrowDaskError(f"label name {name!r} must be a non-empty name without '/' (e.g. 'nuclei')")
    return name


def prepare_labels(
    image: OMEArrow | WriteInput,
    labels: Mapping[str, Any],
    open_plan: Callable[[Any], OMEArrow] | None = None,
) -> dict[str, PreparedLabel]:
    """Check ``labels`` against ``image`` (names, integer dtype, shape) before anything is written.

    ``open_plan`` turns a label value that is not a plan yet (an array) into one
    (``OMEArrow``); without it such values are refused. Labels already prepared are
    returned as they are.

    Returns ``{name: PreparedLabel(label image, colors, properties)}`` for :func:`write_labels`.
    """
    if not isinstance(labels, Mapping) or not labels:
        raise OmeArrowDaskError("labels= must be a non-empty mapping of names to label images")
    if all(isinstance(v, PreparedLabel) for v in labels.values()):
        return dict(labels)
    return {_check_name(name): _as_label(name, value, image, open_plan) for name, value in labels.items()}


def write_labels(out: str, image: OMEArrow | WriteInput, labels: Mapping[str, Any], **options: Any) -> None:
    """Write ``labels`` beside the OME-Zarr image at ``out`` (already written from ``image``).

    ``labels`` is what :func:`prepare_labels` returned (or a mapping of label plans).

    ``options`` are the image's :class:`~ome_arrow_dask.writers.zarr.ZarrWriteOptions`
    (``levels``, ``version``, ``resume``, ...); each label image is written with them
    (chunks without C). ``overwrite`` is not passed on: the image writer already started
    ``out`` afresh.
    """
    import zarr

    from .writers import zarr as zarr_writer

    prepared = prepare_labels(image, labels)
    opts = zarr_writer.ZarrWriteOptions(**options)
    version = opts.version
    label_opts = {**options, "overwrite": False, "resume": True}
    if opts.chunks is not None:
        label_opts["chunks"] = (opts.chunks[0], 1, *opts.chunks[2:])
    if opts.shards is not None:
        label_opts["shards"] = (opts.shards[0], 1, *opts.shards[2:])
    group_path = os.path.join(out, "labels")
    fmt: Literal[2, 3] = 3 if version == "0.5" else 2
    group = zarr.open_group(group_path, mode="a", zarr_format=fmt)
    for name, (label, colors, properties) in prepared.items():
        path = os.path.join(group_path, name)
        zarr_writer.write(label, path, **label_opts)
        node = zarr.open_group(path, mode="r+")
        attrs: dict[str, Any] = dict(node.attrs)  # what zarr_writer.write just wrote
        block = _image_label(path, colors, properties, version)
        if version == "0.5":
            attrs["ome"] = {**attrs["ome"], "image-label": block}
        else:
            attrs["image-label"] = block
        node.attrs.put(attrs)
    names = sorted(set(prepared) | set(_listed(group_path)))
    group.attrs.put({"ome": {"version": "0.5", "labels": names}} if version == "0.5" else {"labels": names})


def _image_label(path: str, colors: dict[int, Any], properties: dict[int, dict[str, Any]], version: str) -> dict:
    """The ``image-label`` block: colors for each value present (or given), properties, source."""
    import dask.array as da
    import zarr

    if not colors:
        values = da.unique(da.from_zarr(zarr.open_array(store=path, path="0", mode="r"))).compute()
        colors = {int(v): _color(int(v)) for v in values} if values.size <= MAX_COLORS else {}
    block: dict[str, Any] = {"source": {"image": "../../"}}
    if colors:
        block["colors"] = [{"label-value": int(v), "rgba": [int(x) for x in c]} for v, c in sorted(colors.items())]
    if properties:
        block["properties"] = [{**dict(p), "label-value": int(v)} for v, p in sorted(properties.items())]
        if colors and set(colors) != set(properties):
            block["colors"] = [c for c in block["colors"] if c["label-value"] in properties]
    if version == "0.4":
        block["version"] = "0.4"
    return block


def _listed(group_path: str) -> list[str]:
    found = _ngff.read_group_attrs(group_path)
    if found is None:
        return []
    attrs, where, _ = found
    nested = attrs.get("ome")
    ome = nested if isinstance(nested, dict) else attrs
    names = _ngff.typed_field(ome, "labels", list, where, "labels") or []
    for i, name in enumerate(names):
        if not isinstance(name, str):
            raise CorruptInputError(f"{where}: labels[{i}] must be a string, got {type(name).__name__}")
        _ngff.check_dataset_path(name, where)
    return list(names)


class Labels(Mapping[str, "OMEArrow"]):
    """The label images of one OME-Zarr image, by name; each opened lazily with image_type ``"label"``.

    ``scan`` opens a path lazily (the image's ``type(image).scan``).
    """

    def __init__(self, root: str, names: list[str], level: int, scan: Callable[..., OMEArrow]) -> None:
        self.root = root
        self._names = names
        self.level = level
        self._scan = scan

    def __getitem__(self, name: str) -> OMEArrow:
        if name not in self._names:
            raise KeyError(f"{self.root}: no label image {name!r}; the image has {self._names}")
        return self._scan(os.path.join(self.root, "labels", name), level=self.level, image_type="label")

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def __repr__(self) -> str:
        return f"Labels({self.root!r}, {self._names})"


def labels_of(image: OMEArrow) -> Labels:
    """The NGFF label images stored with ``image`` (an OME-Zarr image opened from a path).

    Empty when the image has no ``labels`` group. Raises
    :class:`~ome_arrow_dask.errors.UnsupportedSourceError` for an image that is not an
    OME-Zarr store.
    """
    from .sources.zarr import ZarrSource

    source: Any = image.source
    for _ in range(32):
        if isinstance(source, ZarrSource) or source is None:
            break
        source = getattr(source, "inner", None)
    if not isinstance(source, ZarrSource):
        raise UnsupportedSourceError(
            f"labels are stored with OME-Zarr images; this image comes from {type(image.source).__name__}"
        )
    root = source._root
    return Labels(root, _listed(os.path.join(root, "labels")), source._level, type(image).scan)
