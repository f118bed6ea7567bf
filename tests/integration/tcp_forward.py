"""A TCP address that starts answering later: a service that comes up after its client (a broker or a
model server starting together with what uses it, as in a Helm release)."""

from __future__ import annotations

import contextlib
import socket
import threading


def forward_later(port: int, target: str, after_s: float) -> threading.Timer:
    """After `after_s`, accept one connection after another on 127.0.0.1:`port` and pipe each to
    `target` (host:port), until no new connection comes for 30 s."""

    def pipe(a: socket.socket, b: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := a.recv(65536):
                b.sendall(data)
        for s in (a, b):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def serve() -> None:
        host, target_port = target.rsplit(":", 1)
        listener = socket.create_server(("127.0.0.1", port))
        listener.settimeout(30)
        with contextlib.suppress(TimeoutError), listener:
            while True:
                client, _ = listener.accept()
                upstream = socket.create_connection((host, int(target_port)))
                for a, b in ((client, upstream), (upstream, client)):
                    threading.Thread(target=pipe, args=(a, b), daemon=True).start()

    timer = threading.Timer(after_s, serve)
    timer.daemon = True
    timer.start()
    return timer
