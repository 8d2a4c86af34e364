"""Secrets never leak: every secret is a unique canary, and no byte of any output may carry one.

Passing and failing runs (wrong registry password, unreachable registry, failed verify) are run
through the console script; the failing login also runs in-process, so the exceptions themselves
(message, diagnostics, repr, causes) are searched too. A build step echoes a secret on purpose:
the redactor must catch it in buildx's streamed output.
"""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import pytest

from provenance_tasks.errors import ProvenanceError
from provenance_tasks.settings import resolve
from provenance_tasks.steps.pipeline import run_build_sign_verify
from provenance_tasks.steps.run import Run, Tools
from provenance_tasks.steps.runlog import RunLog
from tests.integration import pipelines
from tests.integration.conftest import Registry, Runner, make_context, make_key_pair

ECHOES_A_SECRET = (
    "RUN --mount=type=secret,id=token,env=TOKEN --mount=type=secret,id=npm,env=NPM "
    '["/bin/busybox", "sh", "-c", "echo the job token is $TOKEN; echo the npm token is $NPM"]\n'
)


def canary(name: str) -> str:
    return f"canary-{name.lower().replace('_', '-')}-{uuid.uuid4().hex[:12]}"


def secrets_env() -> dict[str, str]:
    """Every secret variable we know of, each holding its own canary."""
    names = (
        "CI_JOB_TOKEN",
        "SIGSTORE_ID_TOKEN",
        "GITHUB_TOKEN",
        "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
        "ACTIONS_RUNTIME_TOKEN",
    )
    return {name: canary(name) for name in names}


def assert_no_canary(canaries: list[str], *texts: str, allow_masks: bool = False) -> None:
    for text in texts:
        lines = text.splitlines()
        if allow_masks:  # GitHub's runner consumes these lines: the one place a secret goes
            lines = [line for line in lines if not line.startswith("::add-mask::")]
        for secret in canaries:
            assert not any(secret in line for line in lines), f"{secret} leaked"


def files_written(cwd: Path) -> list[str]:
    found = [cwd / "provenance.env", cwd / "provenance-report.json"]
    return [path.read_text() for path in found if path.exists()]


class Pipeline:
    """A GitLab pipeline whose every secret is a canary, on the test bed's TLS registry."""

    def __init__(self, runner: Runner, cosign: str, tmp_path: Path) -> None:
        self.runner = runner
        self.cosign_password = canary("COSIGN_PASSWORD")
        self.key, self.pub = make_key_pair(
            cosign, tmp_path / "keys" / "cosign", self.cosign_password
        )
        self.context = make_context(tmp_path / "ctx")
        dockerfile = self.context / "Dockerfile"
        dockerfile.write_text(dockerfile.read_text() + ECHOES_A_SECRET)
        self.env = pipelines.gitlab_key_mode(runner.testbed, cosign, self.cosign_password)
        self.env.update(secrets_env())
        self.env["NPM_TOKEN"] = canary("NPM_TOKEN")
        # The registry password is the test bed's own, random and unique: a canary as well.
        self.canaries = [
            self.cosign_password,
            self.env["CI_REGISTRY_PASSWORD"],
            *(self.env[name] for name in secrets_env()),
            self.env["NPM_TOKEN"],
        ]

    def args(self) -> list[str]:
        return [
            "--context",
            str(self.context),
            "--key",
            str(self.key),
            "--secret",
            "id=token,env=CI_JOB_TOKEN",
            "--secret",  # a secret of the project's own, declared as such by being a build secret
            "id=npm,env=NPM_TOKEN",
        ]

    def run(self, task: str, *args: str, **changes: str) -> subprocess.CompletedProcess[str]:
        return self.runner.run(task, *args, env={**self.env, **changes})

    def assert_clean(self, done: subprocess.CompletedProcess[str], **kwargs: bool) -> None:
        assert_no_canary(
            self.canaries, done.stdout, done.stderr, *files_written(self.runner.cwd), **kwargs
        )


@pytest.mark.integration
def test_no_canary_in_any_output_of_a_passing_run_or_of_failing_ones(
    runner: Runner, registry: Registry, tmp_path: Path, cosign: str
) -> None:
    pipeline = Pipeline(runner, cosign, tmp_path)

    passed = pipeline.run("build-sign-verify", *pipeline.args())
    assert passed.returncode == 0, passed.stderr
    # The build did print the token: the redactor masked it in buildx's streamed output.
    assert "the job token is [MASKED]" in passed.stderr
    assert "the npm token is [MASKED]" in passed.stderr
    pipeline.assert_clean(passed)

    # A verify that fails, on the passed run's outputs (the failing builds below remove them).
    _, other_pub = make_key_pair(cosign, tmp_path / "other" / "cosign", canary("other"))
    failed = pipeline.run("verify", "--public-key", str(other_pub))
    assert failed.returncode == 3, failed.stderr
    pipeline.assert_clean(failed)

    wrong = pipeline.run(
        "build-sign-verify", *pipeline.args(), CI_REGISTRY_PASSWORD=canary("wrong")
    )
    assert wrong.returncode == 4, wrong.stderr
    pipeline.assert_clean(wrong)

    nowhere = "127.0.0.1:9"  # discard port: nothing listens
    unreachable = pipeline.run(
        "build-sign-verify",
        *pipeline.args(),
        CI_REGISTRY=nowhere,
        CI_REGISTRY_IMAGE=f"{nowhere}/group/app",
        INVOKE_PROVENANCE_RETRY_BUDGET="4",  # refused connections are retried: not for long
    )
    assert unreachable.returncode == 4, unreachable.stderr
    pipeline.assert_clean(unreachable)


@pytest.mark.integration
def test_wrong_registry_password_in_process_raises_an_error_without_any_canary(
    runner: Runner, tmp_path: Path, cosign: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    pipeline = Pipeline(runner, cosign, tmp_path)
    wrong = canary("wrong-password")
    env = runner.env({**pipeline.env, "CI_REGISTRY_PASSWORD": wrong})
    for name, value in runner.testbed.environ().items():
        monkeypatch.setenv(name, value)
    flags = {"context": str(pipeline.context), "key": str(pipeline.key)}
    run = Run.start(resolve({}, flags, env), env, cwd=tmp_path)
    tools = Tools(run)
    with pytest.raises(ProvenanceError) as caught:
        run_build_sign_verify(run, tools, RunLog(env, "auto", None, run.redactor))
    tools.close()
    error: BaseException | None = caught.value
    texts = []
    while error is not None:  # the error and everything it chains to
        texts += [str(error), repr(error), getattr(error, "diagnostics", lambda: "")()]
        texts += [str(arg) for arg in error.args]
        error = error.__cause__ or error.__context__
    assert_no_canary([*pipeline.canaries, wrong], *texts)
    assert runner.testbed.secure_registry in caught.value.diagnostics()  # says where it failed


@pytest.mark.integration
def test_github_masks_every_secret_before_printing_anything_else(
    runner: Runner,
    registry: Registry,
    tmp_path: Path,
    key_pair: tuple[Path, Path, str],
    cosign: str,
) -> None:
    key, _, password = key_pair
    env = pipelines.github(runner.testbed)
    env.update(secrets_env())
    env.update({"COSIGN_PASSWORD": password, "INVOKE_PROVENANCE_COSIGN": cosign})
    env["GITHUB_OUTPUT"] = str(tmp_path / "github-output")
    context = make_context(tmp_path / "ctx")
    done = runner.run("build-sign-verify", "--context", str(context), "--key", str(key), env=env)
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    masks = [line for line in lines if line.startswith("::add-mask::")]
    canaries = [password, env["REGISTRY_PASSWORD"], *(env[name] for name in secrets_env())]
    # Every secret is masked, and the masks come first, before any other line.
    assert {m.removeprefix("::add-mask::") for m in masks} >= set(canaries)
    assert lines[: len(masks)] == masks
    assert lines[len(masks)] == "CI: GitHub Actions (GITHUB_ACTIONS=true)"  # then what it found
    assert_no_canary(canaries, done.stdout, done.stderr, allow_masks=True)
    assert "::group::Build " in done.stderr and "::endgroup::" in done.stderr
    output = (tmp_path / "github-output").read_text()
    assert "image_digest=sha256:" in output
    assert_no_canary(canaries, output)
