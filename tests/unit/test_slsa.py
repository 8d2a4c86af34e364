"""The SLSA v1 predicate, made from what the run knows, and base images from buildx's metadata."""

from __future__ import annotations

from pathlib import Path

from provenance_tasks import slsa

SHA = "0123456789abcdef0123456789abcdef01234567"


def make(**changes: object) -> dict[str, object]:
    values: dict[str, object] = dict(
        provider="gitlab",
        labels={slsa.SOURCE: "https://gitlab.example.com/g/app", slsa.REVISION: SHA},
        ci_builder="https://gitlab.example.com/g/app//.gitlab-ci.yml",
        invocation_id="https://gitlab.example.com/g/app/-/jobs/7",
        source_ref="refs/heads/main",
        config_path=".gitlab-ci.yml",
        runner="shared-runner-7 17.5.0",
        context=Path("/src"),
        dockerfile=Path("/src/docker/Dockerfile"),
        target="runtime",
        platforms=["linux/amd64"],
        build_args={"VERSION": "1.2"},
        base_images=[("alpine:3.20", "sha256:" + "b" * 64)],
        started=1700000000.0,
        finished=1700000042.0,
    )
    values.update(changes)
    return slsa.predicate(**values)  # type: ignore[arg-type]


def test_the_predicate_names_builder_invocation_source_and_parameters() -> None:
    found = make()
    definition, details = found["buildDefinition"], found["runDetails"]
    assert definition["buildType"] == slsa.BUILD_TYPE  # type: ignore[index]
    assert definition["externalParameters"] == {  # type: ignore[index]
        "source": "https://gitlab.example.com/g/app",
        "ref": "refs/heads/main",
        "ciConfigPath": ".gitlab-ci.yml",
        "dockerfile": "docker/Dockerfile",
        "target": "runtime",
        "platforms": ["linux/amd64"],
        "buildArgs": {"VERSION": "1.2"},
    }
    assert definition["resolvedDependencies"] == [  # type: ignore[index]
        {
            "uri": "git+https://gitlab.example.com/g/app@refs/heads/main",
            "digest": {"gitCommit": SHA},
        },
        {"uri": "pkg:docker/alpine:3.20", "digest": {"sha256": "b" * 64}},
    ]
    assert details["builder"]["id"] == "https://gitlab.example.com/g/app//.gitlab-ci.yml"  # type: ignore[index]
    assert details["builder"]["version"]["runner"] == "shared-runner-7 17.5.0"  # type: ignore[index]
    assert details["metadata"] == {  # type: ignore[index]
        "invocationId": "https://gitlab.example.com/g/app/-/jobs/7",
        "startedOn": "2023-11-14T22:13:20Z",
        "finishedOn": "2023-11-14T22:14:02Z",
    }


def test_a_machine_with_no_ci_and_no_remote_still_names_its_commit() -> None:
    found = make(provider="local", ci_builder=None, labels={slsa.REVISION: SHA}, base_images=[])
    assert found["runDetails"]["builder"]["id"] == "urn:provenance-tasks:builder:local"  # type: ignore[index]
    assert found["buildDefinition"]["resolvedDependencies"] == [  # type: ignore[index]
        {"name": "source", "digest": {"gitCommit": SHA}}
    ]


def test_base_images_come_from_buildx_metadata() -> None:
    metadata = {
        "buildx.build.provenance": {
            "materials": [
                {
                    "uri": "pkg:docker/alpine@3.20?platform=linux%2Famd64",
                    "digest": {"sha256": "c" * 64},
                },
                {"uri": "https://example.com/file", "digest": {"sha256": "d" * 64}},
            ]
        },
    }
    assert slsa.base_images(metadata) == [
        ("alpine@3.20?platform=linux%2Famd64", "sha256:" + "c" * 64)
    ]
    assert slsa.base_images({}) == []  # FROM scratch
