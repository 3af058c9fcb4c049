"""The only module that imports cupy (the optional ``gpu`` extra): device placement."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import OmeArrowDaskError

if TYPE_CHECKING:
    import dask.array as da


def require_cupy() -> Any:
    """Import cupy or raise ImportError with the install hint."""
    try:
        import cupy
    except ImportError as exc:
        raise ImportError("GPU placement needs CuPy and a CUDA device: pip install 'ome-arrow-dask[gpu]'") from exc
    return cupy


def check_device(device: str) -> str:
    """Return ``"cpu"`` or ``"cuda"`` (``"cuda:N"`` kept), or raise for anything else.

    >>> check_device("cpu"), check_device("cuda:1")
    ('cpu', 'cuda:1')
    """
    if device == "cpu" or device == "cuda" or device.startswith("cuda:"):
        return device
    raise OmeArrowDaskError(f"Unsupported device {device!r}; expected 'cpu', 'cuda' or 'cuda:N'")


def _device_id(device: str) -> int:
    return int(device.split(":", 1)[1]) if ":" in device else 0


def to_device_array(array: Any, device: str) -> Any:
    """Copy a host array to ``device`` (one H2D upload), returning a cupy array."""
    cupy = require_cupy()
    with cupy.cuda.Device(_device_id(device)):
        return cupy.asarray(array)


def to_device(array: da.Array, device: str = "cuda") -> da.Array:
    """Return ``array`` with every chunk moved to the GPU: ``map_blocks(cp.asarray)``."""
    if check_device(device) == "cpu":
        return array
    import dask.array as da

    cupy = require_cupy()
    device_id = _device_id(device)

    def upload(block: Any) -> Any:
        with cupy.cuda.Device(device_id):
            return cupy.asarray(block)

    # da.map_blocks(f, a) is what a.map_blocks(f) calls; dask types the method as the function (no ``self``)
    return da.map_blocks(upload, array, dtype=array.dtype, meta=cupy.empty((0,) * array.ndim, dtype=array.dtype))
