"""A loopback TCP proxy that a test can cut and restore, to make a service unreachable.

Threads, not asyncio, so it works beside any event loop a test runs. ``cut()`` closes the
listening socket (new connections are *refused*) and resets every open connection, which is
what a client sees when a broker host goes away; ``restore()`` listens again on the same port.
``hold()`` keeps the connections open but stops forwarding the server's replies (a broker
that accepted a request and has not answered yet); ``release()`` lets them through.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from dataclasses import dataclass, field

__all__ = ["TcpProxy"]


@dataclass
class TcpProxy:
    target_port: int
    port: int = 0
    connections: int = 0
    _listener: socket.socket | None = field(default=None, repr=False)
    _open: set[socket.socket] = field(default_factory=set, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _replies: threading.Event = field(default_factory=threading.Event, repr=False)

    def __post_init__(self) -> None:
        self._replies.set()

    def start(self) -> TcpProxy:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", self.port))
        s.listen(64)
        self.port = s.getsockname()[1]
        self._listener = s
        threading.Thread(target=self._accept, args=(s,), daemon=True).start()
        return self

    @property
    def is_cut(self) -> bool:
        return self._listener is None

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # listener closed by cut()
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._open.update((client, upstream))
                self.connections += 1
            for a, b, gate in ((client, upstream, None), (upstream, client, self._replies)):
                threading.Thread(target=self._pump, args=(a, b, gate), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, gate: threading.Event | None) -> None:
        try:
            while data := src.recv(65536):
                if gate is not None:
                    gate.wait()
                dst.sendall(data)
        except OSError:
            pass
        finally:
            self._close(src)
            self._close(dst)

    def _close(self, s: socket.socket) -> None:
        with self._lock:
            self._open.discard(s)
        with contextlib.suppress(OSError):
            s.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            s.close()

    def cut(self) -> None:
        """Refuse new connections and reset the open ones."""
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
            self._listener = None
        with self._lock:
            sockets = list(self._open)
        for s in sockets:
            with contextlib.suppress(OSError):
                s.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
                )
            self._close(s)

    def hold(self) -> None:
        """Stop forwarding replies (server -> client); requests still go through."""
        self._replies.clear()

    def release(self) -> None:
        self._replies.set()

    def restore(self) -> None:
        if self._listener is None:
            self.start()

    def stop(self) -> None:
        self.release()
        self.cut()
