"""Image references (repository, tag, digest) checked in pure Python before any tool sees them.

Docker, buildx, the registry and cosign each reject a bad reference with their own message, some
only after a build has run for minutes; checking here first turns every one of those into a single
error that names where the value came from (`--image`, `CI_REGISTRY_IMAGE`, ...) and how to fix it.

The grammar is the one of the OCI distribution / docker reference package
(github.com/distribution/reference, `reference.go`):

    name           := [domain '/'] path-component ['/' path-component]*
    domain         := host [':' port-number]
    path-component := alpha-numeric [separator alpha-numeric]*
    alpha-numeric  := /[a-z0-9]+/
    separator      := /[_.]|__|[-]*/
    tag            := /[\\w][\\w.-]{0,127}/
    digest         := algorithm ':' hex
"""

from __future__ import annotations

import re

from provenance_tasks.errors import InputError

__all__ = [
    "DEFAULT_REGISTRY",
    "registry_of",
    "sanitize_tag",
    "split_image_ref",
    "validate_digest",
    "validate_repository",
    "validate_tag",
]

#: The registry docker uses for a repository whose first component is not a host.
DEFAULT_REGISTRY = "docker.io"

#: The longest repository name (domain and path) the reference package accepts.
_NAME_MAX = 255

_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|[-]*)[a-z0-9]+)*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_HOST = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])"
_DOMAIN_RE = re.compile(rf"{_HOST}(?::[0-9]+)?")
_PATH_COMPONENT_RE = re.compile(_PATH_COMPONENT)
# Go's \w is ASCII only, so spell it out: Python's \w would also admit letters like "é".
_TAG_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_DIGEST_RE = re.compile(r"sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128}")
_DIGEST_LIKE_RE = re.compile(r"(?i)(?:sha256|sha512):.*|[a-f0-9]{64}|[a-f0-9]{128}")
_SCHEME_RE = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")

_TAG_HINT = (
    "an image tag is 1 to 128 characters: letters, digits, '_', '.' and '-', "
    "not starting with '.' or '-'"
)


def _is_domain(component: str) -> bool:
    """Whether docker reads this first component as a registry host rather than a path."""
    return "." in component or ":" in component or component == "localhost"


def registry_of(repo: str) -> str:
    """The registry host docker would contact for `repo` (what `docker login` needs).

    The first component is the registry when it looks like a host (has a '.' or a ':' or is
    `localhost`); otherwise docker uses Docker Hub, whatever the rest of the name says.
    """
    first, sep, _rest = repo.partition("/")
    if sep and _is_domain(first):
        return first
    return DEFAULT_REGISTRY


def validate_repository(repo: str, source: str) -> str:
    """Return `repo` unchanged if it is a repository name without tag or digest, else raise.

    `source` names where the value came from (a flag or a variable) so the message can say which
    value to fix.
    """
    if not repo:
        raise InputError(
            f"{source} is empty: it must name an image repository",
            hint="give a repository such as registry.example.com/group/app or localhost:5000/app",
        )
    if repo != repo.strip():
        raise InputError(
            f"{source} {repo!r} has leading or trailing whitespace",
            hint=f"remove the whitespace: {repo.strip()!r}",
        )
    if _SCHEME_RE.match(repo):
        bare = _SCHEME_RE.sub("", repo).rstrip("/")
        raise InputError(
            f"{source} {repo!r} is a URL, not an image repository",
            hint=f"drop the scheme: {bare!r}",
        )
    if "@" in repo:
        bare = repo.split("@", 1)[0]
        bare = _strip_tag(bare)
        raise InputError(
            f"{source} {repo!r} includes a digest: it must be a repository alone",
            hint=f"pass the repository alone ({bare!r}) and the tag with --tag",
        )
    domain, path = _split_domain(repo)
    if domain is None and ":" in path.rsplit("/", 1)[-1]:
        # Only reachable without a '/': "localhost:5000" or "app:1.0".
        host, _, port = path.partition(":")
        if port.isdigit() and _is_domain(host):
            raise InputError(
                f"{source} {repo!r} names a registry but no repository in it",
                hint=f"add a repository path, e.g. {repo}/app",
            )
    last = path.rsplit("/", 1)[-1]
    if ":" in last:
        bare = repo[: len(repo) - len(last)] + last.split(":", 1)[0]
        tag = last.split(":", 1)[1]
        raise InputError(
            f"{source} {repo!r} includes a tag ({tag!r}): it must be a repository alone",
            hint=f"pass the repository alone ({bare!r}) and the tag with --tag {tag}",
        )
    if domain is not None and not _DOMAIN_RE.fullmatch(domain):
        raise InputError(
            f"{source} {repo!r} has an invalid registry host {domain!r}",
            hint="a registry is a host name or IP address with an optional port, e.g. "
            "registry.example.com:5000",
        )
    if not path:
        raise InputError(
            f"{source} {repo!r} names a registry but no repository in it",
            hint=f"add a repository path, e.g. {repo.rstrip('/')}/app",
        )
    bad = [c for c in path.split("/") if not _PATH_COMPONENT_RE.fullmatch(c)]
    if bad:
        lowered = path.lower()
        if lowered != path and all(_PATH_COMPONENT_RE.fullmatch(c) for c in lowered.split("/")):
            suggestion = lowered if domain is None else f"{domain}/{lowered}"
            raise InputError(
                f"{source} {repo!r} has uppercase letters in its path",
                hint=f"repository paths are lowercase: use {suggestion!r}",
            )
        raise InputError(
            f"{source} {repo!r} has an invalid path component {bad[0]!r}",
            hint="each '/'-separated part of the path is lowercase letters and digits, joined "
            "by '.', '_', '__' or dashes, and cannot start or end with a separator",
        )
    if len(repo) > _NAME_MAX:
        raise InputError(
            f"{source} is {len(repo)} characters long; a repository name is at most {_NAME_MAX}",
            hint="use a shorter repository path",
        )
    return repo


def _split_domain(repo: str) -> tuple[str | None, str]:
    """Split off the registry host the way docker does (see `registry_of`)."""
    first, sep, rest = repo.partition("/")
    if sep and _is_domain(first):
        return first, rest
    return None, repo


def _strip_tag(name: str) -> str:
    """`name` without a ':tag' on its last component (a registry port is not a tag)."""
    head, sep, last = name.rpartition("/")
    return f"{head}{sep}{last.split(':', 1)[0]}"


def validate_tag(tag: str, source: str) -> str:
    """Return `tag` unchanged if it is a valid image tag, else raise naming `source`.

    A digest passed where a tag belongs is the most common mix-up (a tag of 64 hex characters is
    even valid for docker), so it gets its own message rather than a silent, confusing tag.
    """
    if not tag:
        raise InputError(f"{source} is an empty image tag", hint=_TAG_HINT)
    if _DIGEST_LIKE_RE.fullmatch(tag):
        raise InputError(
            f"{source} {tag!r} is a digest, and a digest is not a tag",
            hint="pass a tag name (e.g. v1.2.3 or the short commit sha); an image is pinned "
            "by digest as REPOSITORY@sha256:..., not with --tag",
        )
    if len(tag) > 128:
        raise InputError(
            f"{source} is {len(tag)} characters long; an image tag is at most 128",
            hint=_TAG_HINT,
        )
    if not _TAG_RE.fullmatch(tag):
        raise InputError(f"{source} {tag!r} is not a valid image tag", hint=_TAG_HINT)
    return tag


def sanitize_tag(name: str, source: str) -> str:
    """A git tag name made into a valid image tag, e.g. `v1.0+build/7` -> `v1.0-build-7`.

    Git tags may hold characters an image tag cannot ('+', '/', ...). Refusing them would make a
    tag pipeline fail whatever the user passes, so default tags derived from a git tag are mapped
    the way docker/metadata-action does it: every run of other characters becomes '-', leading
    '.' and '-' are dropped, and the result is cut to 128 characters. A valid tag is unchanged.
    """
    tag = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).lstrip(".-")[:128]
    return validate_tag(tag, source) if tag else validate_tag(name, source)


def validate_digest(d: str, source: str) -> str:
    """Return `d` unchanged if it is a sha256 or sha512 digest in canonical form, else raise."""
    if _DIGEST_RE.fullmatch(d):
        return d
    if _DIGEST_RE.fullmatch(d.lower()):
        raise InputError(
            f"{source} {d!r} has uppercase letters: digests are lowercase",
            hint=f"use {d.lower()!r}",
        )
    raise InputError(
        f"{source} {d!r} is not an image digest",
        hint="a digest is sha256: followed by 64 lowercase hex characters "
        "(or sha512: and 128), e.g. from `docker buildx build --metadata-file`",
    )


def split_image_ref(ref: str, source: str = "image reference") -> tuple[str, str]:
    """Split `REPOSITORY@DIGEST` into its validated repository and digest.

    A tag between them (`repo:tag@sha256:...`) is accepted and dropped, as docker does when it
    pulls: the digest alone pins the image.
    """
    name, sep, digest = ref.partition("@")
    if not sep:
        raise InputError(
            f"{source} {ref!r} has no digest",
            hint="pin the image by digest: REPOSITORY@sha256:<64 hex characters>",
        )
    validate_digest(digest, source)
    domain, path = _split_domain(name)
    last = path.rsplit("/", 1)[-1]
    if ":" in last:
        host, _, tag = last.partition(":")
        # A lone "localhost:5000" is a registry without a path: leave it for the message below.
        if domain is not None or "/" in path or not (tag.isdigit() and _is_domain(host)):
            validate_tag(tag, source)
            name = _strip_tag(name)
    return validate_repository(name, source), digest
