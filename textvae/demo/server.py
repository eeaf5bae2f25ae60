"""The demo's HTTP side, on the standard library's ``ThreadingHTTPServer``: ``/api/*`` goes to ``DemoApp.handle``
(which runs one model call at a time), ``/`` and ``/static/*`` are the page's files from the package, so the page
and its scripts load while the model works."""

from __future__ import annotations

import contextlib
import json
import sys
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Iterator, Optional
from urllib.parse import urlsplit

from .app import DemoApp

CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                 ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml", ".png": "image/png"}


def static_file(name: str) -> Optional[bytes]:
    """The bytes of the page's file ``name`` (``textvae/demo/static/``, package data); None for any other name."""
    folder = resources.files("textvae.demo") / "static"
    if "/" in name or "\\" in name or name.startswith(".") or not any(name.endswith(s) for s in CONTENT_TYPES):
        return None
    entry = folder / name
    return entry.read_bytes() if entry.is_file() else None


class DemoHandler(BaseHTTPRequestHandler):
    """One request: an API call, a static file, or a JSON 404/405."""

    server_version = "textvae-demo"
    server: "DemoServer"

    def do_GET(self) -> None:  # noqa: N802  (http.server's naming)
        self._dispatch("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        path = urlsplit(self.path).path
        if path.startswith("/api/"):
            body = self._body() if method == "POST" else b""
            if body is None:
                return
            status, payload = self.server.app.handle(method, path, body)
            self._send(status, json.dumps(payload).encode(), "application/json")
            return
        name = "index.html" if path in ("/", "/index.html") else path.removeprefix("/static/")
        data = static_file(name) if path in ("/", "/index.html") or path.startswith("/static/") else None
        if method != "GET" or data is None:
            status = HTTPStatus.METHOD_NOT_ALLOWED if data is not None else HTTPStatus.NOT_FOUND
            self._send(status, json.dumps({"error": f"{status.phrase}: {method} {path}"}).encode(), "application/json")
            return
        self._send(200, data, CONTENT_TYPES[name[name.rindex("."):]])

    def _body(self) -> Optional[bytes]:
        """The POST body; None (after answering 411 or 413) when its length is missing or over the limit."""
        limit = self.server.app.limits.max_body_bytes
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            length = -1
        if length < 0 or length > limit:
            self.close_connection = True  # the body is not read, so the connection cannot be reused
            status, message = ((HTTPStatus.LENGTH_REQUIRED, "a POST needs a Content-Length") if length < 0 else
                               (HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"the request body has {length} bytes, more "
                                f"than {limit}"))
            self._send(status, json.dumps({"error": message}).encode(), "application/json")
            return None
        return self.rfile.read(length)

    def _send(self, status: int, data: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args) -> None:  # noqa: A002  (http.server's signature)
        if not self.server.quiet:
            sys.stderr.write(f"{self.address_string()} {format % args}\n")


class DemoServer(ThreadingHTTPServer):
    """A threaded HTTP server holding the ``DemoApp``; ``quiet`` drops the per-request log lines."""

    daemon_threads = True

    def __init__(self, app: DemoApp, host: str = "127.0.0.1", port: int = 8000, quiet: bool = False) -> None:
        super().__init__((host, port), DemoHandler)
        self.app, self.quiet = app, quiet

    @property
    def url(self) -> str:
        """The page's address (``127.0.0.1`` for a server listening on every interface)."""
        host, port = self.server_address[:2]
        return f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{port}/"


@contextlib.contextmanager
def serving(app: DemoApp, host: str = "127.0.0.1", port: int = 0, quiet: bool = True) -> Iterator[DemoServer]:
    """A ``DemoServer`` answering in a background thread for the block (port 0: a free port; see ``.url``)."""
    server = DemoServer(app, host, port, quiet=quiet)
    thread = threading.Thread(target=server.serve_forever, name="textvae-demo", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
