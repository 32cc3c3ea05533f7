"""Serve the local auth's JWKS over HTTP on loopback, as a project serves
``/auth/v1/.well-known/jwks.json``.

For verifiers that fetch keys by URL (:class:`~pysync.gateway.jwks.JwksKeys`, an app or edge
function pointed at a local stack) and for rotation drills: :meth:`JwksServer.publish`
replaces the served key set at once, as rotating keys in a project's dashboard does.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from pysync.auth.keys import SigningKey, jwks_document

__all__ = ["JwksServer"]

_PATH = "/auth/v1/.well-known/jwks.json"


class JwksServer:
    """A loopback HTTP server answering ``GET /auth/v1/.well-known/jwks.json``."""

    def __init__(self, keys: Iterable[SigningKey] = (), *, port: int = 0) -> None:
        self._body = b""
        self.requests = 0
        self.publish(keys)
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path != _PATH:
                    self.send_error(404)
                    return
                server.requests += 1
                body = server._body
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: no line per request on stderr."""

        self._http = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._thread: threading.Thread | None = None

    def publish(self, keys: Iterable[SigningKey]) -> None:
        """Serve ``keys`` (public parts) from now on."""
        self._body = json.dumps(jwks_document(keys)).encode()

    @property
    def base_url(self) -> str:
        """The project-like base URL (``http://127.0.0.1:<port>``)."""
        return f"http://127.0.0.1:{self._http.server_address[1]}"

    @property
    def url(self) -> str:
        return self.base_url + _PATH

    def start(self) -> JwksServer:
        self._thread = threading.Thread(target=self._http.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._http.shutdown()
        self._http.server_close()
        if self._thread is not None:
            self._thread.join()

    def __enter__(self) -> JwksServer:
        return self.start()

    def __exit__(self, *_exc: Any) -> None:
        self.stop()
