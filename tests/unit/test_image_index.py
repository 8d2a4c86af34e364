"""An index's platforms and BuildKit's attestation manifests, told apart."""

from __future__ import annotations

import json

import pytest

from provenance_tasks.errors import ToolError
from provenance_tasks.image_index import contents, is_index

A, B, ATT = "sha256:" + "a" * 64, "sha256:" + "b" * 64, "sha256:" + "c" * 64


def test_platforms_and_attestations_are_told_apart() -> None:
    index = {
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {"digest": A, "platform": {"os": "linux", "architecture": "amd64"}},
            {"digest": B, "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
            {
                "digest": ATT,
                "platform": {"os": "unknown", "architecture": "unknown"},
                "annotations": {
                    "vnd.docker.reference.type": "attestation-manifest",
                    "vnd.docker.reference.digest": A,
                },
            },
        ],
    }
    found = contents(json.dumps(index).encode(), "the index")
    assert [(c.platform, c.digest) for c in found.platforms] == [
        ("linux/amd64", A),
        ("linux/arm64/v8", B),
    ]
    assert [(c.digest, c.describes) for c in found.attestations] == [(ATT, A)]


def test_an_entry_without_a_platform_is_never_taken_for_one() -> None:
    found = contents(json.dumps({"manifests": [{"digest": A}]}).encode(), "x")
    assert found.platforms == () and found.attestations[0].platform == "unknown/unknown"


@pytest.mark.parametrize("data", [b"not json", b"{}", b'{"manifests": 3}'])
def test_what_is_no_index_is_a_tool_error(data: bytes) -> None:
    with pytest.raises(ToolError, match="no image index"):
        contents(data, "repo@sha256:x")


def test_only_index_media_types_are_indexes() -> None:
    assert is_index("application/vnd.docker.distribution.manifest.list.v2+json")
    assert not is_index("application/vnd.oci.image.manifest.v1+json") and not is_index(None)
