"""Remote reads over S3 with injected latency (issue 15): ours vs zarr-python, obstore, ome-zarr-py, bioio, ome-arrow.

One process, one moto S3 server on 127.0.0.1, behind ``tests/latency_proxy.py``
(``BENCH_REMOTE_LATENCY_MS``, default 30 ms added to every request), so every reader sees
the same store with the same latency. Every request is counted at the proxy, by kind
(GET, HEAD, LIST). Cases, per dataset (NGFF 0.5, NGFF 0.4 without consolidated
metadata, NGFF 0.5 sharded):

- ``open + 512² crop``: open the image, read its multiscales metadata, read one
  unaligned 512 x 512 crop of one plane of level 0 (3 x 3 chunks of 256²);
- ``browse``: open once, then 10 such crops panning across the plane (each crop
  a separate read, as a viewer would issue them);
- ``store``: zarr-python with the format pinned over ``FsspecStore`` (s3fs) vs
  ``ObjectStore`` (obstore), reading a whole plane (64 chunks): the same requests, so
  the difference is the store's own cost;
- ``parquet``: a 512² crop of an OME-Arrow dataset directory: ours vs ome-arrow 0.1.0's
  ``OMEArrowDataset.read_region``. ome-arrow opens local paths only (``Path.exists``,
  ``pq.read_table(Path)``), so its reader is given fsspec file objects in place of its
  paths (the same code otherwise).

Readers: ours (``OMEArrow.scan(url, storage_options=...)``); zarr direct
(``zarr.open_group(url, storage_options=...)``, FsspecStore); zarr over obstore
(``ObjectStore(S3Store(...))``); ome-zarr-py 0.18 (``parse_url`` + ``Reader``; it passes no
storage options to s3fs, so the endpoint comes from ``AWS_ENDPOINT_URL``); bioio-ome-zarr
(``Reader(url, fs_kwargs=...)``). Clients are made once per reader and kept (warm
connections, as in a session); each timed run opens the image afresh. Each run's pixels
are checked against the source array. Timings: a warm-up run, then rounds run round robin
(median and min; ``cpu_s``: CPU seconds of this process, servers included); requests and
response bytes: those of the last round (they do not vary between rounds).
"""

from __future__ import annotations

import contextlib
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import zarr

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from latency_proxy import LatencyProxy  # noqa: E402
from remote_servers import S3Server  # noqa: E402

from ome_arrow_dask import OMEArrow  # noqa: E402

BUCKET = "bench-remote"
CHUNK = 256
CROP = 512
KEY = "testing"
AXES = [{"name": n, "type": t} for n, t in zip("tczyx", ["time", "channel", "space", "space", "space"], strict=True)]


def _plane(c: int, z: int, size: int) -> np.ndarray:
    y = np.arange(size, dtype=np.uint32)[:, None]
    x = np.arange(size, dtype=np.uint32)[None, :]
    return ((y * 7 + x * 3 + c * 1000 + z * 100) % 4096).astype(np.uint16)


def _volume(shape: tuple[int, ...]) -> np.ndarray:
    _, n_c, n_z, size, _ = shape
    out = np.empty(shape, np.uint16)
    for c in range(n_c):
        for z in range(n_z):
            out[0, c, z] = _plane(c, z, size)
    return out


def _write_ngff(path: Path, data: np.ndarray, version: str, *, sharded: bool = False) -> None:
    """Two levels (level 1 = level 0 every other pixel), chunks 256², NGFF 0.4 (zarr v2) or 0.5 (v3)."""
    fmt = 3 if version == "0.5" else 2
    group = zarr.open_group(str(path), mode="w", zarr_format=fmt)
    datasets = [
        {"path": str(i), "coordinateTransformations": [{"type": "scale", "scale": [1, 1, 1, 2.0**i, 2.0**i]}]}
        for i in range(2)
    ]
    ms = {"version": version, "axes": AXES, "datasets": datasets}
    if fmt == 3:
        group.attrs["ome"] = {"version": "0.5", "multiscales": [ms]}
    else:
        group.attrs["multiscales"] = [ms]
    for level, values in enumerate((data, data[..., ::2, ::2])):
        kwargs: dict[str, Any] = {"chunks": (1, 1, 1, CHUNK, CHUNK)}
        if sharded and level == 0:
            kwargs["shards"] = (1, 1, 1, 4 * CHUNK, 4 * CHUNK)
        if fmt == 2:
            kwargs["chunk_key_encoding"] = {"name": "v2", "separator": "/"}
        array = group.create_array(str(level), shape=values.shape, dtype=values.dtype, **kwargs)
        array[:] = values


# -- readers: open(url) -> handle; crop(handle, c, z, y0, x0) -> 2-D array


def _multiscale_path(attrs: dict) -> str:
    ms = (attrs.get("ome") or attrs)["multiscales"][0]
    return ms["datasets"][0]["path"]


class _Readers:
    """The readers under test, with their clients made once (warm), pointed at the proxy."""

    def __init__(self, proxy_url: str) -> None:
        client = {"endpoint_url": proxy_url, "region_name": "us-east-1"}
        self.options = {"key": KEY, "secret": KEY, "client_kwargs": client}
        self.proxy_url = proxy_url
        self._obstores: dict[str, Any] = {}

    def obstore(self, prefix: str) -> Any:
        if prefix not in self._obstores:
            from obstore.store import S3Store

            self._obstores[prefix] = S3Store(
                BUCKET, prefix=prefix, endpoint=self.proxy_url, access_key_id=KEY, secret_access_key=KEY,
                region="us-east-1", virtual_hosted_style_request=False, client_options={"allow_http": True},
            )
        return self._obstores[prefix]

    def zarr_readers(self) -> dict[str, tuple[Callable[[str], Any], Callable[..., np.ndarray]]]:
        options = self.options

        def ours_open(url: str) -> Any:
            return OMEArrow.scan(url, storage_options=options)

        def ours_crop(img: Any, c: int, z: int, y0: int, x0: int) -> np.ndarray:
            return img.slice_lazy(x0, x0 + CROP, y0, y0 + CROP, c_indices=[c], z_indices=[z]).to_numpy()[0, 0, 0]

        def zarr_open(url: str) -> Any:
            group = zarr.open_group(url, mode="r", storage_options=options)
            return group[_multiscale_path(group.attrs.asdict())]

        def obstore_open(url: str) -> Any:
            from zarr.storage import ObjectStore

            store = ObjectStore(self.obstore(url.split("/", 3)[3]), read_only=True)
            group = zarr.open_group(store, mode="r")
            return group[_multiscale_path(group.attrs.asdict())]

        def array_crop(array: Any, c: int, z: int, y0: int, x0: int) -> np.ndarray:
            return array[0, c, z, y0 : y0 + CROP, x0 : x0 + CROP]

        def ome_zarr_open(url: str) -> Any:
            from ome_zarr.io import parse_url
            from ome_zarr.reader import Reader

            nodes = list(Reader(parse_url(url))())
            return nodes[0].data[0]

        def dask_crop(array: Any, c: int, z: int, y0: int, x0: int) -> np.ndarray:
            return np.asarray(array[0, c, z, y0 : y0 + CROP, x0 : x0 + CROP].compute())

        def bioio_open(url: str) -> Any:
            from bioio_ome_zarr import Reader

            return Reader(url, fs_kwargs=options)

        def bioio_crop(reader: Any, c: int, z: int, y0: int, x0: int) -> np.ndarray:
            return np.asarray(reader.get_image_dask_data("YX", T=0, C=c, Z=z)[y0 : y0 + CROP, x0 : x0 + CROP].compute())

        return {
            "ours": (ours_open, ours_crop),
            "zarr direct (FsspecStore)": (zarr_open, array_crop),
            "zarr + ObjectStore (obstore)": (obstore_open, array_crop),
            "ome-zarr-py Reader": (ome_zarr_open, dask_crop),
            "bioio-ome-zarr Reader": (bioio_open, bioio_crop),
        }


# -- measuring


def _measure(
    proxy: LatencyProxy, funcs: dict[str, Callable[[], object]], rounds: int, check: Callable[[str, object], None]
) -> dict[str, dict[str, Any]]:
    """Warm up (and check) each function, then ``rounds`` round-robin timed runs counting requests."""
    times: dict[str, list[float]] = {name: [] for name in funcs}
    cpu: dict[str, list[float]] = {name: [] for name in funcs}
    requests: dict[str, list[dict[str, int]]] = {name: [] for name in funcs}
    for name, func in funcs.items():
        check(name, func())
    for _ in range(rounds):
        for name, func in funcs.items():
            proxy.clear()
            started, cpu_started = time.perf_counter(), time.process_time()
            func()
            times[name].append(time.perf_counter() - started)
            cpu[name].append(time.process_time() - cpu_started)
            kinds = proxy.kinds()
            requests[name].append({**kinds, "total": sum(kinds.values()), "bytes": proxy.bytes_out})
    out = {}
    for name in funcs:
        seen = requests[name]
        out[name] = {
            "median_s": statistics.median(times[name]),
            "min_s": min(times[name]),
            "cpu_s": statistics.median(cpu[name]),
            "requests": seen[-1],
            **({"requests_varied": seen} if any(r != seen[-1] for r in seen) else {}),
        }
    return out


def _side_by_side(case: str, results: dict[str, dict[str, Any]], baseline: str, **info: Any) -> dict:
    ours, base = results["ours"], results[baseline]
    fewest = min(r["requests"]["total"] for r in results.values())
    return {
        "case": case,
        **info,
        "ours": ours,
        "baseline": {"what": baseline, **base},
        "ratio": ours["median_s"] / base["median_s"],
        "others": {name: r for name, r in results.items() if name not in ("ours", baseline)},
        "ours_fewest_requests": ours["requests"]["total"] <= fewest,
    }


def _put_tree(s3: S3Server, local: Path, prefix: str) -> None:
    """Upload a folder tree under ``s3://BUCKET/prefix`` (straight to the server, not counted)."""
    fs = s3.filesystem()
    fs.put(str(local), f"{BUCKET}/{prefix}", recursive=True)


@contextlib.contextmanager
def _environment(proxy_url: str) -> Iterator[None]:
    """Credentials and endpoint in the environment, for readers that take no storage options (ome-zarr-py)."""
    names = {"AWS_ACCESS_KEY_ID": KEY, "AWS_SECRET_ACCESS_KEY": KEY, "AWS_DEFAULT_REGION": "us-east-1",
             "AWS_ENDPOINT_URL": proxy_url}
    saved = {name: os.environ.get(name) for name in names}
    os.environ.update(names)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _zarr_cases(readers: _Readers, proxy: LatencyProxy, data: np.ndarray, quick: bool, rounds: int) -> list[dict]:
    size = data.shape[-1]
    c, z = 1, data.shape[2] - 1
    y0, x0 = size // 3 + 37, size // 2 + 17
    pan = [(size // 4 + 37 + 96 * i, size // 4 + 17 + 100 * i) for i in range(10)]  # a diagonal pan, 2048² fits
    latency_ms = round(proxy.latency_s * 1000)
    info = {"image": "x".join(map(str, data.shape)) + " uint16", "chunks": f"{CHUNK}²", "latency_ms": latency_ms}
    out = []
    zarr_readers = readers.zarr_readers()
    for name, browse in [("v05", True), ("v04", not quick), ("v05_sharded", not quick)]:
        url = f"s3://{BUCKET}/{name}.ome.zarr"

        def check(reader: str, got: object, boxes: list[tuple[int, int]], url: str = url) -> None:
            arrays = got if isinstance(got, list) else [got]
            for (yy, xx), array in zip(boxes, arrays, strict=True):
                expected = data[0, c, z, yy : yy + CROP, xx : xx + CROP]
                if not np.array_equal(np.asarray(array).reshape(expected.shape), expected):
                    raise AssertionError(f"{reader} read wrong pixels from {url}")

        def one(opener: Callable, crop: Callable, url: str = url) -> Callable[[], object]:
            return lambda: crop(opener(url), c, z, y0, x0)

        def many(opener: Callable, crop: Callable, url: str = url) -> Callable[[], object]:
            def run() -> list[np.ndarray]:
                handle = opener(url)
                return [crop(handle, c, z, yy, xx) for yy, xx in pan]

            return run

        results = _measure(proxy, {k: one(*v) for k, v in zarr_readers.items()}, rounds,
                           lambda r, g: check(r, g, [(y0, x0)]))
        out.append(_side_by_side(f"open + {CROP}² crop, {name}", results, "zarr direct (FsspecStore)",
                                 dataset=name, **info))
        if browse:
            results = _measure(proxy, {k: many(*v) for k, v in zarr_readers.items()}, max(2, rounds - 1),
                               lambda r, g: check(r, g, pan))
            out.append(_side_by_side(f"browse: open + 10 {CROP}² crops, {name}", results,
                                     "zarr direct (FsspecStore)", dataset=name, **info))
    return out


def _store_case(readers: _Readers, proxy: LatencyProxy, data: np.ndarray, rounds: int) -> dict:
    """FsspecStore vs ObjectStore under zarr with the format pinned: the same requests, the store's own cost."""
    from zarr.storage import FsspecStore, ObjectStore

    url = f"s3://{BUCKET}/v05.ome.zarr"
    c, z = 1, data.shape[2] - 1

    def fsspec_plane() -> np.ndarray:
        store = FsspecStore.from_url(url, storage_options=readers.options, read_only=True)
        return zarr.open_array(store, path="0", mode="r", zarr_format=3)[0, c, z]

    def ours_layer_plane() -> np.ndarray:
        from ome_arrow_dask.storage import location

        store = location(url, readers.options).zarr_store()
        return zarr.open_array(store, path="0", mode="r", zarr_format=3)[0, c, z]

    def obstore_plane() -> np.ndarray:
        store = ObjectStore(readers.obstore("v05.ome.zarr"), read_only=True)
        return zarr.open_array(store, path="0", mode="r", zarr_format=3)[0, c, z]

    def check(name: str, got: object) -> None:
        if not np.array_equal(np.asarray(got), data[0, c, z]):
            raise AssertionError(f"{name} read wrong pixels")

    layer = "FsspecStore as ome_arrow_dask.storage configures it (s3fs max_concurrency=1)"
    results = _measure(proxy, {"FsspecStore (s3fs)": fsspec_plane, layer: ours_layer_plane,
                               "ObjectStore (obstore)": obstore_plane}, rounds, check)
    chunks = (data.shape[-1] // CHUNK) ** 2
    return {  # ours = the FsspecStore our storage layer builds (what our reads go through)
        "case": f"store: zarr.open_array(zarr_format=3) + whole plane ({chunks} chunks), FsspecStore vs ObjectStore",
        "latency_ms": round(proxy.latency_s * 1000),
        "ours": {"what": layer, **results[layer]},
        "baseline": {"what": "ObjectStore (obstore 0.12.1)", **results["ObjectStore (obstore)"]},
        "ratio": results[layer]["median_s"] / results["ObjectStore (obstore)"]["median_s"],
        "others": {"FsspecStore (s3fs defaults)": results["FsspecStore (s3fs)"]},
    }


def _ome_arrow_remote_dataset(fs: Any, root: str) -> Any:
    """ome-arrow's ``OMEArrowDataset`` over S3: its ``__init__`` with fsspec file objects for its paths."""
    import pyarrow.parquet as pq
    from ome_arrow.dataset import OMEArrowDataset, OMEArrowPixels

    ds = object.__new__(OMEArrowDataset)
    ds.path = PurePosixPath(root)
    with fs.open(f"{root}/images.parquet", "rb") as fh:
        ds.images = pq.read_table(fh)
    ds._chunks_file = pq.ParquetFile(fs.open(f"{root}/chunks.parquet", "rb"))
    with fs.open(f"{root}/index.parquet", "rb") as fh:  # it tests index_path.exists() first: one more request
        ds.index = pq.read_table(fh)
    ds._image_metadata_by_id = {str(row["image_id"]): row for row in ds.images.to_pylist()}
    ds.pixels = OMEArrowPixels(ds)
    return ds


def _parquet_case(readers: _Readers, proxy: LatencyProxy, data: np.ndarray, rounds: int) -> dict:
    import s3fs

    root = f"{BUCKET}/volume.ome.parquet"
    size = data.shape[-1]
    c, z = 1, data.shape[2] - 1
    y0, x0 = size // 3 + 37, size // 2 + 17
    fs = s3fs.S3FileSystem(**readers.options, skip_instance_cache=True)

    def ours() -> np.ndarray:
        img = OMEArrow.scan(f"s3://{root}", storage_options=readers.options)
        return img.slice_lazy(x0, x0 + CROP, y0, y0 + CROP, c_indices=[c], z_indices=[z]).to_numpy()

    def theirs() -> np.ndarray:
        fs.invalidate_cache()
        ds = _ome_arrow_remote_dataset(fs, root)
        return ds.read_region(y=slice(y0, y0 + CROP), x=slice(x0, x0 + CROP), c=c, z=z)

    def check(name: str, got: object) -> None:
        expected = data[0, c, z, y0 : y0 + CROP, x0 : x0 + CROP]
        if not np.array_equal(np.asarray(got).reshape(expected.shape), expected):
            raise AssertionError(f"{name} read wrong pixels from s3://{root}")

    name = "ome-arrow 0.1.0 OMEArrowDataset.read_region over fsspec file objects"
    results = _measure(proxy, {"ours": ours, name: theirs}, rounds, check)
    return _side_by_side(
        f"parquet: open + {CROP}² crop, dataset dir, chunks {CHUNK}²", results, name, dataset="volume.ome.parquet",
        image="x".join(map(str, data.shape)) + " uint16", latency_ms=round(proxy.latency_s * 1000),
    )


def run(quick: bool) -> list[dict]:
    """All cases; ``quick``: 1x2x2x2048² (browse on NGFF 0.5 only), else 1x2x4x4096² (browse on every store)."""
    shape = (1, 2, 2, 2048, 2048) if quick else (1, 2, 4, 4096, 4096)
    rounds = 3 if quick else 5
    latency_s = float(os.environ.get("BENCH_REMOTE_LATENCY_MS", "30")) / 1000
    data = _volume(shape)
    s3 = S3Server()
    proxy = LatencyProxy(s3.endpoint, latency_s, s3=True)
    try:
        with tempfile.TemporaryDirectory() as tmp, _environment(proxy.url):
            local = Path(tmp)
            (local / "seed").mkdir()
            (local / "seed" / "README").write_text("bench_remote")
            s3.upload(local / "seed", f"s3://{BUCKET}/seed")  # makes the bucket
            for name, version, sharded in [("v05", "0.5", False), ("v04", "0.4", False),
                                           ("v05_sharded", "0.5", True)]:
                _write_ngff(local / f"{name}.ome.zarr", data, version, sharded=sharded)
                _put_tree(s3, local / f"{name}.ome.zarr", f"{name}.ome.zarr")
            OMEArrow(data, dim_order="TCZYX").export("parquet", out=local / "volume.ome.parquet",
                                                     chunk_shape=(1, 1, 1, CHUNK, CHUNK))
            _put_tree(s3, local / "volume.ome.parquet", "volume.ome.parquet")
            readers = _Readers(proxy.url)
            out = _zarr_cases(readers, proxy, data, quick, rounds)
            out.append(_store_case(readers, proxy, data, rounds))
            out.append(_parquet_case(readers, proxy, data, rounds))
    finally:
        proxy.stop()
        s3.stop()
    return out


if __name__ == "__main__":
    import json

    print(json.dumps(run(quick="--quick" in sys.argv), indent=2, default=str))
