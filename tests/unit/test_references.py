"""Image references: the docker grammar, and messages that name the source and the fix."""

from __future__ import annotations

import pytest

from provenance_tasks.errors import InputError
from provenance_tasks.references import (
    registry_of,
    sanitize_tag,
    split_image_ref,
    validate_digest,
    validate_repository,
    validate_tag,
)

SHA256 = "sha256:" + "a" * 64
SHA512 = "sha512:" + "0123456789abcdef" * 8


@pytest.mark.parametrize(
    "repo",
    [
        "registry.example.com:5000/group/project/app",
        "localhost:5000/app",
        "ghcr.io/owner/repo",
        "app",
        "library/nginx",
        "registry.example.com/a/b/c/d",
        "my.registry:443/a__b/c.d/e---f",
        "Registry.Example.com/app",  # a host may have uppercase; only the path may not
        "127.0.0.1:5000/app",
        "[::1]:5000/app",
        "registry/app_1",
        "x/" + "a" * 200,
    ],
)
def test_valid_repositories(repo: str) -> None:
    assert validate_repository(repo, "--image") == repo


@pytest.mark.parametrize(
    ("repo", "in_message"),
    [
        ("", "empty"),
        (" ghcr.io/o/r", "whitespace"),
        ("ghcr.io/o/r\n", "whitespace"),
        ("https://ghcr.io/o/r", "URL"),
        ("ghcr.io/o/-r", "invalid path component"),
        ("ghcr.io/o/r-", "invalid path component"),
        ("ghcr.io/o/a.-b", "invalid path component"),
        ("ghcr.io/o/a___b", "invalid path component"),
        ("ghcr.io//r", "invalid path component"),
        ("ghcr.io/o/r/", "invalid path component"),
        ("ghcr.io/", "no repository"),
        ("localhost:5000", "no repository"),
        ("bad_host:5000/app", "invalid registry host"),
        ("-bad.example.com/app", "invalid registry host"),
        ("x/" + "a" * 260, "at most 255"),
    ],
)
def test_invalid_repositories_name_the_source(repo: str, in_message: str) -> None:
    with pytest.raises(InputError) as err:
        validate_repository(repo, "CI_REGISTRY_IMAGE")
    assert in_message in err.value.message
    assert "CI_REGISTRY_IMAGE" in err.value.message
    assert err.value.hint


@pytest.mark.parametrize(
    ("repo", "suggestion"),
    [
        ("ghcr.io/Owner/Repo", "'ghcr.io/owner/repo'"),
        ("MyOrg/App", "'myorg/app'"),
        ("Registry.Example.com:5000/Group/app", "'Registry.Example.com:5000/group/app'"),
    ],
)
def test_uppercase_path_suggests_lowercase(repo: str, suggestion: str) -> None:
    with pytest.raises(InputError) as err:
        validate_repository(repo, "--image")
    assert "uppercase" in err.value.message
    assert "--image" in err.value.message
    assert err.value.hint is not None and suggestion in err.value.hint


@pytest.mark.parametrize(
    ("repo", "bare", "what"),
    [
        ("ghcr.io/o/r:v1", "ghcr.io/o/r", "tag"),
        ("localhost:5000/app:latest", "localhost:5000/app", "tag"),
        ("app:1.0", "app", "tag"),
        (f"ghcr.io/o/r@{SHA256}", "ghcr.io/o/r", "digest"),
        (f"localhost:5000/app:v1@{SHA256}", "localhost:5000/app", "digest"),
    ],
)
def test_repository_with_tag_or_digest_says_to_use_tag_flag(
    repo: str, bare: str, what: str
) -> None:
    with pytest.raises(InputError) as err:
        validate_repository(repo, "--image")
    assert f"includes a {what}" in err.value.message
    assert "--image" in err.value.message
    assert err.value.hint is not None
    assert "--tag" in err.value.hint
    assert repr(bare) in err.value.hint


@pytest.mark.parametrize(
    "tag", ["latest", "v1.2.3", "1a2b3c4d", "_x", "Z" * 128, "feature-x_y.z", "a" * 63]
)
def test_valid_tags(tag: str) -> None:
    assert validate_tag(tag, "--tag") == tag


@pytest.mark.parametrize(
    ("tag", "in_message"),
    [
        ("", "empty"),
        (".hidden", "not a valid image tag"),
        ("-x", "not a valid image tag"),
        ("a/b", "not a valid image tag"),
        ("v1+build", "not a valid image tag"),
        ("caf\u00e9", "not a valid image tag"),  # Go's \w is ASCII
        ("a" * 129, "at most 128"),
        (SHA256, "a digest is not a tag"),
        ("a" * 64, "a digest is not a tag"),
        ("0123456789abcdef" * 4, "a digest is not a tag"),
        ("sha512:abc", "a digest is not a tag"),
    ],
)
def test_invalid_tags(tag: str, in_message: str) -> None:
    with pytest.raises(InputError) as err:
        validate_tag(tag, "--tag")
    assert in_message in err.value.message
    assert "--tag" in err.value.message


@pytest.mark.parametrize(
    ("name", "tag"),
    [
        ("v1.0.0", "v1.0.0"),
        ("v1.0.0+build.7", "v1.0.0-build.7"),
        ("release/2024-01", "release-2024-01"),
        (".v1", "v1"),
        ("x" * 200, "x" * 128),
    ],
)
def test_sanitize_tag(name: str, tag: str) -> None:
    assert sanitize_tag(name, "CI_COMMIT_TAG") == tag


def test_sanitize_tag_still_refuses_what_cannot_be_a_tag() -> None:
    with pytest.raises(InputError, match="CI_COMMIT_TAG"):
        sanitize_tag("+++", "CI_COMMIT_TAG")


@pytest.mark.parametrize("digest", [SHA256, SHA512])
def test_valid_digests(digest: str) -> None:
    assert validate_digest(digest, "--digest") == digest


@pytest.mark.parametrize(
    ("digest", "in_message"),
    [
        ("sha256:" + "A" * 64, "uppercase"),
        ("sha256:" + "a" * 63, "not an image digest"),
        ("sha512:" + "a" * 64, "not an image digest"),
        ("md5:" + "a" * 32, "not an image digest"),
        ("a" * 64, "not an image digest"),
        ("", "not an image digest"),
    ],
)
def test_invalid_digests(digest: str, in_message: str) -> None:
    with pytest.raises(InputError) as err:
        validate_digest(digest, "--digest")
    assert in_message in err.value.message
    assert "--digest" in err.value.message


@pytest.mark.parametrize(
    ("ref", "repo"),
    [
        (f"ghcr.io/o/r@{SHA256}", "ghcr.io/o/r"),
        (f"localhost:5000/app@{SHA256}", "localhost:5000/app"),
        (f"localhost:5000/app:v1@{SHA256}", "localhost:5000/app"),
        (f"app:v1@{SHA256}", "app"),
        (f"app@{SHA512}", "app"),
    ],
)
def test_split_image_ref(ref: str, repo: str) -> None:
    assert split_image_ref(ref) == (repo, ref.rsplit("@", 1)[1])


@pytest.mark.parametrize(
    ("ref", "in_message"),
    [
        ("ghcr.io/o/r", "has no digest"),
        ("ghcr.io/o/r:v1", "has no digest"),
        ("ghcr.io/o/r@sha256:abc", "not an image digest"),
        (f"ghcr.io/O/r@{SHA256}", "uppercase"),
        (f"ghcr.io/o/r:+bad@{SHA256}", "not a valid image tag"),
        (f"localhost:5000@{SHA256}", "no repository"),
    ],
)
def test_split_image_ref_errors(ref: str, in_message: str) -> None:
    with pytest.raises(InputError) as err:
        split_image_ref(ref, "IMAGE_REF")
    assert in_message in err.value.message
    assert "IMAGE_REF" in err.value.message


@pytest.mark.parametrize(
    ("repo", "registry"),
    [
        ("ghcr.io/o/r", "ghcr.io"),
        ("localhost:5000/app", "localhost:5000"),
        ("localhost/app", "localhost"),
        ("registry:5000/app", "registry:5000"),
        ("library/nginx", "docker.io"),
        ("nginx", "docker.io"),
        ("registry.example.com/group/project/app", "registry.example.com"),
    ],
)
def test_registry_of(repo: str, registry: str) -> None:
    assert registry_of(repo) == registry
