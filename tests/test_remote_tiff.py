"""OME-TIFF, TIFF and filename-pattern folders over s3:// (moto server) and http:// (static server).

Requests (counted by the servers): opening a TIFF is 1 HEAD (size and ETag, kept to detect a
changed object) plus ranged GETs of the header and IFDs (64 KiB read-ahead); a crop adds, per
process, 1 HEAD and ranged GETs of the tiles or strips it touches, never the whole file. A
pattern folder is scanned with one LIST plus the first file's header; each file read is a
HEAD (ETag/size check) and ranged GETs.
"""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import tifffile
from remote_servers import http_root, http_server, s3_server  # noqa: F401

from ome_arrow_dask import OMEArrow
from ome_arrow_dask.errors import InconsistentInputError, InputChangedError, RemoteAccessError

pytest.importorskip("fsspec")

STACK = np.random.default_rng(3).integers(0, 999, (2, 3, 16, 16)).astype("u2")
VOLUME = np.random.default_rng(4).integers(0, 60000, (2, 3, 40, 48)).astype("u2")
BIG = np.random.default_rng(5).integers(0, 60000, (512, 512)).astype("u2")


@pytest.fixture(scope="module")
def files(http_root, s3_server):  # noqa: F811
    """Local files under the HTTP root, uploaded to bucket ``tiff-tests``."""
    raw = http_root / "raw"
    raw.mkdir()
    for c in range(2):
        for z in range(3):
            tifffile.imwrite(raw / f"img_ch{c}_z{z}.tif", STACK[c, z])
    tifffile.imwrite(
        http_root / "cells.ome.tif", VOLUME, ome=True, tile=(16, 16),
        metadata={"axes": "CZYX", "PhysicalSizeX": 0.25, "PhysicalSizeY": 0.25, "Channel": {"Name": ["a", "b"]}},
    )
    tifffile.imwrite(http_root / "strips.tif", VOLUME[0], rowsperstrip=8)
    tifffile.imwrite(http_root / "big.tif", BIG, tile=(64, 64))
    s3_server.upload(http_root, "s3://tiff-tests")
    return http_root


def _base(kind, http_server, s3_server):  # noqa: F811
    if kind == "http":
        return http_server.url, {}, http_server.log
    return "s3://tiff-tests", dict(s3_server.options), s3_server.log


@pytest.mark.parametrize("kind", ["http", "s3"])
@pytest.mark.parametrize("name", ["cells.ome.tif", "strips.tif", "big.tif"])
def test_tiff_pixels_and_metadata_equal_local(files, http_server, s3_server, kind, name):  # noqa: F811
    base, options, _ = _base(kind, http_server, s3_server)
    local = OMEArrow.scan(str(files / name))
    remote = OMEArrow.scan(f"{base}/{name}", storage_options=options)
    assert remote.shape == local.shape and remote.meta.physical_size == local.meta.physical_size
    assert remote.meta.channels == local.meta.channels
    np.testing.assert_array_equal(remote.to_numpy(), local.to_numpy())
    np.testing.assert_array_equal(remote.slice_lazy(3, 30, 5, 33).to_numpy(), local.slice_lazy(3, 30, 5, 33).to_numpy())


@pytest.mark.parametrize("kind", ["http", "s3"])
def test_tiff_crop_reads_ranges_not_the_file(files, http_server, s3_server, kind):  # noqa: F811
    base, options, log = _base(kind, http_server, s3_server)
    log.clear()
    img = OMEArrow.scan(f"{base}/big.tif", storage_options=options)
    opened = log.snapshot()
    assert [r[0] for r in opened].count("HEAD") == 1
    log.clear()
    crop = img.slice_lazy(256, 300, 256, 300)  # one 64x64 tile
    assert "one ranged GET per touched tile" in crop.explain()
    np.testing.assert_array_equal(crop.to_numpy()[0, 0, 0], BIG[256:300, 256:300])
    requests = log.snapshot()
    gets = [r for r in requests if r[0] == "GET"]
    assert all(r[3] for r in gets), requests  # every GET is ranged
    fetched = sum(int(b) - int(a) + 1 for a, b in (r[3].removeprefix("bytes=").split("-") for r in gets))
    assert fetched < os.path.getsize(files / "big.tif") / 2, requests
    assert len(requests) <= 4, requests  # HEAD + header + tile (+ read-ahead)


@pytest.mark.parametrize("kind", ["http", "s3"])
def test_pattern_folder_one_listing(files, http_server, s3_server, kind):  # noqa: F811
    base, options, log = _base(kind, http_server, s3_server)
    log.clear()
    img = OMEArrow.scan(f"{base}/raw", pattern="img_ch{c}_z{z}.tif", storage_options=options)
    requests = log.snapshot()
    listings = [r for r in requests if r[1].rstrip("/") in ("/raw", "/tiff-tests")]
    assert len(listings) == 1, requests
    assert len(requests) <= 3, requests  # LIST + the first file's HEAD and header
    np.testing.assert_array_equal(img.to_numpy()[0], STACK)
    assert img.slice_lazy(0, 8, 0, 8, c_indices=[1], z_indices=[2]).to_numpy().shape == (1, 1, 1, 8, 8)
    assert "raw" in img.explain() and "requests: per file read 1 HEAD" in img.explain()


def test_pattern_in_url_name(files, s3_server):  # noqa: F811
    img = OMEArrow.scan("s3://tiff-tests/raw/img_ch{c}_z{z}.tif", storage_options=s3_server.options)
    np.testing.assert_array_equal(img.to_numpy()[0], STACK)


def test_pattern_validate_reads_every_header(files, http_server, tmp_path):  # noqa: F811
    odd = files / "odd"
    odd.mkdir(exist_ok=True)
    tifffile.imwrite(odd / "img_z0.tif", STACK[0, 0])
    tifffile.imwrite(odd / "img_z1.tif", STACK[0, 0, :8])
    with pytest.raises(InconsistentInputError, match=r"img_z1\.tif"):
        OMEArrow.scan(f"{http_server.url}/odd", pattern="img_z{z}.tif", validate=True)


def test_changed_object_is_refused(files, s3_server, tmp_path):  # noqa: F811
    path = tmp_path / "v.tif"
    tifffile.imwrite(path, STACK[0, 0])
    s3_server.upload(path, "s3://tiff-tests/changing/v.tif")
    img = OMEArrow.scan("s3://tiff-tests/changing/v.tif", storage_options=s3_server.options)
    tifffile.imwrite(path, STACK[1, 1])  # same size, other bytes: the ETag changes
    s3_server.upload(path, "s3://tiff-tests/changing/v.tif")
    with pytest.raises(InputChangedError, match="changed since it was opened"):
        img.to_numpy()


def test_tiff_plan_pickles_and_hides_secrets(files, s3_server):  # noqa: F811
    options = dict(s3_server.options, secret="top-secret-123")
    img = OMEArrow.scan("s3://tiff-tests/cells.ome.tif", storage_options=dict(s3_server.options))
    shown = OMEArrow.scan("s3://tiff-tests/cells.ome.tif", storage_options=options)
    assert "top-secret-123" not in shown.explain() + repr(shown)
    again = pickle.loads(pickle.dumps(img.slice_lazy(0, 20, 0, 20)))
    np.testing.assert_array_equal(again.to_numpy(), VOLUME[None, :, :, :20, :20])


def test_missing_object_and_denied(files, http_server):  # noqa: F811
    with pytest.raises(FileNotFoundError, match=r"nothere\.tif"):
        OMEArrow.scan(f"{http_server.url}/nothere.tif")
    http_server.inject(403, 403)  # fsspec's HEAD falls back to a GET
    with pytest.raises(RemoteAccessError, match=r"strips\.tif: access denied"):
        OMEArrow.scan(f"{http_server.url}/strips.tif")
