"""The GitLab components run for real: gitlab-ci-local (npm's 4.64.x) runs the example pipeline
(examples/gitlab/.gitlab-ci.yml: build-sign-verify, then verify, then a deploy that pins the
digest) in a throwaway git repository, the templates included as components and resolved to its
own templates/, on the shell executor, against the test bed's registry and Sigstore.

What gitlab-ci-local can't do is passed in as variables, as the issue of this step says:
GITLAB_CI=true (it sets false), SIGSTORE_ID_TOKEN (it ignores `id_tokens:`) minted by our
Sigstore for this pipeline, the registry and its login, and DOCKER_HOST (no docker:dind
service on the shell executor). Then cosign itself checks the image.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.integration import pipelines
from tests.integration.conftest import Registry, Runner, annotations_of, make_context
from tests.testbed import sigstore as sigstore_bed

pytestmark = pytest.mark.integration

ROOT = Path(__file__).parents[2]
TOOL = ROOT / "tests" / "tools" / "node_modules" / ".bin" / "gitlab-ci-local"
PROJECT = "group/provenance-tasks"  # the git remote's path: what makes the components local


def project(folder: Path, docker_host: str) -> str:
    """A git repository holding the components, the example pipeline and its image; its SHA."""
    shutil.copytree(ROOT / "templates", folder / "templates")
    pipeline = yaml.safe_load((ROOT / "examples" / "gitlab" / ".gitlab-ci.yml").read_text())
    # The shell executor has no docker:dind service: the build uses the test bed's engine.
    build = next(i for i in pipeline["include"] if "/build-sign-verify@" in i["component"])
    build["inputs"].update({"services": [], "docker_host": docker_host, "docker_tls": False})
    (folder / ".gitlab-ci.yml").write_text(yaml.safe_dump(pipeline, sort_keys=False))
    make_context(folder / "examples" / "hello")
    git = ["git", "-c", "user.email=ci@example.com", "-c", "user.name=ci"]
    for argv in (["git", "init", "-q", "-b", "main"], ["git", "add", "-A"],
                 [*git, "commit", "-qm", "pipeline"],
                 ["git", "remote", "add", "origin", f"git@gitlab.example.com:{PROJECT}.git"]):
        subprocess.run(argv, cwd=folder, check=True, capture_output=True)  # fmt: skip
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=folder, check=True,
                          capture_output=True, text=True).stdout.strip()  # fmt: skip


def pipeline_variables(runner: Runner, sha: str, extra: dict[str, str]) -> dict[str, str]:
    env = pipelines.gitlab(runner.testbed, project=PROJECT)
    # gitlab-ci-local's own: the commit and branch of the repository, each job's id and URL.
    for name in ("CI_COMMIT_SHA", "CI_COMMIT_SHORT_SHA", "CI_COMMIT_REF_NAME", "CI_JOB_ID",
                 "CI_JOB_URL", "CI_JOB_TOKEN"):  # fmt: skip
        env.pop(name)
    claims = sigstore_bed.gitlab_claims({**env, "CI_COMMIT_SHA": sha, "CI_COMMIT_REF_NAME":
                                         "main", "CI_JOB_ID": "1"})  # fmt: skip
    env.update({
        "GITLAB_CI": "true",
        "SIGSTORE_ID_TOKEN": runner.sigstore.mint(claims),
        **runner.testbed.environ(),
        **runner.sigstore.settings(),
        **extra,
    })  # fmt: skip
    return env


def run_pipeline(runner: Runner, folder: Path, variables: dict[str, str]
                 ) -> subprocess.CompletedProcess[str]:  # fmt: skip
    if not TOOL.exists():
        pytest.fail("gitlab-ci-local is not installed: ci/test runs npm ci in tests/tools")
    argv = [str(TOOL), "--shell-executor-no-image", "--force-shell-executor",
            "--home", str(folder / ".home")]  # fmt: skip (cwd: the project)
    for key, value in variables.items():
        argv += ["--variable", f"{key}={value}"]
    env = runner.env()
    # The tool and cosign are on PATH: the components install nothing (no apk here).
    env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"
    env.pop("CI", None)
    return subprocess.run(argv, cwd=folder, env=env, capture_output=True, text=True, timeout=900)


def job_log(folder: Path, job: str) -> str:
    return (folder / ".gitlab-ci-local" / "output" / f"{job}.log").read_text()


@pytest.mark.parametrize("mode", ["keyless", "key"])
def test_the_example_pipeline_runs_the_components_and_the_deploy_pins_the_verified_digest(
    runner: Runner, registry: Registry, tmp_path: Path, key_pair: tuple[Path, Path, str],
    mode: str, cosign: str,
) -> None:  # fmt: skip
    folder = tmp_path / "project"
    sha = project(folder, runner.testbed.docker_host)
    key, pub, password = key_pair
    extra = {"INVOKE_PROVENANCE_COSIGN": cosign}
    if mode == "key":
        extra.update({"INVOKE_PROVENANCE_MODE": "key", "INVOKE_PROVENANCE_KEY": str(key),
                      "INVOKE_PROVENANCE_PUBLIC_KEY": str(pub), "COSIGN_PASSWORD": password})
    variables = pipeline_variables(runner, sha, extra)
    done = run_pipeline(runner, folder, variables)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]

    build = job_log(folder, "provenance-build-sign-verify")
    assert 'grep -qx "provenance-tasks $PROVENANCE_TASKS_VERSION"' in build  # the pin, checked
    assert "verification: VERIFIED" in build
    verify = job_log(folder, "provenance-verify")
    assert "verification: VERIFIED" in verify
    deploy = job_log(folder, "deploy")
    report = json.loads((folder / "provenance-report.json").read_text())
    ref = report["outputs"]["IMAGE_REF"]
    assert f"deploying {ref}" in deploy  # the digest the verify job verified, never a tag
    verified = (folder / "provenance-verified.env").read_text()
    assert verified == f"VERIFIED_IMAGE_REF={ref}\n"
    assert [t["task"] for t in report["tasks"]] == ["build-sign-verify", "verify"]

    # cosign itself: signed by this pipeline, the annotations its values.
    repository, tag = variables["CI_REGISTRY_IMAGE"], sha[:8]
    if mode == "keyless":
        identity = f"{variables['CI_PROJECT_URL']}//.gitlab-ci.yml@refs/heads/main"
        flags = ["--certificate-identity", identity, "--certificate-oidc-issuer",
                 variables["CI_SERVER_URL"]]  # fmt: skip
    else:
        flags = ["--key", str(pub)]
    payloads = registry.payloads(cosign, f"{repository}:{tag}", *flags)
    found = annotations_of(payloads[0])
    assert found["com.gitlab.ci.commit.sha"] == sha
    assert found["com.gitlab.ci.project.path"] == PROJECT
    assert found["com.gitlab.ci.pipeline.id"] == variables["CI_PIPELINE_ID"]
    assert found["com.gitlab.ci.job.url"] == report["outputs"]["PROVENANCE_JOB_URL"]
    assert found["tag"] == tag
