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
  same blob again with this zlib, and a warm push finds it at the registry (another zlib, or
  buildx's Go gzip, makes other bytes: those blobs are never shared with a push of buildx's);
- the manifest is OCI's, with the build's manifest annotations, which the docker driver drops.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import tarfile
import threading
import zlib
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from provenance_tasks.errors import CommandFailed, InputError, ToolError

MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
CONFIG_TYPE = "application/vnd.oci.image.config.v1+json"
LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip"
INDEX_TYPE = "application/vnd.oci.image.index.v1+json"
# zlib's default level; wbits 31: a gzip stream, its header's time 0.
_LEVEL, _GZIP = 6, 31
_CHUNK = 1024 * 1024
# What a saved layer that is already compressed starts with (gzip, zstd): docker 25+ with the
# containerd store saves its blobs as they are, which this conversion is not for.
_COMPRESSED = (b"\x1f\x8b", b"\x28\xb5\x2f\xfd")


class _Stopped(ToolError):
    """A layer left as another one failed."""


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
        members = _files(tar.getmembers())
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

    stop = threading.Event()  # the first failure ends the others' work

    def compress(member: tarfile.TarInfo) -> tuple[dict[str, Any], str]:
        try:
            return _gzip_layer(archive, member, blobs, cancel, stop)
        except BaseException:
            stop.set()
            raise

    found = []
    for path in layer_paths:
        if path not in members:
            raise ToolError(f"{archive.name} lacks the layer {path}")
        found.append(members[path])
    # A layer the image holds twice is read once (docker 20.10 links the second to the first).
    unique = list({m.name: m for m in found}.values())
    workers = max(1, min(len(unique), os.cpu_count() or 1, 4))
    with ThreadPoolExecutor(workers, thread_name_prefix="gzip") as pool:
        futures = {m.name: pool.submit(compress, m) for m in unique}
    failures = [e for e in (f.exception() for f in futures.values()) if e is not None]
    if failures:  # the failure itself, not a layer it stopped
        raise next((e for e in failures if not isinstance(e, _Stopped)), failures[0])
    done = {name: future.result() for name, future in futures.items()}
    layers = []
    for path, member, diff_id in zip(layer_paths, found, diff_ids, strict=True):
        descriptor, raw = done[member.name]
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


def manifest_annotations(texts: Sequence[str]) -> dict[str, str]:
    """buildx's `--annotation LEVEL:KEY=VALUE`s (build_inputs.oci_annotations) for the one
    manifest: an index needs two platforms, which a builder without an OCI exporter can't make."""
    found = {}
    for text in texts:
        level, _, pair = text.partition(":")
        if level != "manifest":
            raise InputError(f"--oci-annotation {text!r}: this builder makes a single manifest")
        key, _, value = pair.partition("=")
        found[key] = value
    return found


def _files(found: list[tarfile.TarInfo]) -> dict[str, tarfile.TarInfo]:
    """The archive's regular files by name, and each link by its name, as the file it names
    (docker 20.10 saves a layer the image holds twice as a symlink to the first)."""
    files = {m.name: m for m in found if m.isfile() and not m.issparse()}
    for link in (m for m in found if m.issym() or m.islnk()):
        target = link.linkname
        if link.issym():  # relative to the link's folder
            target = posixpath.normpath(posixpath.join(posixpath.dirname(link.name), target))
        if target in files:
            files[link.name] = files[target]
    return files


def _entry(
    tar: tarfile.TarFile, members: Mapping[str, tarfile.TarInfo], archive: Path
) -> dict[str, Any]:
    """manifest.json's one entry: `docker save` of one image ID writes exactly one."""
    try:
        entries = json.loads(_read(tar, members, "manifest.json", archive))
    except ValueError:
        raise ToolError(f"manifest.json in {archive.name} is not JSON") from None
    if not isinstance(entries, list) or len(entries) != 1 or not isinstance(entries[0], dict):
        count = len(entries) if isinstance(entries, list) else 0
        raise ToolError(f"{archive.name} holds {count} images, where one was saved")
    entry = entries[0]
    layers = entry.get("Layers")
    if (
        not isinstance(entry.get("Config"), str)
        or not isinstance(layers, list)
        or not all(isinstance(layer, str) for layer in layers)
    ):
        raise ToolError(f"manifest.json in {archive.name} names no config or no list of layers")
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
        named = len(diff_ids) if isinstance(diff_ids, list) else 0
        raise ToolError(f"{archive.name} holds {layers} layers, its config names {named} diff IDs")
    return [str(d) for d in diff_ids]


def _gzip_layer(
    archive: Path,
    member: tarfile.TarInfo,
    blobs: Path,
    cancel: threading.Event | None,
    stop: threading.Event,
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
                # As a cancelled tool's: the run knows it gave up, and retries nothing.
                raise CommandFailed("gzip", ["gzip", member.name], -9, "gzip: cancelled by the run")
            if stop.is_set():
                raise _Stopped(f"{member.name}: not gzipped, as another layer failed")
            chunk = source.read(min(_CHUNK, left))
            if not chunk:
                raise ToolError(f"{archive.name} ends inside the layer {member.name}")
            if left == member.size and chunk.startswith(_COMPRESSED):
                raise ToolError(
                    f"the layer {member.name} was saved compressed, where an uncompressed "
                    "layer was expected",
                    hint="this engine exports OCI layouts: report the docker version, as the "
                    "run took it for one without",
                )
            left -= len(chunk)
            raw.update(chunk)
            send(deflate.compress(chunk))
        send(deflate.flush())
    part.replace(blobs / sent.hexdigest())
    descriptor = {"mediaType": LAYER_TYPE, "digest": "sha256:" + sent.hexdigest(), "size": size}
    return descriptor, "sha256:" + raw.hexdigest()
