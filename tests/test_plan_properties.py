"""Property tests: chains of slice_lazy / tensor_view / select equal the numpy oracle."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from ome_arrow_dask import OMEArrow
from ome_arrow_dask.lowering import lower_axis
from ome_arrow_dask.selection import compose, normalize_index

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def image_and_chunks(draw):
    shape = (
        draw(st.integers(1, 3)),
        draw(st.integers(1, 3)),
        draw(st.integers(1, 4)),
        draw(st.integers(1, 12)),
        draw(st.integers(1, 12)),
    )
    dtype = draw(st.sampled_from(["uint8", "uint16", "int8", "int16", "float32"]))
    data = draw(arrays(dtype, shape, elements=st.integers(-100, 100) if dtype[0] in "if" else st.integers(0, 200)))
    chunks = tuple(draw(st.integers(1, n)) for n in shape)
    return data, chunks


@st.composite
def axis_index(draw, n):
    kind = draw(st.sampled_from(["none", "int", "slice", "list"]))
    if kind == "none":
        return None
    if kind == "int":
        return draw(st.integers(-n, n - 1))
    if kind == "slice":
        start = draw(st.none() | st.integers(-n, n))
        stop = draw(st.none() | st.integers(-n, n))
        step = draw(st.sampled_from([None, 1, 2, -1, 3]))
        return slice(start, stop, step)
    return draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=4))


def np_axis(index):
    """The numpy equivalent of a tensor_view axis argument (ints keep the axis)."""
    if index is None:
        return slice(None)
    if isinstance(index, int):
        return [index]
    return index


def apply_view_oracle(array, t, z, c, roi):
    out = array[np_axis(t)][:, np_axis(c)][:, :, np_axis(z)]
    if roi is not None:
        x, y, w, h = roi
        out = out[..., y : y + h, x : x + w]
    return out


@st.composite
def slice_args(draw, shape):
    t, c, z, y, x = shape
    x0 = draw(st.integers(0, x - 1))
    x1 = draw(st.integers(x0 + 1, x))
    y0 = draw(st.integers(0, y - 1))
    y1 = draw(st.integers(y0 + 1, y))
    pick = st.none() | st.lists(st.integers(0, 10**6), min_size=1, max_size=4)

    def indices(n):
        chosen = draw(pick)
        return None if chosen is None else [v % n for v in chosen]

    return x0, x1, y0, y1, indices(t), indices(c), indices(z)


def apply_slice_oracle(array, args):
    x0, x1, y0, y1, ti, ci, zi = args
    out = array
    for axis, idx in ((0, ti), (1, ci), (2, zi)):
        if idx is not None:
            out = np.take(out, sorted(set(idx)), axis=axis)
    return out[..., y0:y1, x0:x1]


@st.composite
def roi_for(draw, shape):
    y, x = shape[3], shape[4]
    if draw(st.booleans()):
        return None
    x0 = draw(st.integers(0, x - 1))
    y0 = draw(st.integers(0, y - 1))
    return x0, y0, draw(st.integers(1, x - x0)), draw(st.integers(1, y - y0))


def nonempty(array_shape, t, z, c):
    return all(len(normalize_index(idx, n, "a")) > 0 for idx, n in zip((t, c, z), array_shape[:3], strict=True))


@SETTINGS
@given(image_and_chunks(), st.data())
def test_chained_slices_equal_numpy(pair, data):
    array, chunks = pair
    plan = OMEArrow(array, dim_order="TCZYX", chunks=chunks)
    oracle = array
    for _ in range(data.draw(st.integers(1, 4))):
        args = data.draw(slice_args(oracle.shape))
        plan = plan.slice_lazy(*args)
        oracle = apply_slice_oracle(oracle, args)
        assert plan.shape == oracle.shape  # known before any read
    result = plan.collect().to_numpy()  # small plans are read in this thread, larger ones by dask
    assert result.dtype == array.dtype
    np.testing.assert_array_equal(result, oracle)
    np.testing.assert_array_equal(plan.to_dask().compute(), oracle)  # always the dask graph


@SETTINGS
@given(image_and_chunks(), st.data())
def test_slice_then_view_then_selects_equal_numpy(pair, data):
    array, chunks = pair
    plan = OMEArrow(array, dim_order="TCZYX", chunks=chunks)
    oracle = array
    if data.draw(st.booleans()):
        args = data.draw(slice_args(oracle.shape))
        plan = plan.slice_lazy(*args)
        oracle = apply_slice_oracle(oracle, args)
    view = None
    for _ in range(data.draw(st.integers(1, 3))):
        shape = oracle.shape
        t, z, c = (data.draw(axis_index(n)) for n in (shape[0], shape[2], shape[1]))
        assume(nonempty(shape, t, z, c))
        roi = data.draw(roi_for(shape))
        kwargs = {"t": t, "z": z, "c": c, "roi": roi}
        view = plan.tensor_view(layout="TZCYX", **kwargs) if view is None else view.select(**kwargs)
        oracle = apply_view_oracle(oracle, t, z, c, roi)
    expected = oracle.transpose(0, 2, 1, 3, 4)
    assert view.shape == expected.shape
    np.testing.assert_array_equal(view.to_numpy(), expected)


@SETTINGS
@given(st.integers(1, 30), st.data())
def test_compose_is_numpy_chained_indexing(n, data):
    base = np.arange(n)
    outer = normalize_index(data.draw(axis_index(n)), n, "a")
    assume(len(outer) > 0)
    inner_arg = data.draw(axis_index(len(outer)))
    inner = normalize_index(inner_arg, len(outer), "a")
    composed = compose(outer, inner)
    np.testing.assert_array_equal(base[list(composed)], base[list(outer)][list(inner)])


@SETTINGS
@given(st.lists(st.integers(1, 5), min_size=1, max_size=6), st.data())
def test_lowered_pieces_rebuild_the_index(chunk_sizes, data):
    n = sum(chunk_sizes)
    index = normalize_index(data.draw(axis_index(n)), n, "a")
    pieces = lower_axis(index, chunk_sizes)
    offsets = np.concatenate([[0], np.cumsum(chunk_sizes)])
    rebuilt = []
    for piece in pieces:
        sel = piece.chunk_selection
        local = np.arange(chunk_sizes[piece.chunk_index])[sel if isinstance(sel, slice) else list(sel)]
        assert len(local) == piece.out_len
        rebuilt.extend(offsets[piece.chunk_index] + local)
    assert rebuilt == list(index)
