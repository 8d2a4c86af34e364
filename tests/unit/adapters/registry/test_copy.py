"""Copying a manifest tree to another repository, against in-process registries on loopback:
a blob mounted within one registry, read and put across two (its GET redirected to a storage
host, which never sees the registry's login), what is there already skipped, and a tag copied
only when the source has it."""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from provenance_tasks.adapters.registry.copy import copy_tree

BASIC = "Basic " + base64.b64encode(b"user:s3cret-pw").decode()
MANIFEST = "application/vnd.oci.image.manifest.v1+json"
INDEX = "application/vnd.oci.image.index.v1+json"


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class Store:
    """One registry: blobs and manifests per repository, and what it was asked."""

    blobs: dict[tuple[str, str], bytes] = field(default_factory=dict)
    manifests: dict[tuple[str, str], tuple[bytes, str]] = field(default_factory=dict)
    seen: list[str] = field(default_factory=list)
    storage: str | None = None  # blob GETs redirected there
    storage_auth: list[str | None] = field(default_factory=list)


def handler(store: Store) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def answer(self, status: int, headers: dict[str, str] | None = None, body: bytes = b""):
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def any(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            url = urllib.parse.urlsplit(self.path)
            query = dict(urllib.parse.parse_qsl(url.query))
            if url.path.startswith("/storage/"):  # the storage host's pre-signed URL
                store.storage_auth.append(self.headers.get("Authorization"))
                self.answer(200, body=store.blobs[("storage", url.path.split("/")[-1])])
                return
            store.seen.append(f"{self.command} {url.path}{'?' + url.query if url.query else ''}")
            if self.headers.get("Authorization") != BASIC:
                self.answer(401, {"WWW-Authenticate": 'Basic realm="fake"'})
                return
            name, _, rest = url.path.removeprefix("/v2/").partition("/blobs/")
            if rest == "uploads/" and self.command == "POST":
                source = (query.get("from", ""), query.get("mount", ""))
                if source in store.blobs:
                    store.blobs[(name, source[1])] = store.blobs[source]
                    self.answer(201)
                else:
                    self.answer(202, {"Location": f"/v2/{name}/blobs/uploads/u1"})
            elif rest.startswith("uploads/") and self.command == "PUT":
                store.blobs[(name, query["digest"])] = body
                self.answer(201, {"Docker-Content-Digest": query["digest"]})
            elif rest:
                found = store.blobs.get((name, rest))
                if found is None:
                    self.answer(404)
                elif store.storage and self.command == "GET":
                    store.blobs[("storage", rest)] = found
                    self.answer(307, {"Location": f"{store.storage}/storage/{rest}"})
                else:
                    self.answer(200, body=found)
            else:
                name, _, ref = url.path.removeprefix("/v2/").partition("/manifests/")
                if self.command == "PUT":
                    media_type = self.headers.get("Content-Type") or ""
                    store.manifests[(name, ref)] = (body, media_type)
                    store.manifests[(name, digest(body))] = (body, media_type)
                    self.answer(201, {"Docker-Content-Digest": digest(body)})
                elif (name, ref) in store.manifests:
                    data, media_type = store.manifests[(name, ref)]
                    self.answer(200, {"Content-Type": media_type}, data)
                else:
                    self.answer(404)

        do_GET = do_HEAD = do_PUT = do_POST = any

    return Handler


@contextmanager
def serving(store: Store) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler(store))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def image(store: Store, repository: str) -> str:
    """A two-platform index in `repository`: its manifests and blobs; its digest."""
    children = []
    for arch in ("amd64", "arm64"):
        config, layer = f'{{"arch":"{arch}"}}'.encode(), f"layer-{arch}".encode()
        for blob in (config, layer, b"shared"):
            store.blobs[(repository, digest(blob))] = blob
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": MANIFEST,
                "config": {"digest": digest(config), "size": len(config)},
                "layers": [{"digest": digest(b), "size": len(b)} for b in (layer, b"shared")],
            }
        ).encode()
        store.manifests[(repository, digest(manifest))] = (manifest, MANIFEST)
        children.append({"mediaType": MANIFEST, "digest": digest(manifest), "size": len(manifest)})
    index = json.dumps({"schemaVersion": 2, "mediaType": INDEX, "manifests": children}).encode()
    store.manifests[(repository, digest(index))] = (index, INDEX)
    return digest(index)


def logged_in(folder: Path, *hosts: str) -> Path:
    auth = base64.b64encode(b"user:s3cret-pw").decode()
    (folder / "config.json").write_text(json.dumps({"auths": {h: {"auth": auth} for h in hosts}}))
    return folder


def test_within_a_registry_every_blob_is_mounted_and_a_second_copy_puts_nothing(
    tmp_path: Path,
) -> None:
    store = Store()
    with serving(store) as host:
        root = image(store, "staging/app")
        config = logged_in(tmp_path, host)
        copied = copy_tree(f"{host}/staging/app", root, f"{host}/prod/app", config_dir=config)
        assert copied is not None and copied.digest == root
        assert copied.mounted == 5 and copied.sent == 0  # 2 configs, 2 layers, 1 shared
        assert copied.manifests[-1] == root and len(copied.manifests) == 3  # children first
        assert ("prod/app", root) in store.manifests
        again = copy_tree(f"{host}/staging/app", root, f"{host}/prod/app", config_dir=config)
        assert again is not None and again.manifests == [] and again.present == [root]


def test_across_registries_a_redirected_blob_is_fetched_without_the_registrys_login(
    tmp_path: Path,
) -> None:
    source, destination = Store(), Store()
    with serving(source) as src, serving(destination) as dst:
        # Another host name for the same server stands in for the storage service.
        source.storage = f"http://localhost:{src.split(':')[1]}"
        root = image(source, "staging/app")
        config = logged_in(tmp_path, src, dst)
        copied = copy_tree(f"{src}/staging/app", root, f"{dst}/prod/app", config_dir=config)
        assert copied is not None and copied.sent == 5 and copied.mounted == 0
        assert source.storage_auth and set(source.storage_auth) == {None}
        for (name, key), data in source.blobs.items():
            if name == "staging/app":
                assert destination.blobs[("prod/app", key)] == data


def test_a_tag_is_copied_only_where_the_source_has_it(tmp_path: Path) -> None:
    store = Store()
    with serving(store) as host:
        root = image(store, "staging/app")
        tag = root.replace(":", "-") + ".sig"
        config = logged_in(tmp_path, host)
        missing = copy_tree(
            f"{host}/staging/app", tag, f"{host}/prod/app", config_dir=config, tag=tag
        )
        assert missing is None
        store.manifests[("staging/app", tag)] = store.manifests[("staging/app", root)]
        copied = copy_tree(
            f"{host}/staging/app", tag, f"{host}/prod/app", config_dir=config, tag=tag
        )
        assert (
            copied is not None
            and store.manifests[("prod/app", tag)][0] == (store.manifests[("staging/app", root)][0])
        )
