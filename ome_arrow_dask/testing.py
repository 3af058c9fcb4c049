"""The contract every source must meet, for formats outside this package too.

A format registered with :func:`~ome_arrow_dask.sources.register_format` can check its
sources against the same contract as the built-in ones, with a numpy oracle of the
whole image as 5-D TCZYX::

    from ome_arrow_dask.testing import check_source

    check_source(MySource("tiny.myfmt"), expected)  # raises AssertionError naming the check

or, under pytest, subclass :class:`SourceContract` and implement ``make_source``::

    from ome_arrow_dask.testing import SourceContract

    class TestMyFormat(SourceContract):
        def make_source(self, tmp_path):
            path = write_tiny_file(tmp_path)
            return open_source(path), expected_tczyx

The checks read every chunk, so keep the test image small. They need no pytest;
:class:`SourceContract` uses pytest's ``tmp_path`` fixture when pytest is installed.
"""

from __future__ import annotations

import itertools
import pickle
from collections.abc import Callable, Iterator
from typing import Any, cast

import numpy as np

from .errors import OmeArrowDaskError
from .lowering import ChunkSelection
from .meta import ImageMeta
from .selection import Selection
from .sources.abilities import (
    SupportsArray,
    SupportsExplainReads,
    SupportsInputPaths,
    SupportsPyramidLevel,
    SupportsReadChunkBox,
    SupportsReadRegion,
    SupportsValidateInputs,
)
from .sources.base import ChunkCoords, Source, chunk_slices

try:  # pytest is a test dependency only: the check functions work without it
    import pytest
except ImportError:  # pragma: no cover - exercised only where pytest is missing
    pytest = None  # type: ignore[assignment]

__all__ = [
    "CHECKS",
    "SourceContract",
    "check_abilities",
    "check_chunk_grid",
    "check_chunk_outside_grid_raises",
    "check_every_chunk",
    "check_is_a_source",
    "check_meta",
    "check_pickle_round_trip",
    "check_selections",
    "check_source",
    "check_token",
    "check_whole_image",
    "oracle_selections",
]


def _chunk_coords(meta: ImageMeta) -> Iterator[ChunkCoords]:
    """Every chunk of the grid, in C order."""
    for coords in itertools.product(*(range(n) for n in meta.numblocks)):
        yield cast("ChunkCoords", coords)


def _region(expected: np.ndarray, meta: ImageMeta, coords: ChunkCoords) -> np.ndarray:
    """The oracle's pixels of chunk ``coords``."""
    region: np.ndarray = expected[cast(Any, chunk_slices(meta, coords))]
    return region


def _assert_equal(actual: np.ndarray, expected: np.ndarray, what: str) -> None:
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape}, expected {expected.shape}"
    assert actual.dtype == expected.dtype, f"{what}: dtype {actual.dtype}, expected {expected.dtype}"
    np.testing.assert_array_equal(actual, expected, err_msg=what)


def check_is_a_source(source: Source, expected: np.ndarray | None = None) -> None:
    """``source`` meets the :class:`~ome_arrow_dask.sources.base.Source` protocol and describes itself."""
    assert isinstance(source, Source), f"{type(source).__name__} lacks meta, token, read_chunk or describe"
    assert isinstance(source.meta, ImageMeta), f"meta is a {type(source.meta).__name__}, not an ImageMeta"
    text = source.describe()
    assert isinstance(text, str) and text, f"describe() returned {text!r}; expected a non-empty line"


def check_meta(source: Source, expected: np.ndarray) -> None:
    """Shape, dtype and channel count match the oracle (a 5-D TCZYX array)."""
    assert expected.ndim == 5, f"the oracle must be 5-D TCZYX, got shape {expected.shape}"
    meta = source.meta
    assert meta.shape == expected.shape, f"meta.shape {meta.shape}, oracle {expected.shape}"
    assert meta.dtype == expected.dtype, f"meta.dtype {meta.dtype}, oracle {expected.dtype}"
    assert len(meta.channels) == expected.shape[1], f"{len(meta.channels)} channels for C={expected.shape[1]}"


def check_chunk_grid(source: Source, expected: np.ndarray | None = None) -> None:
    """The chunk grid tiles the shape with non-empty chunks."""
    for axis, size, sizes in zip("TCZYX", source.meta.shape, source.meta.chunks, strict=True):
        assert sum(sizes) == size, f"chunks along {axis} sum to {sum(sizes)}, not the size {size}"
        assert all(c > 0 for c in sizes), f"empty chunk along {axis}: {sizes}"


def check_every_chunk(source: Source, expected: np.ndarray) -> None:
    """``read_chunk`` returns every chunk of the grid equal to the oracle, in the source's dtype."""
    for coords in _chunk_coords(source.meta):
        _assert_equal(np.asarray(source.read_chunk(coords)), _region(expected, source.meta, coords), f"chunk {coords}")


def check_pickle_round_trip(source: Source, expected: np.ndarray) -> None:
    """A pickled copy (what dask workers get) has the same meta and token and reads the same pixels."""
    clone = pickle.loads(pickle.dumps(source))
    assert clone.meta == source.meta, "meta changed in a pickle round trip"
    assert clone.token == source.token, "token changed in a pickle round trip"
    last = cast("ChunkCoords", tuple(n - 1 for n in source.meta.numblocks))
    _assert_equal(clone.read_chunk(last), _region(expected, source.meta, last), f"unpickled chunk {last}")


def check_token(source: Source, expected: np.ndarray | None = None) -> None:
    """The token is a deterministic string."""
    assert isinstance(source.token, str) and source.token, f"token {source.token!r} is not a non-empty string"
    assert source.token == source.token, "token differs between two reads of the property"


def check_chunk_outside_grid_raises(source: Source, expected: np.ndarray | None = None) -> None:
    """A chunk index past the grid raises (OmeArrowDaskError or IndexError), never returns pixels."""
    outside = cast("ChunkCoords", tuple(source.meta.numblocks))
    try:
        source.read_chunk(outside)
    except (OmeArrowDaskError, IndexError):
        return
    raise AssertionError(f"read_chunk({outside}) outside the grid {source.meta.numblocks} did not raise")


def check_whole_image(source: Source, expected: np.ndarray) -> None:
    """The whole image read through ``OMEArrow(source)`` on dask equals the oracle."""
    from .core import OMEArrow

    _assert_equal(OMEArrow(source).to_dask().compute(scheduler="sync"), expected, "OMEArrow(source).to_dask()")


def oracle_selections(shape: tuple[int, ...]) -> list[Selection]:
    """A few selections: the whole image, crops, reversed and strided ranges, unsorted and repeated lists.

    >>> [len(s) for s in oracle_selections((1, 2, 3, 4, 5))]
    [5, 5, 5, 5, 5]
    """

    def crop(n: int) -> range:
        return range(n // 3, max(n // 3 + 1, n - n // 4))

    def listed(n: int) -> tuple[int, ...]:
        return (*dict.fromkeys((n - 1, 0, n // 2)), n - 1)

    t, c, z, y, x = shape
    return [
        (range(t), range(c), range(z), crop(y), crop(x)),
        (range(t - 1, -1, -1), range(c - 1, -1, -1), range(z - 1, -1, -1), range(0, y, 2), range(0, x, 2)),
        (listed(t), listed(c), listed(z), listed(y), listed(x)),
        ((t - 1,), (c - 1,), (z - 1,), range(y), listed(x)),
        (range(t), range(c), range(z), range(y), range(x)),
    ]


def _oracle(expected: np.ndarray, selection: Selection) -> np.ndarray:
    return expected[np.ix_(*(list(index) for index in selection))]


def check_selections(source: Source, expected: np.ndarray) -> None:
    """Selections read through the dask graph and the in-thread small-read path equal numpy's outer indexing."""
    from .graph import build_array, read_into_memory

    for selection in oracle_selections(source.meta.shape):
        want = _oracle(expected, selection)
        got = build_array(source, selection).compute(scheduler="sync")
        _assert_equal(np.asarray(got), want, f"dask graph of selection {selection}")
        small = read_into_memory(source, selection)
        if small is not None:
            _assert_equal(small, want, f"in-thread read of selection {selection}")


def check_abilities(source: Source, expected: np.ndarray) -> None:
    """Each optional ability the source offers behaves (see :mod:`ome_arrow_dask.sources.abilities`)."""
    from .graph import plan_reads
    from .lowering import take_orthogonal
    from .selection import full_selection

    meta = source.meta
    if isinstance(source, SupportsReadRegion):
        for coords in itertools.islice(_chunk_coords(meta), 4):
            sizes = [r.stop - r.start for r in chunk_slices(meta, coords)]
            ends: tuple[ChunkSelection, ...] = ((sizes[3] - 1, 0), (sizes[4] - 1, 0))
            selection = (*(slice(0, n) for n in sizes[:3]), *ends)
            want = take_orthogonal(_region(expected, meta, coords), selection)
            _assert_equal(source.read_region(coords, selection), want, f"read_region({coords}, {selection})")
    if isinstance(source, SupportsReadChunkBox):
        first: ChunkCoords = (0, 0, 0, 0, 0)
        stop = cast("ChunkCoords", tuple(min(n, 2) for n in meta.numblocks))
        box = tuple(slice(0, sum(sizes[:k])) for sizes, k in zip(meta.chunks, stop, strict=True))
        _assert_equal(source.read_chunk_box(first, stop), expected[box], f"read_chunk_box({first}, {stop})")
    if isinstance(source, SupportsExplainReads):
        lines = source.explain_reads(plan_reads(source, full_selection(meta.shape)))
        assert all(isinstance(line, str) for line in lines), f"explain_reads returned {lines!r}; expected strings"
    if isinstance(source, SupportsInputPaths):
        paths = source.input_paths()
        assert isinstance(paths, tuple) and all(isinstance(p, str) for p in paths), f"input_paths() -> {paths!r}"
    if isinstance(source, SupportsValidateInputs):
        source.validate_inputs()  # unchanged inputs pass
    if isinstance(source, SupportsArray):
        array = source.array
        assert tuple(array.shape) == meta.shape, f"array shape {array.shape} != meta.shape {meta.shape}"  # type: ignore[attr-defined]
        assert isinstance(source.is_in_memory, bool)
    if isinstance(source, SupportsPyramidLevel):
        assert isinstance(source.pyramid_level, int) and source.pyramid_level >= 0, "pyramid_level must be an int >= 0"


CHECKS: tuple[Callable[[Source, np.ndarray], None], ...] = (
    check_is_a_source,
    check_meta,
    check_chunk_grid,
    check_every_chunk,
    check_pickle_round_trip,
    check_token,
    check_chunk_outside_grid_raises,
    check_whole_image,
    check_selections,
    check_abilities,
)
"""Every check, in the order :func:`check_source` runs them."""


def check_source(source: Source, expected: np.ndarray) -> None:
    """Run every check in :data:`CHECKS` on ``source`` against the oracle ``expected`` (5-D TCZYX).

    Raises
    ------
    AssertionError
        From the first check that fails, naming it and what differed.
    """
    for check in CHECKS:
        try:
            check(source, expected)
        except AssertionError as exc:
            raise AssertionError(f"{check.__name__}: {exc}") from exc


def _fixture(func: Callable[..., Any]) -> Callable[..., Any]:
    return pytest.fixture(func) if pytest is not None else func


class SourceContract:
    """Pytest base class: every check as one test over ``make_source(tmp_path)``.

    Override :meth:`make_source`, or the ``pair`` fixture (e.g. parametrized over sample
    files), returning ``(source, expected)``.
    """

    def make_source(self, tmp_path: Any) -> tuple[Source, np.ndarray]:
        """Return ``(source, expected)``: the source under test and its 5-D TCZYX numpy oracle."""
        raise AssertionError("SourceContract subclasses must implement make_source(tmp_path)")

    @_fixture
    def pair(self, tmp_path: Any) -> tuple[Source, np.ndarray]:
        """The ``(source, expected)`` pair every test runs on."""
        return self.make_source(tmp_path)

    def test_is_a_source(self, pair: tuple[Source, np.ndarray]) -> None:
        """See :func:`check_is_a_source`."""
        check_is_a_source(*pair)

    def test_meta_matches_oracle(self, pair: tuple[Source, np.ndarray]) -> None:
        """See :func:`check_meta`."""
        check_meta(*pair)

    def test_chunks_tile_the_shape(self, pair: tuple[Source, np.ndarray]) -> None:
        """See :func:`check_chunk_grid`."""
        check_chunk_grid(*pair)

    def test_every_chunk_equals_oracle(self, pair: tuple[Source, np.ndarray]) -> None:
        """See :func:`check_every_chunk`."""
        check_every_chunk(*pair)

    def test_pickle_round_trip_reads_the_same(self, pair: tuple[Source, np.ndarray]) -> None:
        """See :func:`check_pickle_round_trip`."""
        check_pickle_round_trip(*pair)

    def test_token_is_deterministic(self, pair: tuple[Source, np.ndarray]) -> None:
        """See :func:`check_token`."""
        check_token(*pair)

    def test_chunk_outside_grid_raises(self, pair: tuple[Source, np.ndarray]) -> None:
        """See :func:`check_chunk_outside_grid_raises`."""
        check_chunk_outside_grid_raises(*pair)

    def test_whole_image_through_omearrow(self, pair: tuple[Source, np.ndarray]) -> None:
        """See :func:`check_whole_image`."""
        check_whole_image(*pair)

    def test_selections_equal_numpy(self, pair: tuple[Source, np.ndarray]) -> None:
        """See :func:`check_selections`."""
        check_selections(*pair)

    def test_abilities_behave(self, pair: tuple[Source, np.ndarray]) -> None:
        """See :func:`check_abilities`."""
        check_abilities(*pair)
