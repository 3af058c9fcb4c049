"""The only module that imports jax (an optional extra)."""

from __future__ import annotations

from typing import Any


def from_dlpack(obj: Any) -> Any:
    """Return ``jax.dlpack.from_dlpack(obj)``; ImportError with the install hint without jax."""
    try:
        import jax.dlpack
    except ImportError as exc:
        raise ImportError("to_jax() needs JAX: pip install 'ome-arrow-dask[jax]'") from exc
    return jax.dlpack.from_dlpack(obj)
