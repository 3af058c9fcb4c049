"""Faults on remote reads: 5xx retried with backoff by the libraries' own settings, 403 and dropped
connections end in a clear error naming the URL, nothing partial is ever returned as data.

S3: botocore ``retries={"mode": "standard", "max_attempts": 5}`` (set by the storage layer).
HTTP: an aiohttp client middleware (``storage._retry_middleware``, ``HTTP_RETRIES`` attempts).
"""

from __future__ import annotations

import numpy as np
import pytest
import zarr
from remote_servers import http_root, http_server, s3_server  # noqa: F401

from ome_arrow_dask import OMEArrow
from ome_arrow_dask.errors import RemoteAccessError
from ome_arrow_dask.storage import HTTP_RETRIES

pytest.importorskip("fsspec")

DATA = np.random.default_rng(11).integers(0, 60000, (1, 1, 2, 64, 64)).astype("u2")


@pytest.fixture(scope="module")
def store(http_root, s3_server):  # noqa: F811
    group = zarr.open_group(str(http_root / "img.ome.zarr"), mode="w", zarr_format=3)
    group.attrs["ome"] = {
        "version": "0.5",
        "multiscales": [{"axes": [{"name": n} for n in "tczyx"], "datasets": [
            {"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [1, 1, 1, 1, 1]}]}]}],
    }
    array = group.create_array("0", shape=DATA.shape, chunks=(1, 1, 1, 32, 32), dtype="u2")
    array[:] = DATA
    s3_server.upload(http_root, "s3://fault-tests")
    return http_root


def test_http_5xx_is_retried(store, http_server):  # noqa: F811
    img = OMEArrow.scan(f"{http_server.url}/img.ome.zarr")
    http_server.log.clear()
    http_server.inject(503, 500, 502)
    np.testing.assert_array_equal(img.to_numpy(), DATA)
    assert http_server.log.count() == 8 + 3  # 8 chunks, 3 answered 5xx and retried


def test_http_dropped_connection_is_retried(store, http_server):  # noqa: F811
    img = OMEArrow.scan(f"{http_server.url}/img.ome.zarr")
    http_server.inject("drop", "drop")  # bodies cut short after a few bytes
    np.testing.assert_array_equal(img.to_numpy(), DATA)


def test_http_persistent_drop_is_a_clear_error_and_no_data(store, http_server):  # noqa: F811
    img = OMEArrow.scan(f"{http_server.url}/img.ome.zarr").slice_lazy(0, 32, 0, 32, z_indices=[0])
    http_server.inject(*["drop"] * HTTP_RETRIES)
    with pytest.raises(RemoteAccessError, match=r"img\.ome\.zarr/0/c/0/0/0/0/0: the request failed after retries"):
        img.to_numpy()
    http_server.inject()  # all faults consumed: the same plan now reads whole and equal
    np.testing.assert_array_equal(img.to_numpy(), DATA[:, :, :1, :32, :32])


def test_http_persistent_503_is_a_clear_error(store, http_server):  # noqa: F811
    img = OMEArrow.scan(f"{http_server.url}/img.ome.zarr").slice_lazy(0, 32, 0, 32, z_indices=[0])
    http_server.inject(*[503] * HTTP_RETRIES)
    with pytest.raises(RemoteAccessError, match="503"):
        img.to_numpy()


def test_http_403_names_url_and_what_to_do(store, http_server):  # noqa: F811
    img = OMEArrow.scan(f"{http_server.url}/img.ome.zarr")
    http_server.inject(403)
    with pytest.raises(RemoteAccessError, match=r"access denied.*headers"):
        img.slice_lazy(0, 32, 0, 32, z_indices=[0]).to_numpy()


def test_s3_5xx_is_retried(store, s3_server):  # noqa: F811
    img = OMEArrow.scan("s3://fault-tests/img.ome.zarr", storage_options=s3_server.options)
    s3_server.log.clear()
    s3_server.inject(503, 500)
    np.testing.assert_array_equal(img.to_numpy(), DATA)
    assert s3_server.log.count() == 8 + 2


def test_s3_403_names_url_and_what_to_do(store, s3_server):  # noqa: F811
    s3_server.inject(403)
    expected = r"s3://fault-tests/img\.ome\.zarr/zarr\.json: access denied.*anon=True"
    with pytest.raises(RemoteAccessError, match=expected):
        OMEArrow.scan("s3://fault-tests/img.ome.zarr", storage_options=s3_server.options)


def test_s3_unreachable_endpoint(store):
    options = {"key": "k", "secret": "s", "endpoint_url": "http://127.0.0.1:9", "config_kwargs": {
        "retries": {"max_attempts": 1}, "connect_timeout": 1}}
    with pytest.raises(RemoteAccessError, match=r"s3://fault-tests/img\.ome\.zarr.*endpoint"):
        OMEArrow.scan("s3://fault-tests/img.ome.zarr", storage_options=options)
