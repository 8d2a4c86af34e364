"""A simulated GitLab branch pipeline in key mode, end to end on real tools."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.integration import joblog, pipelines
from tests.integration.conftest import Registry, Runner, annotations_of, make_context


@pytest.mark.integration
@pytest.mark.classic
def test_branch_pipeline_signs_and_verifies_the_digest_the_registry_holds(
    runner: Runner, registry: Registry, context: Path, key_pair: tuple[Path, Path, str], cosign: str
) -> None:
    key, pub, password = key_pair
    env = pipelines.gitlab_key_mode(runner.testbed, cosign, password)
    done = runner.run("build-sign-verify", "--context", str(context), "--key", str(key), env=env)
    assert done.returncode == 0, done.stderr
    assert "VERIFIED" in done.stderr

    repository, tag = env["CI_REGISTRY_IMAGE"], env["CI_COMMIT_SHORT_SHA"]
    digest = registry.digest(f"{repository}:{tag}")
    dotenv = (runner.cwd / "provenance.env").read_text()
    assert f"IMAGE_REF={repository}@{digest}\n" in dotenv

    # A plain cosign verify, run by the test, sees the eleven annotations on that digest.
    payloads = registry.payloads(cosign, f"{repository}@{digest}", "--key", str(pub))
    expected = pipelines.expected_annotations(env, tag)
    assert any(annotations_of(p) == expected for p in payloads), payloads
    assert all(p["critical"]["image"]["docker-manifest-digest"] == digest for p in payloads)  # type: ignore[index]
    # The login lived in a private docker config folder, removed at the end.
    folder = re.search(r"docker_config=(\S+)", joblog.plain(done.stderr))
    assert folder and folder.group(1).startswith("/tmp/provenance-docker-")
    assert not Path(folder.group(1)).exists()
    # docker's "stored unencrypted" warning is said as what it is here, once.
    assert "stored unencrypted" not in done.stderr
    assert "the login is in this run's private docker config" in done.stderr
    # No secret reached the output.
    for secret in (env["CI_JOB_TOKEN"], env["CI_REGISTRY_PASSWORD"], password):
        assert secret not in done.stdout + done.stderr


@pytest.mark.integration
def test_same_image_in_a_second_repository_first_signs_the_right_one(
    runner: Runner,
    registry: Registry,
    tmp_path: Path,
    key_pair: tuple[Path, Path, str],
    cosign: str,
) -> None:
    key, pub, password = key_pair
    context = make_context(tmp_path / "same", content="identical content")
    env = pipelines.gitlab(runner.testbed)
    # A reproducible build, so both repositories hold the very same digest.
    env.update(
        {
            "COSIGN_PASSWORD": password,
            "INVOKE_PROVENANCE_COSIGN": cosign,
            "INVOKE_PROVENANCE_PROVENANCE": "false",
            "INVOKE_PROVENANCE_BUILD_ARGS": "SOURCE_DATE_EPOCH=1700000000",
        }
    )
    other = f"{runner.testbed.secure_registry}/elsewhere/copy-{tmp_path.name[-6:].lower()}"
    first = runner.run(
        "build", "--context", str(context), "--image", other, "--tag", "first", env=env
    )
    assert first.returncode == 0, first.stderr

    done = runner.run("build-sign-verify", "--context", str(context), "--key", str(key), env=env)
    assert done.returncode == 0, done.stderr
    repository = env["CI_REGISTRY_IMAGE"]
    digest = registry.digest(f"{repository}:{env['CI_COMMIT_SHORT_SHA']}")
    assert registry.digest(f"{other}:first") == digest  # the same image in both repositories
    assert (
        registry.cosign_verify(cosign, f"{repository}@{digest}", "--key", str(pub)).returncode == 0
    )
    # The other repository holds no signature.
    assert not [t for t in registry.tags(other) if t.startswith("sha256-")]


@pytest.mark.integration
def test_new_bundle_format_is_written_on_request_and_verified(
    runner: Runner, registry: Registry, context: Path, key_pair: tuple[Path, Path, str], cosign: str
) -> None:
    if not cosign.endswith("3"):
        pytest.skip("the new bundle format is written by cosign 3.x")
    key, _, password = key_pair
    env = pipelines.gitlab_key_mode(runner.testbed, cosign, password)
    done = runner.run(
        "build-sign-verify",
        "--context",
        str(context),
        "--key",
        str(key),
        "--bundle-format",
        "new",
        env=env,
    )
    assert done.returncode == 0, done.stderr
    report = (runner.cwd / "provenance-report.json").read_text()
    assert '"format": "new"' in report and '"format": "classic"' not in report
