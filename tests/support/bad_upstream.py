"""A misbehaving upstream on 127.0.0.1 for retry tests: a raw socket server in a thread that
breaks every connection in one chosen way, and counts what it read.

Modes:
  close_on_accept      accept, then close at once (FIN) without reading
  reset_on_accept      accept, then reset (RST, SO_LINGER 0) without reading
  close_after_request  read the whole request head (and a Content-Length body), then close
  reset_after_request  read the whole request, then reset
  head_then_close      read the request, send a response head promising 100 bytes, then close
  part_then_close      the same, with 10 of the 100 bytes, then close (cut mid-body)
  body_later           a complete answer, its head first and its 5-byte body 0.3 s later
"""

from __future__ import annotations

import socket
import struct
import threading
import time

MODES = ("close_on_accept", "reset_on_accept", "close_after_request", "reset_after_request",
         "head_then_close", "part_then_close", "body_later")


class BadUpstream:
    def __init__(self, mode: str) -> None:
        assert mode in MODES, mode
        self.mode = mode
        self.requests: list[bytes] = []   # request heads read (modes that read)
        self.accepted = 0
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(128)
        self._sock.settimeout(0.2)
        self.port = self._sock.getsockname()[1]
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> BadUpstream:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sock.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self.accepted += 1
            try:
                self._break(conn)
            except OSError:
                pass
            finally:
                conn.close()

    def _break(self, conn: socket.socket) -> None:
        mode = self.mode
        if mode.startswith("reset"):
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        if mode.endswith("on_accept"):
            return
        conn.settimeout(2)
        data = b""
        while b"\r\n\r\n" not in data:
            got = conn.recv(65536)
            if not got:
                return
            data += got
        head, _, body = data.partition(b"\r\n\r\n")
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                want = int(value)
                while len(body) < want:
                    got = conn.recv(65536)
                    if not got:
                        break
                    body += got
        with self._lock:
            self.requests.append(head)
        if mode == "body_later":
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Upstream: later\r\n\r\n")
            time.sleep(0.3)
            conn.sendall(b"hello")
            time.sleep(0.05)
        if mode in ("head_then_close", "part_then_close"):
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")
            time.sleep(0.05)  # the head alone reaches the gateway before the rest
            if mode == "part_then_close":
                conn.sendall(b"x" * 10)
                time.sleep(0.05)
