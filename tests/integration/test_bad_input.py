"""A wall of bad inputs: each gets a non-zero exit and one clear message, never a traceback.

When the input is wrong up front (exit 2), nothing is built, pushed or signed: no step starts
and the registry never hears of the repository. Every case runs the console script for real.
"""

from __future__ import annotations

import stat
import subprocess
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.integration import pipelines
from tests.integration.conftest import (
    COSIGNS,
    TOOLS,
    Registry,
    Runner,
    annotations_of,
    make_context,
    make_key_pair,
)

DIGEST = "sha256:" + "ab" * 32


@dataclass
class Case:
    args: list[str]
    needle: str  # what the one message must say (case-insensitive)
    env: dict[str, str] = field(default_factory=dict)
    setup: Callable[[Path], dict[str, str]] | None = None  # may return more environment
    code: int = 2
    mode: str = "local"  # local, gitlab or github
    task: str = "build-sign-verify"


def old_cosign(folder: Path) -> dict[str, str]:
    # No cosign older than 2.4 can be installed here (Debian ships 2.5 and 3.1): a script that
    # answers `sign --help` as cosign 2.2 did stands in for one, with only the flags it had.
    script = folder / "cosign-2.2"
    script.write_text("#!/bin/sh\necho 'Usage: cosign $1 [flags]'\necho '      --key string'\n")
    script.chmod(0o755)
    return {"INVOKE_PROVENANCE_COSIGN": str(script)}


def unreadable_key(folder: Path) -> dict[str, str]:
    key = folder / "unreadable.key"
    key.write_text("not a key")
    key.chmod(0)
    return {"INVOKE_PROVENANCE_KEY": str(key)}


def key_with_password(folder: Path) -> dict[str, str]:
    key, _ = make_key_pair(str(COSIGNS["cosign3"]), folder / "pw", "the-right-one")
    return {"INVOKE_PROVENANCE_KEY": str(key), "COSIGN_PASSWORD": "a-wrong-one"}


def not_a_key(folder: Path) -> dict[str, str]:
    (folder / "plain.key").write_text("-----BEGIN NOTHING-----\n")
    return {"INVOKE_PROVENANCE_KEY": str(folder / "plain.key")}


def without_docker(folder: Path) -> dict[str, str]:
    bin_dir = folder / "bin"
    bin_dir.mkdir()
    for tool in ("cosign", "cosign2", "cosign3"):
        (bin_dir / tool).symlink_to(TOOLS / "bin" / tool)
    return {"PATH": str(bin_dir)}


def annotation(value: str) -> list[str]:
    return ["--annotation", f"com.example.note={value}"]


CASES: dict[str, Case] = {
    # image references and tags
    "image-double-slash": Case(["--image", "127.0.0.1:5000//app"], "image"),
    "image-uppercase": Case(["--image", "127.0.0.1:5000/Group/App"], "uppercase"),
    "image-with-tag": Case(["--image", "127.0.0.1:5000/app:v1"], "--tag"),
    "image-with-digest": Case(["--image", f"127.0.0.1:5000/app@{DIGEST}"], "digest"),
    "image-with-space": Case(["--image", "127.0.0.1:5000/my app"], "image"),
    "tag-with-colon": Case(["--tag", "v1:2"], "tag"),
    "tag-too-long": Case(["--tag", "v" * 129], "tag"),
    "tag-leading-dash": Case(["--tag=-v1"], "tag"),
    "tag-looks-like-digest": Case(["--tag", DIGEST], "digest"),
    "tag-bare-hex-digest": Case(["--tag", "ab" * 32], "digest"),
    "digest-malformed": Case(["--digest", "sha256:xyz"], "digest", task="verify"),
    # A public key that isn't there is bad input (2), not a failed verification (3).
    "public-key-missing": Case(
        ["--digest", "sha256:" + "a" * 64, "--public-key", "missing.pub"],
        "missing.pub",
        task="verify",
    ),
    "public-key-missing-in-gitlab": Case(
        ["--digest", "sha256:" + "a" * 64, "--public-key", "missing.pub"],
        "missing.pub",
        mode="gitlab",
        task="verify",
    ),
    # annotations: the key rule, and values that would garble logs or cosign's flags
    "annotation-key-space": Case(["--annotation", "bad key=1"], "bad key"),
    "annotation-key-empty": Case(["--annotation", "=1"], "annotation"),
    "annotation-key-comma": Case(["--annotation", "a,b=1"], "a,b"),
    "annotation-no-equals": Case(["--annotation", "justakey"], "key=value"),
    "annotation-reserved-tag": Case(["--annotation", "tag=v9"], "tag"),
    "annotation-value-newline": Case(annotation("one\ntwo"), "com.example.note"),
    "annotation-value-cr": Case(annotation("one\rtwo"), "com.example.note"),
    "annotation-value-esc": Case(annotation("\x1b[0Ksection_end"), "com.example.note"),
    "annotation-value-bell": Case(annotation("ding\x07"), "com.example.note"),
    # build inputs
    "context-missing": Case(["--context", "no-such-folder"], "no-such-folder"),
    "dockerfile-missing": Case(["--file", "no/Dockerfile"], "Dockerfile"),
    "build-arg-secret": Case(["--build-arg", "NPM_TOKEN=abc"], "--secret"),
    "build-arg-bad-name": Case(["--build-arg", "1BAD=x"], "build arg"),
    "unknown-builder": Case(["--builder", "no-such-builder"], "no-such-builder"),
    # keys and modes
    "key-missing": Case(["--key", "missing.key"], "missing.key"),
    "key-unreadable": Case([], "unreadable.key", setup=unreadable_key),
    "key-wrong-password": Case([], "COSIGN_PASSWORD", setup=key_with_password),
    "key-not-a-key": Case([], "plain.key", setup=not_a_key),
    "key-unknown-kms-scheme": Case(["--key", "foo://keys/1"], "foo://"),
    "key-and-keyless": Case(["--mode", "keyless", "--key", "cosign.key"], "both"),
    "keyless-without-token": Case(["--mode", "keyless"], "token"),
    "mode-unknown": Case(["--mode", "magic"], "mode"),
    # tools
    "cosign-missing": Case([], "cosign", env={"INVOKE_PROVENANCE_COSIGN": "/nonexistent/cosign"}),
    "cosign-too-old": Case([], "older than cosign 2.4", setup=old_cosign),
    "docker-missing": Case([], "docker is not installed", setup=without_docker),
    # settings
    "log-format-unknown": Case(["--log-format", "xml"], "log_format"),
    "retry-budget-not-a-number": Case(
        [], "retry_budget", env={"INVOKE_PROVENANCE_RETRY_BUDGET": "soon"}
    ),
    "retry-attempts-zero": Case(
        [], "retry_attempts", env={"INVOKE_PROVENANCE_RETRY_ATTEMPTS": "0"}
    ),
    # a registry that refuses connections: found before the build, in seconds (exit 4)
    "registry-unreachable": Case(
        ["--image", "127.0.0.1:9/never/app"],
        "cannot reach the registry",
        env={"INVOKE_PROVENANCE_RETRY_BUDGET": "6"},
        code=4,
    ),
}
# Each CI mode, with each of the variables it needs missing.
for name in sorted(set(pipelines.ANNOTATION_VARIABLES.values()) | {"CI_SERVER_URL"}):
    CASES[f"gitlab-without-{name}"] = Case([], name, env={name: ""}, mode="gitlab")
for name in (
    "GITHUB_RUN_ID",
    "GITHUB_RUN_ATTEMPT",
    "GITHUB_SERVER_URL",
    "GITHUB_REPOSITORY",
    "GITHUB_WORKFLOW_REF",
    "GITHUB_SHA",
    "GITHUB_REF",
    "GITHUB_ACTOR",
):
    CASES[f"github-without-{name}"] = Case([], name, env={name: ""}, mode="github")


def test_the_table_has_at_least_thirty_cases() -> None:
    assert len(CASES) >= 30


@pytest.mark.integration
@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input_gets_one_clear_message_and_nothing_is_pushed(
    runner: Runner, registry: Registry, tmp_path: Path, name: str
) -> None:
    case = CASES[name]
    context = make_context(tmp_path / "ctx")
    repository = f"{runner.testbed.plain_registry}/bad-input/{uuid.uuid4().hex[:8]}"
    cosign3 = str(COSIGNS["cosign3"])
    env: dict[str, str] = {"INVOKE_PROVENANCE_COSIGN": cosign3, "NO_COLOR": "1"}
    if case.mode == "gitlab":
        env.update(pipelines.gitlab(runner.testbed))
        repository = env["CI_REGISTRY_IMAGE"]
    elif case.mode == "github":
        env.update(pipelines.github(runner.testbed))
        repository = env["INVOKE_PROVENANCE_IMAGE"]
    defaults: dict[str, str | None] = {"--context": str(context)}
    if case.mode == "local":
        defaults["--image"] = repository
    if "keyless" not in case.args:
        defaults["--key"] = str(make_key_pair(cosign3, tmp_path / "cosign")[0])
    if case.task == "verify":
        defaults.pop("--context")
    env.update(case.env)
    if case.setup:
        env.update(case.setup(tmp_path))
    env = {k: v for k, v in env.items() if v != ""}  # "" means: this variable is missing
    if "INVOKE_PROVENANCE_KEY" in env:
        defaults.pop("--key", None)
    # The case's own flags replace the defaults (invoke refuses a flag given twice).
    given = {arg.split("=", 1)[0] for arg in case.args if arg.startswith("--")}
    args: list[str] = []
    for flag, value in defaults.items():
        if flag not in given:
            args += [flag] if value is None else [flag, value]
    done = runner.run(case.task, *args, *case.args, env=env)

    assert done.returncode == case.code, done.stdout + done.stderr
    output = done.stdout + done.stderr
    assert "Traceback" not in output
    messages = [line for line in output.splitlines() if line.startswith("provenance-tasks: ")]
    assert len(messages) == 1, output
    message = output[output.index("provenance-tasks: ") :]
    assert case.needle.lower() in message.lower(), message
    assert "fix:" in message or case.code != 2, message  # says what to fix
    if case.code == 2:
        assert "build: " not in output and "section_start" not in output  # no step started
    listed = subprocess.run(
        [str(TOOLS / "bin" / "crane"), "ls", repository],
        env=registry.env(),
        capture_output=True,
        text=True,
    )
    assert listed.returncode != 0 or not listed.stdout.strip(), listed.stdout  # nothing pushed
    assert stat.S_ISDIR(context.stat().st_mode)


ROUND_TRIP = {
    "com.example.comma": "Doe, Jo",
    "com.example.equals": "a=b==c",
    "com.example.quotes": "say \"hi\" and 'bye'",
    "com.example.unicode": "Ünïcödé ✓ 日本",
    "com.example.percent": "100% %3D",
    "com.example.empty": "",
}


@pytest.mark.integration
def test_awkward_but_valid_annotation_values_round_trip(
    runner: Runner, registry: Registry, tmp_path: Path, cosign: str
) -> None:
    context = make_context(tmp_path / "ctx")
    image = f"{runner.testbed.plain_registry}/round-trip/{uuid.uuid4().hex[:8]}"
    args = [arg for key, value in ROUND_TRIP.items() for arg in ("--annotation", f"{key}={value}")]
    done = runner.run(
        "build-sign-verify",
        "--context",
        str(context),
        "--image",
        image,
        "--tag",
        "v1",
        *args,
        env={"INVOKE_PROVENANCE_COSIGN": cosign},
    )
    assert done.returncode == 0, done.stderr
    from provenance_tasks.annotations import decode_value

    pub = runner.cwd / ".provenance" / "keys" / "cosign.pub"
    digest = registry.digest(f"{image}:v1")
    payloads = registry.payloads(cosign, f"{image}@{digest}", "--key", str(pub))
    (optional,) = [annotations_of(p) for p in payloads]
    assert {k: decode_value(optional[k]) for k in ROUND_TRIP} == ROUND_TRIP  # type: ignore[index]


@pytest.mark.integration
def test_sign_refuses_a_digest_the_registry_does_not_hold(
    runner: Runner, registry: Registry, source_image: str, cosign: str
) -> None:
    # cosign itself would sign it and exit 0: a signature for nothing.
    repository = source_image.rsplit(":", 1)[0]
    missing = "sha256:" + uuid.uuid4().hex * 2
    done = runner.run(
        "sign",
        "--image",
        repository,
        "--digest",
        missing,
        "--tag",
        "v1",
        env={"INVOKE_PROVENANCE_COSIGN": cosign},
    )
    assert done.returncode == 2, done.stderr
    assert f"{repository}@{missing} is not at the registry" in done.stderr
    assert f"sha256-{missing[7:]}.sig" not in registry.tags(repository)
