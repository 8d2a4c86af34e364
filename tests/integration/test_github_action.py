"""The GitHub action, run as the runner would run its one step: action.yml's `run` line with its
environment (its inputs rendered), a GitHub-shaped job environment, $GITHUB_OUTPUT, and a loopback
stand-in of the runner's ID-token endpoint. `uses:` itself can't run here; its step and its wiring
can: on the runner (job_image empty: the tool and cosign of the job's PATH), and in the tool's own
job image (built offline by tests/testbed/jobimage.py), with `docker run` on the test bed's
engine and a PATH that holds neither the tool nor cosign.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest
import yaml

from tests.integration import pipelines
from tests.integration.conftest import Registry, Runner, tool_path
from tests.testbed import sigstore as bed

pytestmark = pytest.mark.integration

ROOT = Path(__file__).parents[2]


def step_environment(inputs: Mapping[str, str], token: str) -> dict[str, str]:
    """The env of action.yml's step, `${{ inputs.X }}` as given, else the input's default, and
    `${{ github.token }}` the job's token."""
    action = yaml.safe_load((ROOT / "action.yml").read_text())
    declared = action["inputs"]
    (step,) = action["runs"]["steps"]

    def value(match: re.Match[str]) -> str:
        name = match[1]
        return str(inputs.get(name, declared[name].get("default", "")))

    rendered = {
        key: re.sub(r"\$\{\{\s*inputs\.([a-z_-]+)\s*\}\}", value, str(text))
        for key, text in step["env"].items()
    }
    rendered = {k: v.replace("${{ github.token }}", token) for k, v in rendered.items()}
    assert "${{" not in "".join(rendered.values()), "an expression left unrendered"
    return rendered


def outputs_of(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


def run_step(runner: Runner, env: dict[str, str], path: str) -> subprocess.CompletedProcess[str]:
    """action.yml's step, as the runner runs a `shell: bash` step."""
    (step,) = yaml.safe_load((ROOT / "action.yml").read_text())["runs"]["steps"]
    full = runner.env(env)
    full["PATH"] = path
    return subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
        cwd=runner.cwd,
        env=full,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.parametrize("where", ["runner", "job-image"])
def test_the_action_signs_keyless_through_the_runners_token_and_a_later_job_verifies(
    runner: Runner,
    registry: Registry,
    tmp_path: Path,
    where: str,
    request: pytest.FixtureRequest,
) -> None:
    from tests.integration.conftest import make_context

    make_context(runner.cwd / "app")
    if where == "runner":
        # The tool is installed (this venv): the script uses it, never a pip install of its own.
        in_image, path = {}, f"{Path(sys.executable).parent}:{tool_path()}"
    else:
        # Neither the tool nor cosign (cosign3 below) on PATH, and no pip install: the step
        # succeeds only in the image.
        image_ref = request.getfixturevalue("job_image")  # conftest: built offline, cached
        in_image, path = {"job_image": image_ref}, "/usr/sbin:/usr/bin:/bin"
    job = pipelines.github(runner.testbed)
    image = job.pop("INVOKE_PROVENANCE_IMAGE")
    # The login is the job's token, as action.yml hands it on (GITHUB_TOKEN); the test bed's
    # registry stands in for ghcr.io.
    for name in ("INVOKE_PROVENANCE_PASSWORD_ENV", "REGISTRY_PASSWORD"):
        job.pop(name)
    endpoint = bed.TokenEndpoint(runner.sigstore, job)
    output = tmp_path / "github-output"
    output.touch()
    common = {
        **job,
        **endpoint.environ,
        "GITHUB_OUTPUT": str(output),
        "GITHUB_ACTION_PATH": str(ROOT),
        "INVOKE_PROVENANCE_COSIGN": "cosign3",
    }
    try:
        inputs = {"context": "app", "image": image, "tags": "type=sha,type=ref", **in_image}
        done = run_step(
            runner, {**common, **step_environment(inputs, runner.testbed.password)}, path
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert "sigstore" in endpoint.audiences  # keyless, with the runner's token
        found = outputs_of(output)
        ref = found["image_ref"]
        assert found["image"] == image and ref.startswith(f"{image}@sha256:")
        assert found["image_published"] == f"{job['GITHUB_SHA'][:8]},main"  # the rules
        # action.yml's outputs name what the script wrote.
        action = yaml.safe_load((ROOT / "action.yml").read_text())
        for name, spec in action["outputs"].items():
            key = re.search(r"steps\.run\.outputs\.([a-z_]+)", spec["value"])
            assert key and key[1] in found, name

        # The deploy job: the action's verify of the build job's outputs, by digest.
        later = {**common, "GITHUB_OUTPUT": str(tmp_path / "later-output")}
        inputs = {"task": "verify", "image": found["image"], "digest": found["image_digest"]}
        inputs.update(in_image)
        for leftover in runner.cwd.glob("provenance*"):
            leftover.unlink()  # another job: none of the build job's files
        done = run_step(
            runner, {**later, **step_environment(inputs, runner.testbed.password)}, path
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert "verification: VERIFIED" in done.stderr
    finally:
        endpoint.close()
    identity = f"https://github.com/{job['GITHUB_WORKFLOW_REF']}"
    verified = registry.cosign_verify(
        "cosign3",
        ref,
        "--certificate-identity",
        identity,
        "--certificate-oidc-issuer",
        bed.GITHUB_ISSUER,
    )
    assert verified.returncode == 0, verified.stderr
