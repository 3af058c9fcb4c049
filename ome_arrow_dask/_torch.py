"""The only module that imports torch (an optional extra)."""

from __future__ import annotations

from typing import Any


def from_dlpack(obj: Any) -> Any:
    """Return ``torch.from_dlpack(obj)``; ImportError with the install hint without torch."""
    try:
        import torch
    except ImportError as exc:
        raise ImportError("to_torch() needs PyTorch: pip install 'ome-arrow-dask[torch]'") from exc
    return torch.from_dlpack(obj)
