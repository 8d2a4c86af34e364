"""The registry client's one way in: HTTP where it can serve, imagetools where it can't (a
credential helper's login, a redirect to another origin), and `Unserved` for what no tool does.

The fallback is command construction, so a fake imagetools stands in for the run's docker here;
the run's own Tools go through a fake docker binary. The real tools take this path in
tests/integration/test_publish.py (a credential helper's login, end to end).
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from provenance_tasks.adapters.registry import Registry, Unserved
from provenance_tasks.errors import ToolError
from provenance_tasks.settings import resolve
from provenance_tasks.steps.run import Run, Tools
from tests.unit.referrers_registry import NAME, image, serving
from tests.unit.referrers_registry import Registry as FakeRegistry

HOST = "registry.example.com"
DIGEST = "sha256:" + "ab" * 32
MANIFEST = "application/vnd.oci.image.manifest.v1+json"


class FakeImagetools:
    """Records what it was asked; answers as imagetools would."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, ...]] = []

    def resolve(self, reference: str) -> str:
        self.asked.append(("resolve", reference))
        return DIGEST

    def manifest(self, reference: str) -> tuple[str, bytes]:
        self.asked.append(("manifest", reference))
        return MANIFEST, b"{}"

    def copy_image(self, source: str, tag: str) -> None:
        self.asked.append(("copy_image", source, tag))


def helper_config(folder: Path) -> Path:
    """A docker config whose logins a credential helper holds: the HTTP client can't read it."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps({"credsStore": "desktop"}))
    return folder


def client(tmp_path: Path) -> tuple[Registry, FakeImagetools]:
    tool = FakeImagetools()
    return Registry(helper_config(tmp_path / "docker"), imagetools=lambda: tool), tool


def test_a_credential_helpers_login_reads_through_imagetools(tmp_path: Path) -> None:
    registry, tool = client(tmp_path)
    assert registry.resolve(f"{HOST}/app:v1") == DIGEST
    assert registry.manifest(f"{HOST}/app@{DIGEST}") == (MANIFEST, b"{}")
    assert tool.asked == [("resolve", f"{HOST}/app:v1"), ("manifest", f"{HOST}/app@{DIGEST}")]


def test_a_credential_helpers_login_publishes_with_an_imagetools_copy(tmp_path: Path) -> None:
    registry, tool = client(tmp_path)
    registry.publish_tag(f"{HOST}/app", DIGEST, "v1", pushed=(MANIFEST, b"{}"))
    assert tool.asked == [("copy_image", f"{HOST}/app@{DIGEST}", f"{HOST}/app:v1")]


def test_what_no_tool_does_is_unserved_with_its_reason(tmp_path: Path) -> None:
    registry, tool = client(tmp_path)
    calls = {
        "push": lambda: registry.push_layout(layout(tmp_path / "layout"), f"{HOST}/app"),
        "blob": lambda: registry.blob(f"{HOST}/app@{DIGEST}"),
        "delete": lambda: registry.delete_tag(f"{HOST}/app", "staging"),
        "api": lambda: registry.has_referrers_api(f"{HOST}/app", DIGEST),
        "list": lambda: registry.referrers_of(f"{HOST}/app", DIGEST),
        "repair": lambda: registry.repair_fallback_index(f"{HOST}/app", DIGEST),
    }
    for name, call in calls.items():
        assert call() == Unserved(HOST), name
    assert tool.asked == []  # imagetools is never asked what it can't do


def test_a_redirect_to_another_origin_reads_through_imagetools(tmp_path: Path) -> None:
    tool = FakeImagetools()
    registry = Registry(tmp_path, imagetools=lambda: tool)  # anonymous: no config.json
    with redirecting() as address:
        assert registry.resolve(f"{address}/{NAME}:v1") == DIGEST
    assert tool.asked == [("resolve", f"{address}/{NAME}:v1")]


def test_where_http_serves_imagetools_is_never_made(tmp_path: Path) -> None:
    def never() -> FakeImagetools:
        raise AssertionError("imagetools was asked though HTTP served")

    registry = Registry(tmp_path, imagetools=never)
    with serving() as address:
        subject = image(FakeRegistry.state)
        reference = f"{address}/{NAME}@{subject['digest']}"
        assert registry.resolve(reference) == subject["digest"]
        media_type, data = registry.manifest(reference)
        assert media_type == MANIFEST and sha256(data) == subject["digest"]


def test_a_client_without_imagetools_says_so_where_http_cannot_serve(tmp_path: Path) -> None:
    registry = Registry(helper_config(tmp_path / "docker"))
    with pytest.raises(ToolError, match="no imagetools to ask"):
        registry.resolve(f"{HOST}/app:v1")


# --- the run's tools ----------------------------------------------------------------------------


@pytest.fixture
def _not_a_git_repository(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)


@pytest.mark.usefixtures("_not_a_git_repository")
def test_the_runs_client_reads_logins_where_the_runs_docker_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """tools.registry reads the run's docker config and falls back through the run's docker:
    `docker --config DIR buildx imagetools inspect`."""
    bin_folder, argv_log = fake_docker(tmp_path)
    env = {"HOME": str(tmp_path), "PATH": f"{bin_folder}:/usr/bin:/bin"}
    monkeypatch.setenv("PATH", env["PATH"])
    config = helper_config(tmp_path / "job-config")
    settings = resolve(None, {"docker_config": str(config), "buildx": "docker"})
    run = Run.start(settings, env, cwd=tmp_path)
    tools = Tools(run)
    assert tools.registry.config_dir == config == tools.docker_config

    assert tools.registry.resolve(f"{HOST}/app:v1") == DIGEST
    assert argv_log.read_text().strip() == (
        f"--config {config} buildx imagetools inspect {HOST}/app:v1 --format {{{{json .Manifest}}}}"
    )
    assert tools.registry.manifest(f"{HOST}/app@{DIGEST}") == (MANIFEST, RAW)
    assert argv_log.read_text().split()[-2:] == ["--raw", f"{HOST}/app@{DIGEST}"]


@pytest.mark.usefixtures("_not_a_git_repository")
def test_the_runs_client_is_made_again_once_the_run_has_its_own_docker_config(
    tmp_path: Path,
) -> None:
    env = {"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    tools = Tools(Run.start(resolve(None, {}), env, cwd=tmp_path))
    assert tools.registry.config_dir is None  # the job's DOCKER_CONFIG, or ~/.docker
    private = tools.private_docker_config()  # the login's folder
    try:
        assert tools.registry.config_dir == private == tools.docker_config
    finally:
        tools.close()


RAW = json.dumps({"schemaVersion": 2, "mediaType": MANIFEST}).encode()


def fake_docker(tmp_path: Path) -> tuple[Path, Path]:
    """A docker on PATH that logs its argv and answers imagetools inspect."""
    folder = tmp_path / "bin"
    folder.mkdir()
    log = tmp_path / "argv"
    (folder / "docker").write_text(
        "#!/bin/sh\n"
        f'echo "$@" > {log}\n'
        'case "$*" in\n'
        f"  *--raw*) printf '%s' '{RAW.decode()}' ;;\n"
        f"  *) printf '%s' '{json.dumps({'digest': DIGEST})}' ;;\n"
        "esac\n"
    )
    (folder / "docker").chmod(0o755)
    return folder, log


def layout(folder: Path) -> Path:
    """An OCI layout of one image: a config and a manifest, no layer."""
    config = b"{}"
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": sha256(config),
                "size": len(config),
            },
            "layers": [],
        }
    ).encode()
    blobs = folder / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    for data in (config, manifest):
        (blobs / sha256(data).removeprefix("sha256:")).write_bytes(data)
    entry = {"mediaType": MANIFEST, "digest": sha256(manifest), "size": len(manifest)}
    (folder / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [entry]}))
    return folder


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class _Redirect(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_HEAD(self) -> None:
        self.send_response(307)
        self.send_header("Location", "http://127.0.0.2:9" + self.path)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_HEAD


@contextmanager
def redirecting() -> Iterator[str]:
    """A registry on loopback (plain HTTP) that redirects every request to another origin."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Redirect)
    threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
    try:
        yield f"127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
