"""A `docker save` archive made into an OCI image layout, for an engine that can't export one.

The classic engine (dockerd's own image store, buildx's docker driver) has no OCI exporter: buildx
can only load the image into the engine, or push it to a tag with one `buildx build --push` that a
flaky registry fails whole. Loaded, the image comes back out with `docker save`: its config byte
for byte, its layers uncompressed. Here they become an OCI layout, which the registry adapter
pushes blob by blob, by digest, each request retried on its own, as it pushes the current engine's
export (adapters/registry/push.py).

Nothing in the archive is taken on trust:
- the config must hash to the image ID buildx reported, and each layer to its diff ID in that
  config, in order;
- each layer is gzipped here, with no name and no time in its header, so the same layer makes the
  same blob again and a warm push finds it at the registry;
- the manifest is OCI's, with the build's manifest annotations, which the docker driver drops.
"""

from __future__ import annotations

import hashlib
import json
import os
import tarfile
import threading
import zlib
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from provenance_tasks.errors import ToolError

MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
CONFIG_TYPE = "application/vnd.oci.image.config.v1+json"
LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip"
INDEX_TYPE = "application/vnd.oci.image.index.v1+json"
# zlib's default, as docker's and BuildKit's gzip; wbits 31: a gzip stream, its header's time 0.
_LEVEL, _GZIP = 6, 31
_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class Converted:
    """The layout's one image: its manifest's digest and media type, and its config's bytes."""

    digest: str
    media_type: str
    config: bytes


def layout_from_archive(
    archive: Path,
    layout: Path,
    *,
    image_id: str,
    annotations: Mapping[str, str] | None = None,
    cancel: threading.Event | None = None,
) -> Converted:
    """Write the image `image_id` of the `docker save` archive as an OCI layout in `layout`."""
    blobs = layout / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, mode="r:") as tar:
        members = {m.name: m for m in tar.getmembers() if m.isfile()}
        entry = _entry(tar, members, archive)
        config = _read(tar, members, entry["Config"], archive)
    if "sha256:" + hashlib.sha256(config).hexdigest() != image_id:
        raise ToolError(
            f"the image config in {archive.name} does not hash to the image ID {image_id}",
            hint="the engine's image changed under the run: nothing was pushed or signed",
        )
    layer_paths = entry["Layers"]
    diff_ids = _diff_ids(config, len(layer_paths), archive)
    (blobs / image_id.removeprefix("sha256:")).write_bytes(config)

    def compress(path: str) -> tuple[dict[str, Any], str]:
        member = members.get(path)
        if member is None:
            raise ToolError(f"{archive.name} lacks the layer {path}")
        return _gzip_layer(archive, member, blobs, cancel)

    unique = list(dict.fromkeys(layer_paths))  # a layer the image holds twice is saved once
    workers = max(1, min(len(unique), os.cpu_count() or 1, 4))
    with ThreadPoolExecutor(workers, thread_name_prefix="gzip") as pool:
        done = dict(zip(unique, pool.map(compress, unique), strict=True))
    layers = []
    for path, diff_id in zip(layer_paths, diff_ids, strict=True):
        descriptor, raw = done[path]
        if raw != diff_id:
            raise ToolError(
                f"the layer {path} does not hash to its diff ID {diff_id}",
                hint="the engine's image changed under the run: nothing was pushed or signed",
            )
        layers.append(descriptor)
    manifest: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "config": {"mediaType": CONFIG_TYPE, "digest": image_id, "size": len(config)},
        "layers": layers,
    }
    if annotations:
        manifest["annotations"] = dict(annotations)
    data = json.dumps(manifest, separators=(",", ":")).encode()
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    (blobs / digest.removeprefix("sha256:")).write_bytes(data)
    index = {
        "schemaVersion": 2,
        "mediaType": INDEX_TYPE,
        "manifests": [{"mediaType": MANIFEST_TYPE, "digest": digest, "size": len(data)}],
    }
    (layout / "index.json").write_text(json.dumps(index))
    (layout / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    return Converted(digest, MANIFEST_TYPE, config)


def _entry(
    tar: tarfile.TarFile, members: Mapping[str, tarfile.TarInfo], archive: Path
) -> dict[str, Any]:
    """manifest.json's one entry: `docker save` of one image ID writes exactly one."""
    try:
        entries = json.loads(_read(tar, members, "manifest.json", archive))
    except ValueError:
        raise ToolError(f"manifest.json in {archive.name} is not JSON") from None
    if not isinstance(entries, list) or len(entries) != 1:
        raise ToolError(f"{archive.name} holds {len(entries or [])} images, where one was saved")
    entry = entries[0]
    layers = entry.get("Layers") if isinstance(entry, dict) else None
    if not isinstance(entry.get("Config"), str) or not isinstance(layers, list):
        raise ToolError(f"manifest.json in {archive.name} names no config or no layers")
    return dict(entry)


def _read(
    tar: tarfile.TarFile, members: Mapping[str, tarfile.TarInfo], name: str, archive: Path
) -> bytes:
    member = members.get(name)
    handle = tar.extractfile(member) if member is not None else None
    if handle is None:
        raise ToolError(f"{archive.name} lacks {name}: not an archive `docker save` wrote")
    with handle:
        return handle.read()


def _diff_ids(config: bytes, layers: int, archive: Path) -> list[str]:
    try:
        diff_ids = json.loads(config)["rootfs"]["diff_ids"]
    except (ValueError, KeyError, TypeError):
        raise ToolError(f"the image config in {archive.name} has no rootfs.diff_ids") from None
    if not isinstance(diff_ids, list) or len(diff_ids) != layers:
        raise ToolError(
            f"{archive.name} holds {layers} layers, its config names {len(diff_ids)} diff IDs"
        )
    return [str(d) for d in diff_ids]


def _gzip_layer(
    archive: Path, member: tarfile.TarInfo, blobs: Path, cancel: threading.Event | None
) -> tuple[dict[str, Any], str]:
    """One layer, read from its place in the archive (a handle of its own: layers are gzipped
    side by side; zlib and hashlib let go of the GIL): its descriptor, and its digest as saved."""
    raw, sent = hashlib.sha256(), hashlib.sha256()
    deflate = zlib.compressobj(_LEVEL, zlib.DEFLATED, _GZIP)
    part = blobs / f".{member.offset_data}.part"
    size, left = 0, member.size
    with archive.open("rb") as source, part.open("wb") as out:

        def send(data: bytes) -> None:
            nonlocal size
            sent.update(data)
            out.write(data)
            size += len(data)

        source.seek(member.offset_data)
        while left:
            if cancel is not None and cancel.is_set():
                raise ToolError("cancelled by the run")
            chunk = source.read(min(_CHUNK, left))
            if not chunk:
                raise ToolError(f"{archive.name} ends inside the layer {member.name}")
            left -= len(chunk)
            raw.update(chunk)
            send(deflate.compress(chunk))
        send(deflate.flush())
    part.replace(blobs / sent.hexdigest())
    descriptor = {"mediaType": LAYER_TYPE, "digest": "sha256:" + sent.hexdigest(), "size": size}
    return descriptor, "sha256:" + raw.hexdigest()
