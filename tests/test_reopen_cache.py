"""Reopening an unchanged store is served from a per-process cache; any change is read afresh.

Covers the opened-node cache of :mod:`ome_arrow_dask.sources.zarr` (keyed by the bytes of
the metadata files) and the opened-dataset cache of
:mod:`ome_arrow_dask.sources._parquet_dataset` (keyed by path and image, validated by each
file's inode, mtime, size and ctime).
"""

from __future__ import annotations

import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import zarr

from ome_arrow_dask import OMEArrow
from ome_arrow_dask.errors import IncompleteOutputError
from ome_arrow_dask.jobs.status import STATUS_KEY
from ome_arrow_dask.lru import LRUCache
from ome_arrow_dask.sources import _parquet_dataset as pds
from ome_arrow_dask.sources import zarr as zsrc
from ome_arrow_dask.sources._parquet_dataset import DatasetSource
from ome_arrow_dask.sources.zarr import ZarrSource


def _image(seed: int, shape: tuple[int, ...] = (1, 2, 3, 16, 16)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 60000, size=shape, dtype=np.uint16)


def _write_ngff(path: Path, data: np.ndarray, status: str | None = None) -> None:
    """A minimal NGFF 0.5 image (zarr v3), optionally carrying our writer's status attribute."""
    root = zarr.open_group(str(path), mode="w", zarr_format=3)
    root.create_array("0", data=data, chunks=(1, 1, 1, 8, 8))
    types = ["time", "channel", "space", "space", "space"]
    axes = [{"name": n, "type": t} for n, t in zip("tczyx", types, strict=True)]
    scale = [{"type": "scale", "scale": [1.0, 1.0, 0.25, 0.25, 0.25]}]
    datasets = [{"path": "0", "coordinateTransformations": scale}]
    ome = {"version": "0.5", "multiscales": [{"axes": axes, "datasets": datasets}]}
    attrs: dict = {"ome": ome}
    if status is not None:
        attrs[STATUS_KEY] = {"status": status}
    root.attrs.update(attrs)


def _crop(path: Path) -> np.ndarray:
    return OMEArrow.scan(str(path)).slice_lazy(2, 10, 4, 12, c_indices=[1]).to_numpy()


@pytest.fixture
def nodes(monkeypatch: pytest.MonkeyPatch) -> LRUCache:
    cache: LRUCache = LRUCache(zsrc.MAX_CACHED_NODES)
    monkeypatch.setattr(zsrc, "_NODES", cache)
    return cache


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> LRUCache:
    cache: LRUCache = LRUCache(pds.MAX_CACHED_OPENS_BYTES, cost=pds._OPENED._cost)
    monkeypatch.setattr(pds, "_OPENED", cache)
    monkeypatch.setattr(pds, "RACY_NS", -(10**12))  # the test's files are seconds old at most: trust them
    return cache


# ----------------------------------------------------------------------------- zarr
def test_zarr_reopen_is_cached_and_rewrite_is_seen(tmp_path: Path, nodes: LRUCache) -> None:
    path = tmp_path / "img.ome.zarr"
    first = _image(1)
    _write_ngff(path, first)
    np.testing.assert_array_equal(_crop(path), first[:, 1:2, :, 4:12, 2:10])
    misses = nodes.info().misses
    np.testing.assert_array_equal(_crop(path), first[:, 1:2, :, 4:12, 2:10])
    assert nodes.info().misses == misses  # the unchanged group and array came from the cache
    assert nodes.info().hits >= 2

    second = _image(2, (1, 2, 3, 24, 24))  # other pixels and another shape
    shutil.rmtree(path)
    _write_ngff(path, second)
    assert ZarrSource(str(path)).meta.shape == (1, 2, 3, 24, 24)
    np.testing.assert_array_equal(_crop(path), second[:, 1:2, :, 4:12, 2:10])


def test_zarr_same_size_metadata_edit_with_restored_mtime_is_seen(tmp_path: Path, nodes: LRUCache) -> None:
    path = tmp_path / "img.ome.zarr"
    _write_ngff(path, _image(3))
    assert ZarrSource(str(path)).meta.physical_size.x == 0.25
    meta = path / "zarr.json"
    st = meta.stat()
    text = meta.read_text()
    assert text.count("0.25") == 3
    meta.write_text(text.replace("0.25", "0.75"))  # same size
    os.utime(meta, ns=(st.st_atime_ns, st.st_mtime_ns))  # same mtime: only the bytes differ
    assert meta.stat().st_size == st.st_size
    assert ZarrSource(str(path)).meta.physical_size.x == 0.75


def test_zarr_status_change_is_never_served_stale(tmp_path: Path, nodes: LRUCache) -> None:
    path = tmp_path / "img.ome.zarr"
    data = _image(4)
    _write_ngff(path, data, status="complete")
    np.testing.assert_array_equal(_crop(path), data[:, 1:2, :, 4:12, 2:10])
    group = zarr.open_group(str(path), mode="r+")
    group.attrs[STATUS_KEY] = {"status": "in_progress"}  # a resumed job reopened the store
    with pytest.raises(IncompleteOutputError):
        ZarrSource(str(path))
    group.attrs[STATUS_KEY] = {"status": "complete"}
    np.testing.assert_array_equal(_crop(path), data[:, 1:2, :, 4:12, 2:10])


def test_zarr_cache_is_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache: LRUCache = LRUCache(3)
    monkeypatch.setattr(zsrc, "_NODES", cache)
    for k in range(4):
        _write_ngff(tmp_path / f"{k}.ome.zarr", _image(k))
        ZarrSource(str(tmp_path / f"{k}.ome.zarr"))
        assert len(cache) <= 3
    assert len(cache) == 3
    assert zsrc._NODES is cache and zsrc.MAX_CACHED_NODES > 0


def test_zarr_source_from_cache_pickles(tmp_path: Path, nodes: LRUCache) -> None:
    path = tmp_path / "img.ome.zarr"
    data = _image(5)
    _write_ngff(path, data)
    ZarrSource(str(path))
    source = ZarrSource(str(path))  # from the cache
    assert nodes.info().hits >= 2
    clone = pickle.loads(pickle.dumps(source))
    assert clone.token == source.token
    np.testing.assert_array_equal(clone.read_chunk((0, 1, 2, 1, 0)), data[:, 1:2, 2:3, 8:16, 0:8])


# ----------------------------------------------------------------------------- Parquet dataset
def _write_dataset(path: Path, data: np.ndarray) -> None:
    OMEArrow(data, dim_order="TCZYX").export("parquet", out=str(path), chunk_shape=(1, 1, 1, 8, 8))


def test_dataset_reopen_is_cached_and_rewrite_is_seen(tmp_path: Path, opened: LRUCache) -> None:
    path = tmp_path / "img.ome.parquet"
    first = _image(6)
    _write_dataset(path, first)
    np.testing.assert_array_equal(_crop(path), first[:, 1:2, :, 4:12, 2:10])
    assert len(opened) == 1
    hits = opened.info().hits
    np.testing.assert_array_equal(_crop(path), first[:, 1:2, :, 4:12, 2:10])
    assert opened.info().hits == hits + 1

    second = _image(7, (1, 2, 3, 24, 24))
    shutil.rmtree(path)
    _write_dataset(path, second)
    assert DatasetSource(str(path)).meta.shape == (1, 2, 3, 24, 24)
    np.testing.assert_array_equal(_crop(path), second[:, 1:2, :, 4:12, 2:10])


def test_dataset_same_size_rewrite_with_restored_mtime_is_seen(tmp_path: Path, opened: LRUCache) -> None:
    """A file rewritten in place to the same size, its mtime put back, still changes its ctime."""
    path = tmp_path / "img.ome.parquet"
    _write_dataset(path, _image(8))
    before = DatasetSource(str(path))
    images = path / "images.parquet"
    st = images.stat()
    raw = images.read_bytes()
    images.write_bytes(b"\0" * len(raw))  # damaged: same size
    os.utime(images, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert images.stat().st_mtime_ns == st.st_mtime_ns and images.stat().st_size == st.st_size
    with pytest.raises(Exception, match=r"images\.parquet"):
        DatasetSource(str(path))
    images.write_bytes(raw)
    assert DatasetSource(str(path)).token == before.token  # tokens use (mtime, size): unchanged by this round trip


def test_dataset_missing_manifest_is_never_served_stale(tmp_path: Path, opened: LRUCache) -> None:
    path = tmp_path / "img.ome.parquet"
    _write_dataset(path, _image(9))
    DatasetSource(str(path))
    assert len(opened) == 1
    os.remove(path / pds.MANIFEST)  # as a resumed conversion does before rewriting
    with pytest.raises(IncompleteOutputError):
        DatasetSource(str(path))


def test_dataset_fresh_files_are_not_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache: LRUCache = LRUCache(pds.MAX_CACHED_OPENS_BYTES, cost=pds._OPENED._cost)
    monkeypatch.setattr(pds, "_OPENED", cache)
    monkeypatch.setattr(pds, "RACY_NS", 10**12)  # every file is "just written": timestamps could not tell a rewrite
    path = tmp_path / "img.ome.parquet"
    _write_dataset(path, _image(10))
    DatasetSource(str(path))
    assert len(cache) == 0


def test_dataset_cache_is_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache: LRUCache = LRUCache(2 * 2**16, cost=pds._OPENED._cost)  # room for two small datasets
    monkeypatch.setattr(pds, "_OPENED", cache)
    monkeypatch.setattr(pds, "RACY_NS", -(10**12))
    for k in range(3):
        _write_dataset(tmp_path / f"{k}.ome.parquet", _image(k))
        DatasetSource(str(tmp_path / f"{k}.ome.parquet"))
    assert len(cache) == 2
    assert cache.info().current_cost <= cache.max_cost


def test_dataset_source_from_cache_is_independent_and_pickles(tmp_path: Path, opened: LRUCache) -> None:
    path = tmp_path / "img.ome.parquet"
    data = _image(11)
    _write_dataset(path, data)
    fresh = DatasetSource(str(path))
    cached = DatasetSource(str(path))
    assert opened.info().hits == 1
    assert cached.token == fresh.token and cached._fingerprints is not fresh._fingerprints
    clone = pickle.loads(pickle.dumps(cached))
    assert clone.token == fresh.token
    np.testing.assert_array_equal(clone.read_chunk((0, 1, 2, 1, 0)), data[:, 1:2, 2:3, 8:16, 0:8])
