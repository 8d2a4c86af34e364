"""Push an OCI layout to a registry by digest, with no tag; publish tags once it is verified.

`docker buildx build --push` uploads the image and moves its tags in one step: for a moment (or for
good, when signing fails) users pulling the tag get an image that is not signed. Building to an
OCI layout folder instead and pushing it here puts the image at the registry under its digest
alone; the run signs and verifies REPO@DIGEST, and only then `publish_tag` copies the manifest,
byte for byte, under each tag (a PUT of the same bytes: the registry makes no new digest).

The push follows the distribution spec, in the order a registry needs: for each blob a HEAD (a
blob already there, from an earlier push or attempt, is not sent again), else a POST that opens
an upload and a monolithic PUT streaming the file from disk; then each manifest PUT by its digest,
children before the index that lists them. A failed push leaves only untagged content behind,
which a new attempt completes.

It speaks HTTP with http.py's pieces and their rules: the login from the docker config (a
credential helper or an identity token raises UseTheTool: client.py then copies a tag with
imagetools, and a push is left to buildx), Basic first over TLS, a Bearer token asked for with
the push scope and kept for the whole call, plain HTTP on loopback only, no redirect or upload
Location to another host. Every failure raises CommandFailed with a stderr-like line (with the
registry's error codes, e.g. MANIFEST_INVALID), so `causes.classify()` reads it as it reads
docker's; no URL query, token or password is in it.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import re
import threading
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from provenance_tasks.adapters.registry.failures import again, failure, reason_of
from provenance_tasks.adapters.registry.http import (
    PlainHTTP,
    UseTheTool,
    authorize,
    basic_authorization,
    request,
    stored_login,
)
from provenance_tasks.adapters.registry.layout import Blob, Manifest, digest_of, read_layout
from provenance_tasks.errors import CommandFailed
from provenance_tasks.references import (
    DEFAULT_REGISTRY,
    registry_of,
    validate_digest,
    validate_repository,
    validate_tag,
)

__all__ = ["PushedImage", "delete_tag", "publish_tag", "push_layout"]

# An error answer's body is read this far for its error codes, never further.
_ERROR_BODY_MAX = 64 * 1024
_CODE = re.compile(r"[A-Z][A-Z_]{2,40}")


@dataclass(frozen=True)
class PushedImage:
    """What a push put at the registry, all of it untagged."""

    repository: str
    digest: str  # the root: the layout's one entry in index.json (an index or a manifest)
    media_type: str
    # Every manifest digest pushed, children first (platforms, attestations), the root last.
    manifests: tuple[str, ...]
    # The root's bytes as pushed: publishing a tag puts them again, with no read of them back.
    data: bytes = field(default=b"", repr=False, compare=False)

    @property
    def reference(self) -> str:
        return f"{self.repository}@{self.digest}"


def push_layout(
    layout: Path, repository: str, *, config_dir: Path | None, timeout: float = 60.0
) -> PushedImage:
    """Push the one image of the OCI layout at `layout` to `repository`, by digest only.

    `timeout` bounds each network read or write (a layer upload may take longer in all).
    """
    image = read_layout(layout)  # refuse a broken layout before any request
    session = Session(repository, config_dir, timeout, actions="pull,push")
    blobs = list({b.digest: b for m in image.manifests for b in m.blobs}.values())
    if blobs:
        # The first one alone: it settles the scheme (TLS or loopback HTTP) and the token.
        again(lambda: _push_blob(session, blobs[0]))
    if len(blobs) > 1:
        # The others side by side, as docker pushes layers: each is a HEAD, or a POST and a PUT,
        # mostly waiting on the registry. Every blob is there before any manifest names it.
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=min(4, len(blobs) - 1)) as pool:
            pushes = [pool.submit(again, _pushing(session, blob)) for blob in blobs[1:]]
            for done in pushes:
                done.result()
    for manifest in image.manifests:
        put_manifest(session, manifest, manifest.digest)
    root = image.root
    return PushedImage(
        repository,
        root.digest,
        root.media_type,
        tuple(m.digest for m in image.manifests),
        root.data,
    )


def publish_tag(
    repository: str,
    digest: str,
    tag: str,
    *,
    config_dir: Path | None,
    timeout: float = 30.0,
    pushed: tuple[str, bytes] | None = None,
) -> None:
    """Point `tag` at the manifest `digest` (create or move it): a server-side copy of its bytes.

    `pushed` (media type, bytes) is the manifest as this run pushed it: put under the tag as it
    is, with no read of it back, when those bytes are `digest` (the registry's answer to the PUT
    must name it too). A registry that refuses (an immutable or protected tag) raises
    CommandFailed like any failure.
    """
    validate_digest(digest, "the digest to tag")
    validate_tag(tag, "the tag to publish")
    session = Session(repository, config_dir, timeout, actions="pull,push")
    if pushed is not None and pushed[0] and digest_of(pushed[1], digest) == digest:
        put_manifest(session, Manifest(digest, pushed[0], pushed[1], ()), tag)
        return
    url = session.url(f"manifests/{digest}")
    with session.send("GET", url) as answer:
        if answer.status != 200:
            raise refused(session, "GET", url, answer)
        data = read_answer(answer, "GET", session.current(url))
        media_type = (answer.getheader("Content-Type") or "").split(";")[0].strip()
    if digest_of(data, digest) != digest:
        # Re-encoded bytes would be another manifest: the tag must name the verified one.
        raise failure(
            "GET", session.current(url), None, f"the registry answered bytes that are not {digest}"
        )
    if not media_type or media_type == "application/json":
        media_type = _own_media_type(data) or media_type  # a registry that doesn't say
    manifest = Manifest(digest, media_type, data, ())
    put_manifest(session, manifest, tag)


def delete_tag(
    repository: str, tag: str, *, config_dir: Path | None, timeout: float = 30.0
) -> bool:
    """Remove `tag` alone; False when the registry can't delete by tag (distribution 2.x).

    Never by digest: that would remove the manifest from under every tag naming it.
    """
    validate_tag(tag, "the tag to delete")
    session = Session(repository, config_dir, timeout, actions="delete")
    url = session.url(f"manifests/{tag}")
    with session.send("DELETE", url) as answer:
        if answer.status == 202:
            return True
        codes = _codes(answer)
        if answer.status in (400, 405) or "UNSUPPORTED" in codes:
            return False
        raise failure("DELETE", session.current(url), answer.status, answer.reason, codes=codes)


class Session:
    """One repository at one registry for one call: where it is, the login, and the
    Authorization that worked, so a Bearer token is asked for once, not once per blob."""

    def __init__(
        self, repository: str, config_dir: Path | None, timeout: float, *, actions: str
    ) -> None:
        validate_repository(repository, "the repository")
        registry = registry_of(repository)
        name = repository.removeprefix(registry + "/")
        if registry == DEFAULT_REGISTRY and "/" not in name:
            name = f"library/{name}"  # as docker names Docker Hub's official images
        self.name = name
        self.host = "registry-1.docker.io" if registry == DEFAULT_REGISTRY else registry
        self.base = f"https://{self.host}"
        self.login = stored_login(config_dir, registry)  # may raise UseTheTool
        self.scope = f"repository:{self.name}:{actions}"
        self.timeout = timeout
        # Over TLS with a login, Basic goes first: a registry that wants a token answers 401.
        self.authorization = basic_authorization(self.login)
        self.scheme_known = False
        self._renewing = threading.Lock()

    def url(self, path: str) -> str:
        return f"{self.base}/v2/{self.name}/{path}"

    def resolve(self, answered: str, location: str) -> str:
        """An upload's Location, relative or absolute, as a URL of this registry."""
        url = urllib.parse.urljoin(answered, location)
        parts = urllib.parse.urlsplit(url)
        if f"{parts.scheme}://{parts.netloc}" != self.base:
            # Our login goes to the registry only; the tool knows how docker treats this.
            raise UseTheTool(f"upload location on {parts.scheme}://{parts.netloc}")
        return url

    def send(
        self,
        method: str,
        url: str,
        *,
        body: bytes | Path | None = None,
        headers: Mapping[str, str] | None = None,
        storage: bool = False,
    ) -> http.client.HTTPResponse:
        """The registry's answer, after one (re-)authorization if it answered 401: a token can
        expire in the middle of a long push. `storage`: a blob's GET, followed to its storage."""
        answer, used = self._once(method, url, body, headers, storage)
        if answer.status != 401:
            return answer
        challenge = answer.getheader("WWW-Authenticate") or ""
        answer.close()
        with self._renewing:  # blobs go up side by side: one renewal serves them all
            if self.authorization is used:  # else another thread renewed what was refused
                self.authorization = authorize(
                    challenge,
                    self.login,
                    self.name,
                    self.timeout,
                    scope=self.scope,
                    method=method,
                )
        return self._once(method, self.current(url), body, headers, storage)[0]

    def _once(
        self,
        method: str,
        url: str,
        body: bytes | Path | None,
        headers: Mapping[str, str] | None,
        storage: bool = False,
    ) -> tuple[http.client.HTTPResponse, str | None]:
        """The answer, and the Authorization the request carried."""
        sent = self.authorization
        try:
            answer = self._request(method, url, body, headers, sent, storage)
        except PlainHTTP:
            if self.scheme_known:
                raise failure(method, url, None, "tls handshake failed: plain HTTP") from None
            # As docker does: a loopback registry may speak plain HTTP. Credentials go only in
            # answer to its 401 then, never in the clear before.
            self.base, self.authorization = f"http://{self.host}", None
            sent = None
            answer = self._request(method, self.current(url), body, headers, sent, storage)
        self.scheme_known = True
        return answer, sent

    def current(self, url: str) -> str:
        """`url` on the scheme the registry turned out to speak."""
        if self.base.startswith("http:") and url.startswith(f"https://{self.host}/"):
            return "http" + url[len("https") :]
        return url

    def _request(
        self,
        method: str,
        url: str,
        body: bytes | Path | None,
        headers: Mapping[str, str] | None,
        authorization: str | None,
        storage: bool = False,
    ) -> http.client.HTTPResponse:
        if not isinstance(body, Path):
            return request(
                method,
                url,
                authorization,
                self.timeout,
                body=body,
                headers=headers,
                storage=storage,
            )
        # Opened anew for each attempt: a retried upload starts from the first byte.
        sized = {**(headers or {}), "Content-Length": str(body.stat().st_size)}
        with body.open("rb") as stream:
            return request(method, url, authorization, self.timeout, body=stream, headers=sized)


def _pushing(session: Session, blob: Blob) -> Callable[[], None]:
    return lambda: _push_blob(session, blob)


def _push_blob(session: Session, blob: Blob) -> None:
    url = session.url(f"blobs/{blob.digest}")
    with session.send("HEAD", url) as found:
        if found.status == 200:
            return  # already there: an earlier push, attempt, or another image shares it
        if found.status != 404:
            raise refused(session, "HEAD", url, found)
    start = session.url("blobs/uploads/")
    with session.send("POST", start, body=b"") as opened:
        location = opened.getheader("Location")
        if opened.status != 202 or not location:
            raise refused(session, "POST", start, opened)
    upload(session, start, location, blob)


def upload(session: Session, start: str, location: str, blob: Blob) -> None:
    """The blob's bytes PUT to the upload `location` the POST to `start` opened."""
    # After the POST: a registry that turned out to speak plain HTTP answered on http.
    target = session.resolve(session.current(start), location)
    joiner = "" if target.endswith(("?", "&")) else "&" if "?" in target else "?"
    target += joiner + urllib.parse.urlencode({"digest": blob.digest})
    headers = {"Content-Type": "application/octet-stream"}
    with session.send("PUT", target, body=blob.path, headers=headers) as stored:
        if stored.status != 201:
            raise refused(session, "PUT", target, stored)
        _check_digest(session, "PUT", target, stored, blob.digest)


def put_manifest(session: Session, manifest: Manifest, reference: str) -> None:
    """PUT the manifest's exact bytes under `reference`: its digest, or a tag."""
    again(lambda: _put_manifest(session, manifest, reference))


def _put_manifest(session: Session, manifest: Manifest, reference: str) -> None:
    url = session.url(f"manifests/{reference}")
    headers = {"Content-Type": manifest.media_type}
    with session.send("PUT", url, body=manifest.data, headers=headers) as stored:
        if stored.status != 201:
            raise refused(session, "PUT", url, stored)
        _check_digest(session, "PUT", url, stored, manifest.digest)


def _check_digest(
    session: Session, method: str, url: str, answer: http.client.HTTPResponse, digest: str
) -> None:
    said = answer.getheader("Docker-Content-Digest")
    if said and said != digest:
        raise failure(
            method, session.current(url), None, f"the registry stored {said}, not {digest}"
        )


def refused(
    session: Session, method: str, url: str, answer: http.client.HTTPResponse
) -> CommandFailed:
    """The failure of an unexpected answer, named by the URL on the scheme actually spoken."""
    url = session.current(url)
    asked = answer.getheader("Retry-After")
    return failure(
        method, url, answer.status, answer.reason, codes=_codes(answer), retry_after=asked
    )


def _codes(answer: http.client.HTTPResponse) -> tuple[str, ...]:
    """The error codes of a distribution-spec error body ("DENIED", "MANIFEST_INVALID"), the
    words `classify()` knows. Only the codes: a message may quote what was sent."""
    with contextlib.suppress(
        OSError, http.client.HTTPException, ValueError, TypeError, AttributeError
    ):
        errors = json.loads(answer.read(_ERROR_BODY_MAX) or b"{}").get("errors")
        found = (e.get("code") for e in errors if isinstance(e, dict))
        return tuple(dict.fromkeys(c for c in found if isinstance(c, str) and _CODE.fullmatch(c)))
    return ()


def read_answer(answer: http.client.HTTPResponse, method: str, url: str) -> bytes:
    try:
        return answer.read()
    except (OSError, http.client.HTTPException) as exc:
        raise failure(method, url, None, reason_of(exc)) from None


def _own_media_type(data: bytes) -> str | None:
    with contextlib.suppress(ValueError, AttributeError):
        found = json.loads(data).get("mediaType")
        return found if isinstance(found, str) else None
    return None
