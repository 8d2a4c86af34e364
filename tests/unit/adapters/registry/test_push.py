"""Pushing an OCI layout by digest, publishing and deleting tags, against an in-process registry
that keeps what it is sent: which requests go out, in which order, and how failures read."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from provenance_tasks.adapters.registry import push as registry_push
from provenance_tasks.adapters.registry.http import UseTheTool
from provenance_tasks.causes import classify
from provenance_tasks.errors import CommandFailed, InputError, ToolError

NAME = "group/app"
BASIC = "Basic " + base64.b64encode(b"user:s3cret-pw").decode()
TOKEN = "tok3n-value-"
INDEX = "application/vnd.oci.image.index.v1+json"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"


@dataclass
class Seen:
    method: str
    path: str
    auth: str | None
    content_type: str | None
    body: bytes


@dataclass
class State:
    """What the fake registry does (set per test) and what it holds and saw."""

    mode: str = "anonymous"  # or "basic", "bearer"
    location: str = "relative"  # or "absolute", "query", "elsewhere"
    fail: dict[str, tuple[int, str]] = field(default_factory=dict)  # "POST uploads": (503, "")
    delete_status: int = 202
    wrong_digest: bool = False  # answer a Docker-Content-Digest that isn't the content's
    token_uses: int | None = None  # a token expires after this many requests
    retry_after: str | None = None  # sent with every error answer
    blobs: dict[str, bytes] = field(default_factory=dict)
    manifests: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    tokens: int = 0
    valid: str | None = None
    uses_left: int | None = None


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Registry(BaseHTTPRequestHandler):
    state: ClassVar[State] = State()

    def log_message(self, format: str, *args: object) -> None:
        pass

    def answer(self, status: int, headers: dict[str, str] | None = None, body: bytes = b"") -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def error(self, status: int, code: str) -> None:
        body = json.dumps({"errors": [{"code": code, "message": "the fake says no"}]})
        headers = {"Content-Type": "application/json"}
        if Registry.state.retry_after is not None:
            headers["Retry-After"] = Registry.state.retry_after
        self.answer(status, headers, body.encode())

    def handle_any(self) -> None:
        st = Registry.state
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        auth = self.headers.get("Authorization")
        st.seen.append(Seen(self.command, self.path, auth, self.headers.get("Content-Type"), body))
        host = f"http://{self.headers['Host']}"
        url = urllib.parse.urlsplit(self.path)
        if url.path == "/token":
            self.token(auth, urllib.parse.parse_qs(url.query))
            return
        if not self.authorized(auth):
            challenge = (
                'Basic realm="fake"'
                if st.mode == "basic"
                # The challenge names the pull scope: a push must ask for more itself.
                else f'Bearer realm="{host}/token",service="fake",scope="repository:{NAME}:pull"'
            )
            self.answer(401, {"WWW-Authenticate": challenge})
            return
        prefix = f"/v2/{NAME}/"
        rest = url.path.removeprefix(prefix)
        kind = rest.split("/")[1] if rest.startswith("blobs/uploads") else rest.split("/")[0]
        failure = st.fail.get(f"{self.command} {kind}")
        if failure and failure[1]:
            self.error(*failure)
            return
        if failure:
            self.answer(failure[0])
            return
        if rest == "blobs/uploads/" and self.command == "POST":
            where = {
                "relative": f"{prefix}blobs/uploads/u1",
                "absolute": f"{host}{prefix}blobs/uploads/u1",
                "query": f"{prefix}blobs/uploads/u1?_state=opaque%3D",
                "elsewhere": f"http://127.0.0.2:9{prefix}blobs/uploads/u1",
            }[st.location]
            self.answer(202, {"Location": where})
        elif rest.startswith("blobs/uploads/") and self.command == "PUT":
            wanted = urllib.parse.parse_qs(url.query)["digest"][0]
            if digest(body) != wanted:
                self.error(400, "DIGEST_INVALID")
                return
            st.blobs[wanted] = body
            self.answer(201, {"Docker-Content-Digest": wanted})
        elif rest.startswith("blobs/"):
            found = st.blobs.get(rest.split("/", 1)[1])
            if found is None:
                self.error(404, "BLOB_UNKNOWN")
            else:
                self.answer(200, {"Docker-Content-Digest": digest(found)}, found)
        elif rest.startswith("manifests/"):
            self.manifest(rest.split("/", 1)[1], body)
        else:
            self.error(404, "NAME_UNKNOWN")

    def manifest(self, ref: str, body: bytes) -> None:
        st = Registry.state
        if self.command == "PUT":
            content = json.loads(body)
            # As distribution does: what a manifest references must be there first.
            needed = [d["digest"] for d in content.get("manifests", [])]
            known = {**st.manifests, **st.blobs}
            needed += [
                d["digest"]
                for d in [content.get("config"), *content.get("layers", [])]
                if d and not d.get("urls")
            ]
            if any(d not in known for d in needed):
                self.error(400, "MANIFEST_BLOB_UNKNOWN")
                return
            if ref.startswith("sha256:") and digest(body) != ref:
                self.error(400, "DIGEST_INVALID")
                return
            entry = (body, self.headers.get("Content-Type") or "")
            st.manifests[ref] = st.manifests[digest(body)] = entry
            said = "sha256:" + "0" * 64 if st.wrong_digest else digest(body)
            self.answer(201, {"Docker-Content-Digest": said})
        elif self.command == "DELETE":
            if st.delete_status == 202:
                st.manifests.pop(ref, None)
                self.answer(202)
            else:
                self.error(st.delete_status, "UNSUPPORTED")
        elif ref in st.manifests:
            data, media_type = st.manifests[ref]
            self.answer(
                200, {"Content-Type": media_type, "Docker-Content-Digest": digest(data)}, data
            )
        else:
            self.error(404, "MANIFEST_UNKNOWN")

    def authorized(self, auth: str | None) -> bool:
        st = Registry.state
        if st.mode == "anonymous":
            return True
        if st.mode == "basic":
            return auth == BASIC
        if auth != f"Bearer {st.valid}" or st.uses_left == 0:
            return False
        if st.uses_left is not None:
            st.uses_left -= 1
        return True

    def token(self, auth: str | None, query: dict[str, list[str]]) -> None:
        st = Registry.state
        if auth != BASIC or query.get("scope", [""])[0] not in (
            f"repository:{NAME}:pull,push",
            f"repository:{NAME}:delete",
        ):
            self.answer(401)
            return
        st.tokens += 1
        st.valid, st.uses_left = f"{TOKEN}{st.tokens}", st.token_uses
        self.answer(200, {}, json.dumps({"token": st.valid}).encode())

    do_HEAD = do_GET = do_POST = do_PUT = do_DELETE = handle_any


@pytest.fixture
def server() -> Iterator[str]:
    Registry.state = State()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Registry)
    threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
    yield f"127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def login(tmp_path: Path, host: str) -> Path:
    auth = base64.b64encode(b"user:s3cret-pw").decode()
    (tmp_path / "config.json").write_text(json.dumps({"auths": {host: {"auth": auth}}}))
    return tmp_path


def blob(folder: Path, data: bytes, media_type: str, **extra: Any) -> dict[str, Any]:
    path = folder / "blobs" / "sha256" / digest(data).split(":")[1]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return {"mediaType": media_type, "digest": digest(data), "size": len(data), **extra}


@dataclass
class Built:
    folder: Path
    root: str
    children: list[str]
    blobs: list[str]


def build(folder: Path, *, platforms: tuple[str, ...] = ("amd64", "arm64")) -> Built:
    """An index over one manifest per platform; the platforms share one layer."""
    shared = blob(folder, os.urandom(2048), "application/vnd.oci.image.layer.v1.tar+gzip")
    children, blobs, entries = [], [shared["digest"]], []
    for arch in platforms:
        config = blob(
            folder,
            json.dumps({"architecture": arch, "os": "linux"}).encode(),
            "application/vnd.oci.image.config.v1+json",
        )
        own = blob(folder, os.urandom(512), "application/vnd.oci.image.layer.v1.tar+gzip")
        manifest = {
            "schemaVersion": 2,
            "mediaType": MANIFEST,
            "config": config,
            "layers": [shared, own],
        }
        entry = blob(
            folder,
            json.dumps(manifest, indent=1).encode(),
            MANIFEST,
            platform={"architecture": arch, "os": "linux"},
        )
        entries.append(entry)
        children.append(entry["digest"])
        blobs += [config["digest"], own["digest"]]
    index = blob(
        folder,
        json.dumps({"schemaVersion": 2, "mediaType": INDEX, "manifests": entries}).encode(),
        INDEX,
    )
    (folder / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [index]}))
    (folder / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    return Built(folder, index["digest"], children, blobs)


def puts(state: State, kind: str) -> list[str]:
    return [s.path for s in state.seen if s.method == "PUT" and f"/{kind}" in s.path]


def test_pushes_blobs_then_manifests_by_digest_children_first(server: str, tmp_path: Path) -> None:
    built = build(tmp_path / "oci")
    pushed = registry_push.push_layout(built.folder, f"{server}/{NAME}", config_dir=tmp_path)
    st = Registry.state
    assert pushed == registry_push.PushedImage(
        f"{server}/{NAME}", built.root, INDEX, (*built.children, built.root)
    )
    assert puts(st, "manifests") == [f"/v2/{NAME}/manifests/{d}" for d in pushed.manifests]
    assert set(st.blobs) == set(built.blobs)
    assert len(puts(st, "blobs")) == len(built.blobs)  # the shared layer went once
    for d in pushed.manifests:  # exact bytes, with their own media type
        data, media_type = st.manifests[d]
        assert digest(data) == d
        assert media_type == (INDEX if d == built.root else MANIFEST)
    assert set(st.manifests) == set(pushed.manifests)  # by digest only: no tag
    assert st.seen[0].auth is None


def test_blobs_the_registry_holds_are_not_sent_again(server: str, tmp_path: Path) -> None:
    built = build(tmp_path / "oci")
    registry_push.push_layout(built.folder, f"{server}/{NAME}", config_dir=tmp_path)
    Registry.state.seen.clear()
    registry_push.push_layout(built.folder, f"{server}/{NAME}", config_dir=tmp_path)
    methods = {(s.method, s.path.split("/")[4]) for s in Registry.state.seen}
    assert methods == {("HEAD", "blobs"), ("PUT", "manifests")}


@pytest.mark.parametrize("location", ["relative", "absolute", "query"])
def test_a_blob_goes_to_the_upload_location_with_its_digest(
    server: str, tmp_path: Path, location: str
) -> None:
    Registry.state.location = location
    built = build(tmp_path / "oci", platforms=("amd64",))
    registry_push.push_layout(built.folder, f"{server}/{NAME}", config_dir=tmp_path)
    uploads = puts(Registry.state, "blobs/uploads")
    assert len(uploads) == len(built.blobs)
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(uploads[0]).query)
    assert query["digest"][0] in built.blobs
    if location == "query":
        assert query["_state"] == ["opaque="]


def test_blobs_stream_from_disk(
    server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bodies: list[type] = []
    real = registry_push.request

    def recording(method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        if "/blobs/uploads/u1" in url:
            bodies.append(type(kwargs["body"]))
        return real(method, url, *args, **kwargs)

    monkeypatch.setattr(registry_push, "request", recording)
    built = build(tmp_path / "oci", platforms=("amd64",))
    registry_push.push_layout(built.folder, f"{server}/{NAME}", config_dir=tmp_path)
    assert bodies and bytes not in bodies  # an open file, read in blocks by http.client


def test_an_upload_location_on_another_host_leaves_the_push_to_the_tool(
    server: str, tmp_path: Path
) -> None:
    Registry.state.location = "elsewhere"
    built = build(tmp_path / "oci", platforms=("amd64",))
    with pytest.raises(UseTheTool):
        registry_push.push_layout(built.folder, f"{server}/{NAME}", config_dir=tmp_path)


def test_one_bearer_token_with_the_push_scope_for_the_whole_push(
    server: str, tmp_path: Path
) -> None:
    Registry.state.mode = "bearer"
    built = build(tmp_path / "oci")
    registry_push.push_layout(built.folder, f"{server}/{NAME}", config_dir=login(tmp_path, server))
    st = Registry.state
    tokens = [s.path for s in st.seen if s.path.startswith("/token")]
    assert len(tokens) == 1
    assert "scope=repository%3Agroup%2Fapp%3Apull%2Cpush" in tokens[0]
    assert set(st.manifests) == {*built.children, built.root}


def test_an_expired_token_is_renewed_once_mid_push(server: str, tmp_path: Path) -> None:
    # A token good for 12 requests, in a push of about 30: renewed at least twice. Not fewer:
    # up to 4 blobs go up side by side, and a request refused with the old token is sent again
    # with the new one, which the others must not have used up meanwhile (with 5, 1 run in 60
    # failed). A real registry's token lasts minutes.
    Registry.state.mode, Registry.state.token_uses = "bearer", 12
    built = build(tmp_path / "oci")
    registry_push.push_layout(built.folder, f"{server}/{NAME}", config_dir=login(tmp_path, server))
    assert Registry.state.tokens > 1
    assert set(Registry.state.manifests) == {*built.children, built.root}


def test_basic_login_answers_the_challenge(server: str, tmp_path: Path) -> None:
    Registry.state.mode = "basic"
    built = build(tmp_path / "oci", platforms=("amd64",))
    registry_push.push_layout(built.folder, f"{server}/{NAME}", config_dir=login(tmp_path, server))
    assert Registry.state.seen[0].auth is None  # never in the clear before the registry asks
    assert built.root in Registry.state.manifests


@pytest.mark.parametrize(
    ("where", "failure", "kind"),
    [
        ("POST uploads", (503, ""), "transient"),
        ("PUT uploads", (429, "TOOMANYREQUESTS"), "rate-limited"),
        ("HEAD blobs", (403, ""), "permanent"),
        ("PUT manifests", (400, "MANIFEST_INVALID"), "permanent"),
    ],
)
def test_push_failures_read_as_the_tools_would_say_them(
    server: str, tmp_path: Path, where: str, failure: tuple[int, str], kind: str
) -> None:
    Registry.state.mode, Registry.state.fail = "bearer", {where: failure}
    Registry.state.location = "query"
    built = build(tmp_path / "oci", platforms=("amd64",))
    with pytest.raises(CommandFailed) as caught:
        registry_push.push_layout(
            built.folder, f"{server}/{NAME}", config_dir=login(tmp_path, server)
        )
    assert classify(caught.value.stderr, caught.value.returncode).kind == kind
    assert_no_secret(caught.value)


def test_a_retry_after_the_registry_sends_reaches_the_retry_policy(
    server: str, tmp_path: Path
) -> None:
    Registry.state.fail = {"HEAD blobs": (429, "TOOMANYREQUESTS")}
    Registry.state.retry_after = "42"
    built = build(tmp_path / "oci", platforms=("amd64",))
    with pytest.raises(CommandFailed) as caught:
        registry_push.push_layout(built.folder, f"{server}/{NAME}", config_dir=None)
    cause = classify(caught.value.stderr, caught.value.returncode)
    assert (cause.kind, cause.retry_after_s) == ("rate-limited", 42.0)


def assert_no_secret(exc: CommandFailed) -> None:
    for text in (exc.stderr, str(exc), repr(exc), exc.command, exc.diagnostics()):
        for secret in ("s3cret", TOKEN, BASIC.split()[1], "Authorization", "_state", "opaque"):
            assert secret not in text


def test_a_refused_connection_is_transient(tmp_path: Path) -> None:
    built = build(tmp_path / "oci", platforms=("amd64",))
    with pytest.raises(CommandFailed) as caught:
        registry_push.push_layout(built.folder, f"127.0.0.1:9/{NAME}", config_dir=tmp_path)
    assert classify(caught.value.stderr, 1).kind == "transient"


def test_a_digest_the_registry_says_wrongly_fails_the_push(server: str, tmp_path: Path) -> None:
    Registry.state.wrong_digest = True
    built = build(tmp_path / "oci", platforms=("amd64",))
    with pytest.raises(CommandFailed, match="the registry stored sha256:0000"):
        registry_push.push_layout(built.folder, f"{server}/{NAME}", config_dir=tmp_path)


def test_publish_tag_copies_the_exact_bytes_and_type(server: str, tmp_path: Path) -> None:
    Registry.state.mode = "bearer"
    config = login(tmp_path, server)
    built = build(tmp_path / "oci")
    registry_push.push_layout(built.folder, f"{server}/{NAME}", config_dir=config)
    registry_push.publish_tag(f"{server}/{NAME}", built.root, "v1", config_dir=config)
    assert Registry.state.manifests["v1"] == Registry.state.manifests[built.root]
    tagged = [s for s in Registry.state.seen if s.path == f"/v2/{NAME}/manifests/v1"]
    assert [(s.method, s.content_type) for s in tagged] == [("PUT", INDEX)]


def test_publish_tag_puts_the_pushed_bytes_with_no_read_back(server: str, tmp_path: Path) -> None:
    config = login(tmp_path, server)
    built = build(tmp_path / "oci")
    pushed = registry_push.push_layout(built.folder, f"{server}/{NAME}", config_dir=config)
    assert pushed.data == Registry.state.manifests[built.root][0]
    Registry.state.seen.clear()
    registry_push.publish_tag(
        f"{server}/{NAME}",
        built.root,
        "v1",
        config_dir=config,
        pushed=(pushed.media_type, pushed.data),
    )
    assert Registry.state.manifests["v1"] == Registry.state.manifests[built.root]
    assert [
        (s.method, s.path.rsplit("/", 1)[1]) for s in Registry.state.seen if "/manifests/" in s.path
    ] == [("PUT", "v1")]

    # Bytes that are not the digest are never put under the tag: the registry's are read.
    Registry.state.seen.clear()
    registry_push.publish_tag(
        f"{server}/{NAME}",
        built.root,
        "v2",
        config_dir=config,
        pushed=(pushed.media_type, pushed.data + b" "),
    )
    assert Registry.state.manifests["v2"] == Registry.state.manifests[built.root]
    assert [s.method for s in Registry.state.seen if "/manifests/" in s.path] == ["GET", "PUT"]


@pytest.mark.parametrize(
    ("failure", "kind"),
    [((404, "MANIFEST_UNKNOWN"), "not-yet-there"), ((503, ""), "transient")],
)
def test_publish_tag_failures_to_read_the_manifest(
    server: str, tmp_path: Path, failure: tuple[int, str], kind: str
) -> None:
    Registry.state.mode, Registry.state.fail = "bearer", {"GET manifests": failure}
    with pytest.raises(CommandFailed) as caught:
        registry_push.publish_tag(
            f"{server}/{NAME}", digest(b"{}"), "v1", config_dir=login(tmp_path, server)
        )
    assert classify(caught.value.stderr, 1).kind == kind
    assert_no_secret(caught.value)


@pytest.mark.parametrize(("status", "code"), [(400, "TAG_INVALID"), (403, "DENIED"), (405, "")])
def test_a_registry_refusing_the_tag_is_a_permanent_failure(
    server: str, tmp_path: Path, status: int, code: str
) -> None:
    built = build(tmp_path / "oci", platforms=("amd64",))
    registry_push.push_layout(built.folder, f"{server}/{NAME}", config_dir=tmp_path)
    Registry.state.fail = {"PUT manifests": (status, code)}
    with pytest.raises(CommandFailed) as caught:
        registry_push.publish_tag(f"{server}/{NAME}", built.root, "v1", config_dir=tmp_path)
    assert f"{status} " in caught.value.stderr
    assert classify(caught.value.stderr, 1).kind in ("permanent", "unknown")  # never retried
    assert "v1" not in Registry.state.manifests


def test_publish_tag_refuses_bad_input_before_any_request(server: str, tmp_path: Path) -> None:
    with pytest.raises(InputError):
        registry_push.publish_tag(f"{server}/{NAME}", "sha256:../x", "v1", config_dir=tmp_path)
    with pytest.raises(InputError):
        registry_push.publish_tag(f"{server}/{NAME}", digest(b"{}"), "a/b", config_dir=tmp_path)
    assert Registry.state.seen == []


@pytest.mark.parametrize(("status", "deleted"), [(202, True), (405, False), (400, False)])
def test_delete_tag_says_whether_the_registry_could(
    server: str, tmp_path: Path, status: int, deleted: bool
) -> None:
    Registry.state.delete_status = status
    Registry.state.manifests["v1"] = (b"{}", MANIFEST)
    assert registry_push.delete_tag(f"{server}/{NAME}", "v1", config_dir=tmp_path) is deleted
    deletes = [s.path for s in Registry.state.seen if s.method == "DELETE"]
    assert deletes == [f"/v2/{NAME}/manifests/v1"]  # by tag, never by digest


def test_delete_tag_asks_a_token_for_the_delete_scope(server: str, tmp_path: Path) -> None:
    Registry.state.mode = "bearer"
    assert registry_push.delete_tag(f"{server}/{NAME}", "v1", config_dir=login(tmp_path, server))
    assert any("group%2Fapp%3Adelete" in s.path for s in Registry.state.seen)


def test_delete_tag_failures_raise(server: str, tmp_path: Path) -> None:
    Registry.state.fail = {"DELETE manifests": (503, "")}
    with pytest.raises(CommandFailed) as caught:
        registry_push.delete_tag(f"{server}/{NAME}", "v1", config_dir=tmp_path)
    assert classify(caught.value.stderr, 1).kind == "transient"


def test_a_layout_of_two_images_is_refused(tmp_path: Path) -> None:
    built = build(tmp_path / "oci")
    index = json.loads((built.folder / "index.json").read_text())
    index["manifests"].append(dict(index["manifests"][0], annotations={"x": "y"}))
    (built.folder / "index.json").write_text(json.dumps(index))
    with pytest.raises(ToolError, match="names 2 images"):
        registry_push.push_layout(built.folder, f"127.0.0.1:9/{NAME}", config_dir=tmp_path)


@pytest.mark.parametrize("damage", ["missing blob", "no index.json", "digest as a path"])
def test_a_damaged_layout_is_refused_before_any_request(tmp_path: Path, damage: str) -> None:
    built = build(tmp_path / "oci", platforms=("amd64",))
    if damage == "missing blob":
        (built.folder / "blobs" / "sha256" / built.blobs[0].split(":")[1]).unlink()
    elif damage == "no index.json":
        (built.folder / "index.json").unlink()
    else:
        index = json.loads((built.folder / "index.json").read_text())
        index["manifests"][0]["digest"] = "sha256:../../../../etc/passwd"
        (built.folder / "index.json").write_text(json.dumps(index))
    with pytest.raises(ToolError) as caught:  # the port is closed: no request was made
        registry_push.push_layout(built.folder, f"127.0.0.1:9/{NAME}", config_dir=tmp_path)
    assert not isinstance(caught.value, CommandFailed)


def test_a_foreign_layer_is_referenced_not_pushed(server: str, tmp_path: Path) -> None:
    folder = tmp_path / "oci"
    config = blob(folder, b'{"os": "windows"}', "application/vnd.oci.image.config.v1+json")
    foreign = {
        "mediaType": "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
        "digest": digest(b"not here"),
        "size": 8,
        "urls": ["https://example.com/layer"],
    }
    content = {"schemaVersion": 2, "mediaType": MANIFEST, "config": config, "layers": [foreign]}
    manifest = blob(folder, json.dumps(content).encode(), MANIFEST)
    (folder / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [manifest]}))
    pushed = registry_push.push_layout(folder, f"{server}/{NAME}", config_dir=tmp_path)
    assert pushed.manifests == (manifest["digest"],) and pushed.media_type == MANIFEST
    assert set(Registry.state.blobs) == {config["digest"]}


def test_a_credential_helper_leaves_the_push_to_the_tool(tmp_path: Path) -> None:
    built = build(tmp_path / "oci", platforms=("amd64",))
    (tmp_path / "config.json").write_text(json.dumps({"credHelpers": {"r.example": "ecr-login"}}))
    with pytest.raises(UseTheTool):
        registry_push.push_layout(built.folder, "r.example/app", config_dir=tmp_path)
    with pytest.raises(UseTheTool):
        registry_push.publish_tag("r.example/app", built.root, "v1", config_dir=tmp_path)


@pytest.mark.parametrize("mode", ["basic", "bearer"])
def test_a_wrong_password_is_permanent_and_never_told(
    server: str, tmp_path: Path, mode: str
) -> None:
    Registry.state.mode = mode
    auth = base64.b64encode(b"user:s3cret-wrong").decode()
    (tmp_path / "config.json").write_text(json.dumps({"auths": {server: {"auth": auth}}}))
    built = build(tmp_path / "oci", platforms=("amd64",))
    with pytest.raises(CommandFailed) as caught:
        registry_push.push_layout(built.folder, f"{server}/{NAME}", config_dir=tmp_path)
    assert classify(caught.value.stderr, 1).kind == "permanent"
    assert_no_secret(caught.value)
    assert auth not in caught.value.stderr
