"""``tensor_view(dtype=...)`` for torch users of uint16 images (issue 13).

torch's uint16 tensors lack ``max`` / ``mean``; a view cast to int32 or float32 gives
tensors those work on, with the same values, and a lazy view casts while it reads.
"""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from ome_arrow_dask import OMEArrow
from ome_arrow_dask.errors import OmeArrowDaskError

torch = pytest.importorskip("torch")


@pytest.fixture
def uint16_tiff(tmp_path, rng):
    data = rng.integers(0, 65535, size=(3, 2, 4, 24, 20), dtype=np.uint16)  # T C Z Y X, values above int16
    path = tmp_path / "u16.ome.tif"
    tifffile.imwrite(path, data, ome=True, metadata={"axes": "TCZYX"}, tile=(16, 16))
    return path, data


@pytest.mark.parametrize("dtype", ["int32", "float32"])
def test_torch_reductions_work_on_a_cast_view(uint16_tiff, dtype):
    path, data = uint16_tiff
    view = OMEArrow.scan(path).tensor_view(t=1, z=slice(0, 3), layout="ZCYX", dtype=dtype)
    tensor = torch.from_dlpack(view)
    expected = data[1, :, 0:3].transpose(1, 0, 2, 3).astype(dtype)  # ZCYX
    assert tensor.dtype == getattr(torch, dtype) and view.dtype == np.dtype(dtype)
    assert int(tensor.max()) == int(expected.max())
    assert float(tensor.double().mean()) == pytest.approx(float(expected.astype(np.float64).mean()))
    assert float(tensor.float().mean()) == pytest.approx(float(expected.mean(dtype=np.float64)), rel=1e-6)
    np.testing.assert_array_equal(tensor.numpy(), expected)


def test_cast_view_batches_and_selections_keep_the_dtype(uint16_tiff):
    path, data = uint16_tiff
    view = OMEArrow.scan(path).tensor_view(z=0, layout="TCYX", dtype="int32")
    batches = [torch.from_dlpack(cap) for cap in view.iter_dlpack(batch_size=2)]
    assert [b.shape[0] for b in batches] == [2, 1]
    assert all(b.dtype == torch.int32 for b in batches)
    np.testing.assert_array_equal(torch.cat(batches).numpy(), data[:, :, 0].astype(np.int32))
    assert int(torch.cat(batches).max()) == int(data[:, :, 0].max())
    sub = view.select(c=1)
    assert sub.dtype == np.int32 and sub.to_numpy().dtype == np.int32


def test_lazy_view_casts_while_reading(uint16_tiff):
    path, data = uint16_tiff
    view = OMEArrow.scan(path).tensor_view(t=0, layout="ZCYX", dtype="float32")
    collected = view.collect()
    assert collected.plan.dtype == np.float32  # no whole uint16 copy is kept beside the float32 one
    np.testing.assert_array_equal(view.to_numpy(), data[0, :, :, :, :].astype(np.float32).transpose(1, 0, 2, 3))


def test_in_memory_view_cast_matches_numpy(rng):
    data = rng.integers(0, 65535, size=(1, 2, 1, 8, 9), dtype=np.uint16)
    view = OMEArrow(data).tensor_view(dtype="int32")  # CYX
    np.testing.assert_array_equal(torch.from_dlpack(view).numpy(), data[0, :, 0].astype(np.int32))


@pytest.mark.parametrize("dtype", ["bogus", "U4", object])
def test_a_dtype_that_is_not_numeric_is_refused(rng, dtype):
    img = OMEArrow(rng.integers(0, 9, size=(4, 5), dtype=np.uint16))
    with pytest.raises(OmeArrowDaskError, match="dtype="):
        img.tensor_view(dtype=dtype)
