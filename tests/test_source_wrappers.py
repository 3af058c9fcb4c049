"""Every optional source ability survives every wrapper; the contract suite works for third-party formats."""

from __future__ import annotations

import pickle
import sys
import textwrap

import dask.array as da
import numpy as np
import pytest
import tifffile
import zarr

from ome_arrow_dask import OMEArrow, sources
from ome_arrow_dask.cache import CachedSource
from ome_arrow_dask.graph import _BoxedSource, plan_reads
from ome_arrow_dask.selection import full_selection
from ome_arrow_dask.sources import open_source, register_format
from ome_arrow_dask.sources.abilities import (
    ABILITIES,
    SourceWrapper,
    SupportsArray,
    SupportsExplainReads,
    SupportsInputPaths,
    SupportsPyramidLevel,
    SupportsReadChunkBox,
    SupportsReadRegion,
    SupportsValidateInputs,
    abilities_of,
)
from ome_arrow_dask.sources.base import ArraySource, MetaOverride
from ome_arrow_dask.testing import check_source

RNG = np.random.default_rng(7)


# --------------------------------------------------------------------------- inner sources
def zarr_source(tmp_path):
    data = RNG.integers(0, 5000, (3, 10, 9), dtype=np.uint16)
    arr = zarr.create_array(str(tmp_path / "plain.zarr"), shape=data.shape, chunks=(2, 4, 5), dtype=data.dtype)
    arr[:] = data
    return open_source(tmp_path / "plain.zarr"), data[None, None]


def stack_source(tmp_path):
    folder = tmp_path / "stack"
    folder.mkdir(parents=True)
    planes = []
    for z in range(3):
        plane = RNG.integers(0, 5000, (2, 6, 7), dtype=np.uint16)  # 2 pages per file: partial reads decode 1
        tifffile.imwrite(folder / f"img_z{z}.tif", plane, photometric="minisblack", metadata={"axes": "ZYX"})
        planes.append(plane)
    return open_source(folder, pattern="img_z{z}.tif"), np.concatenate(planes)[None, None]


def numpy_source(tmp_path):
    data = RNG.integers(0, 255, (2, 2, 3, 8, 6), dtype=np.uint8)
    return ArraySource(data, "TCZYX", chunks=(1, 1, 2, 5, 4)), data


def dask_source(tmp_path):
    data = RNG.random((1, 2, 2, 7, 9)).astype(np.float32)
    return ArraySource(da.from_array(data, chunks=(1, 1, 2, 4, 5)), "TCZYX"), data


class PlainSource:
    """The bare Source protocol: no optional ability at all."""

    def __init__(self, data: np.ndarray) -> None:
        self._inner = ArraySource(data, "TCZYX", chunks=(1, 1, 1, 3, 3))

    @property
    def meta(self):
        return self._inner.meta

    @property
    def token(self):
        return "plain-" + self._inner.token

    def describe(self):
        return "plain test source"

    def read_chunk(self, chunk_coords):
        return self._inner.read_chunk(chunk_coords)


def plain_source(tmp_path):
    data = RNG.integers(-9, 9, (1, 1, 2, 5, 4), dtype=np.int16)
    return PlainSource(data), data


INNERS = {
    "zarr": (zarr_source, {SupportsReadChunkBox, SupportsExplainReads, SupportsInputPaths, SupportsPyramidLevel}),
    "stack": (stack_source, {SupportsReadRegion, SupportsExplainReads, SupportsInputPaths, SupportsValidateInputs}),
    "numpy": (numpy_source, {SupportsArray, SupportsInputPaths}),
    "dask": (dask_source, {SupportsArray, SupportsInputPaths}),
    "plain": (plain_source, set()),
}


# --------------------------------------------------------------------------- wrappers
def renamed(source):
    return MetaOverride(source, source.meta.replace(name="renamed", image_type="label"))


def cached(source):
    return CachedSource(source, "1MiB")


def boxed(source):
    """The small-read wrapper over a box holding the whole image."""
    return _BoxedSource(source, (0, 0, 0, 0, 0), OMEArrow(source).to_dask().compute(scheduler="sync"))


WRAPPERS = {
    "meta_override": renamed,
    "cache": cached,
    "boxed": boxed,
    "cache_over_meta_override": lambda s: cached(renamed(s)),
    "meta_override_over_cache": lambda s: renamed(cached(s)),
    "meta_override_twice": lambda s: renamed(renamed(s)),
}


def expected_abilities(source) -> frozenset[type]:
    """What a wrapper chain must offer: the innermost source's abilities less each layer's hidden ones."""
    if not isinstance(source, SourceWrapper):
        return abilities_of(source)
    return expected_abilities(source.inner) - type(source).hidden_abilities


@pytest.fixture(params=sorted(INNERS))
def inner(request, tmp_path):
    make, abilities = INNERS[request.param]
    source, expected = make(tmp_path)
    assert abilities_of(source) == abilities, f"{request.param} inner source has other abilities than listed"
    return source, expected


@pytest.fixture(params=sorted(WRAPPERS))
def wrapped(request, inner):
    source, expected = inner
    return WRAPPERS[request.param](source), source, expected


def test_every_wrapper_class_in_the_package_is_covered():
    import ome_arrow_dask.cache
    import ome_arrow_dask.graph  # noqa: F401 - registers _BoxedSource

    def written(cls):
        for sub in cls.__subclasses__():
            if sub.wrapper_class() is sub:
                yield sub
            yield from written(sub)

    assert {cls.__name__ for cls in written(SourceWrapper)} >= {"MetaOverride", "CachedSource", "_BoxedSource"}
    covered = {type(WRAPPERS[name](ArraySource(np.zeros((2, 2), "u1")))).wrapper_class() for name in WRAPPERS}
    missing = {cls for cls in written(SourceWrapper) if cls.__module__.startswith("ome_arrow_dask")} - covered
    assert not missing, f"add these wrappers to WRAPPERS: {missing}"


def test_each_ability_is_offered_exactly_when_the_chain_offers_it(wrapped):
    wrapper, inner_source, _ = wrapped
    want = expected_abilities(wrapper)
    for proto in ABILITIES:
        assert isinstance(wrapper, proto) == (proto in want), proto.__name__
    assert want <= abilities_of(inner_source)


def test_hidden_abilities_are_only_the_reads_that_bypass_the_wrapper():
    bypass = {SupportsReadRegion, SupportsReadChunkBox, SupportsArray}
    assert MetaOverride.hidden_abilities == frozenset()
    assert CachedSource.hidden_abilities == bypass
    assert _BoxedSource.hidden_abilities == bypass


def test_forwarded_abilities_give_the_inner_results(wrapped):
    wrapper, inner_source, expected = wrapped
    offered = abilities_of(wrapper)
    plan = plan_reads(inner_source, full_selection(inner_source.meta.shape))
    if SupportsReadRegion in offered:
        selection = (slice(0, 1), slice(0, 1), slice(0, 1), slice(1, 4), (3, 0))
        np.testing.assert_array_equal(
            wrapper.read_region((0, 0, 1, 0, 0), selection), inner_source.read_region((0, 0, 1, 0, 0), selection)
        )
    if SupportsReadChunkBox in offered:
        stop = (1, 1, 2, 2, 2)
        np.testing.assert_array_equal(wrapper.read_chunk_box((0,) * 5, stop), expected[:, :, :3, :8, :9])
    if SupportsExplainReads in offered:
        assert wrapper.explain_reads(plan) == inner_source.explain_reads(plan)
    if SupportsInputPaths in offered:
        assert wrapper.input_paths() == inner_source.input_paths()
    if SupportsValidateInputs in offered:
        wrapper.validate_inputs()
    if SupportsArray in offered:
        assert wrapper.array is inner_source.array and wrapper.is_in_memory == inner_source.is_in_memory
    if SupportsPyramidLevel in offered:
        assert wrapper.pyramid_level == inner_source.pyramid_level == 0


def test_pickled_wrappers_keep_their_abilities_and_pixels(wrapped):
    wrapper, _, expected = wrapped
    clone = pickle.loads(pickle.dumps(wrapper))
    assert type(clone).wrapper_class() is type(wrapper).wrapper_class()
    assert type(clone).__name__ == type(wrapper).__name__
    assert abilities_of(clone) == abilities_of(wrapper)
    assert (clone.meta, clone.token, clone.describe()) == (wrapper.meta, wrapper.token, wrapper.describe())
    np.testing.assert_array_equal(OMEArrow(clone).to_dask().compute(scheduler="sync"), expected)


@pytest.mark.parametrize("name", ["meta_override", "cache_over_meta_override", "meta_override_over_cache"])
def test_wrappers_pass_the_source_contract(inner, name):
    source, expected = inner
    check_source(WRAPPERS[name](source), expected)


class Annotated(SourceWrapper):
    """A third-party wrapper: adds its own explain() line, hides partial reads."""

    hidden_abilities = frozenset({SupportsReadRegion})

    def explain_reads(self, read_plan):
        inner = self.inner.explain_reads(read_plan) if isinstance(self.inner, SupportsExplainReads) else []
        return [*inner, "annotated"]


def test_a_wrapper_that_defines_an_ability_always_offers_it_and_hidden_ones_never(tmp_path):
    for make in (stack_source, numpy_source):
        source, expected = make(tmp_path / make.__name__)
        wrapper = Annotated(source)
        assert isinstance(wrapper, SupportsExplainReads) and not isinstance(wrapper, SupportsReadRegion)
        assert abilities_of(wrapper) == (abilities_of(source) | {SupportsExplainReads}) - {SupportsReadRegion}
        plan = plan_reads(source, full_selection(source.meta.shape))
        assert wrapper.explain_reads(plan)[-1] == "annotated"
        clone = pickle.loads(pickle.dumps(wrapper))
        assert abilities_of(clone) == abilities_of(wrapper) and type(clone).wrapper_class() is Annotated
        check_source(wrapper, expected)


def test_forwarding_asks_the_inner_source_on_each_call(tmp_path):
    source, _ = stack_source(tmp_path)
    wrapper = renamed(source)
    calls = []
    source.explain_reads = lambda plan: calls.append(plan) or ["patched"]
    assert wrapper.explain_reads("plan") == ["patched"] and calls == ["plan"]


def test_the_dask_pass_through_survives_a_meta_override_but_not_the_cache(tmp_path):
    source, _ = dask_source(tmp_path)
    plain = OMEArrow(source).to_dask()
    over = OMEArrow(renamed(source)).to_dask()
    assert set(over.dask) >= set(source.array.dask)  # the array's own graph, indexed: no per-chunk reads
    np.testing.assert_array_equal(over.compute(), plain.compute())
    through_cache = OMEArrow(cached(source)).to_dask()
    assert not set(through_cache.dask) & set(source.array.dask)  # every chunk goes through the cache


# --------------------------------------------------------------------------- explain() regression
def _read_lines(plan: OMEArrow) -> list[str]:
    lines = plan.explain().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("  reads "))
    return lines[start + 1 :]


def test_explain_keeps_a_stacks_per_file_lines_under_image_type_and_cache(tmp_path):
    stack_source(tmp_path)
    plain = OMEArrow.scan(tmp_path / "stack", pattern="img_z{z}.tif")
    expected = _read_lines(plain)
    assert any("pattern" in line for line in expected) and any("files: 3" in line for line in expected)
    labelled = OMEArrow.scan(tmp_path / "stack", pattern="img_z{z}.tif", image_type="label")
    assert isinstance(labelled.source, MetaOverride)
    assert _read_lines(labelled) == expected
    assert _read_lines(plain.with_cache("1MiB")) == expected
    assert _read_lines(labelled.with_cache("1MiB")) == expected


def test_explain_keeps_a_parquet_files_lines_under_image_type_and_cache(tmp_path):
    import ome_arrow.export as ome_export
    import ome_arrow.ingest as ome_ingest

    out = tmp_path / "img.parquet"
    pixels = RNG.integers(0, 9, (1, 1, 2, 6, 5), dtype=np.uint16)
    record = ome_ingest.from_numpy(pixels, dim_order="TCZYX", chunk_shape=(1, 4, 4), clamp_to_uint16=False)
    ome_export.to_ome_parquet(record, str(out), column_name="ome_arrow")
    plain = OMEArrow.scan(out)
    expected = _read_lines(plain)
    assert any("parquet" in line for line in expected)
    assert _read_lines(OMEArrow.scan(out, image_type="label")) == expected
    assert _read_lines(plain.with_cache("1MiB")) == expected


# --------------------------------------------------------------------------- third-party formats
TOY_FORMAT = '''
"""A third-party format: a .toy file is a 5-D .npy array read one chunk at a time."""
import os

import numpy as np

from ome_arrow_dask.meta import ImageMeta
from ome_arrow_dask.sources.base import chunk_slices


def probe(path, **options):
    return str(path).endswith(".toy")


def open(path, **options):
    return ToySource(path, **options)


class ToySource:
    def __init__(self, path, flip_dtype=False):
        self.path, self.flip_dtype = os.path.abspath(path), flip_dtype
        header = np.load(self.path, mmap_mode="r")
        chunks = tuple(tuple(min(2, n - i) for i in range(0, n, 2)) for n in header.shape)
        self._meta = ImageMeta(shape=header.shape, dtype=header.dtype, chunks=chunks)

    @property
    def meta(self):
        return self._meta

    @property
    def token(self):
        return f"toy-{self.path}-{os.stat(self.path).st_mtime_ns}"

    def describe(self):
        return f"toy file {self.path}"

    def input_paths(self):
        return (self.path,)

    def read_chunk(self, chunk_coords):
        block = np.array(np.load(self.path, mmap_mode="r")[chunk_slices(self._meta, chunk_coords)])
        return block.astype("float64") if self.flip_dtype else block
'''


@pytest.fixture
def toy_format(tmp_path, monkeypatch):
    module = f"toy_format_{abs(hash(str(tmp_path)))}"
    (tmp_path / f"{module}.py").write_text(textwrap.dedent(TOY_FORMAT))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(sources, "FORMATS", list(sources.FORMATS))
    register_format("toy", module, first=True)
    yield module
    sys.modules.pop(module, None)


def test_a_registered_third_party_format_passes_the_contract(tmp_path, toy_format):
    data = RNG.integers(0, 1000, (1, 3, 3, 5, 4), dtype=np.uint16)
    np.save(tmp_path / "img.npy", data)
    (tmp_path / "img.npy").rename(tmp_path / "img.toy")
    source = open_source(tmp_path / "img.toy")
    assert type(source).__module__ == toy_format
    check_source(source, data)
    check_source(renamed(source), data)
    check_source(cached(source), data)


def test_the_contract_fails_a_source_that_breaks_it(tmp_path, toy_format):
    data = RNG.integers(0, 1000, (1, 1, 3, 5, 4), dtype=np.uint16)
    np.save(tmp_path / "img.npy", data)
    (tmp_path / "img.npy").rename(tmp_path / "img.toy")
    with pytest.raises(AssertionError, match=r"check_every_chunk: chunk .* dtype float64, expected uint16"):
        check_source(open_source(tmp_path / "img.toy", flip_dtype=True), data)
    with pytest.raises(AssertionError, match="check_meta"):
        check_source(open_source(tmp_path / "img.toy"), data[:, :, :2])
