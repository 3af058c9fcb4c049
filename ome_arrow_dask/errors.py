"""Exceptions raised by ome_arrow_dask.

Every error subclasses :class:`OmeArrowDaskError`, which is a :class:`ValueError`,
so code written against ome-arrow's ``ValueError`` keeps working.
"""

from __future__ import annotations


class OmeArrowDaskError(ValueError):
    """Base class of every error this package raises on purpose."""


class SelectionError(OmeArrowDaskError):
    """A slice, index list, ROI or tile does not fit the image it selects from."""


class LayoutError(OmeArrowDaskError):
    """A tensor layout string is malformed or would drop a non-singleton axis."""


class DimOrderError(OmeArrowDaskError):
    """A ``dim_order`` does not describe the array it is given with."""


class UnsupportedSourceError(OmeArrowDaskError):
    """No registered source format recognises the given path or object."""


class PatternError(OmeArrowDaskError):
    """A filename pattern is malformed or does not fit the files it is matched against."""


class CorruptInputError(OmeArrowDaskError):
    """A file is truncated, undecodable or inconsistent with its own header."""


class InconsistentInputError(OmeArrowDaskError):
    """Several inputs that must agree (shape, dtype, grid) do not."""


class ResourceLimitError(OmeArrowDaskError):
    """Metadata claims sizes beyond a safety limit; refused before allocating."""


class UnsafePathError(OmeArrowDaskError):
    """A path found inside a file points outside the input's folder."""


class IncompleteOutputError(OmeArrowDaskError):
    """An output written by a job was not finished (no completion marker)."""


class InputChangedError(OmeArrowDaskError):
    """An input changed between planning and reading, or between job runs."""


class InputUnreachableError(InputChangedError):
    """An input seen when the job was planned cannot be reached where a task runs (e.g. a dask worker)."""


class MissingDataWarning(UserWarning):
    """Missing input (files, chunks) was filled with zeros because the user opted in."""


class OutputIsInputError(UnsafePathError):
    """A job's output is one of its inputs, lies inside one, or contains one; refused before writing."""


class OutputInUseError(OmeArrowDaskError):
    """Another running job is writing the same output; it holds the output's lock."""


class IgnoredMetadataWarning(UserWarning):
    """Metadata in a file was ignored because the user opted in (e.g. ``ome_xml="ignore"`` for a TIFF)."""


class RemoteAccessError(OmeArrowDaskError):
    """A remote object (``s3://``, ``https://``, ...) could not be read: denied, unreachable or cut short.

    The message names the URL and what to do (credentials, ``anon=True``, the endpoint);
    no partial data is ever returned.
    """
