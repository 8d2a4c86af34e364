"""Local runs: provenance from a real git in a temporary folder, graceful without it."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from provenance_tasks.ci.base import CIContext
from provenance_tasks.ci.local import (
    LocalProvider,
    repository_component,
    source_url,
    strip_credentials,
)
from provenance_tasks.references import validate_repository

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Test",
    "GIT_AUTHOR_EMAIL": "test@example.com",
    "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "test@example.com",
    "GIT_CONFIG_NOSYSTEM": "1",
}


@pytest.fixture(autouse=True)
def _isolated_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep git from finding a repository above tmp_path, or the user's configuration."""
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    for name in ("GIT_DIR", "GIT_WORK_TREE"):
        monkeypatch.delenv(name, raising=False)


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(cwd), *args],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **GIT_ENV},
    )
    return done.stdout.strip()


def make_repo(folder: Path, *, commit: bool = True, remote: str | None = None) -> str | None:
    folder.mkdir(parents=True, exist_ok=True)
    git(folder, "init", "-q", "-b", "main")
    if remote is not None:
        git(folder, "remote", "add", "origin", remote)
    if not commit:
        return None
    git(folder, "commit", "-q", "--allow-empty", "-m", "first")
    return git(folder, "rev-parse", "HEAD")


def context(cwd: Path, environ: dict[str, str] | None = None) -> CIContext:
    return LocalProvider(cwd=cwd).context(environ or {})


def test_repository_with_commit_and_remote(tmp_path: Path) -> None:
    folder = tmp_path / "My App"
    sha = make_repo(folder, remote="https://alice:s3cr3t-p4ss@git.example.com/team/app.git")
    assert sha is not None
    ctx = context(folder)
    assert ctx.provider == "local"
    assert [(a.key, a.value) for a in ctx.annotations] == [
        ("dev.provenance.local.commit.sha", sha),
        ("dev.provenance.local.commit.ref.name", "main"),
        ("org.opencontainers.image.source", "https://git.example.com/team/app"),
        ("org.opencontainers.image.revision", sha),
    ]
    assert ctx.default_repository == "localhost:5000/my-app"
    assert ctx.default_tags == (sha[:8],)
    assert ctx.identity is None
    assert ctx.issuer is None
    assert ctx.registry is None
    assert ctx.registry_password is None
    assert "s3cr3t-p4ss" in ctx.secrets
    assert "s3cr3t-p4ss" not in repr(ctx)
    assert dict(ctx.labels) == {
        "org.opencontainers.image.source": "https://git.example.com/team/app",
        "org.opencontainers.image.revision": sha,
        "org.opencontainers.image.version": sha[:8],
        "org.opencontainers.image.title": "My App",
    }


def test_repository_without_commits(tmp_path: Path) -> None:
    folder = tmp_path / "app"
    make_repo(folder, commit=False, remote="git@github.com:o/app.git")
    ctx = context(folder)
    assert [(a.key, a.value) for a in ctx.annotations] == [
        ("org.opencontainers.image.source", "https://github.com/o/app"),  # SSH: its web URL
    ]
    assert ctx.default_tags == ("latest",)
    assert "org.opencontainers.image.revision" not in ctx.labels


@pytest.mark.parametrize(
    ("remote", "source"),
    [
        ("git@gitlab.com:group/app.git", "https://gitlab.com/group/app"),
        (
            "ssh://git@gitlab.example.com:2222/group/sub/app.git",
            "https://gitlab.example.com/group/sub/app",
        ),
        ("git://git.example.org/app.git", "https://git.example.org/app"),
        ("https://github.com/o/r.git", "https://github.com/o/r"),
        ("http://gitea.test:3000/o/r", "http://gitea.test:3000/o/r"),
        ("/srv/git/app.git", None),  # a path on this machine names nothing others can open
        ("file:///srv/git/app.git", None),
        ("../app", None),
        # SSH endpoints whose web pages live under another name: no source rather than a wrong one
        ("ssh://git@ssh.github.com:443/o/app.git", None),
        ("git@ssh.dev.azure.com:v3/org/project/app", None),
        ("host.example.com:/srv/git/app.git", None),  # a path on an SSH server
    ],
)
def test_the_source_is_a_url_never_a_local_path(remote: str, source: str | None) -> None:
    assert source_url(remote) == source


def test_a_local_path_remote_leaves_the_source_out(tmp_path: Path) -> None:
    folder = tmp_path / "app"
    make_repo(folder, remote=str(tmp_path / "upstream.git"))
    ctx = context(folder)
    assert "org.opencontainers.image.source" not in ctx.labels
    assert all(a.key != "org.opencontainers.image.source" for a in ctx.annotations)


def test_repository_without_remote(tmp_path: Path) -> None:
    folder = tmp_path / "app"
    sha = make_repo(folder)
    ctx = context(folder)
    keys = [a.key for a in ctx.annotations]
    assert keys == [
        "dev.provenance.local.commit.sha",
        "dev.provenance.local.commit.ref.name",
        "org.opencontainers.image.revision",
    ]
    assert ctx.annotations[0].value == sha


def test_detached_head_has_no_ref_name(tmp_path: Path) -> None:
    folder = tmp_path / "app"
    sha = make_repo(folder)
    assert sha is not None
    git(folder, "checkout", "-q", "--detach")
    ctx = context(folder)
    assert [a.key for a in ctx.annotations] == [
        "dev.provenance.local.commit.sha",
        "org.opencontainers.image.revision",
    ]


def test_no_git_repository(tmp_path: Path) -> None:
    folder = tmp_path / "Plain_Folder"
    folder.mkdir()
    ctx = context(folder)
    assert ctx.annotations == ()
    assert ctx.default_repository == "localhost:5000/plain_folder"
    assert ctx.default_tags == ("latest",)
    assert "unknown" not in repr(ctx)


def test_no_git_binary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "app"
    make_repo(folder)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    ctx = context(folder)
    assert ctx.annotations == ()
    assert ctx.default_tags == ("latest",)


def test_secrets_and_token_from_environ(tmp_path: Path) -> None:
    ctx = context(tmp_path, {"COSIGN_PASSWORD": "pw-123", "SIGSTORE_ID_TOKEN": "tok-456"})
    assert set(ctx.secrets) == {"pw-123", "tok-456"}
    assert ctx.id_token == "tok-456"
    assert ctx.id_token_source == "SIGSTORE_ID_TOKEN"
    assert "pw-123" not in repr(ctx)
    assert "tok-456" not in repr(ctx)


@pytest.mark.parametrize(
    ("url", "stripped", "secrets"),
    [
        ("https://github.com/o/r.git", "https://github.com/o/r.git", ()),
        ("https://u:p@github.com/o/r.git", "https://github.com/o/r.git", ("u:p", "p", "u")),
        ("https://ghp_TOKEN@github.com/o/r", "https://github.com/o/r", ("ghp_TOKEN",)),
        ("http://u:p%40ss@h:8080/r", "http://h:8080/r", ("u:p%40ss", "p%40ss", "u")),
        ("https://u:p@ss@h/r", "https://h/r", ("u:p@ss", "p@ss", "u")),
        ("ssh://git@github.com/o/r.git", "ssh://git@github.com/o/r.git", ()),
        ("ssh://git:pw@host/r.git", "ssh://host/r.git", ("git:pw", "pw")),
        ("git@github.com:o/r.git", "git@github.com:o/r.git", ()),
        ("me:pw@host:o/r.git", "host:o/r.git", ("me:pw", "pw")),
        ("/srv/git/r.git", "/srv/git/r.git", ()),
        ("file:///srv/git/r.git", "file:///srv/git/r.git", ()),
    ],
)
def test_strip_credentials(url: str, stripped: str, secrets: tuple[str, ...]) -> None:
    assert strip_credentials(url) == (stripped, secrets)


@pytest.mark.parametrize(
    ("folder", "component"),
    [
        ("app", "app"),
        ("My App", "my-app"),
        ("My_Project.v2", "my_project.v2"),
        ("caf\u00e9-\u00dcber", "cafe-uber"),
        ("--weird__.__name--", "weird-name"),
        ("a___b", "a-b"),
        ("a..b", "a-b"),
        ("a._b", "a-b"),
        ("a--b", "a--b"),
        ("___", "app"),
        ("\u65e5\u672c", "app"),
        ("", "app"),
    ],
)
def test_repository_component(folder: str, component: str) -> None:
    assert repository_component(folder) == component
    assert (
        validate_repository(f"localhost:5000/{component}", "test") == f"localhost:5000/{component}"
    )


def test_folder_names_always_make_a_valid_repository() -> None:
    for name in ["A B C", "x.-y", "._.", "1", "UPPER", "tab\there", "a/b", "-_-"]:
        component = repository_component(name)
        assert re.fullmatch(r"[a-z0-9]+(?:(?:[._]|__|[-]*)[a-z0-9]+)*", component), name


def test_matches_always() -> None:
    provider = LocalProvider()
    assert provider.name == "local"
    assert provider.matches({})
