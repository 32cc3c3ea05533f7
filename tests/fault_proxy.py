"""A TCP proxy on loopback that breaks PostgreSQL connections on purpose (network faults of
issue 10). Threads, blocking sockets; one pair of pumps per connection.

Faults, each armed for the next ``times`` requests whose bytes contain ``match`` (the
gateway sends a request as one pipeline: settings, statement and Sync in one write, so the
function's name is in the chunk that carries it):

* ``drop``: close both sides without forwarding the request: the server never sees it.
* ``cut_after_commit``: forward the request, let the server answer it completely (its
  ReadyForQuery: the implicit transaction has committed), then close both sides without
  relaying a byte of the answer to the client: the write is done, the response lost.

and, for every connection: ``delay`` seconds before each chunk of server bytes is relayed,
and ``refuse`` (accept, then close at once: nothing can connect).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time

__all__ = ["FaultProxy"]

# ReadyForQuery: 'Z', length 5, then the transaction status byte.
_READY = b"Z\x00\x00\x00\x05"


class FaultProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self.delay = 0.0
        self.refuse = False
        self._lock = threading.Lock()
        self._armed: list[tuple[str, bytes, int]] = []
        self.fired: dict[str, int] = {"drop": 0, "cut_after_commit": 0}
        self._sockets: set[socket.socket] = set()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True, name="fault-proxy").start()

    # -- control -------------------------------------------------------------------------

    def arm(self, fault: str, *, match: bytes = b"sync_push", times: int = 1) -> None:
        assert fault in self.fired, fault
        with self._lock:
            self._armed.append((fault, match, times))

    def heal(self) -> None:
        """No fault any more (open connections stay open)."""
        with self._lock:
            self._armed.clear()
        self.delay = 0.0
        self.refuse = False

    def sever_all(self) -> None:
        """Close every open connection (as a network partition would)."""
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            _close(sock)

    def close(self) -> None:
        self._closed = True
        _close(self._listener)
        self.sever_all()

    def _take(self, chunk: bytes) -> str | None:
        with self._lock:
            for index, (fault, match, times) in enumerate(self._armed):
                if match in chunk:
                    if times <= 1:
                        del self._armed[index]
                    else:
                        self._armed[index] = (fault, match, times - 1)
                    self.fired[fault] += 1
                    return fault
        return None

    # -- plumbing ------------------------------------------------------------------------

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self.refuse:
                _close(client)
                continue
            try:
                server = socket.create_connection(self.target, timeout=5)
            except OSError:
                _close(client)
                continue
            server.settimeout(None)
            with self._lock:
                self._sockets.update((client, server))
            link = _Link(self, client, server)
            threading.Thread(target=link.upstream, daemon=True).start()
            threading.Thread(target=link.downstream, daemon=True).start()

    def _forget(self, *sockets: socket.socket) -> None:
        with self._lock:
            for sock in sockets:
                self._sockets.discard(sock)
                _close(sock)


class _Link:
    """One client connection and its server connection."""

    def __init__(self, proxy: FaultProxy, client: socket.socket, server: socket.socket) -> None:
        self.proxy = proxy
        self.client = client
        self.server = server
        self.swallowing = threading.Event()  # cut_after_commit: answer goes nowhere
        self.answered = threading.Event()  # downstream is done

    def close(self) -> None:
        self.proxy._forget(self.client, self.server)

    def upstream(self) -> None:
        try:
            while chunk := self.client.recv(65536):
                fault = self.proxy._take(chunk)
                if fault == "drop":
                    break
                if fault == "cut_after_commit":
                    self.swallowing.set()
                self.server.sendall(chunk)
        except OSError:
            pass
        if self.swallowing.is_set():
            # Let the server finish the request it has (downstream closes at its answer),
            # but never leave its connection open: an unfinished transaction would hold
            # its locks (sync_push's advisory lock) for ever.
            self.answered.wait(5.0)
        self.close()

    def downstream(self) -> None:
        tail = b""
        try:
            while chunk := self.server.recv(65536):
                if self.swallowing.is_set():
                    tail = (tail + chunk)[-6:]
                    if tail[:5] == _READY:
                        break  # committed and answered: the client never hears of it
                    continue
                if self.proxy.delay:
                    time.sleep(self.proxy.delay)
                self.client.sendall(chunk)
        except OSError:
            pass
        self.answered.set()
        self.close()


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()
