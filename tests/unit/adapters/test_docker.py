"""The buildx command line Docker builds, as a dry run returns it (secrets masked; no docker
runs), and how a failed build's words become bad input where buildx or a builder is missing."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from provenance_tasks.adapters import docker as docker_adapter
from provenance_tasks.adapters.docker import BuildRequest, Docker
from provenance_tasks.errors import CommandFailed, InputError
from provenance_tasks.redaction import MASK, Redactor

SECRET = "s3cr3t-npm-token-value"
CACHE_TO = "type=registry,ref=r/cache,mode=max"
CACHE_FROM = "type=registry,ref=r/cache"


def values_of(argv: list[str], flag: str) -> list[str]:
    return [argv[i + 1] for i, arg in enumerate(argv[:-1]) if arg == flag]


def request(tmp_path: Path, **changes: object) -> BuildRequest:
    context = tmp_path / "ctx"
    context.mkdir(exist_ok=True)
    (context / "Dockerfile").write_text("FROM scratch\n")
    fields: dict[str, object] = {
        "context": context,
        "dockerfile": context / "Dockerfile",
        "tags": ["registry.example.com/group/app:v1", "registry.example.com/group/app:abc123"],
        "build_args": {"VERSION": "1.2.3", "BASE": "debian:12"},
        "labels": {
            "org.opencontainers.image.revision": "abc123",
            "com.example.leak": f"oops-{SECRET}-oops",
        },
        "platforms": ["linux/amd64", "linux/arm64"],
        "target": "runtime",
        "cache_to": CACHE_TO,
        "secrets": ["id=npmrc,env=NPM_TOKEN"],
        "metadata_file": tmp_path / "metadata.json",
    }
    fields.update(changes)
    return BuildRequest(**fields)  # type: ignore[arg-type]


def dry_build(tmp_path: Path, **changes: object) -> tuple[list[str], list[str]]:
    lines: list[str] = []
    docker = Docker(redactor=Redactor([SECRET]), dry_run=True)
    argv = docker.build(request(tmp_path, **changes), on_line=lambda _s, line: lines.append(line))
    return argv, lines


def test_dry_run_returns_the_buildx_build_argv_with_push(tmp_path: Path) -> None:
    argv, _ = dry_build(tmp_path)
    assert argv[:3] == ["docker", "buildx", "build"]
    assert "--push" in argv
    assert "--load" not in argv
    assert argv[-1] == str(tmp_path / "ctx")  # the context comes last
    assert values_of(argv, "--file") == [str(tmp_path / "ctx" / "Dockerfile")]
    assert values_of(argv, "--target") == ["runtime"]
    assert values_of(argv, "--progress") == ["plain"]


def test_dry_run_tags_every_reference(tmp_path: Path) -> None:
    argv, _ = dry_build(tmp_path)
    assert values_of(argv, "--tag") == [
        "registry.example.com/group/app:v1",
        "registry.example.com/group/app:abc123",
    ]


def test_dry_run_asks_buildx_for_the_metadata_file(tmp_path: Path) -> None:
    argv, _ = dry_build(tmp_path)
    assert values_of(argv, "--metadata-file") == [str(tmp_path / "metadata.json")]


def test_dry_run_passes_cache_to_verbatim(tmp_path: Path) -> None:
    argv, _ = dry_build(tmp_path)
    assert values_of(argv, "--cache-to") == [CACHE_TO]


def test_dry_run_passes_each_cache_from_verbatim(tmp_path: Path) -> None:
    argv, _ = dry_build(tmp_path, cache_from=[CACHE_FROM, "type=local,src=/tmp/cache"])
    assert values_of(argv, "--cache-from") == [CACHE_FROM, "type=local,src=/tmp/cache"]


def test_dry_run_reads_a_bare_cache_from_reference_as_a_registry_cache(tmp_path: Path) -> None:
    argv, _ = dry_build(tmp_path, cache_from=["registry.example.com/group/app:cache"])
    assert values_of(argv, "--cache-from") == [
        "type=registry,ref=registry.example.com/group/app:cache"
    ]


def test_dry_run_without_cache_from_passes_no_cache_from_flag(tmp_path: Path) -> None:
    argv, _ = dry_build(tmp_path)
    assert "--cache-from" not in argv


def test_dry_run_joins_platforms_into_one_flag(tmp_path: Path) -> None:
    argv, _ = dry_build(tmp_path)
    assert values_of(argv, "--platform") == ["linux/amd64,linux/arm64"]


def test_dry_run_without_platforms_passes_no_platform_flag(tmp_path: Path) -> None:
    argv, _ = dry_build(tmp_path, platforms=[])
    assert "--platform" not in argv


def test_dry_run_passes_build_args_and_labels(tmp_path: Path) -> None:
    argv, _ = dry_build(tmp_path)
    assert sorted(values_of(argv, "--build-arg")) == ["BASE=debian:12", "VERSION=1.2.3"]
    assert "org.opencontainers.image.revision=abc123" in values_of(argv, "--label")


def test_dry_run_passes_build_secrets_as_specs(tmp_path: Path) -> None:
    argv, _ = dry_build(tmp_path)
    assert values_of(argv, "--secret") == ["id=npmrc,env=NPM_TOKEN"]


def test_dry_run_masks_registered_secrets_in_the_returned_argv(tmp_path: Path) -> None:
    argv, lines = dry_build(tmp_path)
    assert not any(SECRET in arg for arg in argv)
    assert f"com.example.leak=oops-{MASK}-oops" in values_of(argv, "--label")
    assert not any(SECRET in line for line in lines)


@pytest.mark.parametrize("secret", ["pässwörd-secret", 'quote"and\\slash'])
def test_dry_run_masks_secrets_that_json_would_escape(tmp_path: Path, secret: str) -> None:
    docker = Docker(redactor=Redactor([secret]), dry_run=True)
    argv = docker.build(request(tmp_path, labels={"com.example.leak": secret}))
    assert not any(secret in arg for arg in argv)


def test_dry_run_passes_provenance_only_when_set(tmp_path: Path) -> None:
    argv, _ = dry_build(tmp_path)
    assert not any(arg.startswith("--provenance") for arg in argv)
    argv, _ = dry_build(tmp_path, provenance="off")
    assert "--provenance=false" in argv
    argv, _ = dry_build(tmp_path, provenance="mode=max")
    assert "--provenance=mode=max" in argv


def test_dry_run_runs_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # With no docker anywhere on PATH, a dry run still produces the command line.
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    argv, _ = dry_build(tmp_path)
    assert argv[:3] == ["docker", "buildx", "build"]


def test_a_layout_build_exports_and_pushes_nothing(tmp_path: Path) -> None:
    argv, _ = dry_build(tmp_path, tags=[], layout=tmp_path / "layout")
    assert values_of(argv, "--output") == [f"type=oci,dest={tmp_path / 'layout'},tar=false"]
    assert "--push" not in argv and "--tag" not in argv
    assert argv[-1] == str(tmp_path / "ctx")


def test_a_reproducible_layout_rewrites_the_layer_times(tmp_path: Path) -> None:
    argv, _ = dry_build(tmp_path, tags=[], layout=tmp_path / "l", rewrite_timestamp=True)
    assert values_of(argv, "--output") == [
        f"type=oci,dest={tmp_path / 'l'},tar=false,rewrite-timestamp=true"
    ]


def test_a_load_build_loads_into_the_engine_and_pushes_nothing(tmp_path: Path) -> None:
    argv, _ = dry_build(tmp_path, tags=[], platforms=[], load=True)
    assert "--load" in argv and "--push" not in argv and "--output" not in argv
    assert argv[-1] == str(tmp_path / "ctx")


def test_no_cache_builds_every_step_anew(tmp_path: Path) -> None:
    assert "--no-cache" in dry_build(tmp_path, no_cache=True)[0]
    assert "--no-cache" not in dry_build(tmp_path)[0]


def test_save_writes_one_image_by_its_id_into_the_archive(tmp_path: Path) -> None:
    docker = Docker(redactor=Redactor([]), dry_run=True, config_dir=tmp_path / "cfg")
    argv = docker.save("sha256:" + "a" * 64, tmp_path / "image.tar")
    assert argv[-5:] == [
        "image",
        "save",
        "--output",
        str(tmp_path / "image.tar"),
        "sha256:" + "a" * 64,
    ]
    assert argv[:3] == ["docker", "--config", str(tmp_path / "cfg")]


def fake_docker(tmp_path: Path, stderr: str) -> Path:
    """A docker that fails as the real one does, for the parsing of its words only."""
    folder = tmp_path / "bin"
    folder.mkdir()
    script = folder / "docker"
    script.write_text(f"#!/bin/sh\necho {shlex.quote(stderr)} >&2\nexit 1\n")
    script.chmod(0o755)
    return folder


@pytest.mark.parametrize(
    ("stderr", "builder", "needle"),
    [
        ("docker: 'buildx' is not a docker command.", None, "buildx plugin is missing"),
        ('ERROR: no builder "ci" found', "ci", "no buildx builder named 'ci'"),
    ],
)
def test_a_build_without_buildx_or_its_builder_is_bad_input(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stderr: str, builder: str | None, needle: str
) -> None:
    monkeypatch.setenv("PATH", str(fake_docker(tmp_path, stderr)))
    with pytest.raises(InputError, match=needle):
        Docker(redactor=Redactor()).build(request(tmp_path, builder=builder))


def test_any_other_build_failure_is_the_tools(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(fake_docker(tmp_path, "ERROR: failed to solve: 503")))
    with pytest.raises(CommandFailed) as caught:
        Docker(redactor=Redactor([SECRET])).build(request(tmp_path))
    assert caught.value.cause.kind == "transient" and SECRET not in caught.value.command


def test_a_copy_is_a_carbon_copy_never_a_new_index(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "bin"
    folder.mkdir()
    log = tmp_path / "argv"
    (folder / "docker").write_text(f'#!/bin/sh\necho "$@" > {log}\n')
    (folder / "docker").chmod(0o755)
    monkeypatch.setenv("PATH", str(folder))
    Docker(redactor=Redactor()).copy_image("r.test/app@sha256:" + "a" * 64, "r.test/app:v1")
    assert log.read_text().split() == [
        "buildx",
        "imagetools",
        "create",
        "--prefer-index=false",
        "--tag",
        "r.test/app:v1",
        "r.test/app@sha256:" + "a" * 64,
    ]


def plugin(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    binary = folder / "docker-buildx"
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    return binary


def test_buildx_is_found_first_in_the_users_own_cli_plugins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(docker_adapter, "SYSTEM_PLUGIN_DIRS", (str(tmp_path / "system"),))
    system = plugin(tmp_path / "system")
    assert docker_adapter.find_buildx([tmp_path / "user"]) == str(system)
    extra = plugin(tmp_path / "extra")
    (tmp_path / "user").mkdir()
    (tmp_path / "user" / "config.json").write_text(
        json.dumps({"cliPluginsExtraDirs": [str(tmp_path / "extra")]})
    )
    assert docker_adapter.find_buildx([tmp_path / "user"]) == str(extra)
    own = plugin(tmp_path / "user" / "cli-plugins")
    assert docker_adapter.find_buildx([tmp_path / "run", tmp_path / "user"]) == str(own)
    run_own = plugin(tmp_path / "run" / "cli-plugins")
    assert docker_adapter.find_buildx([tmp_path / "run", tmp_path / "user"]) == str(run_own)


def test_no_buildx_plugin_found_leaves_it_to_docker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(docker_adapter, "SYSTEM_PLUGIN_DIRS", (str(tmp_path / "system"),))
    (tmp_path / "system").mkdir()
    (tmp_path / "system" / "docker-buildx").write_text("not executable")
    (tmp_path / "user").mkdir()
    (tmp_path / "user" / "config.json").write_text("{not json")
    assert docker_adapter.find_buildx([tmp_path / "user"]) is None
    argv = Docker(redactor=Redactor(), config_dir=tmp_path / "cfg").build_argv(request(tmp_path))
    assert argv[:5] == ["docker", "--config", str(tmp_path / "cfg"), "buildx", "build"]


def test_the_plugin_run_directly_reads_the_runs_config_from_its_environment(
    tmp_path: Path,
) -> None:
    buildx = str(plugin(tmp_path / "plugins"))
    client = Docker(
        redactor=Redactor(),
        config_dir=tmp_path / "cfg",
        buildx=buildx,
        host="unix:///run/other.sock",
    )
    argv = client.build_argv(request(tmp_path))
    assert argv[:2] == [buildx, "build"] and "--config" not in argv
    assert client._env()["DOCKER_CONFIG"] == str(tmp_path / "cfg")
    # What a dry run prints in front of the line, so that the pasted line finds the same
    # config and engine; `docker --config` says the folder in its argv instead.
    shown = {"DOCKER_CONFIG": str(tmp_path / "cfg"), "DOCKER_HOST": "unix:///run/other.sock"}
    assert client.shown_environ() == shown
    through_docker = Docker(redactor=Redactor(), config_dir=tmp_path / "cfg")
    assert through_docker.shown_environ() == {}


def test_the_plugin_run_directly_does_imagetools_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "argv"
    buildx = plugin(tmp_path / "plugins")
    buildx.write_text(f'#!/bin/sh\necho "$DOCKER_CONFIG $@" > {log}\n')
    monkeypatch.setenv("PATH", str(tmp_path / "nothing"))  # no docker CLI at all
    Docker(redactor=Redactor(), config_dir=tmp_path / "cfg", buildx=str(buildx)).copy_image(
        "r.test/app@sha256:" + "a" * 64, "r.test/app:v1"
    )
    assert log.read_text().split()[:3] == [str(tmp_path / "cfg"), "imagetools", "create"]


def test_a_plugin_that_cannot_run_is_a_tool_failure_not_a_traceback(tmp_path: Path) -> None:
    broken = plugin(tmp_path / "plugins")
    broken.write_bytes(b"\x7fELF\x00not a binary for this machine")
    client = Docker(redactor=Redactor(), buildx=str(broken))
    with pytest.raises(CommandFailed) as caught:
        client.build(request(tmp_path))
    assert "cannot run" in caught.value.stderr and caught.value.returncode == 126
