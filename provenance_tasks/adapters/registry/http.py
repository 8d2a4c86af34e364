"""A manifest's digest, read straight from the registry's HTTP API with the run's docker login.

`docker buildx imagetools inspect` answers the same question by starting two processes (the
docker CLI and its buildx plugin), about 120 ms on loopback; one HEAD request, with the token
dance of the distribution spec when the registry asks for it, takes a few. It is used when the
login is in the docker config itself (as the run's private config holds it); a config that
delegates to a credential helper keeps the imagetools path, which knows how to ask the helper.

A failure raises CommandFailed with a stderr-like line ("503 Service Unavailable", "connection
refused", "MANIFEST_UNKNOWN"), so the retry policy classifies it as it does a tool's.

push.py builds its pushes on the same public pieces: `stored_login`, `basic_authorization`,
`authorize` with a push scope, `request` with a body (bytes, or an open file streamed from disk)
and headers, `failure` and `reason_of`. referrers.py reads with `fetch`, for which a 404 is an
answer (no such tag, or no such API).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import http.client
import json
import os
import re
import ssl
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import BinaryIO

from provenance_tasks.adapters.registry import keepalive
from provenance_tasks.adapters.registry.failures import asked, cause_of, failure, reason_of
from provenance_tasks.adapters.registry.traffic import TRAFFIC
from provenance_tasks.errors import ToolError
from provenance_tasks.references import DEFAULT_REGISTRY, registry_of

ACCEPT = ", ".join(
    (
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    )
)
_LOOPBACK = re.compile(r"^(localhost|127\.\d+\.\d+\.\d+|\[::1\])(:\d+)?$")
_CHALLENGE = re.compile(r'(\w+)="([^"]*)"')


class UseTheTool(Exception):
    """Something this client does not do (a credential helper, a redirect to another host):
    ask the tool instead, which does what docker does. Caught in client.py only."""


class PlainHTTP(Exception):
    """A loopback registry answered TLS with plain HTTP."""


class _SameOrigin(urllib.request.HTTPRedirectHandler):
    """Follow a redirect only to the same scheme and host: urllib would otherwise carry the
    Authorization header (the registry's login) to wherever the redirect points."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[no-untyped-def]
        old, new = urllib.parse.urlsplit(req.full_url), urllib.parse.urlsplit(newurl)
        if (old.scheme, old.netloc) != (new.scheme, new.netloc):
            raise UseTheTool(f"redirected to {new.scheme}://{new.netloc}")
        if req.get_method() not in ("GET", "HEAD"):
            # urllib would turn a redirected POST into a GET without its body: the redirect is
            # the answer then, and fails as any other unexpected status does.
            return None
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def manifest_digest(reference: str, *, config_dir: Path | None, timeout: float = 30.0) -> str:
    """The digest `reference` (REPO:TAG or REPO@DIGEST) names at the registry now."""
    return _manifest("HEAD", reference, config_dir, timeout)[0]


def read_manifest(
    reference: str, *, config_dir: Path | None, timeout: float = 30.0
) -> tuple[str, bytes]:
    """The media type and exact bytes of the manifest or index `reference` names; a REPO@DIGEST
    whose bytes don't hash to that digest is refused (a registry or proxy that lies)."""
    digest, media_type, data = _manifest("GET", reference, config_dir, timeout)
    if "@" in reference and data is not None:
        wanted = reference.rsplit("@", 1)[1]
        if digest != wanted:
            raise ToolError(f"the registry's {reference} hashes to {digest}, not {wanted}")
    return media_type, data or b""


def read_blob(reference: str, *, config_dir: Path | None, timeout: float = 30.0) -> bytes:
    """The bytes of the blob REPO@DIGEST (an image config), checked against its digest."""
    digest, _, data = _manifest("GET", reference, config_dir, timeout, kind="blobs")
    wanted = reference.rsplit("@", 1)[1]
    if digest != wanted:
        raise ToolError(f"the registry's {reference} hashes to {digest}, not {wanted}")
    return data or b""


def fetch(
    reference: str, *, config_dir: Path | None, kind: str = "manifests", timeout: float = 30.0
) -> tuple[str, bytes] | None:
    """The media type and bytes GET `reference` (REPO:TAG or REPO@DIGEST) answers under
    /v2/<name>/<kind>/, or None for a 404: a tag or manifest the registry doesn't hold, or an
    endpoint it doesn't have (a registry without the referrers API, for kind "referrers").
    Nothing is checked against a digest: the caller knows whether the answer is addressed by
    its content. Any other failure raises CommandFailed, as `read_manifest` does."""
    answer, url, _ = _answered("GET", reference, config_dir, timeout, kind)
    if answer.status == 404:
        return None
    if answer.status != 200:
        raise failure("GET", url, answer.status, answer.reason, retry_after=asked(answer))
    return _media_type(answer), answer.read()


def _manifest(
    method: str,
    reference: str,
    config_dir: Path | None,
    timeout: float,
    *,
    kind: str = "manifests",
) -> tuple[str, str, bytes | None]:
    """(digest, media type, body of a GET) of `reference`, with the run's login."""
    answer, url, authorization = _answered(method, reference, config_dir, timeout, kind)
    if answer.status != 200:
        raise failure(method, url, answer.status, answer.reason, retry_after=asked(answer))
    media_type = _media_type(answer)
    if method == "GET":
        data = answer.read()
        return "sha256:" + hashlib.sha256(data).hexdigest(), media_type, data
    digest = answer.getheader("Docker-Content-Digest")
    if digest:
        return digest, media_type, None
    body = request("GET", url, authorization, timeout)  # a registry that doesn't say: count
    if body.status != 200:
        raise failure("GET", url, body.status, body.reason, retry_after=asked(body))
    return "sha256:" + hashlib.sha256(body.read()).hexdigest(), media_type, None


def _answered(
    method: str, reference: str, config_dir: Path | None, timeout: float, kind: str
) -> tuple[http.client.HTTPResponse, str, str | None]:
    """The registry's answer to `method` on `reference`, after its 401 if it asked for a login;
    with the URL on the scheme it speaks and the Authorization that was sent."""
    registry = registry_of(reference)
    host = "registry-1.docker.io" if registry == DEFAULT_REGISTRY else registry
    name, ref = _split(reference, registry)
    url = f"https://{host}/v2/{name}/{kind}/{ref}"
    login = stored_login(config_dir, registry)
    # Over TLS with a login, Basic goes first: a registry that wants a token answers 401 anyway.
    authorization = basic_authorization(login)
    try:
        answer = request(method, url, authorization, timeout)
    except PlainHTTP:
        # As docker does: a loopback registry may speak plain HTTP. Credentials go only in
        # answer to its 401 then, and never in the clear to any other host.
        url = f"http://{host}/v2/{name}/{kind}/{ref}"
        authorization = None
        answer = request(method, url, None, timeout)
    if answer.status == 401:
        authorization = authorize(answer.getheader("WWW-Authenticate") or "", login, name, timeout)
        answer = request(method, url, authorization, timeout)
    return answer, url, authorization


def _media_type(answer: http.client.HTTPResponse) -> str:
    return (answer.getheader("Content-Type") or "").split(";")[0].strip()


def _split(reference: str, registry: str) -> tuple[str, str]:
    rest = reference[len(registry) + 1 :] if reference.startswith(registry + "/") else reference
    if "@" in rest:
        name, ref = rest.split("@", 1)
    else:
        name, _, ref = rest.rpartition(":")
    if registry == DEFAULT_REGISTRY and "/" not in name:
        name = f"library/{name}"
    return name, ref


def stored_login(config_dir: Path | None, registry: str) -> tuple[str, str] | None:
    """The user and password `docker login` stored for `registry`, or None for anonymous."""
    folder = config_dir or Path(os.environ.get("DOCKER_CONFIG") or Path.home() / ".docker")
    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError):
        return None
    if (config.get("credHelpers") or {}).get(registry):
        raise UseTheTool(registry)
    # Docker Hub's logins are stored under its old index address.
    names = {registry, "index.docker.io"} if registry == DEFAULT_REGISTRY else {registry}
    try:
        for key, entry in (config.get("auths") or {}).items():
            if urllib.parse.urlsplit(key if "//" in key else f"//{key}").netloc not in names:
                continue
            if entry.get("identitytoken"):
                raise UseTheTool(registry)  # an OAuth refresh token: the tool knows that flow
            if entry.get("auth"):
                user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
                return user, password
    except (AttributeError, ValueError):  # binascii.Error and UnicodeDecodeError included
        raise UseTheTool(registry) from None  # an entry we can't read: docker may
    if config.get("credsStore"):
        raise UseTheTool(registry)
    return None


def authorize(
    challenge: str,
    login: tuple[str, str] | None,
    name: str,
    timeout: float,
    *,
    scope: str | None = None,
    method: str = "HEAD",
) -> str:
    """The Authorization header the registry's 401 asks for: Basic, or a Bearer token.

    `scope` is what the token must allow (a push asks for `repository:NAME:pull,push` from its
    first request, so the token a HEAD earned still does for the uploads); by default, what the
    challenge names, or pulling `name`. `method` only names the request in a failure.
    """
    scheme = challenge.split(" ", 1)[0].lower()
    basic = basic_authorization(login)
    if scheme == "basic":
        if basic is None:
            raise failure(method, name, 401, "Unauthorized: no login for this registry")
        return basic
    if scheme != "bearer":
        raise failure(method, name, 401, f"Unauthorized: unknown challenge {scheme!r}")
    params = dict(_CHALLENGE.findall(challenge))
    query = {"scope": scope or params.get("scope") or f"repository:{name}:pull"}
    if params.get("service"):
        query["service"] = params["service"]
    realm = params.get("realm", "")
    token_url = f"{realm}{'&' if '?' in realm else '?'}{urllib.parse.urlencode(query)}"
    answer = request("GET", token_url, basic, timeout)
    if answer.status != 200:
        raise failure("GET", realm, answer.status, answer.reason)
    try:
        data = json.loads(answer.read() or b"{}")
        token = data.get("token") or data.get("access_token")
    except (ValueError, AttributeError):
        raise failure("GET", realm, 502, "Bad Gateway: no JSON from the token service") from None
    if not token:
        raise failure("GET", realm, 401, "Unauthorized: the token service gave no token")
    return f"Bearer {token}"


def basic_authorization(login: tuple[str, str] | None) -> str | None:
    return "Basic " + base64.b64encode(":".join(login).encode()).decode() if login else None


_MADE_ONCE = threading.Lock()


@functools.cache
def _tls() -> ssl.SSLContext:
    """One TLS context per process: loading the CA bundle is the slow part of a request."""
    return ssl.create_default_context()  # honours SSL_CERT_FILE, as docker's tools do


# Kept-alive connections for every request of the run that no proxy takes (keepalive.py).
_POOL = keepalive.Pool(lambda: _opener_tls())


def _opener_tls() -> ssl.SSLContext:
    with _MADE_ONCE:
        return _tls()


def _opener(loopback: bool) -> urllib.request.OpenerDirector:
    # functools.cache alone lets the images of a set, starting together, each load the CA
    # bundle (20-30 ms of CPU each): the first one makes it, the others wait for it.
    with _MADE_ONCE:
        return _made_opener(loopback)


@functools.cache
def _made_opener(loopback: bool) -> urllib.request.OpenerDirector:
    handlers: list[urllib.request.BaseHandler] = [
        _SameOrigin(),
        urllib.request.HTTPSHandler(context=_tls()),
    ]
    if loopback:
        handlers.append(urllib.request.ProxyHandler({}))  # as Go's clients: never proxy loopback
    return urllib.request.build_opener(*handlers)


def request(
    method: str,
    url: str,
    authorization: str | None,
    timeout: float,
    *,
    body: bytes | BinaryIO | None = None,
    headers: Mapping[str, str] | None = None,
    storage: bool = False,
) -> http.client.HTTPResponse:
    """One request; an HTTP error status is returned as the answer, not raised. `storage`: a
    blob's GET may be redirected to its storage on another host (keepalive.Pool.send).

    A file `body` is sent in blocks as http.client reads it (a layer never sits in memory whole);
    the caller gives its Content-Length in `headers`, else urllib would send it chunked.
    """
    sent = {"Accept": ACCEPT, "User-Agent": "provenance-tasks", **(headers or {})}
    if authorization:
        sent["Authorization"] = authorization
    parts = urllib.parse.urlsplit(url)
    loopback = bool(_LOOPBACK.match(parts.netloc))
    try:
        if not _proxied(parts, loopback):
            return _POOL.send(method, url, sent, timeout, body, storage=storage)  # type: ignore[return-value]
        outgoing = urllib.request.Request(url, data=body, method=method, headers=sent)  # noqa: S310
        answer: http.client.HTTPResponse = _opener(loopback).open(outgoing, timeout=timeout)
        _counted(body, sent)  # through a proxy: one per answer, its redirects unseen
    except urllib.error.HTTPError as exc:
        _counted(body, sent)
        return exc  # type: ignore[return-value]  # an HTTPError is the error answer itself
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        cause = cause_of(exc)
        # A plain-HTTP server's answer to a TLS hello, not a certificate that fails to verify.
        plain = (
            isinstance(cause, ssl.SSLError) and not isinstance(cause, ssl.SSLCertVerificationError)
        ) or isinstance(exc, http.client.BadStatusLine)
        if loopback and url.startswith("https:") and plain:
            raise PlainHTTP(parts.netloc) from None
        raise failure(method, url, None, reason_of(exc)) from None
    return answer


def _counted(body: bytes | BinaryIO | None, headers: Mapping[str, str]) -> None:
    size = len(body) if isinstance(body, bytes) else int(headers.get("Content-Length") or 0)
    TRAFFIC.count(size if body is not None else 0)


def _proxied(parts: urllib.parse.SplitResult, loopback: bool) -> bool:
    """A proxy from the environment (HTTPS_PROXY, NO_PROXY) takes this request: urllib's way.
    Loopback never goes through one, as with Go's clients."""
    if loopback or not urllib.request.getproxies().get(parts.scheme):
        return False
    return not urllib.request.proxy_bypass(parts.hostname or "")
