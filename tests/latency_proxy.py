"""A latency-injecting, request-counting HTTP reverse proxy on 127.0.0.1.

Put it in front of the test servers (:class:`remote_servers.S3Server`,
:class:`remote_servers.HTTPServer`) to make a local store behave like a cloud one: every
request waits ``latency_s`` before it is forwarded (the first-byte latency of S3 or GCS is
20-200 ms), and is logged (method, path, query, Range) so a benchmark or a test can count
GET, HEAD and LIST requests as a client made them. Bytes pass through unchanged, headers
too (``Host`` included, so signed S3 requests stay valid), except the hop-by-hop ones.
Standard library only; no pytest, so benchmarks import it too.
"""

from __future__ import annotations

import http.client
import threading
import time
import urllib.parse
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["LatencyProxy", "RequestLog", "request_kind"]

_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers",
     "transfer-encoding", "upgrade", "expect"}
)
_LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


@dataclass
class RequestLog:
    """Thread-safe list of (method, path, query, range) tuples, one per request."""

    entries: list[tuple[str, str, str, str | None]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, method: str, path: str, query: str, rng: str | None) -> None:
        """Record one request."""
        with self.lock:
            self.entries.append((method, path, query, rng))

    def clear(self) -> None:
        """Forget every request recorded so far."""
        with self.lock:
            self.entries.clear()

    def snapshot(self) -> list[tuple[str, str, str, str | None]]:
        """A copy of the entries."""
        with self.lock:
            return list(self.entries)

    def count(self, method: str | None = None) -> int:
        """Requests with ``method`` (all when None)."""
        return sum(1 for e in self.snapshot() if method is None or e[0] == method)

    def paths(self, method: str | None = None) -> list[str]:
        """Paths of the requests with ``method`` (all when None)."""
        return [e[1] for e in self.snapshot() if method is None or e[0] == method]

    def kinds(self, *, s3: bool) -> dict[str, int]:
        """Requests by :func:`request_kind`: ``{"GET": n, "HEAD": n, "LIST": n, ...}`` (zeros included)."""
        counts = Counter(request_kind(m, p, q, s3=s3) for m, p, q, _ in self.snapshot())
        return {"GET": counts.pop("GET", 0), "HEAD": counts.pop("HEAD", 0), "LIST": counts.pop("LIST", 0), **counts}


def request_kind(method: str, path: str, query: str, *, s3: bool) -> str:
    """``"LIST"`` for a listing, else the method.

    S3: a GET on the bucket itself or with a list query (``list-type``, ``prefix=``).
    Plain HTTP: a GET of a folder (a path ending in ``/``: an index page).

    >>> request_kind("GET", "/bucket", "list-type=2&prefix=a%2F", s3=True)
    'LIST'
    >>> request_kind("GET", "/bucket/img.zarr/zarr.json", "", s3=True), request_kind("GET", "/data/", "", s3=False)
    ('GET', 'LIST')
    """
    if method != "GET":
        return method
    if s3:
        parts = path.strip("/").split("/", 1)
        return "LIST" if len(parts) == 1 or "list-type" in query or "prefix=" in query else "GET"
    return "LIST" if path.endswith("/") else "GET"


class _ProxyHandler(BaseHTTPRequestHandler):
    """Forward one client connection's requests to the upstream over one kept-alive connection."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _ProxyServer
    _upstream: http.client.HTTPConnection | None = None

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _body(self) -> bytes | None:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            parts = []
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):  # trailers
                        pass
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        length = self.headers.get("Content-Length")
        return self.rfile.read(int(length)) if length else None

    def _forward(self, body: bytes | None) -> http.client.HTTPResponse:
        srv = self.server
        for attempt in (1, 2):  # a kept-alive upstream connection may have been closed meanwhile
            if self._upstream is None:
                self._upstream = http.client.HTTPConnection(srv.upstream_host, srv.upstream_port, timeout=60)
            conn = self._upstream
            try:
                conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
                for name, value in self.headers.items():
                    if name.lower() not in _HOP_BY_HOP and name.lower() != "content-length":
                        conn.putheader(name, value)
                if body is not None:
                    conn.putheader("Content-Length", str(len(body)))
                conn.endheaders(body)
                return conn.getresponse()
            except (ConnectionError, http.client.RemoteDisconnected, http.client.CannotSendRequest):
                conn.close()
                self._upstream = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _handle(self) -> None:
        srv = self.server
        url = urllib.parse.urlsplit(self.path)
        srv.log.add(self.command, urllib.parse.unquote(url.path), url.query, self.headers.get("Range"))
        body = self._body()
        if srv.latency_s > 0:
            time.sleep(srv.latency_s)
        try:
            response = self._forward(body)
            data = response.read()
        except OSError as exc:
            message = f"proxy: upstream failed: {exc}".encode()
            self.send_response_only(502)
            self.send_header("Content-Length", str(len(message)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(message)
            return
        self.send_response_only(response.status, response.reason)
        for name, value in response.getheaders():
            lower = name.lower()
            if lower in _HOP_BY_HOP or (lower == "content-length" and self.command != "HEAD"):
                continue
            self.send_header(name, value)
        if self.command != "HEAD":
            self.send_header("Content-Length", str(len(data)))
        if response.will_close and self._upstream is not None:  # the client's connection stays open, as at a CDN
            self._upstream.close()
            self._upstream = None
        # headers and body in one write: two small writes meet the client's delayed ACK (40 ms stalls)
        self._headers_buffer.append(b"\r\n")
        head, self._headers_buffer = b"".join(self._headers_buffer), []
        if self.command != "HEAD":  # counted before the client can see the answer (and read the counter)
            with srv.log.lock:
                srv.bytes_out += len(data)
        self.wfile.write(head if self.command == "HEAD" else head + data)

    def finish(self) -> None:
        super().finish()
        if self._upstream is not None:
            self._upstream.close()

    do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = do_PATCH = do_OPTIONS = _handle


class _ProxyServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, upstream_host: str, upstream_port: int, latency_s: float) -> None:
        self.upstream_host = upstream_host
        self.upstream_port = upstream_port
        self.latency_s = latency_s
        self.log = RequestLog()
        self.bytes_out = 0
        super().__init__(("127.0.0.1", 0), _ProxyHandler)


class LatencyProxy:
    """A reverse proxy on 127.0.0.1 in front of ``upstream`` that delays and counts every request.

    Each request is held ``latency_s`` seconds before it is forwarded (requests on
    separate connections wait in parallel, as on a real network), then answered with the
    upstream's status, headers and bytes unchanged.

    Parameters
    ----------
    upstream
        ``http://127.0.0.1:PORT`` of the server to front (loopback only).
    latency_s
        Delay added to every request, in seconds (change it later through :attr:`latency_s`).
    s3
        Classify listings the S3 way in :meth:`kinds` (else the static-HTTP way).

    Examples
    --------
    Put it in front of the moto server and point s3fs at it::

        proxy = LatencyProxy(s3_server.endpoint, latency_s=0.03, s3=True)
        fs = s3fs.S3FileSystem(key="testing", secret="testing", client_kwargs={"endpoint_url": proxy.url})
    """

    def __init__(self, upstream: str, latency_s: float = 0.03, *, s3: bool = False) -> None:
        parts = urllib.parse.urlsplit(upstream)
        if parts.scheme != "http" or parts.hostname not in _LOCAL_HOSTS or parts.port is None:
            raise ValueError(f"LatencyProxy fronts loopback http://127.0.0.1:PORT servers only, got {upstream!r}")
        if latency_s < 0:
            raise ValueError(f"latency_s must be >= 0, got {latency_s}")
        self.s3 = s3
        self._server = _ProxyServer(parts.hostname, parts.port, latency_s)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        host, port = self._server.server_address[:2]
        self.url = f"http://{host}:{port}"
        self.log = self._server.log

    @property
    def latency_s(self) -> float:
        """Seconds added to each request."""
        return self._server.latency_s

    @latency_s.setter
    def latency_s(self, value: float) -> None:
        if value < 0:
            raise ValueError(f"latency_s must be >= 0, got {value}")
        self._server.latency_s = value

    @property
    def bytes_out(self) -> int:
        """Response body bytes sent to clients so far (since the last :meth:`clear`)."""
        with self.log.lock:
            return self._server.bytes_out

    def clear(self) -> None:
        """Forget the requests and bytes counted so far."""
        with self.log.lock:
            self.log.entries.clear()
            self._server.bytes_out = 0

    def kinds(self) -> dict[str, int]:
        """Requests so far by kind: ``{"GET": n, "HEAD": n, "LIST": n, ...}`` (see :func:`request_kind`)."""
        return self.log.kinds(s3=self.s3)

    def stop(self) -> None:
        """Stop serving and close the listening socket."""
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> LatencyProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
