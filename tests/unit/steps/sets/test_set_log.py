"""The log of one image of a set: named lines printed live on a terminal, each image's output
kept and printed whole in a CI log with sections, an image_name field on JSON records."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator

import pytest
import structlog

from provenance_tasks.logs import configure
from provenance_tasks.logs import setup as log_setup
from provenance_tasks.redaction import MASK, Redactor
from provenance_tasks.steps.runlog import RunLog
from provenance_tasks.steps.sets.log import ImageLog

SECRET = "hunter2-token"
GITLAB = {"GITLAB_CI": "true", "NO_COLOR": "1"}
GITHUB = {"GITHUB_ACTIONS": "true", "NO_COLOR": "1"}


@pytest.fixture(autouse=True)
def fresh_structlog() -> Iterator[None]:
    structlog.reset_defaults()
    log_setup._ours = False
    yield
    structlog.reset_defaults()
    log_setup._ours = False


def logs(
    environ: dict[str, str], log_format: str = "console", *names: str
) -> tuple[io.StringIO, RunLog, list[ImageLog]]:
    """One stream for structlog's events and the logs' own lines, as a run has."""
    out = io.StringIO()
    configure(log_format, environ, out)
    parent = RunLog(environ, log_format, out, Redactor([SECRET]))
    lock = threading.Lock()
    return out, parent, [ImageLog(parent, name, lock) for name in names or ("svc-a",)]


def one_step(log: ImageLog, line: str = "#1 load build definition") -> None:
    log.start("build", "Build it")
    log.line("build", "stderr", line)
    log.end("build", "ok", 1.5)


# --- a terminal: live ---------------------------------------------------------------------------


def test_on_a_terminal_each_line_prints_at_once_with_the_images_name() -> None:
    out, _, (log,) = logs({"NO_COLOR": "1"})
    log.info("resolving the base image")
    assert out.getvalue() == "[svc-a] resolving the base image\n"
    log.start("build", "Build it")
    assert out.getvalue().splitlines()[-1] == "[svc-a] ▶ build: Build it"
    log.line("build", "stderr", "#1 load build definition")
    assert out.getvalue().splitlines()[-1] == "[svc-a]   #1 load build definition"
    log.end("build", "ok", 1.5)
    assert out.getvalue().splitlines()[-1] == "[svc-a] ✔ build: ok in 1.50s"
    log.warning("slow registry")
    # the renderer's level word comes first; the event, the image's name with it, after
    assert out.getvalue().splitlines()[-1] == "warning: [svc-a] slow registry"


def test_two_images_on_a_terminal_interleave_as_they_come() -> None:
    out, _, (a, b) = logs({"NO_COLOR": "1"}, "console", "svc-a", "svc-b")
    a.info("one")
    b.info("two")
    a.info("three")
    assert out.getvalue().splitlines() == ["[svc-a] one", "[svc-b] two", "[svc-a] three"]


def test_an_images_lines_are_redacted_and_neutralised() -> None:
    out, _, (log,) = logs({"NO_COLOR": "1"})
    log.line("build", "stderr", f"token={SECRET}\x1b[0Ksection_end:1:x")
    log.info(f"using {SECRET}")
    text = out.getvalue()
    assert SECRET not in text and "\x1b" not in text
    assert f"[svc-a]   token={MASK}[0Ksection_end:1:x" in text.splitlines()
    assert f"[svc-a] using {MASK}" in text.splitlines()


def test_a_blank_line_gets_no_prefix() -> None:
    out, _, (log,) = logs({"NO_COLOR": "1"})
    log._raw("")
    assert out.getvalue() == "\n"


# --- GitLab: kept, printed whole ----------------------------------------------------------------


def test_in_gitlab_an_images_output_is_kept_until_it_ends() -> None:
    out, _, (log,) = logs(GITLAB)
    log.info("resolving")
    one_step(log)
    assert out.getvalue() == ""
    log.flush()
    lines = out.getvalue().split("\n")
    assert lines[0] == "[svc-a] resolving"
    assert lines[1].startswith("\x1b[0Ksection_start:")
    assert lines[1].endswith(":svc-a_build[collapsed=true]\r\x1b[0K[svc-a] Build it")
    assert lines[2] == "[svc-a]   #1 load build definition"
    assert lines[3].startswith("\x1b[0Ksection_end:") and ":svc-a_build\r" in lines[3]
    assert lines[4] == "[svc-a] ✔ build: ok in 1.50s"


def test_after_the_flush_an_image_prints_live() -> None:
    out, _, (log,) = logs(GITLAB)
    log.info("kept")
    log.flush()
    log.info("live")
    assert out.getvalue().splitlines() == ["[svc-a] kept", "[svc-a] live"]
    log.flush()  # nothing kept: nothing printed twice
    assert out.getvalue().splitlines() == ["[svc-a] kept", "[svc-a] live"]


def test_in_gitlab_two_images_print_whole_in_the_order_they_end() -> None:
    out, _, (a, b) = logs(GITLAB, "console", "svc-a", "svc-b")
    a.start("build", "Build a")
    b.start("build", "Build b")
    a.line("build", "stderr", "a1")
    b.line("build", "stderr", "b1")
    a.line("build", "stderr", "a2")
    b.end("build", "ok", 0.1)
    b.flush()
    a.end("build", "ok", 0.2)
    a.flush()
    lines = out.getvalue().split("\n")
    owners = ["svc-b" if ("svc-b" in line) else "svc-a" for line in lines if line]
    assert owners == ["svc-b"] * 4 + ["svc-a"] * 5  # b ended first; neither cut into the other
    assert [line for line in lines if line.startswith("[svc-a]   ")] == [
        "[svc-a]   a1",
        "[svc-a]   a2",
    ]


def test_section_names_are_the_images_and_stay_unique() -> None:
    out, _, (a, b) = logs(GITLAB, "console", "svc-a", "svc-b")
    for log in (a, b, a):
        log.start("build", "Build")
        log.end("build", "ok", 0.0)
    a.flush()
    b.flush()
    starts = [
        line.split(":")[2].split("[")[0]
        for line in out.getvalue().split("\n")
        if "section_start:" in line
    ]
    assert starts == ["svc-a_build", "svc-a_build_2", "svc-b_build"]


def test_in_github_groups_are_kept_and_titled_and_masks_are_not_printed_again() -> None:
    out = io.StringIO()
    configure("console", GITHUB, out)
    parent = RunLog(GITHUB, "console", out, Redactor([SECRET]))
    assert out.getvalue() == f"::add-mask::{SECRET}\n"  # the run masks first, once
    log = ImageLog(parent, "svc-a", threading.Lock())
    one_step(log)
    assert out.getvalue() == f"::add-mask::{SECRET}\n"
    log.flush()
    lines = out.getvalue().splitlines()
    assert lines.count(f"::add-mask::{SECRET}") == 1
    assert lines[1:] == [
        "::group::[svc-a] Build it",
        "[svc-a]   #1 load build definition",
        "::endgroup::",
        "[svc-a] ✔ build: ok in 1.50s",
    ]


def test_on_a_terminal_titles_carry_no_extra_prefix() -> None:
    out, _, (log,) = logs({"NO_COLOR": "1"})
    log.start("build", "Build it")
    assert out.getvalue() == "[svc-a] ▶ build: Build it\n"  # the line's prefix, once


# --- JSON ---------------------------------------------------------------------------------------


def test_json_records_carry_the_image_name_and_no_prefix() -> None:
    out, _, (log,) = logs({}, "json")
    log.bind_image("r.test/svc-a")
    one_step(log)
    log.info("done")
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [r["event"] for r in records] == ["step.start", "tool.output", "step.end", "done"]
    assert all(r["image_name"] == "svc-a" and r["image"] == "r.test/svc-a" for r in records)
    assert records[1]["line"] == "#1 load build definition"
    assert records[0]["title"] == "Build it"


def test_json_in_gitlab_prints_live_without_markers() -> None:
    out, _, (log,) = logs(GITLAB, "json")
    log.start("build", "Build it")
    (record,) = [json.loads(line) for line in out.getvalue().splitlines()]
    assert record["event"] == "step.start" and record["image_name"] == "svc-a"
    assert "section_start" not in out.getvalue()


def test_an_image_log_takes_the_runs_dry_run() -> None:
    _, parent, _ = logs({"NO_COLOR": "1"})
    parent.dry_run = True
    assert ImageLog(parent, "svc-a", threading.Lock()).dry_run is True
