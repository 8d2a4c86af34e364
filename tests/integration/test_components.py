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
import re
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


def example(docker_host: str) -> dict[str, object]:
    """The example pipeline, its build on the test bed's engine: the shell executor has no
    docker:dind service."""
    pipeline = yaml.safe_load((ROOT / "examples" / "gitlab" / ".gitlab-ci.yml").read_text())
    build = next(i for i in pipeline["include"] if "/build-sign-verify@" in i["component"])
    build["inputs"].update(on_the_test_bed(docker_host))
    return pipeline  # type: ignore[no-any-return]


def on_the_test_bed(docker_host: str) -> dict[str, object]:
    return {"services": [], "docker_host": docker_host, "docker_tls": False}


def project(
    folder: Path,
    pipeline: dict[str, object],
    contexts: list[str],
    files: dict[str, str] | None = None,
) -> str:
    """A git repository holding the components, `pipeline`, its images' contexts and `files`;
    its SHA."""
    shutil.copytree(ROOT / "templates", folder / "templates")
    (folder / ".gitlab-ci.yml").write_text(yaml.safe_dump(pipeline, sort_keys=False))
    for context in contexts:
        make_context(folder / context)
    for name, text in (files or {}).items():
        (folder / name).write_text(text)
    git = ["git", "-c", "user.email=ci@example.com", "-c", "user.name=ci"]
    for argv in (
        ["git", "init", "-q", "-b", "main"],
        ["git", "add", "-A"],
        [*git, "commit", "-qm", "pipeline"],
        ["git", "remote", "add", "origin", f"git@gitlab.example.com:{PROJECT}.git"],
    ):
        subprocess.run(argv, cwd=folder, check=True, capture_output=True)
    return subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=folder, check=True, capture_output=True, text=True
    ).stdout.strip()


def pipeline_variables(runner: Runner, sha: str, extra: dict[str, str]) -> dict[str, str]:
    env = pipelines.gitlab(runner.testbed, project=PROJECT)
    # gitlab-ci-local's own: the commit and branch of the repository, each job's id and URL.
    for name in (
        "CI_COMMIT_SHA",
        "CI_COMMIT_SHORT_SHA",
        "CI_COMMIT_REF_NAME",
        "CI_JOB_ID",
        "CI_JOB_URL",
        "CI_JOB_TOKEN",
    ):
        env.pop(name)
    claims = sigstore_bed.gitlab_claims(
        {**env, "CI_COMMIT_SHA": sha, "CI_COMMIT_REF_NAME": "main", "CI_JOB_ID": "1"}
    )
    env.update(
        {
            "GITLAB_CI": "true",
            "SIGSTORE_ID_TOKEN": runner.sigstore.mint(claims),
            **runner.testbed.environ(),
            **runner.sigstore.settings(),
            **extra,
        }
    )
    return env


def run_pipeline(
    runner: Runner, folder: Path, variables: dict[str, str], *args: str
) -> subprocess.CompletedProcess[str]:
    """gitlab-ci-local in `folder`, with `variables` and `args` (e.g. job names)."""
    if not TOOL.exists():
        pytest.fail("gitlab-ci-local is not installed: ci/test runs npm ci in tests/tools")
    argv = [
        str(TOOL),
        "--shell-executor-no-image",
        "--force-shell-executor",
        "--shell-isolation",
        "--home",
        str(folder / ".home"),
    ]  # (cwd: the project)
    for key, value in variables.items():
        argv += ["--variable", f"{key}={value}"]
    argv += args
    env = runner.env()
    # The tool and cosign are on PATH: the components install nothing (no apk here).
    env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"
    env.pop("CI", None)
    return subprocess.run(argv, cwd=folder, env=env, capture_output=True, text=True, timeout=900)


def job_log(folder: Path, job: str) -> str:
    return (folder / ".gitlab-ci-local" / "output" / f"{job}.log").read_text()


@pytest.mark.parametrize("mode", ["keyless", "key"])
def test_the_example_pipeline_runs_the_components_and_the_deploy_pins_the_verified_digest(
    runner: Runner,
    registry: Registry,
    tmp_path: Path,
    key_pair: tuple[Path, Path, str],
    mode: str,
    cosign: str,
) -> None:
    folder = tmp_path / "project"
    sha = project(folder, example(runner.testbed.docker_host), ["examples/hello"])
    key, pub, password = key_pair
    extra = {"INVOKE_PROVENANCE_COSIGN": cosign}
    if mode == "key":
        extra.update(
            {
                "INVOKE_PROVENANCE_MODE": "key",
                "INVOKE_PROVENANCE_KEY": str(key),
                "INVOKE_PROVENANCE_PUBLIC_KEY": str(pub),
                "COSIGN_PASSWORD": password,
            }
        )
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
        flags = [
            "--certificate-identity",
            identity,
            "--certificate-oidc-issuer",
            variables["CI_SERVER_URL"],
        ]
    else:
        flags = ["--key", str(pub)]
    payloads = registry.payloads(cosign, f"{repository}:{tag}", *flags)
    found = annotations_of(payloads[0])
    assert found["com.gitlab.ci.commit.sha"] == sha
    assert found["com.gitlab.ci.project.path"] == PROJECT
    assert found["com.gitlab.ci.pipeline.id"] == variables["CI_PIPELINE_ID"]
    assert found["com.gitlab.ci.job.url"] == report["outputs"]["PROVENANCE_JOB_URL"]
    assert found["tag"] == tag


def test_the_parallel_component_shards_a_set_and_the_verify_component_verifies_it_all(
    runner: Runner,
    registry: Registry,
    tmp_path: Path,
) -> None:
    folder = tmp_path / "monorepo"
    names = ["api", "web", "worker"]
    here = "$CI_SERVER_FQDN/$CI_PROJECT_PATH"
    pipeline = {
        "stages": ["build", "verify", "deploy"],
        "include": [
            {
                "component": f"{here}/build-sign-verify-parallel@$CI_COMMIT_SHA",
                "inputs": {
                    "images_file": "images.yml",
                    "jobs": 2,
                    **on_the_test_bed(runner.testbed.docker_host),
                },
            },
            {"component": f"{here}/verify@$CI_COMMIT_SHA", "inputs": {"images_file": "images.yml"}},
        ],
        "deploy": {
            "stage": "deploy",
            "needs": ["provenance-verify"],
            "script": [f'echo "deploying {n} ${n.upper()}_VERIFIED_IMAGE_REF"' for n in names],
        },
    }
    listed = "".join(f"- name: {n}\n  context: services/{n}\n" for n in names)
    sha = project(folder, pipeline, [f"services/{n}" for n in names], {"images.yml": listed})
    variables = pipeline_variables(runner, sha, {"INVOKE_PROVENANCE_COSIGN": "cosign3"})
    done = run_pipeline(runner, folder, variables)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]

    deploy = job_log(folder, "deploy")
    for name in names:
        pinned = re.search(rf"deploying {name} (\S+@sha256:[0-9a-f]{{64}})", deploy)
        assert pinned, f"{name}: no verified digest handed to the deploy job"
        repository = f"{variables['CI_REGISTRY_IMAGE']}/{name}"
        assert pinned[1].startswith(f"{repository}@")
        identity = f"{variables['CI_PROJECT_URL']}//.gitlab-ci.yml@refs/heads/main"
        payloads = registry.payloads(
            "cosign3",
            pinned[1],
            "--certificate-identity",
            identity,
            "--certificate-oidc-issuer",
            variables["CI_SERVER_URL"],
        )
        assert annotations_of(payloads[0])["com.gitlab.ci.commit.sha"] == sha
    shards = [json.loads(p.read_text()) for p in sorted(folder.glob("provenance-report-*.json"))]
    assert sorted(n for s in shards for n in s["images"]) == names  # each image once, by a shard
