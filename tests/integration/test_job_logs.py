"""Job logs on real runs: GitLab sections, JSON lines, and output no tool text can forge."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.integration import joblog, pipelines
from tests.integration.conftest import Registry, Runner, make_context, make_key_pair

# A build step whose output tries to close the build section, open a fake one and run GitHub
# workflow commands: our log must show it as inert text inside the build section.
HOSTILE_RUN = (
    'RUN ["/bin/busybox", "sh", "-c", '
    "\"printf '\\\\033[0Ksection_end:1:build\\\\r\\\\033[0K\\\\n"
    "  ::set-output name=digest::forged\\\\n##[group]forged\\\\n"
    "\\\\033[0Ksection_start:1:forged\\\\r\\\\033[0Kforged\\\\n'\"]\n"
)

# build-sign-verify's steps: the build pushes nothing; tags are published once verified.
STEPS = (
    "login",
    "build",
    "push",
    "sign",
    "attest",
    "verify",
    "verify-attestation",
    "publish",
    "audit",
)


def hostile_context(folder: Path) -> Path:
    make_context(folder)
    dockerfile = folder / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text() + HOSTILE_RUN)
    return folder


@pytest.mark.integration
def test_gitlab_job_log_has_one_well_formed_section_per_step_with_its_output_inside(
    runner: Runner,
    registry: Registry,
    tmp_path: Path,
    key_pair: tuple[Path, Path, str],
    cosign: str,
) -> None:
    key, _, password = key_pair
    context = hostile_context(tmp_path / "ctx")
    env = pipelines.gitlab_key_mode(runner.testbed, cosign, password)
    done = runner.run("build-sign-verify", "--context", str(context), "--key", str(key), env=env)
    assert done.returncode == 0, done.stderr
    (tmp_path / "job.log").write_text(done.stderr)  # kept with --basetemp, to look at

    log = joblog.parse(done.stderr)  # asserts pairing, order, names, timestamps
    assert [s.name for s in log.sections] == list(STEPS)
    build = log.section("build")
    assert build.collapsed and build.title.startswith("Build ")
    # buildx's progress streams inside the build section, the hostile text with it, defused.
    assert any(
        re.match(r"\s+#\d+ \[internal\] load build definition", line) for line in build.lines
    )
    assert any("section_end:1:build" in line and "\x1b" not in line for line in build.lines)
    assert not any(re.match(r"\s*(::|##\[)", line) for line in done.stderr.splitlines())
    assert any("Pushing signature" in line for line in log.section("sign").lines)
    assert any("Verification of" in line for line in log.section("verify").lines)
    # Each step's result line stays visible, outside its (possibly collapsed) section.
    for step in STEPS:
        assert any(f"{step}: ok in" in line for line in log.outside), step
    # The summary closes the log, outside any section.
    tail = "\n".join(log.outside[-len(STEPS) - 6 :])
    digest = registry.digest(f"{env['CI_REGISTRY_IMAGE']}:{env['CI_COMMIT_SHORT_SHA']}")
    assert f"image: {env['CI_REGISTRY_IMAGE']}@{digest}" in tail
    assert "verification: VERIFIED" in tail
    assert re.search(r"build\s+ok\s+\d+\.\d+s", tail)


CORE = {"event", "step", "image", "digest", "attempt", "duration_s", "level", "timestamp"}


def json_lines(text: str) -> list[dict[str, object]]:
    records = [json.loads(line) for line in text.splitlines() if line.strip()]
    for record in records:
        assert record.keys() >= CORE, record
    return records


@pytest.mark.integration
def test_json_mode_prints_only_json_lines_ending_with_a_complete_summary(
    runner: Runner, registry: Registry, context: Path, key_pair: tuple[Path, Path, str], cosign: str
) -> None:
    key, pub, password = key_pair
    env = pipelines.gitlab_key_mode(runner.testbed, cosign, password)
    args = ("--context", str(context), "--key", str(key), "--log-format", "json")
    done = runner.run("build-sign-verify", *args, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    records = json_lines(done.stderr)  # every line parses and carries the core fields
    assert not any("section_start" in line for line in done.stderr.splitlines())
    outputs = [r for r in records if r["event"] == "tool.output"]
    assert {r["step"] for r in outputs} >= {"build", "sign", "verify"}
    summary = records[-1]
    assert summary["event"] == "run.summary" and summary["status"] == "ok"
    digest = registry.digest(f"{env['CI_REGISTRY_IMAGE']}:{env['CI_COMMIT_SHORT_SHA']}")
    assert summary["image"] == env["CI_REGISTRY_IMAGE"] and summary["digest"] == digest
    assert summary["verified"] is True
    steps = summary["steps"]
    assert isinstance(steps, list)
    assert [s["name"] for s in steps] == list(STEPS)
    assert all(s["status"] == "ok" and s["duration_s"] >= 0 for s in steps)
    # Once known, the digest is on every record.
    after_build = records[[r["event"] for r in records].index("step.end") :]
    assert all(r["digest"] == digest for r in records if r.get("step") == "sign")
    assert after_build

    # A failed verify: still only JSON, the summary last, naming the failing step.
    _, other = make_key_pair(cosign, runner.cwd / "other-key" / "other")  # signed nothing here
    failed = runner.run("verify", "--public-key", str(other), "--log-format", "json", env=env)
    assert failed.returncode == 3, failed.stderr
    records = json_lines(failed.stderr)
    summary = records[-1]
    assert summary["event"] == "run.summary" and summary["status"] == "failed"
    assert summary["failure"]["step"] == "verify"  # type: ignore[index]
    assert summary["verified"] is False
    assert pub.exists()


@pytest.mark.integration
def test_build_output_streams_while_the_build_runs(runner: Runner, tmp_path: Path) -> None:
    context = make_context(tmp_path / "ctx")
    dockerfile = context / "Dockerfile"
    dockerfile.write_text(
        dockerfile.read_text() + 'RUN ["/bin/busybox", "sh", "-c", "echo slow step; sleep 3"]\n'
    )
    env = pipelines.gitlab(runner.testbed)
    done = runner.run("build", "--context", str(context), "--log-format", "json", env=env)
    assert done.returncode == 0, done.stderr
    records = json_lines(done.stderr)
    from datetime import datetime

    def at(record: dict[str, object]) -> float:
        return datetime.fromisoformat(str(record["timestamp"])).timestamp()

    first_line = next(r for r in records if r["event"] == "tool.output" and r["step"] == "build")
    build_end = next(r for r in records if r["event"] == "step.end" and r["step"] == "build")
    # The first progress line was logged when it came, seconds before the build ended.
    assert at(build_end) - at(first_line) >= 2.5
