"""The contract every Source implementation must meet (moved to :mod:`ome_arrow_dask.testing`).

Subclass :class:`SourceContract` in a ``test_*.py`` module and implement
``make_source(tmp_path) -> (source, expected)`` where ``expected`` is the numpy oracle
of the whole image as 5-D TCZYX (e.g. ``tifffile.imread`` reshaped). Every test there
then runs against that source. Third-party formats import it from the package.
"""

from __future__ import annotations

from ome_arrow_dask.testing import SourceContract, check_source

__all__ = ["SourceContract", "check_source"]
