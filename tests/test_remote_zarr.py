"""OME-Zarr over s3:// (moto server) and http:// (static server): pixels, request budgets, errors.

Request budgets asserted here (counted by the servers):

- open NGFF 0.5 (zarr v3: group + one level): 2 GET, no HEAD, no LIST;
- open NGFF 0.4 (zarr v2) with consolidated metadata: 5 GET (``zarr.json`` 404, ``.zarray`` 404,
  ``.zattrs``, ``.zgroup``, ``.zmetadata``); without: 7 GET (+ the level's ``.zarray``, ``.zattrs``);
- crop: one GET per touched chunk; sharded: one ranged GET per touched inner chunk plus each
  touched shard's index once (cached for later crops); a shard read whole is one GET.
"""

from __future__ import annotations

import json
import logging
import pickle

import numpy as np
import pytest
import zarr
from remote_servers import http_root, http_server, s3_server  # noqa: F401

from ome_arrow_dask import OMEArrow
from ome_arrow_dask.cli import main as cli_main
from ome_arrow_dask.errors import CorruptInputError, RemoteAccessError

pytest.importorskip("fsspec")

SHAPE = (1, 2, 3, 64, 64)
DATA = np.random.default_rng(7).integers(0, 60000, SHAPE).astype("u2")


def _multiscales(version: str, n_levels: int) -> dict:
    return {
        "version": version,
        "axes": [
            {"name": "t", "type": "time"},
            {"name": "c", "type": "channel"},
            *({"name": n, "type": "space", "unit": "micrometer"} for n in "zyx"),
        ],
        "datasets": [
            {"path": str(i), "coordinateTransformations": [{"type": "scale", "scale": [1, 1, 2, 2**i / 2, 2**i / 2]}]}
            for i in range(n_levels)
        ],
    }


def write_ngff(path, version: str, *, consolidated: bool = False, shards: bool = False) -> None:
    """Two levels, chunks (1, 1, 1, 32, 32); NGFF 0.5 optionally sharded (1, 1, 1, 64, 64)."""
    fmt = 3 if version == "0.5" else 2
    group = zarr.open_group(str(path), mode="w", zarr_format=fmt)
    ms = _multiscales(version, 2)
    omero = {"channels": [{"label": "DNA", "color": "0000FF"}, {"label": "actin", "color": "00FF00"}]}
    if fmt == 3:
        group.attrs["ome"] = {"version": "0.5", "multiscales": [ms], "omero": omero}
    else:
        group.attrs.update({"multiscales": [ms], "omero": omero})
    for level, data in enumerate((DATA, DATA[..., ::2, ::2])):
        kwargs = {"shards": (1, 1, 1, 64, 64)} if shards and level == 0 else {}
        array = group.create_array(str(level), shape=data.shape, chunks=(1, 1, 1, 32, 32), dtype="u2", **kwargs)
        array[:] = data
    if consolidated:
        zarr.consolidate_metadata(str(path))


CASES = {
    "v05": {"version": "0.5"},
    "v05_shards": {"version": "0.5", "shards": True},
    "v04": {"version": "0.4"},
    "v04_consolidated": {"version": "0.4", "consolidated": True},
}


@pytest.fixture(scope="module")
def stores(http_root, s3_server):  # noqa: F811
    """Every case written locally under the HTTP root and uploaded to bucket ``zarr-tests``."""
    for name, kwargs in CASES.items():
        write_ngff(http_root / f"{name}.ome.zarr", **kwargs)
    s3_server.upload(http_root, "s3://zarr-tests")
    return http_root


def _remote(kind, name, http_server, s3_server):  # noqa: F811
    if kind == "http":
        return f"{http_server.url}/{name}.ome.zarr", {}, http_server.log
    return f"s3://zarr-tests/{name}.ome.zarr", dict(s3_server.options), s3_server.log


@pytest.mark.parametrize("kind", ["http", "s3"])
@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("level", [0, 1])
def test_remote_pixels_equal_local(stores, http_server, s3_server, kind, case, level):  # noqa: F811
    url, options, _log = _remote(kind, case, http_server, s3_server)
    local = OMEArrow.scan(str(stores / f"{case}.ome.zarr"), level=level)
    remote = OMEArrow.scan(url, storage_options=options, level=level)
    assert remote.shape == local.shape and remote.dtype == local.dtype
    assert remote.meta.physical_size == local.meta.physical_size
    assert [c.name for c in remote.meta.channels] == ["DNA", "actin"]
    np.testing.assert_array_equal(remote.to_numpy(), local.to_numpy())
    crop = remote.slice_lazy(5, 30, 3, 20, c_indices=[1]).to_numpy()
    np.testing.assert_array_equal(crop, local.slice_lazy(5, 30, 3, 20, c_indices=[1]).to_numpy())


@pytest.mark.parametrize("kind", ["http", "s3"])
@pytest.mark.parametrize(("case", "budget"), [("v05", 2), ("v05_shards", 2), ("v04_consolidated", 5), ("v04", 7)])
def test_open_request_budget(stores, http_server, s3_server, kind, case, budget):  # noqa: F811
    url, options, log = _remote(kind, case, http_server, s3_server)
    log.clear()
    OMEArrow.scan(url, storage_options=options)
    requests = log.snapshot()
    assert [r[0] for r in requests] == ["GET"] * budget, requests
    assert not any("list-type" in r[2] for r in requests)


@pytest.mark.parametrize("kind", ["http", "s3"])
def test_crop_is_one_get_per_touched_chunk(stores, http_server, s3_server, kind):  # noqa: F811
    url, options, log = _remote(kind, "v05", http_server, s3_server)
    img = OMEArrow.scan(url, storage_options=options)
    crop = img.slice_lazy(10, 40, 0, 20, c_indices=[1])  # x chunks 0-1, y chunk 0, 3 z: 6 chunks
    assert crop.read_plan.chunks_read == 6
    assert "requests: 6 GET (one per touched chunk" in crop.explain()
    log.clear()
    crop.to_numpy()
    requests = log.snapshot()
    assert len(requests) == 6 and all(r[0] == "GET" and r[3] is None for r in requests), requests
    assert len({r[1] for r in requests}) == 6


@pytest.mark.parametrize("kind", ["http", "s3"])
def test_shard_index_fetched_once_and_inner_chunks_ranged(stores, http_server, s3_server, kind):  # noqa: F811
    url, options, log = _remote(kind, "v05_shards", http_server, s3_server)
    img = OMEArrow.scan(url, storage_options=options)
    first = img.slice_lazy(0, 16, 0, 16, c_indices=[0])  # one inner chunk in each of 3 shards (z)
    assert "at most 3 ranged GET" in first.explain() and "3 shard-index GET" in first.explain()
    log.clear()
    np.testing.assert_array_equal(first.to_numpy(), DATA[:, :1, :, :16, :16])
    requests = log.snapshot()
    suffix = [r for r in requests if r[3] and r[3].startswith("bytes=-")]
    ranged = [r for r in requests if r[3] and not r[3].startswith("bytes=-")]
    assert len(suffix) == 3 and len(ranged) == 3 and len(requests) == 6, requests
    log.clear()
    second = img.slice_lazy(40, 56, 0, 16, c_indices=[0])  # other inner chunks of the same shards
    np.testing.assert_array_equal(second.to_numpy(), DATA[:, :1, :, :16, 40:56])
    requests = log.snapshot()
    assert len(requests) == 3 and all(r[3] and not r[3].startswith("bytes=-") for r in requests), requests


def test_no_list_or_head_on_s3_read_path(stores, s3_server):  # noqa: F811
    s3_server.log.clear()
    img = OMEArrow.scan("s3://zarr-tests/v04.ome.zarr", storage_options=s3_server.options, level=1)
    img.to_numpy()
    assert s3_server.lists() == []
    assert s3_server.log.count("HEAD") == 0


def test_explain_and_repr_hide_secrets(stores, s3_server):  # noqa: F811
    options = dict(s3_server.options, secret="very-secret-value")
    img = OMEArrow.scan("s3://zarr-tests/v05.ome.zarr", storage_options=options)
    for text in (img.explain(), repr(img), repr(img.source)):
        assert "very-secret-value" not in text and "testing" not in text
        assert "s3://zarr-tests/v05.ome.zarr" in text


def test_plan_pickles_with_storage_options(stores, s3_server):  # noqa: F811
    img = OMEArrow.scan("s3://zarr-tests/v05_shards.ome.zarr", storage_options=s3_server.options)
    crop = img.slice_lazy(0, 40, 0, 40)
    again = pickle.loads(pickle.dumps(crop))
    np.testing.assert_array_equal(again.to_numpy(), DATA[..., :40, :40])
    assert again.source.token == crop.source.token


def _damage(http_root, name: str) -> str:  # noqa: F811
    path = http_root / name
    if not path.exists():
        write_ngff(path, "0.4")
    return name


def test_absent_chunk_is_fill_value_unless_strict(http_root, http_server):  # noqa: F811
    name = _damage(http_root, "absent.ome.zarr")
    (http_root / name / "0" / "0.1.0.0.0").unlink(missing_ok=True)
    url = f"{http_server.url}/{name}"
    block = OMEArrow.scan(url).slice_lazy(0, 32, 0, 32, c_indices=[1], z_indices=[0]).to_numpy()
    assert not block.any()  # the fill value, as the Zarr spec reads an absent key
    with pytest.raises(CorruptInputError, match=r"chunk key '0/0\.1\.0\.0\.0' is missing"):
        OMEArrow.scan(url, missing="error").slice_lazy(0, 32, 0, 32, c_indices=[1], z_indices=[0]).to_numpy()


def test_truncated_blosc_chunk_refused(http_root, http_server):  # noqa: F811
    name = _damage(http_root, "truncated.ome.zarr")
    chunk = http_root / name / "0" / "0.0.0.0.0"
    chunk.write_bytes(chunk.read_bytes()[:-20])
    with pytest.raises(CorruptInputError, match="truncated"):
        OMEArrow.scan(f"{http_server.url}/{name}").to_numpy()


def test_oversized_metadata_refused(http_root, http_server, monkeypatch):  # noqa: F811
    from ome_arrow_dask.sources import _ngff

    monkeypatch.setattr(_ngff, "MAX_METADATA_BYTES", 100)
    with pytest.raises(CorruptInputError, match="exceeds the limit"):
        OMEArrow.scan(f"{http_server.url}/{_damage(http_root, 'big.ome.zarr')}")


def test_forbidden_is_a_clear_error(stores, http_server):  # noqa: F811
    http_server.inject(403)
    with pytest.raises(RemoteAccessError, match=r"v05\.ome\.zarr/zarr\.json: access denied.*anon=True"):
        OMEArrow.scan(f"{http_server.url}/v05.ome.zarr")


def test_unknown_remote_name_is_refused(http_server):  # noqa: F811
    from ome_arrow_dask.errors import UnsupportedSourceError

    with pytest.raises(UnsupportedSourceError, match="recognised by name"):
        OMEArrow.scan(f"{http_server.url}/something.xyz")


def test_cli_info_with_storage_options(stores, s3_server, capsys):  # noqa: F811
    argv = ["info", "s3://zarr-tests/v05.ome.zarr", "--storage-option", f"endpoint_url={s3_server.endpoint}",
            "--storage-option", "key=testing", "--storage-option", "secret=testing"]
    assert cli_main(argv) == 0
    out = capsys.readouterr().out
    assert "(1, 2, 3, 64, 64)" in out.replace("T=1, C=2, Z=3, Y=64, X=64", "(1, 2, 3, 64, 64)")


def test_anonymous_fallback_without_credentials(stores, s3_server, monkeypatch, tmp_path, caplog):  # noqa: F811
    from ome_arrow_dask import storage

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setattr(storage, "_ANON_LOGGED", set())
    s3_server.upload(stores / "v05.ome.zarr", "s3://public-bucket/v05.ome.zarr", public=True)
    s3_server.upload(stores / "v04.ome.zarr", "s3://public-bucket/v04.ome.zarr", public=True)
    options = {"endpoint_url": s3_server.endpoint}
    with caplog.at_level(logging.INFO, logger="ome_arrow_dask.storage"):
        img = OMEArrow.scan("s3://public-bucket/v05.ome.zarr", storage_options=options)
        OMEArrow.scan("s3://public-bucket/v04.ome.zarr", storage_options=options)
    np.testing.assert_array_equal(img.to_numpy(), DATA)
    assert img.source._loc.options["anon"] is True
    lines = [r.getMessage() for r in caplog.records if "anonymously" in r.getMessage()]
    assert lines == ["no AWS credentials found: reading s3://public-bucket anonymously (anon=True)"]


def test_explicit_credentials_are_not_replaced_by_anon(s3_server):  # noqa: F811
    from ome_arrow_dask.storage import location

    assert "anon" not in location("s3://zarr-tests/x.zarr", s3_server.options).options
    assert location("s3://b/x.zarr", {"anon": False, "endpoint_url": "http://127.0.0.1:1"}).options["anon"] is False


def test_local_paths_ignore_storage_options(stores):
    img = OMEArrow.scan(str(stores / "v05.ome.zarr"), storage_options={"anon": True})
    assert img.source._loc is None
    np.testing.assert_array_equal(img.to_numpy(), DATA)


def test_json_roundtrip_of_written_attrs(stores):
    doc = json.loads((stores / "v05.ome.zarr" / "zarr.json").read_text())
    assert doc["attributes"]["ome"]["version"] == "0.5"


def test_cli_anon_flag_reads_public_bucket(stores, s3_server, capsys, monkeypatch):  # noqa: F811
    s3_server.upload(stores / "v05.ome.zarr", "s3://public-cli/v05.ome.zarr", public=True)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    argv = ["info", "s3://public-cli/v05.ome.zarr", "--anon", "--storage-option", f"endpoint_url={s3_server.endpoint}"]
    assert cli_main(argv) == 0
    assert "zarr" in capsys.readouterr().out


def test_storage_option_flag_parses_json_values():
    from ome_arrow_dask.cli import _storage_option

    assert _storage_option("anon=true") == ("anon", True)
    assert _storage_option("endpoint_url=http://h:9000") == ("endpoint_url", "http://h:9000")
    assert _storage_option('client_kwargs={"region_name": "eu"}') == ("client_kwargs", {"region_name": "eu"})


def test_missing_remote_extra_names_the_install_hint(monkeypatch):
    import sys

    from ome_arrow_dask import storage

    monkeypatch.setitem(sys.modules, "fsspec", None)
    with pytest.raises(ImportError, match=r"ome-arrow-dask\[remote\]"):
        storage.location("s3://bucket/img.zarr")


def test_server_ignoring_range_is_refused_not_misread(stores, http_server):  # noqa: F811
    img = OMEArrow.scan(f"{http_server.url}/v05_shards.ome.zarr").slice_lazy(0, 16, 0, 16, z_indices=[0])
    http_server._server.ranges = False
    try:
        with pytest.raises(RemoteAccessError, match="does not support range requests"):
            img.to_numpy()
    finally:
        http_server._server.ranges = True
    np.testing.assert_array_equal(img.to_numpy(), DATA[:, :, :1, :16, :16])
