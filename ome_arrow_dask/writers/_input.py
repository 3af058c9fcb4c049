"""The one place a plan becomes what writers take: a :class:`~ome_arrow_dask.jobs.WriteInput`."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from ..errors import OmeArrowDaskError
from ..jobs import WriteInput, from_plan
from ..sources.base import validate_before_write

if TYPE_CHECKING:
    from ..core import OMEArrow

__all__ = ["as_write_input"]


def as_write_input(image: WriteInput | OMEArrow) -> WriteInput:
    """What a writer writes: ``image`` itself, or the :class:`~ome_arrow_dask.jobs.WriteInput` of a plan.

    The plan's validate-before-write hook is its source's ``validate_inputs`` (looked up
    through wrappers by :func:`~ome_arrow_dask.sources.base.validate_before_write`).
    """
    if isinstance(image, WriteInput):
        return image
    if not all(hasattr(image, name) for name in ("to_dask", "meta", "source", "selection", "input_paths")):
        raise OmeArrowDaskError(
            f"writers take an OMEArrow plan or a WriteInput, got a {type(image).__name__}: wrap the data first, "
            "e.g. OMEArrow(array)"
        )
    return from_plan(image, validate=partial(validate_before_write, image.source))
