"""The job image (images/job/Dockerfile) for real: built offline on the test bed from a trixie
root file system mmdebstrap made, it holds the tool, cosign 2 and 3, the docker CLI with buildx,
git and Python 3.13, each at the version its build checked and wrote down; and the component's
job runs in it, pinned by digest, under gitlab-ci-local's docker executor."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.integration import joblog
from tests.integration import test_components as components
from tests.integration.conftest import TOOLS, Registry, Runner, annotations_of, tool_path
from tests.testbed import bed, debian, jobimage

pytestmark = pytest.mark.integration


def docker(testbed: bed.TestBed, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **testbed.environ(), "PATH": tool_path()}
    return subprocess.run(
        ["docker", *args], env=env, capture_output=True, text=True, timeout=600, check=False
    )


def in_image(testbed: bed.TestBed, image: str, script: str) -> str:
    done = docker(testbed, "run", "--rm", "--network", "none", image, "sh", "-c", script)
    assert done.returncode == 0, done.stderr
    return done.stdout


def recorded(key: str) -> str:
    """What ci/install-tools put on the host (the cosign 3 and buildx the tests run)."""
    lines = (TOOLS / "versions.env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line)[key]


def test_the_job_image_builds_offline_from_the_mmdebstrap_base(testbed: bed.TestBed) -> None:
    """A fresh build (no cache), its RUN steps without network: the base has every package, so
    install-packages installs nothing, and the versions are checked."""
    image = jobimage.build_job_image(testbed, cached=False)
    base = f"{testbed.plain_registry}/{jobimage.BASE_REPOSITORY}:{jobimage.BASE_TAG}"
    history = docker(testbed, "image", "inspect", base, "--format", "{{json .RootFS.Layers}}")
    assert history.returncode == 0, history.stderr
    assert len(json.loads(history.stdout)) == 1  # docker import: one layer, the root file system
    listed = in_image(testbed, image, "cat /usr/share/provenance-tasks/versions")
    assert "cosign3 " in listed and "python3 3.13" in listed


def test_docker_run_provenance_tasks_version_names_every_tool_as_dpkg_has_it(
    testbed: bed.TestBed, job_image: str
) -> None:
    done = docker(
        testbed, "run", "--rm", "--network", "none", job_image, "provenance-tasks", "--version"
    )
    assert done.returncode == 0, done.stderr
    from provenance_tasks import __version__

    lines = done.stdout.splitlines()
    assert lines[0] == f"provenance-tasks {__version__}"  # the line the components grep -x for
    said = dict(line.split() for line in lines[2:])
    dpkg = dict(
        line.split("\t")
        for line in in_image(
            testbed,
            job_image,
            "dpkg-query -W python3 git docker-cli cosign; "
            "printf 'cosign3\\t%s\\n' \"$(cat /opt/cosign-3/version)\"; "
            "printf 'docker-buildx\\t%s\\n' \"$(cat /opt/buildx/version)\"",
        ).splitlines()
    )
    assert said == {
        "python3": dpkg["python3"],
        "git": dpkg["git"],
        "docker-cli": dpkg["docker-cli"],
        "cosign2": dpkg["cosign"],
        "cosign3": dpkg["cosign3"],
        "docker-buildx": dpkg["docker-buildx"],
    }
    assert dpkg["python3"].startswith("3.13.")  # trixie's
    assert dpkg["cosign"].startswith("2.")  # trixie's cosign 2, beside sid's 3
    assert said["cosign3"] == recorded("cosign-3")  # the very cosign 3 the tests run
    assert said["docker-buildx"] == recorded("buildx")
    # The labels say the same, for a registry's reader.
    labels = json.loads(
        docker(testbed, "image", "inspect", job_image, "--format", "{{json .Config.Labels}}").stdout
    )
    for tool, version in said.items():
        assert labels[f"provenance-tasks.versions.{tool}"] == version
    assert labels["provenance-tasks.versions.provenance-tasks"] == __version__


def test_the_tools_answer_inside_and_the_image_starts_a_shell(
    testbed: bed.TestBed, job_image: str
) -> None:
    out = in_image(
        testbed,
        job_image,
        "set -e; cosign2 version; cosign3 version; cosign version; docker buildx version; "
        "docker --version; git --version; python3 --version; readlink -f $(command -v cosign)",
    )
    assert out.count("GitVersion:") == 3  # cosign 2, 3 and `cosign` all run
    assert f"github.com/docker/buildx {recorded('buildx').split('-')[0]}" in out
    assert "Python 3.13." in out
    assert "git version 2." in out
    assert out.strip().endswith("/opt/cosign-3/usr/bin/cosign")  # `cosign` is the newest
    config = json.loads(
        docker(testbed, "image", "inspect", job_image, "--format", "{{json .Config}}").stdout
    )
    assert not config.get("Entrypoint")  # GitLab's runner must get a shell
    assert config["Cmd"] == ["provenance-tasks", "--help"]
    helped = docker(testbed, "run", "--rm", "--network", "none", job_image)
    assert helped.returncode == 0 and "build-sign-verify" in helped.stdout


def test_the_component_s_job_runs_inside_the_pinned_image_under_the_docker_executor(
    runner: Runner, registry: Registry, job_image: str, tmp_path: Path
) -> None:
    """The example pipeline on gitlab-ci-local's docker executor, every job in the job image
    pinned by digest (job_image input, the helper and default images too: nothing is pulled
    but it, from loopback). The job finds cosign and the tool in the image: no apk, no pip."""
    testbed = runner.testbed
    pipeline = components.example(testbed.docker_host)
    for include in pipeline["include"]:  # type: ignore[attr-defined]
        include["inputs"]["job_image"] = job_image
    folder = tmp_path / "project"
    sha = components.project(folder, pipeline, ["examples/hello"])
    variables = components.pipeline_variables(runner, sha, {})
    pulled = docker(testbed, "pull", "--quiet", job_image)
    assert pulled.returncode == 0, pulled.stderr
    argv = [
        str(components.TOOL),
        "--shell-executor-no-image=false",
        "--helper-image",
        job_image,
        "--default-image",
        job_image,
        "--pull-policy",
        "if-not-present",
        # The loopback registries, Sigstore and engine are the host's: its network, and the
        # engine's socket, the test CA bundle and the trusted root at the paths the variables say.
        "--network",
        "host",
        "--volume",
        f"{testbed.state}:{testbed.state}",
        "--volume",
        f"{runner.sigstore.state}:{runner.sigstore.state}",
        "--home",
        str(folder / ".home"),
    ]
    for key, value in variables.items():
        argv += ["--variable", f"{key}={value}"]
    env = runner.env()
    env.pop("CI", None)
    done = subprocess.run(argv, cwd=folder, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-8000:] + done.stderr[-3000:]

    build = components.job_log(folder, "provenance-build-sign-verify")
    assert job_image in done.stdout  # the image the job ran in, as gitlab-ci-local says it
    assert "verification: VERIFIED" in build
    assert "verification: VERIFIED" in components.job_log(folder, "provenance-verify")
    # The script still holds the apk/pip fallback (for users' own images): GitLab echoes it as
    # "$ ..." lines. What ran prints nothing of apk's or pip's.
    lines = joblog.plain(build).splitlines()
    echoed = [line for line in lines if line.lstrip().startswith("$")]
    ran = [line for line in lines if not line.lstrip().startswith("$")]
    assert any("apk add" in line for line in echoed)  # the fallback is there, unused
    assert any("verification: VERIFIED" in line for line in ran)
    installing = [line for line in ran if re.search(r"\b(apk|pip)\b|Installing|fetch http", line)]
    assert not installing, installing
    version = in_image(testbed, job_image, "python3 --version")
    assert version.startswith("Python 3.13.")  # the one end-to-end job on 3.13
    report = json.loads((folder / "provenance-report.json").read_text())
    ref = report["outputs"]["IMAGE_REF"]
    identity = f"{variables['CI_PROJECT_URL']}//.gitlab-ci.yml@refs/heads/main"
    payloads = registry.payloads(
        str(TOOLS / "bin" / "cosign3"),
        ref,
        "--certificate-identity",
        identity,
        "--certificate-oidc-issuer",
        variables["CI_SERVER_URL"],
    )
    assert annotations_of(payloads[0])["com.gitlab.ci.commit.sha"] == sha


def test_the_build_installs_only_what_the_base_lacks_and_refuses_an_unexpected_version(
    testbed: bed.TestBed, job_image: str
) -> None:
    """images/job's two scripts, run in the image with no network: install-packages goes to apt
    only for a package the base lacks (debian:trixie-slim's path: here it fails, offline), and
    check-versions fails a build whose tool differs from the version it was told to expect."""
    scripts = ["--volume", f"{jobimage.IMAGE_FOLDER}:/x:ro"]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return docker(testbed, "run", "--rm", "--network", "none", *args)

    present = run(*scripts, job_image, "/x/install-packages", "git", "python3", "cosign", "rsync")
    assert present.returncode == 0, present.stderr
    assert "the base has them all" in present.stdout
    absent = run(*scripts, job_image, "/x/install-packages", "git", "hello")
    assert "installing from the base's apt sources: hello" in absent.stdout
    assert absent.returncode != 0  # apt-get update, with no network

    labels = json.loads(
        docker(testbed, "image", "inspect", job_image, "--format", "{{json .Config.Labels}}").stdout
    )
    expected = {
        "TOOL_VERSION": labels["provenance-tasks.versions.provenance-tasks"],
        "PYTHON3_VERSION": labels["provenance-tasks.versions.python3"],
        "GIT_VERSION": labels["provenance-tasks.versions.git"],
        "DOCKER_CLI_VERSION": labels["provenance-tasks.versions.docker-cli"],
        "BUILDX_VERSION": labels["provenance-tasks.versions.docker-buildx"],
        "COSIGN2_VERSION": labels["provenance-tasks.versions.cosign2"],
        "COSIGN3_VERSION": labels["provenance-tasks.versions.cosign3"],
    }

    def check(versions: dict[str, str]) -> subprocess.CompletedProcess[str]:
        env = [arg for name, value in versions.items() for arg in ("--env", f"{name}={value}")]
        return run(*scripts, *env, job_image, "/x/check-versions", "/tmp/versions")

    assert check(expected).returncode == 0
    wrong = check({**expected, "COSIGN3_VERSION": "3.0.2-1"})
    assert wrong.returncode == 1
    found = expected["COSIGN3_VERSION"]
    assert f"cosign3 is {found}, the build expects 3.0.2-1 (COSIGN3_VERSION)" in wrong.stderr
    unsaid = check({k: v for k, v in expected.items() if k != "GIT_VERSION"})
    assert unsaid.returncode == 1
    assert f"pass --build-arg GIT_VERSION={expected['GIT_VERSION']}" in unsaid.stderr


@pytest.mark.skipif(
    os.environ.get("PROVENANCE_NETWORK_TESTS") != "1",
    reason="its build installs from Debian's mirror, and tests stay on loopback: "
    "PROVENANCE_NETWORK_TESTS=1 runs it",
)
def test_the_same_dockerfile_builds_from_a_bare_trixie_installing_what_the_base_lacks(
    testbed: bed.TestBed, tmp_path: Path
) -> None:
    """The users' path: from a base without the packages (a bare trixie from mmdebstrap, as
    debian:trixie-slim is; that one can't be pulled here), install-packages takes them with apt
    from trixie (this build has network, from Debian's mirror), and the versions check holds."""
    ready = jobimage.prepare(testbed, tmp_path)
    bare = jobimage.push_base(testbed, debian.base(packages=()), tag="trixie-bare")
    argv = ["buildx", "build", "--progress=plain", "--provenance=false", "--load"]
    for name, value in {**ready.build_args, "BASE": bare}.items():
        argv += ["--build-arg", f"{name}={value}"]
    done = docker(testbed, *argv, "--tag", "job-from-bare:test", str(ready.context))
    assert done.returncode == 0, done.stderr[-5000:]
    wanted = "python3 python3-venv git ca-certificates docker-cli cosign rsync"
    assert f"installing from the base's apt sources: {wanted}" in done.stderr
    said = docker(
        testbed,
        "run",
        "--rm",
        "--network",
        "none",
        "job-from-bare:test",
        "provenance-tasks",
        "--version",
    )
    assert said.returncode == 0, said.stderr
    assert f"cosign2 {ready.build_args['COSIGN2_VERSION']}" in said.stdout
