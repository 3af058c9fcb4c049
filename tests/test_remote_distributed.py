"""A LocalCluster (worker processes) reads OME-Zarr, TIFF and pattern folders from the S3 server.

The plan travels to the workers pickled with its storage options; each worker builds its own
filesystem and store. No secret appears in reprs or ``explain()``.
"""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
import zarr
from remote_servers import s3_server  # noqa: F401

from ome_arrow_dask import OMEArrow

pytest.importorskip("fsspec")
distributed = pytest.importorskip("distributed")

DATA = np.random.default_rng(21).integers(0, 60000, (1, 2, 2, 48, 48)).astype("u2")


@pytest.fixture(scope="module")
def bucket(tmp_path_factory, s3_server):  # noqa: F811
    root = tmp_path_factory.mktemp("dist")
    group = zarr.open_group(str(root / "img.ome.zarr"), mode="w", zarr_format=3)
    group.attrs["ome"] = {"version": "0.5", "multiscales": [{"axes": [{"name": n} for n in "tczyx"], "datasets": [
        {"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [1, 1, 1, 1, 1]}]}]}]}
    group.create_array("0", shape=DATA.shape, chunks=(1, 1, 1, 16, 16), shards=(1, 1, 1, 48, 48), dtype="u2")[:] = DATA
    (root / "raw").mkdir()
    for c in range(2):
        for z in range(2):
            tifffile.imwrite(root / "raw" / f"c{c}_z{z}.tif", DATA[0, c, z])
    tifffile.imwrite(root / "vol.ome.tif", DATA[0], ome=True, tile=(16, 16), metadata={"axes": "CZYX"})
    s3_server.upload(root, "s3://dist-tests")
    return root


@pytest.mark.slow
def test_local_cluster_reads_s3(bucket, s3_server):  # noqa: F811
    options = dict(s3_server.options, secret="testing")
    plans = {
        "zarr": OMEArrow.scan("s3://dist-tests/img.ome.zarr", storage_options=options),
        "stack": OMEArrow.scan("s3://dist-tests/raw", pattern="c{c}_z{z}.tif", storage_options=options),
        "tiff": OMEArrow.scan("s3://dist-tests/vol.ome.tif", storage_options=options),
    }
    for plan in plans.values():
        assert "secret=***" in plan.explain() or "secret" not in plan.explain()
    with (
        distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster,
        distributed.Client(cluster) as client,
    ):
        for name, plan in plans.items():
            crop = plan.slice_lazy(8, 40, 4, 44)
            got = client.compute(crop.to_dask()).result()
            np.testing.assert_array_equal(got, DATA[..., 4:44, 8:40], err_msg=name)
        workers = client.run(lambda: __import__("os").getpid())
        assert len(set(workers.values())) == 2
