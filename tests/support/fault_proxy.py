"""An HTTP proxy in front of a real storage server (moto's S3, azurite) that answers chosen requests with an error
instead of forwarding them: a 503 on one object's reads, a 403 on every write. Clients (pyarrow, boto3, the Azure
SDK) point their endpoint at the proxy and talk to the real server through it, so only the chosen requests fail.
A `before` hook runs before a request is forwarded: another writer acting on the server just before this one.

    with FaultProxy(moto_s3.endpoint_url) as proxy:
        proxy.fault = lambda method, path: 503 if method == "PUT" else None
"""

from __future__ import annotations

import http.client
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from hack.stack import free_port

Rule = Callable[[str, str], int | None]  # (method, path) → the status to answer with, or None to forward
Hook = Callable[[str, str], None]

# A storage error body in the S3 dialect (moto's, AWS's); the Azure SDK reads the status and x-ms-error-code.
_CODES = {403: "AccessDenied", 404: "NoSuchKey", 500: "InternalError", 503: "SlowDown"}
_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "proxy-connection",
}


def _error_xml(code: str, status: int) -> bytes:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
        f"<Message>injected {status}</Message></Error>"
    ).encode()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    upstream_host: str
    upstream_port: int
    fault: Rule | None = None
    before: Hook | None = None
    seen: list[tuple[str, str]]
    faults: list[tuple[str, str, int]]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the SDKs expect
    server: _Server

    def log_message(self, format, *args) -> None:
        pass

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                pass  # trailers
            return b"".join(chunks)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _answer(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.send_response(status)
        # A HEAD answer has no body but the object's Content-Length: keep the server's.
        keep_length = self.command == "HEAD" and any(n.lower() == "content-length" for n, _ in headers)
        for name, value in headers:
            if name.lower() not in _HOP_BY_HOP and (keep_length or name.lower() != "content-length"):
                self.send_header(name, value)
        if not keep_length:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _inject(self, status: int) -> None:
        self.server.faults.append((self.command, self.path, status))
        code = _CODES.get(status, "Error")
        if self.command == "HEAD":
            # No body, and no Content-Type announcing one: the Azure C++ SDK (pyarrow) would try to parse it.
            self._answer(status, [("x-ms-error-code", code)], b"")
        else:
            headers = [("Content-Type", "application/xml"), ("x-ms-error-code", code)]
            self._answer(status, headers, _error_xml(code, status))

    def _forward(self, body: bytes) -> None:
        server = self.server
        upstream = http.client.HTTPConnection(server.upstream_host, server.upstream_port, timeout=60)
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
            if body or self.command in ("PUT", "POST"):
                headers["Content-Length"] = str(len(body))
            upstream.request(self.command, self.path, body=body or None, headers=headers)
            response = upstream.getresponse()
            self._answer(response.status, response.getheaders(), response.read())
        finally:
            upstream.close()

    def _handle(self) -> None:
        body = self._body()
        self.server.seen.append((self.command, self.path))
        status = self.server.fault(self.command, self.path) if self.server.fault else None
        if status is not None:
            self._inject(status)
            return
        if self.server.before:
            self.server.before(self.command, self.path)
        self._forward(body)

    do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _handle


class FaultProxy:
    """Forwards to `upstream` (http://host:port), except the requests `fault(method, path)` gives a status for."""

    def __init__(self, upstream: str, host: str = "127.0.0.1") -> None:
        parts = urlsplit(upstream)
        self.host, self.port = host, free_port()
        self._server = _Server((host, self.port), _Handler)
        self._server.upstream_host, self._server.upstream_port = parts.hostname, parts.port
        self._server.seen, self._server.faults = [], []
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def fault(self) -> Rule | None:
        return self._server.fault

    @fault.setter
    def fault(self, rule: Rule | None) -> None:
        self._server.fault = rule

    @property
    def before(self) -> Hook | None:
        return self._server.before

    @before.setter
    def before(self, hook: Hook | None) -> None:
        self._server.before = hook

    @property
    def faults(self) -> list[tuple[str, str, int]]:
        """(method, path, status) of every request answered with an injected error."""
        return self._server.faults

    @property
    def seen(self) -> list[tuple[str, str]]:
        return self._server.seen

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
