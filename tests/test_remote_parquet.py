"""OME-Arrow Parquet files over s3:// (moto server) and http:// (static server).

Requests (counted by the servers): open = 1 HEAD (ETag, size) + ranged GETs of the footer and the
metadata columns of the image's row group; the payload column is read once per process
(``pre_buffer``: coalesced ranged GETs). No LIST. Dataset folders: tests/test_remote_dataset.py.
"""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest
from remote_servers import http_root, http_server, s3_server  # noqa: F401

from ome_arrow_dask import OMEArrow
from ome_arrow_dask.errors import IncompleteOutputError, RemoteAccessError

pytest.importorskip("fsspec")
ome_ingest = pytest.importorskip("ome_arrow.ingest")
ome_export = pytest.importorskip("ome_arrow.export")

DATA = np.random.default_rng(31).integers(0, 60000, (1, 2, 3, 19, 23)).astype("u2")


@pytest.fixture(scope="module")
def files(http_root, s3_server):  # noqa: F811
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        record = ome_ingest.from_numpy(DATA, dim_order="TCZYX", chunk_shape=(1, 8, 8), clamp_to_uint16=False)
        ome_export.to_ome_parquet(record, str(http_root / "img.ome.parquet"), column_name="ome_arrow")
        planes = ome_ingest.from_numpy(DATA, dim_order="TCZYX", clamp_to_uint16=False)
        ome_export.to_ome_parquet(planes, str(http_root / "planes.ome.parquet"), column_name="ome_arrow")
    (http_root / "ds.ome.parquet").mkdir()
    (http_root / "ds.ome.parquet" / "_ome_arrow_dataset.json").write_text("{}")
    s3_server.upload(http_root, "s3://parquet-tests")
    return http_root


def _base(kind, http_server, s3_server):  # noqa: F811
    if kind == "http":
        return http_server.url, {}, http_server.log
    return "s3://parquet-tests", dict(s3_server.options), s3_server.log


@pytest.mark.parametrize("kind", ["http", "s3"])
@pytest.mark.parametrize("name", ["img.ome.parquet", "planes.ome.parquet"])
def test_parquet_pixels_equal_local(files, http_server, s3_server, kind, name):  # noqa: F811
    base, options, log = _base(kind, http_server, s3_server)
    local = OMEArrow.scan(str(files / name))
    log.clear()
    remote = OMEArrow.scan(f"{base}/{name}", storage_options=options)
    opened = log.snapshot()
    assert not any("list-type" in r[2] for r in opened)
    assert remote.shape == local.shape and remote.meta.channels == local.meta.channels
    np.testing.assert_array_equal(remote.to_numpy(), DATA)
    crop = remote.slice_lazy(2, 17, 1, 9, c_indices=[1])
    np.testing.assert_array_equal(crop.to_numpy(), DATA[:, 1:2, :, 1:9, 2:17])
    assert all(r[0] in ("GET", "HEAD") for r in log.snapshot())


def test_parquet_plan_pickles(files, s3_server):  # noqa: F811
    img = OMEArrow.scan("s3://parquet-tests/img.ome.parquet", storage_options=s3_server.options)
    again = pickle.loads(pickle.dumps(img.slice_lazy(0, 10, 0, 10)))
    np.testing.assert_array_equal(again.to_numpy(), DATA[..., :10, :10])
    assert "testing" not in img.explain() + repr(img)


def test_parquet_dataset_directory_without_tables_is_incomplete(files, s3_server):  # noqa: F811
    # dataset folders are read over URLs (tests/test_remote_dataset.py); this one has a manifest only
    with pytest.raises(IncompleteOutputError, match=r"ds\.ome\.parquet/images\.parquet: missing"):
        OMEArrow.scan("s3://parquet-tests/ds.ome.parquet", storage_options=s3_server.options)


def test_parquet_403_is_a_remote_error(files, http_server):  # noqa: F811
    http_server.inject(403, 403)
    with pytest.raises(RemoteAccessError, match="access denied"):
        OMEArrow.scan(f"{http_server.url}/img.ome.parquet")
