"""Log output: neutralised untrusted text, CI markers, the console renderer, the summary."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import pytest
import structlog

from provenance_tasks.logs import Failure, RunSummary, StepLog, StepStatus, configure, neutralise
from provenance_tasks.logs import setup as log_setup
from provenance_tasks.logs.markers import section_name
from provenance_tasks.redaction import MASK, Redactor


@pytest.fixture(autouse=True)
def fresh_structlog() -> Iterator[None]:
    structlog.reset_defaults()
    log_setup._ours = False
    yield
    structlog.reset_defaults()
    log_setup._ours = False


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("::set-output name=x::y", ": :set-output name=x::y"),
        ("   ::add-mask::secret", "   : :add-mask::secret"),
        ("\t::error::boom", "\t: :error::boom"),
        ("##[group]forged", "# #[group]forged"),
        ("ok\n::warning::second line", "ok\n: :warning::second line"),
        ("\x1b[0Ksection_end:1:build\r\x1b[0K", "[0Ksection_end:1:build[0K"),
        ("bell\x07 and \x9b csi", "bell and  csi"),
        ("a value with :: inside", "a value with :: inside"),
        ("ünïcode, commas = fine", "ünïcode, commas = fine"),
    ],
)
def test_neutralise_defuses_markers_and_workflow_commands(text: str, shown: str) -> None:
    assert neutralise(text) == shown


def test_section_names_are_gitlab_safe_and_unique() -> None:
    taken: set[str] = set()
    assert section_name("build", taken) == "build"
    assert section_name("build", taken) == "build_2"
    assert section_name("Sign Image:v1", taken) == "sign_image_v1"
    assert section_name("", taken) == "step"


def run_steps(environ: dict[str, str], log_format: str, secret: str = "") -> str:
    out = io.StringIO()
    configure(log_format, environ, out)
    log = StepLog(environ, log_format, out, Redactor([secret] if secret else []))
    log.mask([secret] if secret else [])
    log.bind(image="registry.test/app", digest="sha256:" + "a" * 64)
    log.start("build", "Build and push registry.test/app")
    log.line("build", "stderr", f"#1 progress token={secret}" if secret else "#1 progress")
    log.line("build", "stderr", "::set-output name=digest::forged")
    log.end("build", "ok", 1.234, digest="sha256:" + "a" * 64)
    log.start("sign", "Sign", collapsed=False)
    log.end("sign", "failed", 0.5, error="cosign failed")
    log.summary(
        RunSummary(
            (StepStatus("build", "ok", 1.23), StepStatus("sign", "failed", 0.5)),
            image="registry.test/app",
            digest="sha256:" + "a" * 64,
            failure=Failure("sign", "cosign failed", 4, "cosign sign x", ("Error: boom",)),
        )
    )
    return out.getvalue()


def test_gitlab_sections_wrap_tool_output_and_leave_result_lines_outside() -> None:
    text = run_steps({"GITLAB_CI": "true", "NO_COLOR": "1"}, "auto")
    lines = text.split("\n")
    start = next(i for i, line in enumerate(lines) if "section_start:" in line and ":build" in line)
    end = next(i for i, line in enumerate(lines) if "section_end:" in line and ":build" in line)
    assert lines[start].endswith("build[collapsed=true]\r\x1b[0KBuild and push registry.test/app")
    assert lines[start].startswith("\x1b[0Ksection_start:")
    assert lines[start + 1] == "  #1 progress"
    assert lines[start + 2] == "  : :set-output name=digest::forged"
    assert lines[end + 1].startswith("✔ build: ok in 1.23s")
    assert (
        "section_start:" in text
        and ":sign\r" in text
        and "[collapsed" not in text.split(":sign")[1]
    )
    assert "FAILED in step sign (exit 4)" in text and "  command: cosign sign x" in text


def test_github_masks_first_and_groups_steps() -> None:
    text = run_steps({"GITHUB_ACTIONS": "true", "NO_COLOR": "1"}, "auto", secret="s3cr3t-value")
    lines = text.splitlines()
    assert lines[0] == "::add-mask::s3cr3t-value"
    assert lines[1] == "::group::Build and push registry.test/app"
    assert "::endgroup::" in lines
    assert not any("s3cr3t-value" in line for line in lines[1:])
    assert f"  #1 progress token={MASK}" in lines


def test_json_lines_carry_the_core_fields_and_end_with_the_summary() -> None:
    text = run_steps({"GITLAB_CI": "true"}, "json")
    records = [json.loads(line) for line in text.splitlines()]
    core = {"event", "step", "image", "digest", "attempt", "duration_s", "level", "timestamp"}
    assert all(record.keys() >= core for record in records)
    assert [r["event"] for r in records][:3] == ["step.start", "tool.output", "tool.output"]
    assert records[2]["line"] == ": :set-output name=digest::forged"
    summary = records[-1]
    assert summary["event"] == "run.summary" and summary["status"] == "failed"
    assert summary["failure"]["step"] == "sign"
    assert summary["failure"]["stderr_tail"] == ["Error: boom"]
    assert summary["steps"] == [
        {"name": "build", "status": "ok", "duration_s": 1.23},
        {"name": "sign", "status": "failed", "duration_s": 0.5},
    ]
    assert all(r["image"] == "registry.test/app" for r in records)


def test_terminal_gets_headers_and_colour_only_on_a_tty_or_in_ci() -> None:
    text = run_steps({"NO_COLOR": "1"}, "console")
    assert "▶ build: Build and push registry.test/app" in text
    assert "\x1b" not in text
    assert log_setup.wants_colour({"GITLAB_CI": "true"}, io.StringIO())
    assert not log_setup.wants_colour({}, io.StringIO())
    assert not log_setup.wants_colour({"GITLAB_CI": "true", "NO_COLOR": ""}, io.StringIO())


def test_configure_leaves_a_hosts_structlog_configuration_alone() -> None:
    processors = [structlog.processors.KeyValueRenderer()]
    structlog.configure(processors=processors)
    assert configure("json", {}, io.StringIO()) is False
    assert structlog.get_config()["processors"] is processors


def test_configure_may_replace_its_own_configuration() -> None:
    assert configure("console", {}, io.StringIO()) is True
    assert configure("json", {}, io.StringIO()) is True


def test_summary_table_lists_steps_not_run_and_the_verdict() -> None:
    summary = RunSummary(
        (StepStatus("build", "ok", 12.04), StepStatus("verify", "not run", None)),
        image="r.test/app",
        digest="sha256:" + "b" * 64,
        verified=True,
    )
    lines = summary.lines()
    assert lines[0].split() == ["step", "status", "time"]
    assert lines[1].split() == ["build", "ok", "12.0s"]
    assert lines[2].split() == ["verify", "not", "run", "-"]
    assert "verification: VERIFIED" in lines
    assert summary.as_event()["status"] == "ok"
