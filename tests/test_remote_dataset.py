"""OME-Arrow Parquet dataset folders over s3:// (moto server) and http:// (static server).

No LIST anywhere: the layout's file names are fixed and ``index.parquet`` names the fragments.
Request budgets asserted here (counted by the servers):

- open: HEAD of the URL (404: not an object, so a folder; over HTTP fsspec adds a GET), then
  GET manifest, GET images.parquet, GET index.parquet, HEAD chunks.parquet + 1 ranged GET of its
  footer (2 when the footer exceeds pyarrow's 64 KiB first read, as ome-arrow's writer's does);
- crop: the touched row groups read in one call, ``pre_buffer`` coalescing their neighbouring column
  ranges into one ranged GET (was one GET per row group), no HEAD, no LIST.
"""

from __future__ import annotations

import pickle
import shutil
import warnings

import numpy as np
import pyarrow.parquet as pq
import pytest
from remote_servers import http_root, http_server, s3_server  # noqa: F401

from ome_arrow_dask import OMEArrow
from ome_arrow_dask.errors import InputChangedError, UnsafePathError

pytest.importorskip("fsspec")

DATA = np.random.default_rng(41).integers(0, 60000, (1, 2, 3, 40, 36)).astype("u2")
CHUNK = (1, 1, 1, 16, 16)  # 2 x 3 x 3 x 3 = 54 chunks, one row group each


@pytest.fixture(scope="module")
def datasets(http_root, s3_server):  # noqa: F811
    """Our writer's dataset, ome-arrow's (if installed), a damaged copy; served over HTTP and S3."""
    OMEArrow(DATA).export(how="parquet", out=http_root / "ours.ome.parquet", chunk_shape=CHUNK)
    shutil.copytree(http_root / "ours.ome.parquet", http_root / "evil.ome.parquet")
    try:
        from ome_arrow import dataset as ome_dataset
        from ome_arrow import ingest as ome_ingest
    except ImportError:
        pass
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            record = ome_ingest.from_numpy(DATA, dim_order="TCZYX", clamp_to_uint16=False)
            ome_dataset.write_ome_arrow_dataset([record], http_root / "theirs.ome.parquet", chunk_shape=CHUNK)
    import pyarrow as pa

    index = pq.read_table(http_root / "evil.ome.parquet" / "index.parquet")
    paths = pa.array(["../ours.ome.parquet/chunks.parquet"] * index.num_rows)
    index = index.set_column(index.schema.get_field_index("fragment_path"), "fragment_path", paths)
    pq.write_table(index, http_root / "evil.ome.parquet" / "index.parquet")
    s3_server.upload(http_root, "s3://dataset-tests")
    return http_root


def _base(kind, http_server, s3_server):  # noqa: F811
    if kind == "http":
        return http_server.url, {}, http_server.log
    return "s3://dataset-tests", dict(s3_server.options), s3_server.log


def _lists(kind, http_server, s3_server) -> list:  # noqa: F811
    """S3 LIST requests; over HTTP, GETs of a folder (its index page) other than fsspec's info fallback."""
    if kind == "s3":
        return s3_server.lists()
    log = http_server.log.snapshot()
    return [r for r in log if (r[0] == "GET" and not r[1].endswith((".json", ".parquet"))) or "list" in r[2]]


@pytest.mark.parametrize("kind", ["http", "s3"])
@pytest.mark.parametrize("name", ["ours.ome.parquet", "theirs.ome.parquet"])
def test_dataset_pixels_equal_local_and_budget(datasets, http_server, s3_server, kind, name):  # noqa: F811
    if not (datasets / name).exists():
        pytest.skip("ome-arrow is not installed")
    base, options, log = _base(kind, http_server, s3_server)
    local = OMEArrow.scan(str(datasets / name))
    log.clear()
    remote = OMEArrow.scan(f"{base}/{name}/", storage_options=options)
    opened = log.snapshot()
    assert not _lists(kind, http_server, s3_server), opened
    paths = [p.rsplit("/", 1)[-1] for _, p, _, _ in opened]
    assert paths.count("_ome_arrow_dataset.json") == 1
    assert paths.count("images.parquet") == 1 and paths.count("index.parquet") == 1
    footer = [m for m, p, _, _ in opened if p.endswith("chunks.parquet")]
    big = pq.read_metadata(datasets / name / "chunks.parquet").serialized_size > 2**16 - 8  # pyarrow reads 64 KiB
    assert footer == ["HEAD", "GET", "GET"] if big else ["HEAD", "GET"], opened
    assert len(opened) == (7 if kind == "http" else 6) + big, opened  # HTTP: fsspec's GET after the HEAD's 404
    assert remote.shape == local.shape and remote.dtype == local.dtype
    assert remote.meta.chunks == local.meta.chunks and remote.meta.channels == local.meta.channels

    log.clear()
    crop = remote.slice_lazy(5, 30, 3, 20, c_indices=[1])  # x chunks 0-1, y chunks 0-1, 3 z: 12 row groups
    assert "requests: 1 ranged GET" in crop.explain()  # 12 row groups, neighbours: one coalesced GET
    np.testing.assert_array_equal(crop.to_numpy(), DATA[:, 1:2, :, 3:20, 5:30])
    requests = log.snapshot()
    assert all(m == "GET" and r and p.endswith("chunks.parquet") for m, p, _, r in requests), requests
    assert len(requests) == 1, requests
    np.testing.assert_array_equal(remote.to_numpy(), DATA)


def test_dataset_plan_pickles_without_secrets(datasets, s3_server):  # noqa: F811
    options = dict(s3_server.options, secret="s3cr3t-dataset")
    img = OMEArrow.scan("s3://dataset-tests/ours.ome.parquet", storage_options=options)
    crop = img.slice_lazy(0, 20, 0, 20)
    again = pickle.loads(pickle.dumps(crop))
    np.testing.assert_array_equal(again.to_numpy(), DATA[..., :20, :20])
    assert "s3cr3t" not in repr(img) + img.explain() + repr(crop) + crop.explain()


def test_dataset_image_id_and_file_options(datasets, s3_server):  # noqa: F811
    url = "s3://dataset-tests/ours.ome.parquet"
    with pytest.raises(TypeError, match="dataset folders"):
        OMEArrow.scan(url, storage_options=s3_server.options, row_index=0)
    first = OMEArrow.scan(url, storage_options=s3_server.options).meta.id
    assert OMEArrow.scan(url, storage_options=s3_server.options, image_id=first).meta.id == first


def test_missing_dataset_names_the_url(datasets, s3_server):  # noqa: F811
    s3_server.log.clear()
    with pytest.raises(FileNotFoundError, match=r"s3://dataset-tests/nothing\.ome\.parquet: neither a Parquet"):
        OMEArrow.scan("s3://dataset-tests/nothing.ome.parquet", storage_options=s3_server.options)
    assert not s3_server.lists()


def test_fragment_outside_the_dataset_is_refused(datasets, s3_server):  # noqa: F811
    with pytest.raises(UnsafePathError, match="outside the dataset"):
        OMEArrow.scan("s3://dataset-tests/evil.ome.parquet", storage_options=s3_server.options)


def test_replaced_object_is_caught(datasets, s3_server, tmp_path):  # noqa: F811
    """Reads are conditional on the ETag seen at open (IfMatch): a replaced chunks.parquet is not misread."""
    s3_server.upload(datasets / "ours.ome.parquet", "s3://dataset-changes/ds.ome.parquet")
    img = OMEArrow.scan("s3://dataset-changes/ds.ome.parquet", storage_options=s3_server.options)
    OMEArrow(DATA + 1).export(how="parquet", out=tmp_path / "other.ome.parquet", chunk_shape=CHUNK)
    s3_server.upload(tmp_path / "other.ome.parquet" / "chunks.parquet", "s3://dataset-changes/ds.ome.parquet/chunks.parquet")
    with pytest.raises(InputChangedError, match="changed after it was opened"):
        img.slice_lazy(0, 10, 0, 10).to_numpy()


def test_public_bucket_dataset_reads_anonymously(datasets, s3_server, monkeypatch, tmp_path, caplog):  # noqa: F811
    """No credentials anywhere: anon=True is used (one log line) and the dataset reads, still without LIST."""
    import logging

    from ome_arrow_dask import storage

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    for name in ("AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE"):
        monkeypatch.setenv(name, str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setattr(storage, "_ANON_LOGGED", set())
    s3_server.upload(datasets / "ours.ome.parquet", "s3://public-datasets/ds.ome.parquet", public=True)
    # moto denies an anonymous HEAD under the s3:GetObject policy that upload(public=True) sets (real S3
    # allows it): widen the test bucket's policy so the fragment's HEAD passes as it would on AWS
    import json

    import boto3

    policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:*",
              "Resource": ["arn:aws:s3:::public-datasets", "arn:aws:s3:::public-datasets/*"]}]}
    boto3.client("s3", endpoint_url=s3_server.endpoint, region_name="us-east-1", aws_access_key_id="testing",
                 aws_secret_access_key="testing").put_bucket_policy(Bucket="public-datasets", Policy=json.dumps(policy))
    s3_server.log.clear()
    options = {"client_kwargs": {"endpoint_url": s3_server.endpoint, "region_name": "us-east-1"}}
    with caplog.at_level(logging.INFO, logger="ome_arrow_dask.storage"):
        img = OMEArrow.scan("s3://public-datasets/ds.ome.parquet", storage_options=options)
        again = OMEArrow.scan("s3://public-datasets/ds.ome.parquet", storage_options=options)
    np.testing.assert_array_equal(img.slice_lazy(0, 20, 0, 20).to_numpy(), DATA[..., :20, :20])
    assert again.shape == DATA.shape and not s3_server.lists()
    lines = [r.getMessage() for r in caplog.records if "anonymously" in r.getMessage()]
    assert lines == ["no AWS credentials found: reading s3://public-datasets anonymously (anon=True)"]


@pytest.mark.slow
def test_local_cluster_reads_dataset_and_zarr_without_leaking_secrets(datasets, s3_server, tmp_path):  # noqa: F811
    """Worker processes read a dataset and a sharded zarr from S3; no secret in reprs, explain or the graph."""
    distributed = pytest.importorskip("distributed")
    zarr = pytest.importorskip("zarr")
    group = zarr.open_group(str(tmp_path / "img.ome.zarr"), mode="w", zarr_format=3)
    group.attrs["ome"] = {"version": "0.5", "multiscales": [{"axes": [{"name": n} for n in "tczyx"], "datasets": [
        {"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [1, 1, 1, 1, 1]}]}]}]}
    group.create_array("0", shape=DATA.shape, chunks=CHUNK, shards=(1, 1, 1, 32, 32), dtype="u2")[:] = DATA
    s3_server.upload(tmp_path / "img.ome.zarr", "s3://dataset-tests/img.ome.zarr")
    secret = "s3cr3t-H8-do-not-print"
    options = dict(s3_server.options, secret=secret)  # moto checks no signature: any secret reads
    plans = {
        "dataset": OMEArrow.scan("s3://dataset-tests/ours.ome.parquet", storage_options=options),
        "zarr": OMEArrow.scan("s3://dataset-tests/img.ome.zarr", storage_options=options),
    }
    crops = {name: plan.slice_lazy(4, 30, 3, 37, c_indices=[1]) for name, plan in plans.items()}
    for name, crop in crops.items():
        graph = dict(crop.to_dask().__dask_graph__())
        shown = repr(plans[name]) + plans[name].explain() + repr(crop) + crop.explain() + repr(graph)
        assert secret not in shown, name
        assert secret.encode() in pickle.dumps(graph), name  # it does travel to the workers, only never shown
    with (
        distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster,
        distributed.Client(cluster) as client,
    ):
        for name, crop in crops.items():
            got = client.compute(crop.to_dask()).result()
            np.testing.assert_array_equal(got, DATA[:, 1:2, :, 3:37, 4:30], err_msg=name)
        assert len(set(client.run(__import__("os").getpid).values())) == 2
