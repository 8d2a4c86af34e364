"""An example consumer repository (examples/consumer) composing the Python API in its own tasks.py
and noxfile.py: one run per composition, its own step in the report, typed results, a dry run
that needs no file, and a failing check that leaves every tag where it was. Real tools: the test
bed's registry, cosign 3 in GitLab key mode, our Sigstore with the log on."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.integration import pipelines
from tests.integration.conftest import COSIGNS, Registry, Runner
from tests.integration.test_publish import user_tags

pytestmark = pytest.mark.integration

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "consumer"


def consumer(tmp_path: Path) -> Path:
    """A copy of the example repository, each service's context holding a static busybox."""
    folder = tmp_path / "consumer"
    shutil.copytree(EXAMPLE, folder, ignore=shutil.ignore_patterns("busybox", "provenance*"))
    busybox = shutil.which("busybox")
    assert busybox, "busybox is installed by ci/install-tools"
    for service in ("api", "worker"):
        shutil.copy(busybox, folder / "services" / service / "busybox")
    return folder


def run(
    runner: Runner, folder: Path, env: dict[str, str], *args: str
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", *args],
        cwd=folder,
        env=runner.env(env),
        capture_output=True,
        text=True,
        timeout=600,
    )
    return done


def job(runner: Runner, key_pair: tuple[Path, Path, str]) -> dict[str, str]:
    key, _, password = key_pair
    env = pipelines.gitlab_key_mode(runner.testbed, str(COSIGNS["cosign3"]), password)
    return {**env, "INVOKE_PROVENANCE_KEY": str(key)}


def one_run(stderr: str) -> None:
    """One "CI:" line, one summary: the composition was one run."""
    plain = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", stderr)
    assert len(re.findall(r"^CI: ", plain, re.MULTILINE)) == 1, stderr
    assert len(re.findall(r"^(?:error: )?Summary$", plain, re.MULTILINE)) == 1, stderr


def report(folder: Path) -> dict[str, Any]:
    found: dict[str, Any] = json.loads((folder / "provenance-report.json").read_text())
    return found


def last_json(stdout: str) -> dict[str, Any]:
    line = [line for line in stdout.splitlines() if line.startswith("{")][-1]
    found: dict[str, Any] = json.loads(line)
    return found


@pytest.mark.parametrize("cosign", [str(COSIGNS["cosign3"])], ids=["cosign3"])
def test_a_composed_release_is_one_run_and_a_failing_check_moves_no_tag(
    runner: Runner, registry: Registry, tmp_path: Path, key_pair: tuple[Path, Path, str]
) -> None:
    folder = consumer(tmp_path)
    env = job(runner, key_pair)
    repository = env["CI_REGISTRY_IMAGE"]

    done = run(runner, folder, env, "invoke", "release", "--tag", "v1")
    assert done.returncode == 0, done.stderr
    one_run(done.stderr)
    results = last_json(done.stdout)
    digest = registry.digest(f"{repository}:v1")
    assert results["built"]["ref"] == f"{repository}@{digest}"
    assert results["built"]["tags"] == ["v1"]
    assert results["signed"] == {"tags": ["v1"], "format": "classic"}
    assert results["attested"][0] == digest
    assert results["verified"] is True and results["published"] == ["v1"]
    found = report(folder)
    assert [t["task"] for t in found["tasks"]] == [
        "build",
        "check",
        "sign",
        "attest",
        "verify",
        "verify-attestation",
        "publish",
    ]
    assert found["status"] == "ok" and all(t["status"] == "ok" for t in found["tasks"])
    assert any(
        (s["task"], s["name"], s["status"]) == ("check", "check", "ok") for s in found["steps"]
    )
    assert found["outputs"]["IMAGE_REF"] == f"{repository}@{digest}"
    assert f"IMAGE_REF={repository}@{digest}" in (folder / "provenance.env").read_text()
    # cosign, as the tutorial calls it, accepts what the composition published.
    assert (
        registry.cosign_verify(
            str(COSIGNS["cosign3"]), f"{repository}@{digest}", "--key", str(key_pair[1])
        ).returncode
        == 0
    )

    (folder / "services" / "api" / "api.txt").write_text("release 2\n")
    done = run(runner, folder, env, "invoke", "release", "--tag", "v1", "--fail-check")
    assert done.returncode == 1, done.stderr
    assert "refused, as --fail-check asked" in done.stderr and "Traceback" not in done.stderr
    one_run(done.stderr)
    assert registry.digest(f"{repository}:v1") == digest  # the tag is where it was
    failed = report(folder)
    assert failed["status"] == "failed"
    assert [(t["task"], t["status"]) for t in failed["tasks"]] == [
        ("build", "ok"),
        ("check", "failed"),
    ]
    assert "sign" not in {s["name"] for s in failed["steps"] if s["status"] != "not run"}


@pytest.mark.parametrize("cosign", [str(COSIGNS["cosign3"])], ids=["cosign3"])
def test_a_composed_release_of_a_set_returns_each_image_by_name(
    runner: Runner, registry: Registry, tmp_path: Path, key_pair: tuple[Path, Path, str]
) -> None:
    folder = consumer(tmp_path)
    env = job(runner, key_pair)
    base = env["CI_REGISTRY_IMAGE"]

    done = run(runner, folder, env, "invoke", "release-set", "--tag", "v1")
    assert done.returncode == 0, done.stderr
    assert len(re.findall(r"^CI: ", done.stderr, re.MULTILINE)) == 1, done.stderr
    results = last_json(done.stdout)
    assert sorted(results) == ["api", "worker"]
    for name, result in results.items():
        digest = registry.digest(f"{base}/{name}:v1")
        assert result == {
            "ref": f"{base}/{name}@{digest}",
            "signed": ["v1"],
            "verified": True,
            "published": ["v1"],
        }
    before = {name: registry.digest(f"{base}/{name}:v1") for name in results}

    (folder / "services" / "worker" / "worker.txt").write_text("release 2\n")
    done = run(runner, folder, env, "invoke", "release-set", "--tag", "v1", "--fail-check")
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert {name: registry.digest(f"{base}/{name}:v1") for name in results} == before
    assert user_tags(registry, f"{base}/worker") == ["v1"]


@pytest.mark.parametrize("cosign", [str(COSIGNS["cosign3"])], ids=["cosign3"])
def test_a_dry_run_of_the_composition_shows_every_step_and_needs_no_file(
    runner: Runner, registry: Registry, tmp_path: Path, key_pair: tuple[Path, Path, str]
) -> None:
    folder = consumer(tmp_path)
    env = job(runner, key_pair)
    repository = env["CI_REGISTRY_IMAGE"]

    done = run(runner, folder, env, "invoke", "--dry", "release", "--tag", "v1")
    assert done.returncode == 0, done.stderr
    one_run(done.stderr)
    out = done.stderr
    assert "buildx build" in out and "sign --yes --key" in out and "attest" in out
    assert "verify --output json --key" in out and "verify-attestation" in out
    assert "DRY RUN: the commands above were shown, not run" in out
    assert registry.holds_nothing(repository)
    assert not (folder / "provenance.env").exists()
    assert not (folder / "provenance-report.json").exists()

    # The collection's own task, called from Python, returns the API's typed result.
    done = run(runner, folder, env, "invoke", "--dry", "staged")
    assert done.returncode == 0, done.stderr
    staged = last_json(done.stdout)
    assert staged["ref"] == f"{repository}@sha256:{'0' * 64}" and staged["run_id"]


@pytest.mark.parametrize("cosign", [str(COSIGNS["cosign3"])], ids=["cosign3"])
def test_the_nox_example_runs_the_same_composition(
    runner: Runner, registry: Registry, tmp_path: Path, key_pair: tuple[Path, Path, str]
) -> None:
    folder = consumer(tmp_path)
    env = job(runner, key_pair)
    repository = env["CI_REGISTRY_IMAGE"]

    done = run(runner, folder, env, "nox", "-f", "noxfile.py", "-s", "release", "--", "--tag", "v1")
    assert done.returncode == 0, done.stderr
    digest = registry.digest(f"{repository}:v1")
    assert f"verified=True published=v1 {repository}@{digest}" in done.stderr
    one_run(done.stderr)
    assert [t["task"] for t in report(folder)["tasks"]][:2] == ["build", "check"]

    done = run(runner, folder, env, "nox", "-f", "noxfile.py", "-s", "release", "--", "--bogus")
    assert done.returncode == 1 and "unknown flag --bogus" in done.stderr
    assert "Traceback" not in done.stderr
