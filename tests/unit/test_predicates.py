"""Predicates handed in as files: read and checked against their type before anything is built."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from provenance_tasks.errors import InputError
from provenance_tasks.predicates import parse

CDX = {"bomFormat": "CycloneDX", "specVersion": "1.5", "components": []}


def write(folder: Path, name: str, document: object) -> str:
    (folder / name).write_text(json.dumps(document) if not isinstance(document, str) else document)
    return name


def test_a_cyclonedx_sbom_for_every_platform_or_one(tmp_path: Path) -> None:
    name = write(tmp_path, "sbom.cdx.json", CDX)
    found = parse(f"cyclonedx={name}", tmp_path)
    assert (found.kind, found.uri, found.platform) == (
        "cyclonedx",
        "https://cyclonedx.org/bom",
        None,
    )
    assert parse(f"cyclonedx@linux/arm64={name}", tmp_path).platform == "linux/arm64"
    custom = parse(f"https://example.com/test-result/v1={name}", tmp_path)
    assert custom.uri == "https://example.com/test-result/v1"


@pytest.mark.parametrize(
    ("spec", "document", "message"),
    [
        ("cyclonedx=f.json", "not json", "is not JSON"),
        ("cyclonedx=f.json", {"spdxVersion": "SPDX-2.3"}, 'no "bomFormat": "CycloneDX"'),
        ("spdxjson=f.json", CDX, 'no "spdxVersion"'),
        ("slsaprovenance1=f.json", CDX, "no buildDefinition"),
        ("cyclonedx=f.json", [1, 2], "not a JSON object"),
        ("sbom=f.json", CDX, "neither cyclonedx"),
        ("cyclonedx@arm64=f.json", CDX, "not os/arch"),
        ("cyclonedx", CDX, "is not TYPE=FILE"),
        ("cyclonedx=missing.json", CDX, "can't be read"),
    ],
)
def test_a_file_that_isnt_what_it_claims_is_refused(
    tmp_path: Path, spec: str, document: object, message: str
) -> None:
    write(tmp_path, "f.json", document)
    with pytest.raises(InputError, match=message):
        parse(spec, tmp_path)
