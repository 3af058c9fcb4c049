"""What a writer writes: a dask array, its metadata and the identity of the plan it came from.

Writers never see an ``OMEArrow``: they take a :class:`WriteInput`, built once from a plan
(:func:`from_plan`), so any reader composes with any writer and the writers depend on
nothing but dask, :class:`~ome_arrow_dask.meta.ImageMeta` and this package.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

from .fingerprint import input_records
from .paths import is_url

if TYPE_CHECKING:
    import dask.array as da
    import numpy as np

    from ..meta import ImageMeta

__all__ = ["WriteIdentity", "WriteInput", "from_plan", "image_input_paths"]


def image_input_paths(image: Any) -> tuple[str, ...]:
    """The files and folders ``image`` reads (its ``input_paths()``; empty for in-memory data), absolute.

    Remote URLs are kept as they are.
    """
    getter = getattr(image, "input_paths", None)
    if not callable(getter):
        return ()
    return tuple(p if is_url(p) else os.path.abspath(p) for p in getter())


@dataclass(frozen=True)
class WriteIdentity:
    """Where the pixels come from: what fingerprints a job and what must not be written over.

    Parameters
    ----------
    token
        A deterministic token of the plan (source token and selection; remote sources put
        their ETag and size in their token).
    input_paths
        The files and folders the plan reads, absolute (empty for in-memory data).
    validate
        The validate-before-write hook (e.g. every header of a pattern stack); called by
        the writer before it creates or deletes any output.
    """

    token: str
    input_paths: tuple[str, ...] = ()
    validate: Callable[[], None] | None = None

    def input_records(self, mode: str = "stat") -> dict[str, str]:
        """Fingerprint records of the input files (:func:`~.fingerprint.input_records`)."""
        return input_records(self.input_paths, mode)

    def validate_inputs(self) -> None:
        """Run the validate-before-write hook, if any."""
        if self.validate is not None:
            self.validate()


class WriteInput(NamedTuple):
    """The pixels (TCZYX dask array), their metadata and their identity."""

    array: da.Array
    meta: ImageMeta
    identity: WriteIdentity

    @property
    def shape(self) -> tuple[int, ...]:
        """TCZYX shape."""
        return tuple(int(s) for s in self.array.shape)

    @property
    def dtype(self) -> np.dtype:
        """Pixel type."""
        return self.array.dtype

    @property
    def chunks(self) -> tuple[tuple[int, ...], ...]:
        """The dask chunks of :attr:`array`."""
        return self.array.chunks

    def to_dask(self) -> da.Array:
        """The TCZYX dask array (as a plan's ``to_dask``)."""
        return self.array


def from_plan(plan: Any, validate: Callable[[], None] | None = None) -> WriteInput:
    """Build the :class:`WriteInput` of a plan (an ``OMEArrow``: ``to_dask``, ``meta``, ``source``, ``selection``).

    ``validate`` is the plan's validate-before-write hook.
    """
    from dask.base import tokenize

    identity = WriteIdentity(tokenize(plan.source.token, plan.selection), image_input_paths(plan), validate)
    return WriteInput(plan.to_dask(), plan.meta, identity)
