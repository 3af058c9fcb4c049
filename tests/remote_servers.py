"""Real servers on 127.0.0.1 for the remote tests: a static HTTP server and an S3 server (moto).

Both count every request (method, path, query, Range header) so tests can assert request
budgets. The HTTP server honours ``Range`` (``bytes=a-b``, ``bytes=a-``, ``bytes=-n``), as
static hosts (nginx, S3 website, GitHub pages) do, and can inject faults: a status code
for the next N requests, or a dropped connection.
"""

from __future__ import annotations

import os
import re
import threading
import urllib.parse
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_RANGE = re.compile(r"bytes=(\d*)-(\d*)$")


@dataclass
class RequestLog:
    """Thread-safe list of (method, path, query, range) tuples, one per request."""

    entries: list[tuple[str, str, str, str | None]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, method: str, path: str, query: str, rng: str | None) -> None:
        with self.lock:
            self.entries.append((method, path, query, rng))

    def clear(self) -> None:
        with self.lock:
            self.entries.clear()

    def snapshot(self) -> list[tuple[str, str, str, str | None]]:
        with self.lock:
            return list(self.entries)

    def count(self, method: str | None = None) -> int:
        return sum(1 for e in self.snapshot() if method is None or e[0] == method)

    def paths(self, method: str | None = None) -> list[str]:
        return [e[1] for e in self.snapshot() if method is None or e[0] == method]


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
        out = []
        for method, path, query, rng in self.log.snapshot():
            parts = path.strip("/").split("/", 1)
            if method == "GET" and (len(parts) == 1 or "list-type" in query or "prefix=" in query):
                out.append((method, path, query, rng))
        return out

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
