"""An in-process registry on loopback for the referrers tests: manifests by digest and tag, the
referrers API on request (else a 404, as distribution 2.8 answers), failures on request, and
cosign 3's bundles listed in the fallback tag as go-containerregistry writes them there.

No registry with the referrers API runs on this machine: the API path is tested against this
fake only (it lists what the OCI distribution spec says it lists, typed from each manifest).
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

NAME = "group/app"
INDEX = "application/vnd.oci.image.index.v1+json"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"
EMPTY = "application/vnd.oci.empty.v1+json"
BUNDLE = "application/vnd.dev.sigstore.bundle.v0.3+json"
BASIC = "Basic " + base64.b64encode(b"user:s3cret").decode()


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class State:
    """What the fake holds and does (set per test), and what it was asked."""

    api: bool = False  # answer the referrers API (else 404 "page not found")
    login: bool = False  # ask for a Basic login
    manifests: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    # "GET referrers", "GET manifests", "PUT manifests": statuses answered first, in order
    fail: dict[str, list[int]] = field(default_factory=dict)
    # Another writer, right after each PUT under a tag (cosign of another job)
    after_put: Callable[[State, str], None] | None = None
    seen: list[tuple[str, str]] = field(default_factory=list)

    def put(self, content: dict[str, Any], tag: str | None = None) -> dict[str, Any]:
        """Store `content` by its digest (and `tag`); returns its descriptor."""
        data = json.dumps(content).encode()
        media_type = str(content.get("mediaType") or MANIFEST)
        self.manifests[digest(data)] = (data, media_type)
        if tag:
            self.manifests[tag] = (data, media_type)
        return {"mediaType": media_type, "digest": digest(data), "size": len(data)}

    def json(self, ref: str) -> dict[str, Any]:
        found: dict[str, Any] = json.loads(self.manifests[ref][0])
        return found

    def writes(self) -> list[str]:
        return [path for method, path in self.seen if method == "PUT"]


class Registry(BaseHTTPRequestHandler):
    state: ClassVar[State] = State()

    def log_message(self, format: str, *args: object) -> None:
        pass

    def answer(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def handle_any(self) -> None:
        st = Registry.state
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        st.seen.append((self.command, self.path))
        if st.login and self.headers.get("Authorization") != BASIC:
            self.answer(401, headers={"WWW-Authenticate": 'Basic realm="fake"'})
            return
        rest = self.path.removeprefix(f"/v2/{NAME}/")
        kind, _, ref = rest.partition("/")
        failures = st.fail.get(f"{self.command} {kind}")
        if failures:
            self.answer(failures.pop(0))
            return
        if kind == "referrers" and self.command == "GET":
            self.referrers(ref)
        elif kind == "manifests" and self.command == "PUT":
            media_type = self.headers.get("Content-Type") or ""
            st.manifests[ref] = st.manifests[digest(body)] = (body, media_type)
            self.answer(201, headers={"Docker-Content-Digest": digest(body)})
            if st.after_put is not None and not ref.startswith("sha256:"):
                st.after_put(st, ref)
        elif kind == "manifests" and ref in st.manifests:
            data, media_type = st.manifests[ref]
            headers = {"Content-Type": media_type, "Docker-Content-Digest": digest(data)}
            self.answer(200, data, headers)
        elif kind == "manifests":
            error = {"errors": [{"code": "MANIFEST_UNKNOWN", "message": "manifest unknown"}]}
            self.answer(404, json.dumps(error).encode(), {"Content-Type": "application/json"})
        else:
            self.answer(404, b"404 page not found\n", {"Content-Type": "text/plain"})

    def referrers(self, subject: str) -> None:
        st = Registry.state
        if not st.api:
            self.answer(404, b"404 page not found\n", {"Content-Type": "text/plain"})
            return
        listed = []
        for ref, (data, media_type) in st.manifests.items():
            content = json.loads(data)
            if (
                not ref.startswith("sha256:")
                or (content.get("subject") or {}).get("digest") != subject
            ):
                continue
            kind = content.get("artifactType") or content["config"]["mediaType"]
            entry = {
                "mediaType": media_type,
                "digest": ref,
                "size": len(data),
                "artifactType": kind,
            }
            if content.get("annotations"):
                entry["annotations"] = content["annotations"]
            listed.append(entry)
        index = {"schemaVersion": 2, "mediaType": INDEX, "manifests": listed}
        self.answer(200, json.dumps(index).encode(), {"Content-Type": INDEX})

    do_HEAD = do_GET = do_PUT = handle_any


@contextmanager
def serving() -> Iterator[str]:
    """The fake on a free loopback port, with a new State; yields host:port."""
    Registry.state = State()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Registry)
    threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
    try:
        yield f"127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def bundle(
    state: State,
    subject: dict[str, Any],
    *,
    artifact_type: str | None = BUNDLE,
    config_media_type: str = EMPTY,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A referrer manifest of `subject`, as cosign 3 writes a bundle; its descriptor."""
    layer = {"mediaType": BUNDLE, "digest": "sha256:" + "b" * 64, "size": 683}
    manifest: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "config": {"mediaType": config_media_type, "digest": "sha256:" + "4" * 64, "size": 2},
        "layers": [layer],
        "subject": subject,
        "annotations": annotations or {},
    }
    if artifact_type is not None:
        manifest["artifactType"] = artifact_type
    return state.put(manifest)


def ggcr_index(state: State, subject: dict[str, Any], referrers: list[dict[str, Any]]) -> str:
    """The fallback index go-containerregistry writes: each referrer typed "empty", no
    annotations (sigstore/cosign#4641). Returns its tag."""
    tag = "sha256-" + str(subject["digest"]).removeprefix("sha256:")
    entries = [{**d, "artifactType": EMPTY} for d in referrers]
    state.put({"schemaVersion": 2, "mediaType": INDEX, "manifests": entries}, tag)
    return tag


def image(state: State, name: str = "amd64") -> dict[str, Any]:
    """A subject: an image manifest."""
    config = {
        "mediaType": "application/vnd.oci.image.config.v1+json",
        "digest": "sha256:" + "c" * 64,
        "size": 10,
    }
    return state.put(
        {
            "schemaVersion": 2,
            "mediaType": MANIFEST,
            "config": config,
            "layers": [],
            "annotations": {"name": name},
        }
    )
