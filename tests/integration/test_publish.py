"""Tags only on verified images: the user's tags move after sign and verify passed, never before.

Both engines push an OCI layout by digest, with no tag at all: the current engine's export, or
the classic engine's image (no OCI exporter in its docker driver) loaded, saved and made into a
layout. Only a credential helper's login makes buildx push, to a per-run staging tag, which
distribution 2.8 can't delete, and says so. Either way a sign that fails after the push leaves
every user tag where it was.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.integration import pipelines
from tests.integration.conftest import COSIGNS, Registry, Runner, make_context, make_key_pair

pytestmark = pytest.mark.integration


def failing_cosign(folder: Path, real: str) -> Path:
    """cosign whose `sign` fails after the push (its --help probe still answers)."""
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "cosign-that-cannot-sign"
    script.write_text(
        "#!/bin/sh\n"
        'if [ "$1" = sign ] && [ "$2" != --help ]; then\n'
        '  echo "Error: signing [image]: the signer is broken" >&2; exit 1\n'
        "fi\n"
        f'exec {real} "$@"\n'
    )
    script.chmod(0o755)
    return script


def user_tags(registry: Registry, repository: str) -> list[str]:
    """The tags a user would pull: no signature tags (sha256-….sig) and no staging tag."""
    if registry.holds_nothing(repository):
        return []
    return [
        t for t in registry.tags(repository) if not t.startswith(("sha256-", "provenance-staging-"))
    ]


@pytest.mark.classic
def test_a_sign_that_fails_after_the_push_leaves_the_users_tag_where_it_was(
    runner: Runner, registry: Registry, tmp_path: Path, key_pair: tuple[Path, Path, str]
) -> None:
    key, _, password = key_pair
    real = str(COSIGNS["cosign3"])
    env = pipelines.gitlab_key_mode(runner.testbed, real, password)
    repository = env["CI_REGISTRY_IMAGE"]
    first = make_context(tmp_path / "first", content="release 1")
    done = runner.run(
        "build-sign-verify", "--context", str(first), "--key", str(key), "--tag", "stable", env=env
    )
    assert done.returncode == 0, done.stderr
    verified = registry.digest(f"{repository}:stable")

    env["INVOKE_PROVENANCE_COSIGN"] = str(failing_cosign(tmp_path / "bin", real))
    second = make_context(tmp_path / "second", content="release 2")
    done = runner.run(
        "build-sign-verify",
        "--context",
        str(second),
        "--key",
        str(key),
        "--tag",
        "stable",
        "--tag",
        "new-tag",
        env=env,
    )
    assert done.returncode == 4, done.stderr
    # cosign's stderr once, in the sign section; the summary points there, and the one-line
    # message quotes its verdict.
    shown = [line for line in done.stderr.splitlines() if "the signer is broken" in line]
    assert shown[0].strip() == "Error: signing [image]: the signer is broken"
    assert len(shown) == 2 and shown[1].startswith("provenance-tasks: "), done.stderr
    assert "its stderr: above, in the sign section" in done.stderr
    # The failed run reports too: the step that failed, cosign's words, and nothing published.
    report = json.loads((runner.cwd / "provenance-report.json").read_text())
    assert report["status"] == "failed" and report["failure"]["step"] == "sign"
    assert report["failure"]["exit_code"] == 4
    assert "signer is broken" in report["failure"]["message"]
    assert report["outputs"]["IMAGE_PUBLISHED"] == ""
    # The existing tag still names the verified image; the new tag was never made.
    assert registry.digest(f"{repository}:stable") == verified
    assert user_tags(registry, repository) == ["stable"]


@pytest.mark.classic
def test_the_tags_are_published_after_verify_and_no_staging_tag_is_made(
    runner: Runner, registry: Registry, context: Path, key_pair: tuple[Path, Path, str]
) -> None:
    key, _, password = key_pair
    env = pipelines.gitlab_key_mode(runner.testbed, str(COSIGNS["cosign3"]), password)
    env["INVOKE_PROVENANCE_LOG_FORMAT"] = "json"
    done = runner.run("build-sign-verify", "--context", str(context), "--key", str(key), env=env)
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    order = [r["step"] for r in records if r["event"] == "step.start"]
    assert order.index("publish") > order.index("verify") > order.index("sign")
    repository, tag = env["CI_REGISTRY_IMAGE"], env["CI_COMMIT_SHORT_SHA"]
    assert registry.digest(f"{repository}:{tag}") == records[-1]["digest"]
    # Pushed by digest, on the classic engine too (its image saved into a layout): no tag but
    # the user's.
    assert [t for t in registry.tags(repository) if t.startswith("provenance-staging-")] == []


@pytest.mark.classic
def test_task_by_task_build_stage_sign_verify_publish_tags_only_at_the_end(
    runner: Runner, registry: Registry, context: Path, key_pair: tuple[Path, Path, str]
) -> None:
    key, pub, password = key_pair
    env = pipelines.gitlab_key_mode(runner.testbed, str(COSIGNS["cosign3"]), password)
    repository, tag = env["CI_REGISTRY_IMAGE"], env["CI_COMMIT_SHORT_SHA"]
    done = runner.run("build", "--context", str(context), "--stage", env=env)
    assert done.returncode == 0, done.stderr
    assert user_tags(registry, repository) == []  # pushed by digest only
    staged = (runner.cwd / "provenance.env").read_text()
    assert "IMAGE_STAGING_TAG=provenance-staging-" not in staged
    for task, flags in (("sign", ["--key", str(key)]), ("verify", ["--public-key", str(pub)])):
        done = runner.run(task, *flags, env=env)
        assert done.returncode == 0, (task, done.stderr)
        assert user_tags(registry, repository) == [], task
    done = runner.run("publish", "--public-key", str(pub), env=env)
    assert done.returncode == 0, done.stderr
    assert "the staging tag" not in done.stderr  # none to remove, on either engine
    digest = registry.digest(f"{repository}:{tag}")
    assert f"IMAGE_REF={repository}@{digest}\n" in (runner.cwd / "provenance.env").read_text()
    assert f"IMAGE_PUBLISHED={tag}\n" in (runner.cwd / "provenance.env").read_text()
    # One report for the run: each task added its section, under the build's run id.
    report = json.loads((runner.cwd / "provenance-report.json").read_text())
    assert [t["task"] for t in report["tasks"]] == ["build", "sign", "verify", "publish"]
    assert f"PROVENANCE_RUN_ID={report['run']['id']}\n" in staged
    assert report["run"]["id"] == report["tasks"][0]["id"] != report["tasks"][1]["id"]
    assert [(s["task"], s["name"]) for s in report["steps"] if s["name"] != "login"] == [
        ("build", "build"),
        ("build", "push"),
        ("sign", "sign"),
        ("verify", "verify"),
        ("publish", "verify"),
        ("publish", "publish"),
        ("publish", "audit"),
    ]
    assert report["build"]["digest"] == digest and report["sign"]["reference"].endswith(digest)
    assert report["verify"]["verified"] is True and report["outputs"]["IMAGE_PUBLISHED"] == tag


def test_publish_refuses_a_digest_that_does_not_verify(
    runner: Runner, registry: Registry, context: Path, key_pair: tuple[Path, Path, str]
) -> None:
    _, _, password = key_pair
    env = pipelines.gitlab_key_mode(runner.testbed, str(COSIGNS["cosign3"]), password)
    done = runner.run("build", "--context", str(context), "--stage", env=env)
    assert done.returncode == 0, done.stderr
    _, other_pub = make_key_pair(str(COSIGNS["cosign3"]), context.parent / "other" / "cosign")
    done = runner.run("publish", "--public-key", str(other_pub), env=env)  # never signed
    assert done.returncode == 3, done.stderr
    assert user_tags(registry, env["CI_REGISTRY_IMAGE"]) == []


def test_push_then_sign_brings_back_the_tutorials_order(
    runner: Runner,
    registry: Registry,
    context: Path,
    tmp_path: Path,
    key_pair: tuple[Path, Path, str],
) -> None:
    key, _, password = key_pair
    real = str(COSIGNS["cosign3"])
    env = pipelines.gitlab_key_mode(runner.testbed, real, password)
    env["INVOKE_PROVENANCE_COSIGN"] = str(failing_cosign(tmp_path / "bin", real))
    done = runner.run(
        "build-sign-verify",
        "--context",
        str(context),
        "--key",
        str(key),
        "--push-then-sign",
        env=env,
    )
    assert done.returncode == 4, done.stderr
    assert "published before signing" in done.stderr
    # As the tutorial's job: the tag is there, on an image nobody signed. Asked for.
    assert user_tags(registry, env["CI_REGISTRY_IMAGE"]) == [env["CI_COMMIT_SHORT_SHA"]]


HELPER = """#!/usr/bin/env python3
# docker's credential-helper protocol (store, get, erase, list), the logins kept in a file beside
# it: what pass, secretservice or a cloud helper do, with no keychain to unlock.
import json, pathlib, sys
store = pathlib.Path(__file__).with_suffix(".json")
data = json.loads(store.read_text()) if store.exists() else {}
command, body = sys.argv[1], sys.stdin.read()
if command == "store":
    entry = json.loads(body)
    data[entry["ServerURL"]] = [entry["Username"], entry["Secret"]]
    store.write_text(json.dumps(data))
elif command == "get":
    if body.strip() not in data:
        print("credentials not found in native keychain")
        sys.exit(1)
    user, secret = data[body.strip()]
    print(json.dumps({"ServerURL": body.strip(), "Username": user, "Secret": secret}))
elif command == "erase":
    data.pop(body.strip(), None)
    store.write_text(json.dumps(data))
else:
    print(json.dumps({url: entry[0] for url, entry in data.items()}))
"""


def test_a_login_a_credential_helper_holds_is_published_by_the_tool_after_verify(
    runner: Runner,
    registry: Registry,
    context: Path,
    tmp_path: Path,
    key_pair: tuple[Path, Path, str],
) -> None:
    """The login lives in a credential helper, which our HTTP client can't read: buildx pushes
    (to a staging tag) and `imagetools create` publishes, still only after verify."""
    key, _, password = key_pair
    helpers = tmp_path / "helpers"
    helpers.mkdir()
    (helpers / "docker-credential-file").write_text(HELPER)
    (helpers / "docker-credential-file").chmod(0o755)
    config = tmp_path / "docker-config"
    config.mkdir()
    (config / "config.json").write_text(json.dumps({"credsStore": "file"}))
    env = pipelines.gitlab_key_mode(runner.testbed, str(COSIGNS["cosign3"]), password)
    env["PATH"] = f"{helpers}:{runner.env()['PATH']}"
    done = runner.run(
        "build-sign-verify",
        "--context",
        str(context),
        "--key",
        str(key),
        "--docker-config",
        str(config),
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads((helpers / "docker-credential-file.json").read_text())  # the helper has it
    assert "is a credential helper's: buildx pushes" in done.stderr
    repository, tag = env["CI_REGISTRY_IMAGE"], env["CI_COMMIT_SHORT_SHA"]
    report = report_of_run(runner)
    assert registry.digest(f"{repository}:{tag}") == report["build"]["digest"]
    assert report["build"]["staging_tag"].startswith("provenance-staging-")
    order = [s["name"] for s in report["steps"]]
    assert order.index("publish") > order.index("verify") > order.index("sign")


def report_of_run(runner: Runner) -> dict[str, Any]:
    found: dict[str, Any] = json.loads((runner.cwd / "provenance-report.json").read_text())
    return found


def test_a_tag_the_registry_refuses_to_move_fails_with_the_image_verified_not_published(
    runner: Runner, registry: Registry, tmp_path: Path
) -> None:
    """A protected or immutable tag: the registry refuses the tag's manifest PUT (403 DENIED,
    as GitLab's protected tags answer). Exit 4, the image signed and verified, no tag on it."""
    from tests.testbed.faultproxy import FaultProxy, Faults

    cosign = str(COSIGNS["cosign3"])
    key, _ = make_key_pair(cosign, tmp_path / "keys" / "cosign")
    with FaultProxy(upstream=runner.testbed.plain_registry) as proxy:
        proxy.set_faults(Faults(rate=1.0, kinds={"403": 1}, only=r"^PUT .*/manifests/stable$"))
        image = f"{proxy.address}/protected/app-{tmp_path.name[-6:].lower()}"
        direct = image.replace(proxy.address, proxy.upstream, 1)  # around the proxy
        done = runner.run(
            "build-sign-verify",
            "--context",
            str(make_context(tmp_path / "ctx")),
            "--image",
            image,
            "--tag",
            "stable",
            "--key",
            str(key),
            env={"INVOKE_PROVENANCE_COSIGN": cosign},
        )
    assert done.returncode == 4, done.stderr
    report = report_of_run(runner)
    assert report["failure"]["step"] == "publish" and report["verify"]["verified"] is True
    assert report["outputs"]["IMAGE_PUBLISHED"] == ""
    assert "verified, not published" in done.stderr
    assert any(t.startswith("sha256-") for t in registry.tags(direct))  # signed, read back
    assert user_tags(registry, direct) == []
