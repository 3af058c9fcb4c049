"""The latency proxy of the remote benchmark: counts requests, delays each, passes bytes unchanged."""

from __future__ import annotations

import http.client
import os
import threading
import time

import pytest
from remote_servers import HTTPServer, LatencyProxy, http_root, latency_proxy, s3_server  # noqa: F401

PAYLOAD = os.urandom(100_000)
LATENCY = 0.05


@pytest.fixture(scope="module")
def served(http_root):  # noqa: F811
    (http_root / "blob.bin").write_bytes(PAYLOAD)
    (http_root / "folder").mkdir()
    server = HTTPServer(http_root)
    yield server
    server.stop()


def _request(url: str, method: str, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict, bytes]:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.request(method, path, headers=headers or {})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def test_bytes_status_and_headers_pass_unchanged(served, latency_proxy):  # noqa: F811
    proxy = latency_proxy(served.url, 0.0)
    status, headers, body = _request(proxy.url, "GET", "/blob.bin")
    assert (status, body) == (200, PAYLOAD)
    status, headers, body = _request(proxy.url, "GET", "/blob.bin", {"Range": "bytes=1000-1999"})
    assert (status, body, headers["Content-Range"]) == (206, PAYLOAD[1000:2000], f"bytes 1000-1999/{len(PAYLOAD)}")
    status, headers, body = _request(proxy.url, "HEAD", "/blob.bin")
    assert (status, body, headers["Content-Length"]) == (200, b"", str(len(PAYLOAD)))  # the object's size, not 0
    status, _, _ = _request(proxy.url, "GET", "/absent.bin")
    assert status == 404


def test_counts_every_request_by_kind_as_the_upstream_sees_them(served, latency_proxy):  # noqa: F811
    proxy = latency_proxy(served.url, 0.0)
    served.log.clear()
    _request(proxy.url, "GET", "/blob.bin?x=1", {"Range": "bytes=0-9"})
    _request(proxy.url, "HEAD", "/blob.bin")
    _request(proxy.url, "GET", "/folder/")
    assert proxy.log.snapshot() == [
        ("GET", "/blob.bin", "x=1", "bytes=0-9"),
        ("HEAD", "/blob.bin", "", None),
        ("GET", "/folder/", "", None),
    ]
    assert proxy.kinds() == {"GET": 1, "HEAD": 1, "LIST": 1}
    assert served.log.snapshot() == proxy.log.snapshot()  # forwarded one for one
    assert proxy.bytes_out > 10  # 10 bytes of blob.bin, no body for the HEAD, plus the index page
    proxy.clear()
    assert (proxy.kinds(), proxy.bytes_out) == ({"GET": 0, "HEAD": 0, "LIST": 0}, 0)
    _request(proxy.url, "GET", "/blob.bin", {"Range": "bytes=0-9"})
    _request(proxy.url, "HEAD", "/blob.bin")
    assert proxy.bytes_out == 10


def test_each_request_waits_at_least_the_latency(served, latency_proxy):  # noqa: F811
    proxy = latency_proxy(served.url, LATENCY)
    host, port = proxy.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)  # one kept-alive connection, 3 requests
    try:
        for _ in range(3):
            started = time.perf_counter()
            conn.request("GET", "/blob.bin", headers={"Range": "bytes=0-99"})
            response = conn.getresponse()
            assert response.read() == PAYLOAD[:100]
            assert time.perf_counter() - started >= LATENCY
    finally:
        conn.close()
    proxy.latency_s = 0.0
    started = time.perf_counter()
    _request(proxy.url, "GET", "/blob.bin")
    assert time.perf_counter() - started < LATENCY * 20  # latency can be changed (the bound is loose: shared CI)
    with pytest.raises(ValueError, match="latency_s"):
        proxy.latency_s = -1


def test_requests_on_separate_connections_wait_in_parallel(served, latency_proxy):  # noqa: F811
    proxy = latency_proxy(served.url, 0.4)
    bodies: list[bytes] = []
    threads = [threading.Thread(target=lambda: bodies.append(_request(proxy.url, "GET", "/blob.bin")[2]))
               for _ in range(4)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    assert bodies == [PAYLOAD] * 4
    assert 0.4 <= elapsed < 1.2  # serially it would be >= 1.6 s


def test_s3_through_the_proxy_signed_requests_reads_writes_and_lists(s3_server, latency_proxy):  # noqa: F811
    s3fs = pytest.importorskip("s3fs")
    import boto3

    boto3.client("s3", endpoint_url=s3_server.endpoint, region_name="us-east-1", aws_access_key_id="testing",
                 aws_secret_access_key="testing").create_bucket(Bucket="proxy-tests")
    proxy = latency_proxy(s3_server.endpoint, LATENCY, s3=True)
    fs = s3fs.S3FileSystem(key="testing", secret="testing", skip_instance_cache=True,
                           client_kwargs={"endpoint_url": proxy.url, "region_name": "us-east-1"})
    started = time.perf_counter()
    fs.pipe_file("proxy-tests/a/blob.bin", PAYLOAD)  # a PUT through the proxy
    assert time.perf_counter() - started >= LATENCY
    assert s3_server.filesystem().cat_file("proxy-tests/a/blob.bin") == PAYLOAD  # stored unchanged
    proxy.log.clear()
    assert fs.cat_file("proxy-tests/a/blob.bin", start=10, end=5010) == PAYLOAD[10:5010]
    assert fs.ls("proxy-tests/a", detail=False) == ["proxy-tests/a/blob.bin"]
    kinds = proxy.kinds()
    assert kinds["LIST"] == 1 and kinds["GET"] >= 1
    assert [e for e in proxy.log.snapshot() if e[3]] == [("GET", "/proxy-tests/a/blob.bin", "", "bytes=10-5009")]


def test_fronts_loopback_servers_only():
    with pytest.raises(ValueError, match="loopback"):
        LatencyProxy("http://example.com:80")
    with pytest.raises(ValueError, match="latency_s"):
        LatencyProxy("http://127.0.0.1:9", -0.1)
