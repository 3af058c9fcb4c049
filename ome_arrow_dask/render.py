"""Text, HTML and plots of a plan: ``explain()``, ``info()``, ``_repr_html_``, ``view()``.

Everything here reads metadata only, except the HTML preview, which reads a bounded
sample (:func:`ome_arrow_dask.preview.sample`: the smallest pyramid level, else at most
32 MiB / 256 chunks of one plane) and says what it read.
"""

from __future__ import annotations

import base64
import html as _html
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .colors import rgb_hex
from .errors import SelectionError
from .meta import AXES
from .selection import AxisIndex, format_index
from .sources.abilities import SupportsExplainReads
from .units import format_bytes

if TYPE_CHECKING:
    from .core import OMEArrow



def slice_step(inner: Sequence[AxisIndex], shape: Sequence[int]) -> str:
    """Describe one ``slice_lazy`` call by the axes it changes.

    >>> slice_step((range(1), range(2), (0, 2), range(0, 4), range(2, 6)), (1, 2, 3, 8, 8))
    'slice_lazy(x=2:6, y=0:4, z=[0, 2])'
    """
    parts = [f"x={format_index(inner[4])}", f"y={format_index(inner[3])}"]
    for axis in (2, 0, 1):
        if inner[axis] != range(shape[axis]):
            parts.append(f"{AXES[axis].lower()}={format_index(inner[axis])}")
    return f"slice_lazy({', '.join(parts)})"


def _chunk_shape(chunks: Sequence[Sequence[int]]) -> tuple[int, ...]:
    return tuple(max(axis) if axis else 0 for axis in chunks)


def explain(plan: OMEArrow) -> str:
    """Return the plan as text; golden-tested, so change it on purpose only."""
    source_meta = plan.source.meta
    reads = plan.read_plan
    bytes_read = reads.elements_read() * source_meta.dtype.itemsize
    selection = " ".join(f"{ax.lower()}={format_index(ix)}" for ax, ix in zip(AXES, plan.selection, strict=True))
    lines = [
        "OMEArrow plan",
        f"  source: {plan.source.describe()}",
        f"    shape {source_meta.shape} {source_meta.dtype}, chunk shape {_chunk_shape(source_meta.chunks)}, "
        f"{reads.chunks_total} chunks",
    ]
    if plan.steps:
        lines.append("  steps:")
        lines.extend(f"    {i}. {step}" for i, step in enumerate(plan.steps, 1))
    lines += [
        f"  selection (source coordinates): {selection}",
        f"  result: shape {plan.shape} {plan.dtype}, {format_bytes(plan.nbytes)}, {reads.num_blocks} blocks",
        f"  reads {reads.chunks_read} of {reads.chunks_total} chunks ({format_bytes(bytes_read)})",
    ]
    if isinstance(plan.source, SupportsExplainReads):
        lines.extend(f"  {line}" for line in plan.source.explain_reads(reads))
    return "\n".join(lines)


def image_type(shape: Sequence[int]) -> str:
    """ome-arrow's description of a TCZYX shape.

    >>> image_type((1, 3, 1, 8, 8)), image_type((4, 1, 5, 8, 8))
    ('2D image', '4D timelapse-volume')
    """
    t, _, z = shape[0], shape[1], shape[2]
    if t > 1 and z > 1:
        return "4D timelapse-volume"
    if t > 1:
        return "movie / timelapse"
    if z > 1:
        return "3D image (z-stack)"
    return "2D image"


def info(plan: OMEArrow) -> dict[str, Any]:
    """ome-arrow's ``info()`` dict, key for key and word for word (reads no pixels).

    >>> from ome_arrow_dask import OMEArrow
    >>> info(OMEArrow(np.zeros((5, 4, 4), "u2")))["summary"]
    '3D image (z-stack), single-channel - shape (T=1, C=1, Z=5, Y=4, X=4)'
    """
    t, c, z, y, x = (int(n) for n in plan.shape)
    kind = image_type((t, c, z))
    channels = f"multi-channel ({c} channels)" if c > 1 else "single-channel"
    return {
        "shape": (t, c, z, y, x),
        "type": kind,
        "channels": c,
        "is_multichannel": c > 1,
        "summary": f"{kind}, {channels} - shape (T={t}, C={c}, Z={z}, Y={y}, X={x})",
    }


VIEW_MODES = ("matplotlib", "pyvista")


def _import_optional(module: str, purpose: str) -> Any:
    """Import ``module`` or raise ``ImportError`` saying what to install (the one place per library)."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        package = module.split(".")[0]
        raise ImportError(f"{purpose} needs {package}, which is not installed: pip install {package}") from exc


def _display_limits(pixels: np.ndarray, autoscale: bool, vmin: float | None, vmax: float | None) -> tuple[Any, Any]:
    """ome-arrow's autoscale: the plane's min / max (finite values), widened by 1 when flat."""
    if autoscale and (vmin is None or vmax is None):
        finite = pixels[np.isfinite(pixels)] if pixels.dtype.kind in "fc" else pixels
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        if hi == lo:
            hi = lo + 1
        vmin = lo if vmin is None else vmin
        vmax = hi if vmax is None else vmax
    return vmin, vmax


def _plane_index(plan: OMEArrow, tcz: Sequence[int]) -> tuple[int, int, int]:
    t, c, z = (int(v) for v in tcz)
    for name, value, size in (("t", t, plan.shape[0]), ("c", c, plan.shape[1]), ("z", z, plan.shape[2])):
        if not 0 <= value < size:
            raise SelectionError(f"view: {name}={value} is out of range for size {size} (tcz={tuple(tcz)})")
    return t, c, z


def view(plan: OMEArrow, how: str, tcz: Sequence[int], **options: Any) -> Any:
    """``OMEArrow.view``: validate ``how`` before any read, then draw with matplotlib or pyvista."""
    if how not in VIEW_MODES:
        raise ValueError(f"Unsupported view mode: {how!r}. Use 'matplotlib' or 'pyvista'.")
    t, c, z = _plane_index(plan, tcz)
    channel = options.pop("c", None)
    if how == "matplotlib":
        return _view_matplotlib(plan, (t, c, z), **options)
    return _view_pyvista(plan, t, c if channel is None else int(channel), **options)


def _view_matplotlib(
    plan: OMEArrow,
    tcz: tuple[int, int, int],
    *,
    autoscale: bool,
    vmin: float | None,
    vmax: float | None,
    cmap: str,
    show: bool,
    **_pyvista_only: Any,
) -> tuple[Any, Any, Any]:
    """One plane (reads only its chunks) as ``(figure, axes, image)``."""
    plt = _import_optional("matplotlib.pyplot", "OMEArrow.view(how='matplotlib')")
    t, c, z = tcz
    shape = plan.shape
    plane = plan.slice_lazy(0, shape[4], 0, shape[3], t_indices=[t], c_indices=[c], z_indices=[z])
    pixels = plane.to_numpy()[0, 0, 0]
    vmin, vmax = _display_limits(pixels, autoscale, vmin, vmax)
    fig, ax = plt.subplots()
    image = ax.imshow(pixels, cmap=cmap, vmin=vmin, vmax=vmax)
    ax.axis("off")
    if show:
        plt.show()
    return fig, ax, image


def _view_pyvista(  # noqa: PLR0913 - ome-arrow's view options
    plan: OMEArrow,
    t: int,
    c: int,
    *,
    show: bool,
    downsample: int,
    opacity: str | float,
    clim: tuple[float, float] | None,
    show_axes: bool,
    scaling_values: tuple[float, float, float] | None,
    cmap: str,
    **_matplotlib_only: Any,
) -> Any:
    """The Z stack of (t, c) as a pyvista volume; returns the ``pyvista.Plotter``."""
    pv = _import_optional("pyvista", "OMEArrow.view(how='pyvista')")
    if not 0 <= c < plan.shape[1]:
        raise SelectionError(f"Channel out of range: 0..{plan.shape[1] - 1} (got c={c})")
    step = max(1, int(downsample))
    shape = plan.shape
    stack = plan.slice_lazy(0, shape[4], 0, shape[3], t_indices=[t], c_indices=[c])
    volume = stack.to_numpy()[0, 0, ::step, ::step, ::step]  # ZYX
    if scaling_values is not None:
        dz, dy, dx = (float(v) for v in scaling_values)
    else:
        size = plan.meta.physical_size
        dz, dy, dx = ((getattr(size, axis, None) or 1.0) for axis in ("z", "y", "x"))
    grid = pv.ImageData(dimensions=volume.shape[::-1], spacing=(dx * step, dy * step, dz * step))
    grid.point_data["scalars"] = volume.transpose(2, 1, 0).ravel(order="F")
    if clim is None:
        lo, hi = (float(v) for v in np.percentile(volume, (1.0, 99.9)))
        clim = (lo, hi if hi > lo else lo + 1.0)
    plotter = pv.Plotter(off_screen=not show)
    plotter.add_volume(grid, cmap=cmap, opacity=opacity, clim=clim, shade=False)
    if show_axes:
        plotter.add_axes()
    if show:
        plotter.show()
    return plotter


def _thumbnail_png(plan: OMEArrow) -> tuple[str | None, str]:
    """A colored composite of a bounded preview sample as base64 PNG, and what was read.

    See :func:`ome_arrow_dask.preview.sample`: the smallest pyramid level when there is
    one, else a strided sample of at most ``PREVIEW_MAX_BYTES`` (32 MiB) of chunks.
    Channel colors come from the metadata, contrast from robust percentiles of the sample.
    """
    from .errors import OmeArrowDaskError
    from .preview import PREVIEW_MAX_BYTES, channel_colors, composite, sample

    try:
        found = sample(plan, tcz=plan.tcz if any(plan.tcz) else None)  # default: t=0, the middle z
    except (OmeArrowDaskError, OSError) as exc:
        return None, f"preview not drawn: reading it failed: {exc}"
    if found is None:
        return None, f"preview not drawn: one chunk per channel exceeds the {format_bytes(PREVIEW_MAX_BYTES)} budget"
    import imagecodecs

    channels = tuple(plan.meta.channels[i] for i in found.channels)
    rgb = composite(found.pixels, channel_colors(channels))
    return base64.b64encode(imagecodecs.png_encode(rgb)).decode("ascii"), found.describe()


def _swatch(rgb: tuple[int, int, int]) -> str:
    color = rgb_hex(rgb, css=True)
    style = f"display:inline-block;width:0.9em;height:0.9em;background:{color};border:1px solid #888"
    return f"<span style='{style}'></span>"


def _channel_table(plan: OMEArrow) -> str:
    from .preview import channel_colors

    channels = plan.meta.channels
    colors = channel_colors(channels)
    head = "<tr><th>c</th><th>name</th><th>color</th><th>emission µm</th><th>excitation µm</th></tr>"
    rows = "".join(
        f"<tr><td>{i}</td><td>{_html.escape(ch.name)}</td><td>{_swatch(rgb)}</td>"
        f"<td>{'' if ch.emission_um is None else f'{ch.emission_um:g}'}</td>"
        f"<td>{'' if ch.excitation_um is None else f'{ch.excitation_um:g}'}</td></tr>"
        for i, (ch, rgb) in enumerate(zip(channels[:64], colors[:64], strict=True))
    )
    more = f"<tr><td colspan='5'>... {len(channels) - 64} more</td></tr>" if len(channels) > 64 else ""
    return f"<table>{head}{rows}{more}</table>"


def _chunk_diagram(plan: OMEArrow) -> str:
    """The chunk diagram dask draws of the result (drawn from the chunk sizes alone)."""
    try:
        from dask.array.svg import svg

        return svg(plan.chunks, size=120)
    except NotImplementedError:  # dask draws no 0-length dimension
        return ""


def html(plan: OMEArrow) -> str:
    """Jupyter summary: a colored preview (bounded reads, stated), metadata, channels, chunk diagram."""
    meta = plan.meta
    size = meta.physical_size
    spacing = ", ".join(
        f"{ax}={getattr(size, ax):g} {getattr(size, f'{ax}_unit') or ''}".rstrip()
        for ax in "zyx"
        if getattr(size, ax) is not None
    )
    rows = [
        ("shape (TCZYX)", str(meta.shape)),
        ("dtype", str(meta.dtype)),
        ("chunk shape", str(_chunk_shape(meta.chunks))),
        ("channels", ", ".join(meta.channel_names)),
        ("pixel size", spacing or "unknown"),
        ("bytes", format_bytes(meta.nbytes)),
        ("source", plan.source.describe()),
        ("lazy", str(plan.is_lazy)),
    ]
    table = "".join(f"<tr><th style='text-align:left'>{k}</th><td>{_html.escape(v)}</td></tr>" for k, v in rows)
    png, said = _thumbnail_png(plan) if meta.nbytes else (None, "preview not drawn: the image is empty")
    image = (
        f"<img src='data:image/png;base64,{png}' alt='preview' "
        "style='image-rendering:pixelated;min-width:192px;max-width:256px'/>"
        if png
        else ""
    )
    caption = f"<div style='font-size:smaller;max-width:256px'>{_html.escape(said)}</div>"
    return (
        f"<div><b>OMEArrow</b> {_html.escape(meta.name or '')}"
        "<div style='display:flex;gap:1em;align-items:flex-start'>"
        f"<div>{image}{caption}</div>"
        f"<div><table>{table}</table>{_channel_table(plan)}</div>"
        f"<div>{_chunk_diagram(plan)}</div></div></div>"
    )
