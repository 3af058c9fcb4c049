"""Real servers on 127.0.0.1 for the remote tests: a static HTTP server and an S3 server (moto).

Both count every request (method, path, query, Range header) so tests can assert request
budgets. The HTTP server honours ``Range`` (``bytes=a-b``, ``bytes=a-``, ``bytes=-n``), as
static hosts (nginx, S3 website, GitHub pages) do, and can inject faults: a status code
for the next N requests, or a dropped connection. :class:`~latency_proxy.LatencyProxy`
(re-exported here; fixture ``latency_proxy``) fronts either one with a per-request delay.
"""

from __future__ import annotations

import os
import re
import threading
import urllib.parse
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from latency_proxy import LatencyProxy, RequestLog, request_kind

__all__ = ["HTTPServer", "LatencyProxy", "RequestLog", "S3Server", "request_kind"]

_RANGE = re.compile(r"bytes=(\d*)-(\d*)$")


class _Handler(SimpleHTTPRequestHandler):
    """Static files with Range support, request counting and fault injection."""

    protocol_version = "HTTP/1.1"
    server: _CountingHTTPServer

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _fault(self) -> bool:
        srv = self.server
        with srv.fault_lock:
            if srv.faults:
                status = srv.faults.pop(0)
            else:
                return False
        if status == "drop":
            self.close_connection = True
            self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\npartial")
            self.wfile.flush()
            self.connection.shutdown(2)
            return True
        body = f"injected {status}".encode()
        self.send_response(int(status))
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        return True

    def _serve(self, head: bool) -> None:
        url = urllib.parse.urlsplit(self.path)
        self.server.log.add("HEAD" if head else "GET", urllib.parse.unquote(url.path), url.query,
                            self.headers.get("Range"))
        if self._fault():
            return
        path = self.translate_path(url.path)
        if os.path.isdir(path) and not head:  # an index page, as static hosts with autoindex serve
            listing = self.list_directory(path)
            if listing is not None:
                self.wfile.write(listing.read())
            return
        if not os.path.isfile(path):
            self.send_error(404, "not found")
            return
        size = os.path.getsize(path)
        start, stop, status = 0, size, 200
        rng = self.headers.get("Range") if self.server.ranges else None
        if rng:
            m = _RANGE.match(rng.strip())
            if not m or (not m.group(1) and not m.group(2)):
                self.send_error(416)
                return
            if m.group(1):
                start = int(m.group(1))
                stop = min(size, int(m.group(2)) + 1) if m.group(2) else size
            else:
                start = max(0, size - int(m.group(2)))
            if start >= size:
                self.send_error(416)
                return
            status = 206
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(stop - start))
        self.send_header("Accept-Ranges", "bytes")
        st = os.stat(path)
        self.send_header("ETag", f'"{st.st_mtime_ns:x}-{size:x}"')
        self.send_header("Last-Modified", self.date_time_string(int(st.st_mtime)))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{stop - 1}/{size}")
        self.end_headers()
        if not head:
            with open(path, "rb") as fh:
                fh.seek(start)
                self.wfile.write(fh.read(stop - start))

    def do_GET(self) -> None:
        self._serve(head=False)

    def do_HEAD(self) -> None:
        self._serve(head=True)


class _CountingHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, root: str) -> None:
        self.log = RequestLog()
        self.faults: list[int | str] = []
        self.fault_lock = threading.Lock()
        self.ranges = True  # False: ignore Range headers (answer 200 with the whole file)
        root = os.fspath(root)

        def handler(*args: Any, **kwargs: Any) -> _Handler:
            return _Handler(*args, directory=root, **kwargs)

        super().__init__(("127.0.0.1", 0), handler)


class HTTPServer:
    """A static file server over ``root`` on 127.0.0.1 (started/stopped by a fixture)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self._server = _CountingHTTPServer(os.fspath(root))
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        host, port = self._server.server_address[:2]
        self.url = f"http://{host}:{port}"
        self.log = self._server.log

    def inject(self, *statuses: int | str) -> None:
        """Answer the next requests with these statuses (or ``"drop"``: cut the connection)."""
        with self._server.fault_lock:
            self._server.faults.extend(statuses)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class S3Server:
    """moto's S3 in server mode on 127.0.0.1, behind a WSGI middleware that logs every request."""

    def __init__(self) -> None:
        from moto.server import DomainDispatcherApplication, create_backend_app
        from werkzeug.serving import WSGIRequestHandler, make_server

        class _Quiet(WSGIRequestHandler):
            def log(self, *args: Any, **kwargs: Any) -> None:
                pass

        self.log = RequestLog()
        app = DomainDispatcherApplication(create_backend_app)
        log = self.log

        self.faults: list[int] = []
        self.fault_lock = threading.Lock()
        server = self

        def counting(environ: dict, start_response: Any) -> Any:
            log.add(environ["REQUEST_METHOD"], urllib.parse.unquote(environ.get("PATH_INFO", "")),
                    environ.get("QUERY_STRING", ""), environ.get("HTTP_RANGE"))
            with server.fault_lock:
                status = server.faults.pop(0) if server.faults else None
            if status is not None:
                code = {403: "AccessDenied", 500: "InternalError", 503: "SlowDown"}.get(status, "InternalError")
                body = f"<?xml version='1.0'?><Error><Code>{code}</Code><Message>injected</Message></Error>".encode()
                reason = {403: "Forbidden", 500: "Internal Server Error", 503: "Service Unavailable"}[status]
                start_response(f"{status} {reason}", [("Content-Type", "application/xml"),
                                                      ("Content-Length", str(len(body)))])
                return [body]
            return app(environ, start_response)

        self._server = make_server("127.0.0.1", 0, counting, threaded=True, request_handler=_Quiet)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        self.endpoint = f"http://127.0.0.1:{self._server.server_port}"
        self.options = {"key": "testing", "secret": "testing", "client_kwargs": {"endpoint_url": self.endpoint,
                                                                                "region_name": "us-east-1"}}

    def filesystem(self) -> Any:
        import s3fs

        return s3fs.S3FileSystem(**self.options, skip_instance_cache=True)

    def upload(self, local: str | os.PathLike[str], url: str, *, public: bool = False) -> None:
        """Copy a local file or folder tree to ``s3://bucket/key`` (creating the bucket).

        ``public`` makes the bucket readable without credentials (a bucket policy).
        """
        fs = self.filesystem()
        bucket = url.removeprefix("s3://").split("/")[0]
        if not fs.exists(bucket):
            import boto3

            boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1", aws_access_key_id="testing",
                         aws_secret_access_key="testing").create_bucket(Bucket=bucket)
            fs.invalidate_cache()
        local = os.fspath(local)
        if os.path.isdir(local):
            for folder, _dirs, files in os.walk(local):
                for name in files:
                    rel = os.path.relpath(os.path.join(folder, name), local).replace(os.sep, "/")
                    fs.put_file(os.path.join(folder, name), f"{url.rstrip('/')}/{rel}")
        else:
            fs.put_file(local, url)
        if public:
            import boto3

            policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": "*",
                      "Action": ["s3:GetObject", "s3:ListBucket"],
                      "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"]}]}
            import json

            boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1", aws_access_key_id="testing",
                         aws_secret_access_key="testing").put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))
        self.log.clear()

    def inject(self, *statuses: int) -> None:
        """Answer the next requests with these statuses (403, 500 or 503, with S3 error bodies)."""
        with self.fault_lock:
            self.faults.extend(statuses)

    def lists(self) -> list[tuple[str, str, str, str | None]]:
        """Logged LIST requests (GET on a bucket with a list query or no key)."""
        return [e for e in self.log.snapshot() if request_kind(e[0], e[1], e[2], s3=True) == "LIST"]

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


# -- fixtures (import them into a test module: ``from remote_servers import http_server, s3_server``)
import pytest  # noqa: E402


@pytest.fixture(scope="session")
def s3_server():
    """moto S3 on 127.0.0.1 for the whole session; tests use their own bucket names."""
    pytest.importorskip("moto.server")
    pytest.importorskip("s3fs")
    server = S3Server()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def http_root(tmp_path_factory):
    """The folder the module's HTTP server serves."""
    return tmp_path_factory.mktemp("http_root")


@pytest.fixture(scope="module")
def http_server(http_root):
    """A static HTTP server (Range, counting, faults) over ``http_root`` on 127.0.0.1."""
    pytest.importorskip("aiohttp")
    server = HTTPServer(http_root)
    yield server
    server.stop()


@pytest.fixture
def latency_proxy():
    """Factory: ``latency_proxy(upstream_url, latency_s=0.03, s3=False)`` -> a started
    :class:`~latency_proxy.LatencyProxy`; every one made is stopped after the test."""
    made: list[LatencyProxy] = []

    def make(upstream: str, latency_s: float = 0.03, *, s3: bool = False) -> LatencyProxy:
        proxy = LatencyProxy(upstream, latency_s, s3=s3)
        made.append(proxy)
        return proxy

    yield make
    for proxy in made:
        proxy.stop()


class GCSServer:
    """A GCS emulator (``gcp-storage-emulator``, in memory) on 127.0.0.1; read with gcsfs and ``token="anon"``."""

    def __init__(self) -> None:
        import socket

        from gcp_storage_emulator.server import create_server

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        self._server = create_server("127.0.0.1", port, in_memory=True)
        self._server.start()
        self.endpoint = f"http://127.0.0.1:{port}"
        self.options = {"endpoint_url": self.endpoint, "token": "anon"}

    def upload(self, local: str | os.PathLike[str], url: str) -> None:
        """Copy a local file or folder tree to ``gs://bucket/key`` (creating the bucket).

        Objects go up as raw ``uploadType=media`` bodies: gcsfs sends small files as multipart
        uploads, which the emulator parses with :mod:`email` and so alters binary content.
        """
        import urllib.request

        from gcsfs.core import GCSFileSystem

        fs = GCSFileSystem(**self.options, skip_instance_cache=True)
        bucket, _, prefix = url.removeprefix("gs://").partition("/")
        if not fs.exists(bucket):
            fs.mkdir(bucket)
        local = os.fspath(local)
        files = [(local, prefix)]
        if os.path.isdir(local):
            files = [
                (path, "/".join([prefix.rstrip("/"), os.path.relpath(path, local).replace(os.sep, "/")]))
                for folder, _dirs, names in os.walk(local) for path in (os.path.join(folder, n) for n in names)
            ]
        for path, key in files:
            with open(path, "rb") as fh:
                body = fh.read()
            query = urllib.parse.urlencode({"uploadType": "media", "name": key.lstrip("/")})
            request = urllib.request.Request(f"{self.endpoint}/upload/storage/v1/b/{bucket}/o?{query}", data=body,
                                             headers={"Content-Type": "application/octet-stream"}, method="POST")
            with urllib.request.urlopen(request) as answer:
                assert answer.status == 200, (path, answer.status)

    def stop(self) -> None:
        self._server.stop()


@pytest.fixture(scope="module")
def gcs_server():
    """The GCS emulator on 127.0.0.1 for one test module."""
    pytest.importorskip("gcp_storage_emulator")
    pytest.importorskip("gcsfs")
    server = GCSServer()
    yield server
    server.stop()
