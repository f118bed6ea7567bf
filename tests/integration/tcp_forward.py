"""TCP lines for tests: an address that starts answering later (a service that comes up after its client,
as a broker or a model server in a Helm release), and a line that can be cut (a network partition)."""

from __future__ import annotations

import contextlib
import socket
import threading


def forward_later(port: int, target: str, after_s: float) -> threading.Timer:
    """After `after_s`, accept one connection after another on 127.0.0.1:`port` and pipe each to
    `target` (host:port), until no new connection comes for 30 s."""

    def serve() -> None:
        host, target_port = target.rsplit(":", 1)
        listener = socket.create_server(("127.0.0.1", port))
        listener.settimeout(30)
        with contextlib.suppress(TimeoutError), listener:
            while True:
                client, _ = listener.accept()
                upstream = socket.create_connection((host, int(target_port)))
                for a, b in ((client, upstream), (upstream, client)):
                    threading.Thread(target=_pipe, args=(a, b), daemon=True).start()

    timer = threading.Timer(after_s, serve)
    timer.daemon = True
    timer.start()
    return timer


class CuttableLine:
    """127.0.0.1:`port` piped to `target` (host:port), with the line cut and mended on demand: a network
    partition between one client and its server, while everyone else still reaches the server.

    `cut()` closes every open connection (both ends see them end, as when a partition is finally noticed)
    and turns new ones away until `mend()`."""

    def __init__(self, target: str) -> None:
        host, target_port = target.rsplit(":", 1)
        self.target = (host, int(target_port))
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.open = True
        self.sockets: list[socket.socket] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._serve, name="cuttable-line", daemon=True).start()

    def cut(self) -> None:
        with self.lock:
            self.open = False
            sockets, self.sockets = self.sockets, []
        for s in sockets:
            _close(s)

    def mend(self) -> None:
        with self.lock:
            self.open = True

    def close(self) -> None:
        self.cut()
        self.listener.close()

    def _serve(self) -> None:
        with contextlib.suppress(OSError):  # the listener closed
            while True:
                client, _ = self.listener.accept()
                with self.lock:
                    if not self.open:
                        _close(client)
                        continue
                    upstream = socket.create_connection(self.target)
                    self.sockets += [client, upstream]
                for a, b in ((client, upstream), (upstream, client)):
                    threading.Thread(target=_pipe, args=(a, b), daemon=True).start()


def _pipe(a: socket.socket, b: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := a.recv(65536):
            b.sendall(data)
    for s in (a, b):
        _close(s)


def _close(s: socket.socket) -> None:
    with contextlib.suppress(OSError):
        s.shutdown(socket.SHUT_RDWR)
    s.close()
