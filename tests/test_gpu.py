"""GPU placement and device DLPack exports; these run only where CUDA and cupy exist."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from ome_arrow_dask import OMEArrow


def _cuda_available() -> bool:
    if importlib.util.find_spec("cupy") is None:
        return False
    import cupy

    try:
        return cupy.cuda.runtime.getDeviceCount() > 0
    except cupy.cuda.runtime.CUDARuntimeError:
        return False


pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not _cuda_available(), reason="no CUDA device")]


@pytest.fixture
def img(rng):
    data = rng.integers(0, 4000, size=(4, 2, 3, 32, 48)).astype(np.uint16)
    return data, OMEArrow(data, dim_order="TCZYX", chunks=(1, 1, 3, 16, 16))


def test_to_device_chunks_are_cupy_and_equal(img):
    import cupy

    data, image = img
    gpu = image.slice_lazy(4, 40, 2, 30).to_device("cuda")
    assert isinstance(gpu._meta, cupy.ndarray)
    np.testing.assert_array_equal(cupy.asnumpy(gpu.compute()), data[..., 2:30, 4:40])


def test_device_dlpack_into_cupy_and_torch(img):
    import cupy

    data, image = img
    view = image.tensor_view(t=1, layout="ZCYX")
    export = view.to_dlpack(device="cuda")
    assert export.__dlpack_device__()[0] == 2  # kDLCUDA
    np.testing.assert_array_equal(cupy.asnumpy(cupy.from_dlpack(export)), data[1].transpose(1, 0, 2, 3))
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        tensor = torch.from_dlpack(view.to_dlpack(device="cuda"))
        assert tensor.is_cuda
        np.testing.assert_array_equal(tensor.cpu().numpy(), data[1].transpose(1, 0, 2, 3))


def test_iter_dlpack_on_device_with_prefetch(img):
    import cupy

    data, image = img
    view = image.tensor_view(z=0, c=0, layout="TYX")
    batches = [cupy.asnumpy(cupy.from_dlpack(b)) for b in view.iter_dlpack(batch_size=2, device="cuda", prefetch=2)]
    np.testing.assert_array_equal(np.concatenate(batches), data[:, 0, 0])
