"""The GitHub action, run as the runner would run its one step: action.yml's environment (its
inputs rendered), a GitHub-shaped job environment, $GITHUB_OUTPUT, and a loopback stand-in of the
runner's ID-token endpoint. `uses:` itself can't run here; its script and its wiring can.
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
from tests.integration.conftest import Registry, Runner
from tests.testbed import sigstore as bed

pytestmark = pytest.mark.integration

ROOT = Path(__file__).parents[2]


def step_environment(inputs: Mapping[str, str]) -> dict[str, str]:
    """The env of action.yml's step, `${{ inputs.X }}` as given, else the input's default."""
    action = yaml.safe_load((ROOT / "action.yml").read_text())
    declared = action["inputs"]
    (step,) = action["runs"]["steps"]

    def value(match: re.Match[str]) -> str:
        name = match[1]
        return str(inputs.get(name, declared[name].get("default", "")))

    return {key: re.sub(r"\$\{\{\s*inputs\.([a-z-]+)\s*\}\}", value, str(text))
            for key, text in step["env"].items()}  # fmt: skip


def outputs_of(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


def test_the_actions_script_signs_keyless_through_the_runners_token_endpoint(
    runner: Runner, registry: Registry, tmp_path: Path,
) -> None:  # fmt: skip
    from tests.integration.conftest import make_context

    make_context(runner.cwd / "app")
    env = pipelines.github(runner.testbed)
    endpoint = bed.TokenEndpoint(runner.sigstore, env)
    output = tmp_path / "github-output"
    output.touch()
    try:
        env.update({
            **endpoint.environ,
            **step_environment({"context": "app", "image": env["INVOKE_PROVENANCE_IMAGE"],
                                "version": "0.0.0-not-installed"}),
            "GITHUB_OUTPUT": str(output),
            "GITHUB_ACTION_PATH": str(ROOT),
            "INVOKE_PROVENANCE_COSIGN": "cosign3",
        })  # fmt: skip
        full = runner.env(env)
        # The tool is installed (this venv): the script uses it, never pip's copy.
        full["PATH"] = f"{Path(sys.executable).parent}:{full['PATH']}"
        done = subprocess.run(["bash", str(ROOT / "github" / "run-action.sh")], cwd=runner.cwd,
                              env=full, capture_output=True, text=True, timeout=600)  # fmt: skip
    finally:
        endpoint.close()
    assert done.returncode == 0, done.stdout + done.stderr
    assert "sigstore" in endpoint.audiences  # keyless, with the runner's token
    found = outputs_of(output)
    ref = found["image_ref"]
    assert ref.startswith(f"{env['INVOKE_PROVENANCE_IMAGE']}@sha256:")
    assert found["image_published"] == env["GITHUB_SHA"][:8]
    identity = f"https://github.com/{env['GITHUB_WORKFLOW_REF']}"
    verified = registry.cosign_verify("cosign3", ref, "--certificate-identity", identity,
                                      "--certificate-oidc-issuer", bed.GITHUB_ISSUER)  # fmt: skip
    assert verified.returncode == 0, verified.stderr
    # action.yml's outputs name what the tool wrote.
    action = yaml.safe_load((ROOT / "action.yml").read_text())
    for name, spec in action["outputs"].items():
        key = re.search(r"steps\.run\.outputs\.([a-z_]+)", spec["value"])
        assert key and key[1] in found, name

