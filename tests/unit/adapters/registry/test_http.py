"""Reading a manifest digest over the registry's HTTP API: Basic and Bearer logins, the docker
config's credentials, and failures in the words the retry classifier reads."""

from __future__ import annotations

import base64
import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from provenance_tasks.adapters.process import CommandFailed
from provenance_tasks.adapters.registry import http as registry
from provenance_tasks.causes import classify

DIGEST = "sha256:" + "ab" * 32
BASIC = "Basic " + base64.b64encode(b"user:secret").decode()


class Registry(BaseHTTPRequestHandler):
    # Set per test: how the registry asks for a login and what it answers.
    mode: ClassVar[str] = "basic"
    status: ClassVar[int] = 200
    say_digest: ClassVar[bool] = True
    redirect: ClassVar[str | None] = None
    token_body: ClassVar[bytes] = json.dumps({"token": "t0k"}).encode()
    seen: ClassVar[list[tuple[str, str, str | None]]] = []

    def log_message(self, format: str, *args: object) -> None:
        pass

    def answer(self, status: int, headers: dict[str, str], body: bytes = b"") -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def handle_any(self) -> None:
        auth = self.headers.get("Authorization")
        Registry.seen.append((self.command, self.path, auth))
        host = f"http://{self.headers['Host']}"
        if self.path.startswith("/token"):
            ok = auth == BASIC and "scope=repository%3Agroup%2Fapp%3Apull" in self.path
            self.answer(200 if ok else 401, {}, Registry.token_body)
            return
        if Registry.redirect and self.path.startswith("/v2/"):
            target, Registry.redirect = Registry.redirect.replace("HOST", host), None
            self.answer(307, {"Location": target + self.path})
            return
        wanted = {"basic": BASIC, "bearer": "Bearer t0k", "anonymous": None}[self.mode]
        if auth != wanted:
            challenge = (
                'Basic realm="r"'
                if self.mode == "basic"
                else f'Bearer realm="{host}/token",service="reg"'
            )
            self.answer(401, {"WWW-Authenticate": challenge})
            return
        if self.status != 200:
            self.answer(self.status, {})
            return
        manifest = b'{"schemaVersion": 2}'
        digest = DIGEST if self.say_digest else None
        self.answer(200, {"Docker-Content-Digest": digest} if digest else {}, manifest)

    do_HEAD = do_GET = handle_any


@pytest.fixture
def server() -> Iterator[str]:
    Registry.mode, Registry.status, Registry.seen = "basic", 200, []
    Registry.say_digest, Registry.redirect = True, None
    Registry.token_body = json.dumps({"token": "t0k"}).encode()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Registry)
    threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
    yield f"127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def config(tmp_path: Path, host: str, **extra: object) -> Path:
    auth = base64.b64encode(b"user:secret").decode()
    data = {"auths": {host: {"auth": auth}}, **extra}
    (tmp_path / "config.json").write_text(json.dumps(data))
    return tmp_path


@pytest.mark.parametrize("mode", ["basic", "bearer"])
def test_reads_the_digest_with_the_login_the_registry_asks_for(
    server: str, tmp_path: Path, mode: str
) -> None:
    Registry.mode = mode
    found = registry.manifest_digest(f"{server}/group/app:v1", config_dir=config(tmp_path, server))
    assert found == DIGEST
    method, path, _ = Registry.seen[-1]
    assert (method, path) == ("HEAD", "/v2/group/app/manifests/v1")


def test_a_digest_reference_is_read_by_its_digest(server: str, tmp_path: Path) -> None:
    Registry.mode = "anonymous"
    assert registry.manifest_digest(f"{server}/group/app@{DIGEST}", config_dir=tmp_path) == DIGEST
    assert Registry.seen[-1][1] == f"/v2/group/app/manifests/{DIGEST}"


@pytest.mark.parametrize(
    ("status", "kind"),
    [(404, "not-yet-there"), (503, "transient"), (429, "rate-limited"), (403, "permanent")],
)
def test_failures_read_as_the_tools_would_say_them(
    server: str, tmp_path: Path, status: int, kind: str
) -> None:
    Registry.status = status
    with pytest.raises(CommandFailed) as caught:
        registry.manifest_digest(f"{server}/group/app:v1", config_dir=config(tmp_path, server))
    assert classify(caught.value.stderr, caught.value.returncode).kind == kind
    assert "secret" not in caught.value.stderr


def test_a_refused_connection_is_transient(tmp_path: Path) -> None:
    with pytest.raises(CommandFailed) as caught:
        registry.manifest_digest("127.0.0.1:9/group/app:v1", config_dir=tmp_path)
    assert classify(caught.value.stderr, 1).kind == "transient"


@pytest.mark.parametrize(
    "extra", [{"credsStore": "desktop"}, {"credHelpers": {"HOST": "ecr-login"}}]
)
def test_a_credential_helper_leaves_the_read_to_the_tool(
    tmp_path: Path, extra: dict[str, object]
) -> None:
    host = "registry.example.com"
    data = json.loads(json.dumps(extra).replace("HOST", host))
    (tmp_path / "config.json").write_text(json.dumps(data))
    with pytest.raises(registry.UseTheTool):
        registry.manifest_digest(f"{host}/group/app:v1", config_dir=tmp_path)


def test_a_registry_that_names_no_digest_is_counted_from_the_manifest(
    server: str, tmp_path: Path
) -> None:
    import hashlib

    Registry.mode, Registry.say_digest = "anonymous", False
    found = registry.manifest_digest(f"{server}/group/app:v1", config_dir=tmp_path)
    assert found == "sha256:" + hashlib.sha256(b'{"schemaVersion": 2}').hexdigest()


def test_a_login_never_goes_in_the_clear_before_a_challenge(server: str, tmp_path: Path) -> None:
    registry.manifest_digest(f"{server}/group/app:v1", config_dir=config(tmp_path, server))
    first_plain = Registry.seen[0]
    assert first_plain[2] is None  # no Basic header until the registry asked for one


def test_a_redirect_to_another_host_is_not_followed_with_the_login(
    server: str, tmp_path: Path
) -> None:
    Registry.redirect = "http://127.0.0.2:9"
    with pytest.raises(registry.UseTheTool, match=re.escape("redirected to http://127.0.0.2:9")):
        registry.manifest_digest(f"{server}/group/app:v1", config_dir=config(tmp_path, server))


def test_a_redirect_within_the_registry_is_followed(server: str, tmp_path: Path) -> None:
    Registry.mode, Registry.redirect = "anonymous", "HOST"
    assert registry.manifest_digest(f"{server}/group/app:v1", config_dir=tmp_path) == DIGEST


def test_a_token_service_that_answers_no_json_is_a_registry_failure(
    server: str, tmp_path: Path
) -> None:
    Registry.mode, Registry.token_body = "bearer", b"<html>captive portal</html>"
    with pytest.raises(CommandFailed) as caught:
        registry.manifest_digest(f"{server}/group/app:v1", config_dir=config(tmp_path, server))
    assert classify(caught.value.stderr, 1).kind == "transient"


def test_docker_hub_names_get_their_library_prefix() -> None:
    assert registry._split("docker.io/alpine:3", "docker.io") == ("library/alpine", "3")
    assert registry._split("docker.io/org/app@" + DIGEST, "docker.io") == ("org/app", DIGEST)
    assert registry._split("r.example:5000/a/b:t", "r.example:5000") == ("a/b", "t")


def test_a_proxy_from_the_environment_takes_its_requests_through_urllib(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from urllib.parse import urlsplit

    from provenance_tasks.adapters.registry.http import _proxied

    for name in ("https_proxy", "HTTPS_PROXY", "no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    remote = urlsplit("https://registry.example.com/v2/")
    assert not _proxied(remote, False)  # no proxy: the kept-alive pool
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example.com:3128")
    assert _proxied(remote, False)
    assert not _proxied(urlsplit("https://127.0.0.1:5000/v2/"), True)  # never loopback
    monkeypatch.setenv("NO_PROXY", "registry.example.com")
    assert not _proxied(remote, False)
