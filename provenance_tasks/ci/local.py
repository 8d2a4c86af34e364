"""A laptop (or any CI we do not know): provenance from git, key-mode signing, a local registry.

Nothing here is required: a folder without git, a repository without commits or without a remote
still builds and signs. A value git cannot give is left out rather than signed as "unknown",
because an annotation that claims a revision must name a real one.
"""

from __future__ import annotations

import os
import re
import subprocess
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from types import MappingProxyType
from typing import ClassVar

from provenance_tasks.annotations import validate_annotation
from provenance_tasks.ci._env import GITHUB, GITLAB, ID_TOKEN_VARIABLE, ci_is_set, get, secrets
from provenance_tasks.ci.base import CIContext
from provenance_tasks.models import Annotation
from provenance_tasks.references import validate_repository
from provenance_tasks.tag_rules import RefFacts

__all__ = [
    "LOCAL_REGISTRY",
    "LocalProvider",
    "UnknownCIProvider",
    "git_output",
    "repository_component",
    "source_url",
    "strip_credentials",
]

#: The registry a local run pushes to by default (`docker run -p 5000:5000 registry:2`).
LOCAL_REGISTRY = "localhost:5000"

#: Variables whose values are secrets, for redaction.
SECRET_VARIABLES = (ID_TOKEN_VARIABLE, "COSIGN_PASSWORD")

#: How long one git query may take before we do without its answer.
GIT_TIMEOUT_SECONDS = 10.0

_LABEL = "org.opencontainers.image."
_SHA_RE = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
_URL_USERINFO_RE = re.compile(r"^(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<userinfo>[^/?#]*)@")
_SCP_USERINFO_RE = re.compile(r"^(?P<userinfo>[^/@]*:[^/@]*)@(?=[^/:]+:)")
_VALID_SEPARATOR_RE = re.compile(r"[._]|__|-+")


@dataclass(frozen=True)
class GitFacts:
    """What git said about the working tree; None where it could not say."""

    sha: str | None = None
    ref_name: str | None = None
    remote_url: str | None = None


def git_output(cwd: Path, *args: str) -> str | None:
    """git's whole output in `cwd`, or None if git is missing, fails or finds no repository."""
    try:
        result = subprocess.run(
            ["git", "-C", str(cwd), *args],
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT_SECONDS,
            check=False,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "GIT_TERMINAL_PROMPT": "0"},
        )
    except (OSError, subprocess.SubprocessError, UnicodeDecodeError):
        return None
    return result.stdout if result.returncode == 0 else None


def _git(cwd: Path, *args: str) -> str | None:
    """One line of git output, or None if git is missing, fails or says nothing."""
    return (git_output(cwd, *args) or "").strip() or None


def git_facts(cwd: Path) -> GitFacts:
    """Ask git about `cwd`; every answer is optional."""
    sha = _git(cwd, "rev-parse", "HEAD")
    if sha is not None and not _SHA_RE.fullmatch(sha):
        sha = None
    ref_name = _git(cwd, "rev-parse", "--abbrev-ref", "HEAD") if sha else None
    if ref_name == "HEAD":  # detached: there is no branch to name
        ref_name = None
    remote_url = _git(cwd, "config", "--get", "remote.origin.url")
    return GitFacts(sha=sha, ref_name=ref_name, remote_url=remote_url)


def strip_credentials(url: str) -> tuple[str, tuple[str, ...]]:
    """`url` without credentials, and the secrets taken out of it (so logs can redact them).

    A `user:password@` part goes wherever it is. Over http(s) a bare `user@` goes too, because
    `https://TOKEN@host/...` is how tokens are often put in remotes; `ssh://git@` and scp-like
    `git@host:path` stay, since the user there names no secret.
    """
    match = _URL_USERINFO_RE.match(url)
    if match:
        userinfo = match.group("userinfo")
        rest = match.group("scheme") + url[match.end() :]
        is_http = match.group("scheme").lower() in ("http://", "https://")
    else:
        match = _SCP_USERINFO_RE.match(url)
        if not match:
            return url, ()
        userinfo = match.group("userinfo")
        rest = url[match.end() :]
        is_http = False
    user, has_password, password = userinfo.partition(":")
    if not (has_password or is_http):
        return url, ()
    # Over http(s) the user part may itself be a token (https://TOKEN:x-oauth-basic@host).
    secrets = (userinfo, password, user if is_http else "")
    return rest, tuple(s for s in dict.fromkeys(secrets) if s)


# A remote with a scheme (its user and port dropped), or scp-like `user@host:path`, whose host
# must look like a host name: an ssh-config alias names nothing outside this machine.
_SCHEMED_RE = re.compile(
    r"(?P<scheme>https?|ssh|git|git\+ssh)://(?:[^/@]*@)?(?P<host>[^/:]+)(?::\d*)?(?P<path>/.*)",
    re.I,
)
# Hosts that serve SSH only, under another name than their web pages' (GitHub's port-443 SSH,
# Azure DevOps, AWS CodeCommit): their remotes give no source rather than a wrong one.
_SSH_ONLY = re.compile(r"[@/]ssh\.|^ssh\.|git-codecommit\.", re.I)
_SCP_RE = re.compile(
    r"(?:[^/@:]+@)?(?P<host>[A-Za-z0-9.-]+\.[A-Za-z]{2,}|localhost):(?!//)(?P<path>.+)"
)


def source_url(remote: str) -> str | None:
    """The web address of a git remote, as `org.opencontainers.image.source` wants one: an SSH
    remote (`git@host:group/app.git`, `ssh://git@host:22/group/app`) becomes
    `https://host/group/app`, `.git` goes, http(s) stays as it is. A local path or `file://`
    remote names no place anyone else can look: None, and the source is left out."""
    match = _SCHEMED_RE.fullmatch(remote)
    if _SSH_ONLY.search(remote):
        return None  # an SSH endpoint whose web address is another: no guess
    if match:
        scheme = match.group("scheme").lower()
        host, path = match.group("host"), match.group("path")
        if scheme in ("http", "https"):
            return remote.removesuffix("/").removesuffix(".git")
    else:
        match = _SCP_RE.fullmatch(remote)
        if not match:
            return None
        if match.group("path").startswith("/"):
            return None  # `host:/srv/app.git`: a path on an SSH server, no web page
        host, path = match.group("host"), "/" + match.group("path")
    return f"https://{host.lower()}{path.removesuffix('/').removesuffix('.git')}"


def repository_component(folder_name: str) -> str:
    """`folder_name` made into one valid repository path component, e.g. `My App` -> `my-app`."""
    ascii_name = (
        unicodedata.normalize("NFKD", folder_name).encode("ascii", "ignore").decode("ascii")
    )
    name = re.sub(r"[^a-z0-9._-]+", "-", ascii_name.lower())
    name = re.sub(
        r"[._-]+",
        lambda m: m.group(0) if _VALID_SEPARATOR_RE.fullmatch(m.group(0)) else "-",
        name,
    )
    return name.strip("._-") or "app"


@dataclass(frozen=True)
class LocalProvider:
    """Not GitLab, not GitHub: a developer machine or an unknown CI (`CI=true` alone)."""

    cwd: Path | None = None
    name: ClassVar[str] = "local"

    def matches(self, environ: Mapping[str, str]) -> bool:
        """The fallback: always applies."""
        return True

    def context(self, environ: Mapping[str, str]) -> CIContext:
        cwd = self.cwd if self.cwd is not None else Path.cwd()
        facts = git_facts(cwd)
        remote, credentials = (
            strip_credentials(facts.remote_url) if facts.remote_url else (None, ())
        )
        source = source_url(remote) if remote else None

        candidates = (
            ("dev.provenance.local.commit.sha", facts.sha, "git rev-parse HEAD"),
            ("dev.provenance.local.commit.ref.name", facts.ref_name, "git rev-parse --abbrev-ref"),
            ("org.opencontainers.image.source", source, "git remote.origin.url"),
            ("org.opencontainers.image.revision", facts.sha, "git rev-parse HEAD"),
        )
        annotations = tuple(
            validate_annotation(Annotation(key=key, value=value, source=source))
            for key, value, source in candidates
            if value is not None
        )

        folder = cwd.resolve().name
        default_repository = validate_repository(
            f"{LOCAL_REGISTRY}/{repository_component(folder)}", "the folder name"
        )
        short_sha = facts.sha[:8] if facts.sha else None

        labels: dict[str, str] = {}
        if source is not None:
            labels[f"{_LABEL}source"] = source
        if facts.sha is not None:
            labels[f"{_LABEL}revision"] = facts.sha
        if short_sha is not None:
            labels[f"{_LABEL}version"] = short_sha
        if folder:
            labels[f"{_LABEL}title"] = folder

        id_token = get(environ, ID_TOKEN_VARIABLE)
        return CIContext(
            provider=self.name,
            annotations=annotations,
            labels=MappingProxyType(labels),
            default_repository=default_repository,
            default_tags=(short_sha or "latest",),
            identity=None,
            issuer=None,
            id_token=id_token,
            id_token_source=ID_TOKEN_VARIABLE if id_token is not None else None,
            secrets=tuple(dict.fromkeys([*secrets(environ, SECRET_VARIABLES), *credentials])),
            local_keys=True,
            detected="no CI (CI is not set): a laptop, with local defaults",
            source_ref=f"refs/heads/{facts.ref_name}" if facts.ref_name else None,
            refs=RefFacts(
                short_sha=short_sha,
                sha_source="git rev-parse HEAD",
                ref_name=facts.ref_name,  # a branch; a checked-out tag is a detached HEAD
                ref_source="git rev-parse --abbrev-ref HEAD",
                is_tag=False,
                # Only the remote knows it (origin/HEAD may be stale or absent): not guessed,
                # and no further git process is spent on it.
                default_branch=None,
                default_branch_source="a local run does not know it",
            ),
        )


@dataclass(frozen=True)
class UnknownCIProvider(LocalProvider):
    """`CI=true`, but neither GitLab's nor GitHub's own variable: a CI we don't know (Jenkins,
    gitlab-ci-local). Provenance still comes from git, but nothing is assumed about where the
    image goes or what signs it: no localhost registry, no throwaway key pair."""

    name: ClassVar[str] = "unknown-ci"

    def matches(self, environ: Mapping[str, str]) -> bool:
        return ci_is_set(environ)

    def context(self, environ: Mapping[str, str]) -> CIContext:
        why = f"CI=true, but neither {GITLAB.detector}=true nor {GITHUB.detector}=true"
        if environ.get(GITLAB.detector) == "false":
            # gitlab-ci-local sets it so, on purpose: its users ask for GitLab's behaviour.
            why += (
                " (GITLAB_CI=false is what gitlab-ci-local sets: run it with "
                "--variable GITLAB_CI=true to get GitLab's defaults)"
            )
        return replace(
            super().context(environ),
            provider=self.name,
            default_repository=None,
            local_keys=False,
            detected=f"an unknown CI: {why}",
            # Nothing is assumed about a CI we don't know: its checkout is often a detached
            # HEAD, so git can't say which branch or tag it builds, and tag rules get no facts.
            refs=None,
            image_hint=f"this CI is not one provenance-tasks knows ({why}); pass --image "
            "REPOSITORY: no default is guessed in CI",
            key_hint=f"this CI is not one provenance-tasks knows ({why}); pass --key (a file, "
            "env://VAR or a KMS URI), or --mode keyless with SIGSTORE_ID_TOKEN: no key pair is "
            "made in CI",
        )
