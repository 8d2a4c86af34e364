"""The two HTTP calls the package makes itself, against throwaway servers on loopback."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from provenance_tasks.adapters.services import github_id_token, unreachable
from provenance_tasks.errors import ToolError


class Answers(BaseHTTPRequestHandler):
    # Set per test by the fixture: what the server answers, and what it was asked.
    status: ClassVar[int] = 200
    body: ClassVar[dict[str, object]] = {}
    seen: ClassVar[list[tuple[str, str | None]]] = []

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        Answers.seen.append((self.path, self.headers.get("Authorization")))
        payload = json.dumps(self.body).encode()
        self.send_response(self.status)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


@pytest.fixture
def server() -> Iterator[str]:
    Answers.status, Answers.body, Answers.seen = 200, {"value": "minted-token-value"}, []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Answers)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_any_http_answer_is_reachable(server: str) -> None:
    assert unreachable(server) is None
    Answers.status = 503
    assert unreachable(server) is None  # what a 503 means is the retry policy's to judge


def test_a_refused_connection_is_unreachable_after_quick_tries() -> None:
    waits: list[float] = []
    reason = unreachable(f"http://127.0.0.1:{closed_port()}", sleep=waits.append)
    assert reason is not None and "refused" in reason.lower()
    assert waits == [0.5, 0.5]


def test_github_id_token_asks_for_the_audience_with_the_request_token(server: str) -> None:
    token = github_id_token(f"{server}/token?api-version=2.0", "request-secret", "sigstore")
    assert token == "minted-token-value"
    ((path, authorization),) = Answers.seen
    assert path == "/token?api-version=2.0&audience=sigstore"
    assert authorization == "bearer request-secret"


@pytest.mark.parametrize(("status", "body"), [(403, {}), (200, {"count": 0})])
def test_github_id_token_refused_or_empty_is_a_tool_error_without_secrets(
    server: str, status: int, body: dict[str, object]
) -> None:
    Answers.status, Answers.body = status, body
    with pytest.raises(ToolError) as caught:
        github_id_token(f"{server}/token", "request-secret", "sigstore")
    assert "request-secret" not in caught.value.diagnostics()
    assert "id-token: write" in (caught.value.hint or "")


def test_a_registry_that_refuses_connections_is_told_after_quick_tries() -> None:
    import socket

    from provenance_tasks.adapters.services import refuses_connections

    with socket.socket() as probe:  # a port nothing listens on: bound, never listening
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        slept: list[float] = []
        reason = refuses_connections(f"127.0.0.1:{port}", sleep=slept.append)
    assert reason == f"127.0.0.1:{port} refuses connections"
    assert slept == [0.5, 1.0]  # three tries, about 1.5 s of waiting


def test_a_registry_name_that_does_not_resolve_is_told() -> None:
    from provenance_tasks.adapters.services import refuses_connections

    reason = refuses_connections("no-such-registry.invalid:5000", sleep=lambda _: None)
    assert reason is not None and "does not resolve" in reason


def test_a_listening_registry_is_reachable() -> None:
    import socket

    from provenance_tasks.adapters.services import refuses_connections

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        assert refuses_connections(f"127.0.0.1:{server.getsockname()[1]}") is None
