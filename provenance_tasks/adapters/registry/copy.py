"""Copy what a repository holds under a digest or a tag to another repository, by digest.

`promote` moves a verified image from staging to production with its signatures: the index, each
platform manifest and their blobs, then cosign's `.sig`/`.att` tags, its bundles (referrers) and
the referrers fallback index. Each is copied as a tree, children before the manifest naming them,
as a registry needs, and byte for byte: every manifest keeps its digest.

Within one registry a blob is mounted from the source repository (one POST, no bytes moved);
across two, or where the registry declines the mount, it is read from the source into a file of
the run's private folder, checked against its digest, and put at the destination. What the
destination holds already (a HEAD answers 200) is skipped, so a copy that failed halfway, or an
image promoted before, is completed, never sent again: each call is safe to retry.

The requests are push.py's (`Session`: the login of each registry from the docker config, a
Bearer token asked for once per call, plain HTTP on loopback only); every failure raises
CommandFailed in the words `causes.classify()` reads.
"""

from __future__ import annotations

import functools
import hashlib
import json
import tempfile
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from provenance_tasks.adapters.registry.failures import again, failure, reason_of
from provenance_tasks.adapters.registry.layout import Blob, Manifest
from provenance_tasks.adapters.registry.push import (
    Session,
    put_manifest,
    read_answer,
    refused,
    upload,
)
from provenance_tasks.errors import ToolError
from provenance_tasks.image_index import INDEX_TYPES
from provenance_tasks.references import registry_of, validate_digest, validate_tag

__all__ = ["Copied", "copy_tree"]

# Indexes nest (an index of indexes); content addressing rules out cycles, this rules out abuse.
_DEPTH_MAX = 8
_CHUNK = 1024 * 1024


@dataclass
class Copied:
    """What one copy did at the destination: manifests put, blobs mounted or sent, and what
    was there already (skipped)."""

    digest: str  # the root's
    media_type: str
    manifests: list[str] = field(default_factory=list)  # put now, children first
    present: list[str] = field(default_factory=list)  # manifests the destination had
    mounted: int = 0
    sent: int = 0
    blobs_present: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "digest": self.digest,
            "manifests": self.manifests,
            "present": self.present,
            "blobs": {"mounted": self.mounted, "sent": self.sent, "present": self.blobs_present},
        }


def copy_tree(
    source: str,
    reference: str,
    destination: str,
    *,
    config_dir: Path | None,
    spool: Path | None = None,
    timeout: float = 60.0,
    tag: str | None = None,
) -> Copied | None:
    """Copy `source`'s manifest `reference` (a digest, or a tag) and all it references to
    `destination`, by digest; with `tag`, put the root under that tag too. None when the source
    has no such tag (a `.att` that was never written); a digest it lacks raises.

    `spool`: the folder a blob copied across registries passes through (the run's private one).
    """
    by_digest = reference.startswith("sha256:")
    if by_digest:
        validate_digest(reference, "the digest to copy")
    else:
        validate_tag(reference, "the tag to copy")
    if tag is not None:
        validate_tag(tag, "the tag to put")
    reader = Session(source, config_dir, timeout, actions="pull")
    writer = Session(destination, config_dir, timeout, actions="pull,push")
    mount_from = reader.name if registry_of(source) == registry_of(destination) else None
    root = _read_manifest(reader, reference, allow_missing=not by_digest)
    if root is None:
        return None
    copied = Copied(root.digest, root.media_type)
    with tempfile.TemporaryDirectory(dir=spool, prefix="copy-") as folder:
        _copy(reader, writer, root, copied, mount_from, Path(folder), depth=0)
    if tag is not None:
        put_manifest(writer, root, tag)
    return copied


def _copy(
    reader: Session,
    writer: Session,
    manifest: Manifest,
    copied: Copied,
    mount_from: str | None,
    folder: Path,
    *,
    depth: int,
) -> None:
    if depth > _DEPTH_MAX:
        raise ToolError(f"{manifest.digest} nests indexes more than {_DEPTH_MAX} deep")
    if again(lambda: _has(writer, f"manifests/{manifest.digest}")):
        copied.present.append(manifest.digest)
        return  # a registry holds a manifest only with all it references: nothing to add
    body = _json(manifest)
    if manifest.media_type in INDEX_TYPES:
        for child in body.get("manifests") or []:
            digest = _digest_of(child)
            found = again(functools.partial(_read_manifest, reader, digest, allow_missing=False))
            assert found is not None
            _copy(reader, writer, found, copied, mount_from, folder, depth=depth + 1)
    else:
        blobs = [body.get("config"), *(body.get("layers") or [])]
        for descriptor in blobs:
            if isinstance(descriptor, dict):
                digest = _digest_of(descriptor)
                again(
                    functools.partial(
                        _copy_blob, reader, writer, digest, copied, mount_from, folder
                    )
                )
    put_manifest(writer, manifest, manifest.digest)
    copied.manifests.append(manifest.digest)


def _copy_blob(
    reader: Session,
    writer: Session,
    digest: str,
    copied: Copied,
    mount_from: str | None,
    folder: Path,
) -> None:
    if _has(writer, f"blobs/{digest}"):
        copied.blobs_present += 1
        return
    if mount_from is not None:
        query = urllib.parse.urlencode({"mount": digest, "from": mount_from})
        start = writer.url(f"blobs/uploads/?{query}")
        with writer.send("POST", start, body=b"") as answer:
            location = answer.getheader("Location")
            if answer.status == 201:
                copied.mounted += 1
                return
            if answer.status != 202 or not location:
                raise refused(writer, "POST", start, answer)
        # Declined (another storage, no access to the source): the upload it opened instead.
        upload(writer, start, location, _download(reader, digest, folder))
        copied.sent += 1
        return
    blob = _download(reader, digest, folder)
    start = writer.url("blobs/uploads/")
    with writer.send("POST", start, body=b"") as opened:
        location = opened.getheader("Location")
        if opened.status != 202 or not location:
            raise refused(writer, "POST", start, opened)
    upload(writer, start, location, blob)
    copied.sent += 1


def _download(reader: Session, digest: str, folder: Path) -> Blob:
    """The source's blob in a file under `folder`, checked against its digest as it arrives."""
    url = reader.url(f"blobs/{digest}")
    path = folder / digest.replace(":", "-")
    hashed = hashlib.sha256()
    size = 0
    with reader.send("GET", url, storage=True) as answer:  # S3, GCS: a pre-signed URL
        if answer.status != 200:
            raise refused(reader, "GET", url, answer)
        try:
            with path.open("wb") as out:
                while chunk := answer.read(_CHUNK):
                    hashed.update(chunk)
                    out.write(chunk)
                    size += len(chunk)
        except OSError as exc:
            raise failure("GET", reader.current(url), None, reason_of(exc)) from None
    if f"sha256:{hashed.hexdigest()}" != digest:
        # A cut connection is retried; a registry answering other bytes is a failure too.
        raise failure(
            "GET", reader.current(url), None, "unexpected EOF: the blob is not its digest"
        )
    return Blob(digest, size, path)


def _read_manifest(reader: Session, reference: str, *, allow_missing: bool) -> Manifest | None:
    url = reader.url(f"manifests/{reference}")
    with reader.send("GET", url) as answer:
        if answer.status == 404 and allow_missing:
            return None
        if answer.status != 200:
            raise refused(reader, "GET", url, answer)
        data = read_answer(answer, "GET", reader.current(url))
        media_type = (answer.getheader("Content-Type") or "").split(";")[0].strip()
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    if reference.startswith("sha256:") and digest != reference:
        raise failure(
            "GET", reader.current(url), None, f"the registry answered bytes not {reference}"
        )
    if not media_type or media_type == "application/json":
        found = _json_bytes(data).get("mediaType")
        media_type = found if isinstance(found, str) else media_type
    return Manifest(digest, media_type, data, ())


def _has(writer: Session, path: str) -> bool:
    url = writer.url(path)
    with writer.send("HEAD", url) as answer:
        if answer.status == 200:
            return True
        if answer.status == 404:
            return False
        raise refused(writer, "HEAD", url, answer)


def _json(manifest: Manifest) -> dict[str, Any]:
    return _json_bytes(manifest.data)


def _json_bytes(data: bytes) -> dict[str, Any]:
    try:
        body = json.loads(data)
    except ValueError:
        raise ToolError("the registry answered a manifest that is not JSON") from None
    if not isinstance(body, dict):
        raise ToolError("the registry answered a manifest that is not a JSON object")
    return body


def _digest_of(descriptor: object) -> str:
    digest = descriptor.get("digest") if isinstance(descriptor, dict) else None
    if not isinstance(digest, str):
        raise ToolError("a manifest names a descriptor without a digest")
    return validate_digest(digest, "a descriptor's digest")
