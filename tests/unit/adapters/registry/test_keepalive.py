"""Kept-alive registry connections: requests share one, a connection the server closed while idle
is replaced without the caller seeing it, and redirects keep http.py's rule."""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from provenance_tasks.adapters.registry.http import UseTheTool
from provenance_tasks.adapters.registry.keepalive import Pool


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keeps the connection, as registries do
    connections: ClassVar[list[int]] = []

    def setup(self) -> None:
        super().setup()
        Handler.connections.append(id(self.connection))

    def do_GET(self) -> None:
        if self.path.startswith("/elsewhere"):
            self._answer(307, b"", {"Location": "http://other.test/v2/"})
        elif self.path.startswith("/moved"):
            self._answer(307, b"", {"Location": "/v2/"})
        elif self.path.startswith("/quiet-close"):  # closes after answering, without a word
            self._answer(200, b"bye", {})
            self.close_connection = True
        elif self.path.startswith("/drop"):
            self._answer(200, b"last", {"Connection": "close"})
            self.close_connection = True
        else:
            self._answer(200, b"{}", {"Docker-Content-Digest": "sha256:1"})

    do_HEAD = do_GET

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._answer(307, b"", {"Location": "/v2/"})

    def _answer(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in {"Content-Length": str(len(body)), **headers}.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    Handler.connections = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def pool() -> Pool:
    return Pool(ssl.create_default_context)


def test_requests_share_one_kept_connection(server: str) -> None:
    p = pool()
    for _ in range(3):
        answer = p.send("GET", f"{server}/v2/", {}, 5)
        assert (answer.status, answer.read(), answer.getheader("Docker-Content-Digest")) == (
            200,
            b"{}",
            "sha256:1",
        )
    head = p.send("HEAD", f"{server}/v2/", {}, 5)
    assert head.status == 200 and head.read() == b""
    assert len(set(Handler.connections)) == 1


def test_a_connection_the_server_closed_is_replaced(server: str) -> None:
    p = pool()
    assert p.send("GET", f"{server}/drop", {}, 5).read() == b"last"  # said Connection: close
    assert p.send("GET", f"{server}/v2/", {}, 5).status == 200
    assert len(Handler.connections) == 2
    # A kept connection that the server drops while idle: sent again on a new one.
    kept = p._idle[("http", server.removeprefix("http://"))][0]
    assert kept.sock is not None
    kept.sock.shutdown(socket.SHUT_RDWR)
    assert p.send("GET", f"{server}/v2/", {}, 5).status == 200
    assert len(Handler.connections) == 3


def test_a_connection_the_server_closed_while_idle_is_never_used_again(server: str) -> None:
    p = pool()
    assert p.send("GET", f"{server}/quiet-close", {}, 5).read() == b"bye"
    time.sleep(0.2)  # the server's close reaches the kept socket
    # An upload, which is never sent twice: it goes on a new connection from the start.
    assert p.send("POST", f"{server}/v2/uploads/", {}, 5, b"x").status == 307
    assert len(Handler.connections) == 2


def test_a_redirect_within_the_registry_is_followed_for_reads_only(server: str) -> None:
    p = pool()
    assert p.send("GET", f"{server}/moved", {}, 5).status == 200
    assert p.send("POST", f"{server}/v2/uploads/", {}, 5, b"x").status == 307  # the answer
    with pytest.raises(UseTheTool, match=r"other\.test"):
        p.send("GET", f"{server}/elsewhere", {"Authorization": "Basic c2VjcmV0"}, 5)
