"""registry_push against the real registry binary (distribution 2.8, Debian's docker-registry),
started alone on loopback over plain HTTP, anonymous and with an htpasswd (Basic) login; crane,
another client, checks what the registry holds.

No dockerd and no test bed: the layout is written by hand as buildx writes one (index.json naming
one index over two platform manifests), with a 5 MB layer both platforms share.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from provenance_tasks.adapters.registry import push as registry_push
from provenance_tasks.causes import classify
from provenance_tasks.errors import CommandFailed
from tests.testbed import registry as registry_bed

pytestmark = pytest.mark.integration

TOOLS = Path(os.environ.get("PROVENANCE_TOOLS", "/opt/provenance-tools"))
CRANE = TOOLS / "bin" / "crane"
INDEX = "application/vnd.oci.image.index.v1+json"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


def missing(what: str) -> None:
    # As conftest.py's missing(): outside CI a missing tool skips, in CI it fails the run.
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what} (CI=true: missing tools fail the run; run ci/install-tools)")
    pytest.skip(f"{what}: run ci/install-tools")


@dataclass(frozen=True)
class Running:
    """A registry of ours, and a docker config folder holding its login (or none)."""

    server: registry_bed.Registry
    config: Path

    @property
    def log(self) -> Path:
        return self.server.service.log

    def crane(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [str(CRANE), "--insecure", *args],
            env={**os.environ, "DOCKER_CONFIG": str(self.config)},
            capture_output=True,
            text=True,
            timeout=60,
        )
        if check:
            assert done.returncode == 0, done.stderr
        return done


@contextlib.contextmanager
def serving(folder: Path, kind: str) -> Iterator[Running]:
    """A registry of `kind` ("anonymous" or "login"), stopped by its PID when done."""
    needed = ["docker-registry", "htpasswd"] if kind == "login" else ["docker-registry"]
    for tool in needed:
        if not (shutil.which(tool) or (tool == "docker-registry" and shutil.which("registry"))):
            missing(f"{tool} is not installed")
    if not CRANE.exists():
        missing(f"crane is not installed at {CRANE}")
    login = ("pusher", "pw-" + uuid.uuid4().hex[:10]) if kind == "login" else None
    server = registry_bed.start(folder / "state", f"push-{kind}", login=login)
    try:
        config = folder / "docker-config"
        config.mkdir()
        auths = {}
        if login:  # as `docker login` stores it: push_layout and crane read the same file
            auths[server.address] = {"auth": base64.b64encode(":".join(login).encode()).decode()}
        (config / "config.json").write_text(json.dumps({"auths": auths}))
        yield Running(server, config)
    finally:
        registry_bed.stop(server)


@pytest.fixture(params=["anonymous", "login"])
def running(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Running]:
    with serving(tmp_path, request.param) as server:
        yield server


@pytest.fixture
def with_login(tmp_path: Path) -> Iterator[Running]:
    with serving(tmp_path, "login") as server:
        yield server


def write_blob(folder: Path, data: bytes, media_type: str, **extra: Any) -> dict[str, Any]:
    hexdigest = hashlib.sha256(data).hexdigest()
    path = folder / "blobs" / "sha256" / hexdigest
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return {"mediaType": media_type, "digest": f"sha256:{hexdigest}", "size": len(data), **extra}


@dataclass(frozen=True)
class Layout:
    folder: Path
    index: str
    index_bytes: bytes
    children: tuple[str, ...]
    blobs: frozenset[str]


def make_layout(folder: Path) -> Layout:
    big = write_blob(folder, os.urandom(5 * 1024 * 1024), LAYER)  # both platforms share it
    entries, blobs = [], {big["digest"]}
    for arch in ("amd64", "arm64"):
        image_config = {
            "architecture": arch,
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": []},
            "config": {"Labels": {"id": uuid.uuid4().hex}},
        }
        config = write_blob(
            folder, json.dumps(image_config).encode(), "application/vnd.oci.image.config.v1+json"
        )
        small = write_blob(folder, os.urandom(4096), LAYER)
        manifest = {
            "schemaVersion": 2,
            "mediaType": MANIFEST,
            "config": config,
            "layers": [big, small],
        }
        platform = {"architecture": arch, "os": "linux"}
        entries.append(
            write_blob(folder, json.dumps(manifest).encode(), MANIFEST, platform=platform)
        )
        blobs |= {config["digest"], small["digest"]}
    index_bytes = json.dumps(
        {"schemaVersion": 2, "mediaType": INDEX, "manifests": entries}, indent=2
    ).encode()
    index = write_blob(folder, index_bytes, INDEX)
    (folder / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [index]}))
    (folder / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    children = tuple(e["digest"] for e in entries)
    return Layout(folder, index["digest"], index_bytes, children, frozenset(blobs))


def access_log(running: Running, method: str, kind: str) -> int:
    """How many `method` requests on /v2/.../`kind` the registry's access log shows."""
    lines = running.log.read_text(errors="replace").splitlines()
    return sum(1 for line in lines if f'"{method} /v2/' in line and f"/{kind}" in line)


def wait_for_log(running: Running, method: str, kind: str, count: int) -> int:
    # The registry writes its access log line as it answers: give it a moment to reach the file.
    deadline = time.monotonic() + 5
    while (found := access_log(running, method, kind)) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return found


def test_push_by_digest_then_publish_the_tag(running: Running, tmp_path: Path) -> None:
    layout = make_layout(tmp_path / "oci")
    repo = f"{running.server.address}/push/app"
    pushed = registry_push.push_layout(layout.folder, repo, config_dir=running.config)
    assert pushed == registry_push.PushedImage(
        repo, layout.index, INDEX, (*layout.children, layout.index)
    )

    # The registry holds the image under its digest, byte for byte.
    assert running.crane("digest", f"{repo}@{layout.index}").stdout.strip() == layout.index
    assert running.crane("manifest", f"{repo}@{layout.index}").stdout.encode() == layout.index_bytes
    for child in layout.children:
        assert running.crane("digest", f"{repo}@{child}").stdout.strip() == child
    assert wait_for_log(running, "PUT", "blobs/uploads", len(layout.blobs)) == len(layout.blobs)

    # ...and under no tag. Distribution 2.8 keeps tags in their own folder, made by the first tag:
    # with none, tags/list answers 404 NAME_UNKNOWN and `crane ls` fails saying so.
    listed = running.crane("ls", repo, check=False)
    assert listed.stdout.strip() == ""
    assert listed.returncode != 0 and "NAME_UNKNOWN" in listed.stderr

    registry_push.publish_tag(repo, pushed.digest, "v1", config_dir=running.config)
    assert running.crane("ls", repo).stdout.split() == ["v1"]
    assert running.crane("digest", f"{repo}:v1").stdout.strip() == layout.index
    assert running.crane("manifest", f"{repo}:v1").stdout.encode() == layout.index_bytes

    # Moving the tag is the same copy of another manifest.
    registry_push.publish_tag(repo, layout.children[0], "v1", config_dir=running.config)
    assert running.crane("digest", f"{repo}:v1").stdout.strip() == layout.children[0]
    registry_push.publish_tag(repo, pushed.digest, "v1", config_dir=running.config)

    # A second push of the same layout finds every blob and uploads none.
    heads = access_log(running, "HEAD", "blobs/")
    opened = access_log(running, "POST", "blobs/uploads")
    again = registry_push.push_layout(layout.folder, repo, config_dir=running.config)
    assert again == pushed
    assert wait_for_log(running, "HEAD", "blobs/", heads + len(layout.blobs)) >= heads + len(
        layout.blobs
    )
    assert access_log(running, "POST", "blobs/uploads") == opened

    # distribution 2.8 cannot delete a tag: DELETE /v2/NAME/manifests/TAG reads the reference as
    # a digest and answers 400 DIGEST_INVALID (with deletes disabled it would be 405 UNSUPPORTED).
    # delete_tag says so with False, and the tag and the image stay.
    assert registry_push.delete_tag(repo, "v1", config_dir=running.config) is False
    assert running.crane("ls", repo).stdout.split() == ["v1"]
    assert running.crane("digest", f"{repo}@{layout.index}").stdout.strip() == layout.index


def test_a_push_without_the_login_is_refused_for_good(with_login: Running, tmp_path: Path) -> None:
    layout = make_layout(tmp_path / "oci")
    nobody = tmp_path / "no-login"
    nobody.mkdir()
    repo = f"{with_login.server.address}/push/app"
    with pytest.raises(CommandFailed) as caught:
        registry_push.push_layout(layout.folder, repo, config_dir=nobody)
    assert classify(caught.value.stderr, caught.value.returncode).kind == "permanent"
    assert "401" in caught.value.stderr


def test_a_publish_of_a_digest_the_registry_lacks_is_not_yet_there(
    running: Running, tmp_path: Path
) -> None:
    repo = f"{running.server.address}/push/app"
    absent = "sha256:" + hashlib.sha256(uuid.uuid4().bytes).hexdigest()
    with pytest.raises(CommandFailed) as caught:
        registry_push.publish_tag(repo, absent, "v1", config_dir=running.config)
    assert classify(caught.value.stderr, 1).kind == "not-yet-there"
    if running.server.password:
        assert running.server.password not in caught.value.stderr
