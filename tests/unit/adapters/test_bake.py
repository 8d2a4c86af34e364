"""The bake file a set's builds become: each target says what `buildx build` would be told, and
no value of ours is read as an HCL template by bake."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from provenance_tasks.adapters import bake
from provenance_tasks.adapters.docker import BuildRequest, Docker
from provenance_tasks.redaction import Redactor


def layout_build(tmp_path: Path, name: str = "one", **changes: object) -> BuildRequest:
    fields: dict[str, object] = {
        "context": tmp_path / name,
        "dockerfile": tmp_path / name / "docker" / "Dockerfile",
        "tags": [],
        "build_args": {"SOURCE_DATE_EPOCH": "1700000000"},
        "labels": {"org.opencontainers.image.revision": "abc"},
        "metadata_file": tmp_path / "run" / name / "build" / "metadata.json",
        "layout": tmp_path / "run" / name / "build" / "layout",
    }
    fields.update(changes)
    return BuildRequest(**fields)  # type: ignore[arg-type]


def test_a_target_says_what_buildx_build_would_be_told(tmp_path: Path) -> None:
    request = layout_build(
        tmp_path,
        annotations=["manifest:k=v"],
        platforms=["linux/amd64", "linux/arm64"],
        target="runtime",
        pull=True,
        cache_from=["r.test/cache"],
        cache_to="type=inline",
        secrets=["id=npmrc,env=NPM_TOKEN"],
        provenance="mode=max",
        rewrite_timestamp=True,
    )
    assert bake.bake_target(request) == {
        "context": str(tmp_path / "one"),
        "dockerfile": str(tmp_path / "one" / "docker" / "Dockerfile"),
        "args": {"SOURCE_DATE_EPOCH": "1700000000"},
        "labels": {"org.opencontainers.image.revision": "abc"},
        "annotations": ["manifest:k=v"],
        "platforms": ["linux/amd64", "linux/arm64"],
        "target": "runtime",
        "pull": True,
        "cache-from": ["type=registry,ref=r.test/cache"],
        "cache-to": ["type=inline"],
        "secret": ["id=npmrc,env=NPM_TOKEN"],
        "attest": ["type=provenance,mode=max"],
        "output": [f"type=oci,dest={request.layout},tar=false,rewrite-timestamp=true"],
    }
    off = bake.bake_target(layout_build(tmp_path, provenance="off"))
    assert off["attest"] == ["type=provenance,disabled=true"]
    assert "attest" not in bake.bake_target(layout_build(tmp_path))  # buildx's default


def test_a_template_in_a_value_reaches_the_build_as_written(tmp_path: Path) -> None:
    request = layout_build(
        tmp_path, labels={"note": "cost ${HOME} and %{if x}"}, build_args={"A": "$${kept}"}
    )
    target = bake.bake_target(request)
    # HCL reads $${ as ${ and %%{ as %{: what bake hands buildx is the value as given.
    assert target["labels"] == {"note": "cost $${HOME} and %%{if x}"}
    assert target["args"] == {"A": "$$${kept}"}


def test_a_key_that_would_be_a_template_is_not_baked(tmp_path: Path) -> None:
    with pytest.raises(bake.NotBakeable):
        bake.bake_target(layout_build(tmp_path, labels={"a${b}": "v"}))


def test_only_a_layout_build_is_baked(tmp_path: Path) -> None:
    with pytest.raises(bake.NotBakeable):
        bake.bake_target(layout_build(tmp_path, layout=None, tags=["r.test/app:v1"]))


def test_the_file_groups_every_image_and_allows_only_their_folders(tmp_path: Path) -> None:
    requests = {"one": layout_build(tmp_path, "one"), "two": layout_build(tmp_path, "two")}
    assert bake.bake_file(requests)["group"] == {"default": {"targets": ["one", "two"]}}
    assert bake.allowed(requests) == [
        f"fs.read={tmp_path / 'one'}",
        f"fs.read={tmp_path / 'one' / 'docker'}",
        f"fs.read={tmp_path / 'two'}",
        f"fs.read={tmp_path / 'two' / 'docker'}",
        # buildx makes the layout folder: the folder it is made in
        f"fs.write={tmp_path / 'run' / 'one' / 'build'}",
        f"fs.write={tmp_path / 'run' / 'two' / 'build'}",
    ]


def test_a_bake_runs_the_plugin_and_hands_each_image_its_metadata(tmp_path: Path) -> None:
    requests = {"one": layout_build(tmp_path, "one"), "two": layout_build(tmp_path, "two")}
    plugin = tmp_path / "docker-buildx"
    # A stand-in buildx: records its argv and writes the metadata file it was asked for.
    plugin.write_text(
        "#!/bin/sh\n"
        f'echo "$@" > {tmp_path / "argv"}\n'
        'while [ "$1" != --metadata-file ]; do shift; done\n'
        """printf '{"one": {"containerimage.digest": "sha256:1"}, """
        """"two": {"containerimage.digest": "sha256:2"}}' > "$2"\n"""
    )
    plugin.chmod(0o755)
    docker = Docker(redactor=Redactor(), buildx=str(plugin))
    found = bake.bake(docker, requests, tmp_path / "run", builder="remote")
    assert found == {
        "one": {"containerimage.digest": "sha256:1"},
        "two": {"containerimage.digest": "sha256:2"},
    }
    argv = (tmp_path / "argv").read_text().split()
    assert argv[:3] == ["bake", "--progress", "plain"]
    assert argv[-2:] == ["--builder", "remote"]
    written = json.loads((tmp_path / "run" / "bake.json").read_text())
    assert set(written["target"]) == {"one", "two"}
