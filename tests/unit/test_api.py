"""The Python API's own rules, without tools: opening a run, what a call may change, what may be
handed in, the nox flags. The steps themselves run on real tools in
tests/integration/test_consumer_repo.py."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from provenance_tasks import Built, InputError, Provenance, ProvenanceError
from provenance_tasks.nox import flags
from provenance_tasks.opening import picked

LOCAL = {"HOME": "/nonexistent", "PATH": "/usr/bin:/bin"}


def opened(tmp_path: Path, **settings: Any) -> Provenance:
    return Provenance.open({"image": "localhost:5000/app"}, environ=LOCAL, cwd=tmp_path, **settings)


def test_a_run_prints_one_ci_line_and_one_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with opened(tmp_path) as run, run.step("scan", "the caller's scan") as record:
        record.detail["findings"] = 0
    err = capsys.readouterr().err
    # The summary's table (its title is structlog's, configured by whichever test ran first).
    assert err.count("CI: ") == 1 and len(re.findall(r"^  step +status +time$", err, re.M)) == 1
    assert "scan" in err
    report = json.loads((tmp_path / "provenance-report.json").read_text())
    assert [(t["task"], t["status"]) for t in report["tasks"]] == [("scan", "ok")]
    assert report["steps"][0]["name"] == "scan" and report["steps"][0]["status"] == "ok"


def test_a_callers_failing_step_fails_the_run_and_its_report(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), opened(tmp_path) as run, run.step("scan"):
        raise RuntimeError("a finding")
    report = json.loads((tmp_path / "provenance-report.json").read_text())
    assert report["status"] == "failed" and report["steps"][0]["status"] == "failed"


def test_a_closed_run_refuses_another_call(tmp_path: Path) -> None:
    with opened(tmp_path) as run:
        pass
    with pytest.raises(InputError, match="closed"):
        run.sign("localhost:5000/app@sha256:" + "a" * 64)


@pytest.mark.parametrize("setting", ["key", "cosign", "docker_host", "report", "dry_run"])
def test_a_call_cannot_change_what_the_run_opened_with(tmp_path: Path, setting: str) -> None:
    with opened(tmp_path) as run, pytest.raises(InputError, match="can't change within a run"):
        run.build(**{setting: "x"})


def test_an_unknown_setting_is_bad_input_naming_it(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="unknown setting colour") as raised:
        opened(tmp_path, colour="blue")
    assert raised.value.exit_code == 2


def test_another_runs_result_is_refused(tmp_path: Path) -> None:
    foreign = Built("localhost:5000/app", "sha256:" + "b" * 64, run_id="someone-else")
    with opened(tmp_path) as run, pytest.raises(InputError, match="built by another run"):
        run.sign(foreign)


def test_something_that_is_no_image_is_refused(tmp_path: Path) -> None:
    with opened(tmp_path) as run, pytest.raises(InputError, match="can't work on int"):
        run.verify(42)  # type: ignore[call-overload]


def test_errors_are_the_packages_with_their_exit_codes() -> None:
    assert issubclass(InputError, ProvenanceError) and InputError.exit_code == 2


def test_importing_the_package_imports_no_api() -> None:
    probe = (
        "import sys, provenance_tasks, provenance_tasks.tasks; "
        "print(' '.join(m for m in ('provenance_tasks.api', 'provenance_tasks.results', "
        "'provenance_tasks.nox', 'nox') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ""


@pytest.mark.parametrize(
    ("args", "settings"),
    [
        (["--tag", "v1", "--tag=v2"], {"tags": ["v1", "v2"]}),
        (["--dry-run", "--no-tlog"], {"dry_run": True, "tlog": False}),
        (["--digest", "sha256:abc"], {"digest": "sha256:abc"}),
    ],
)
def test_nox_posargs_are_the_tasks_flags(args: list[str], settings: dict[str, object]) -> None:
    assert flags(args) == settings


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--bogus"], "unknown flag --bogus"),
        (["v1"], "unknown flag v1"),
        (["--tag"], "--tag needs a value"),
        (["--dry-run=yes"], "takes no value"),
    ],
)
def test_bad_nox_posargs_say_which(args: list[str], message: str) -> None:
    with pytest.raises(InputError, match=message):
        flags(args)


SET = {"image": "localhost:5000/app", "images": [{"name": "api"}, {"name": "worker"}]}


def test_a_context_for_the_whole_set_is_refused_before_anything_runs(tmp_path: Path) -> None:
    refused = pytest.raises(InputError, match="--context services/api is one image's")
    with Provenance.open(SET, environ=LOCAL, cwd=tmp_path) as run, refused as raised:
        run.build(context="services/api")
    assert raised.value.exit_code == 2 and "images=[NAME] from Python" in str(raised.value.hint)


def test_a_call_picks_images_of_the_set_by_name_or_by_the_results_handed_in() -> None:
    assert picked({"images": ["api"], "stage": True}, None) == {"only": ["api"], "stage": True}
    handed = {"worker": Built("r/worker", "sha256:" + "c" * 64), "api": Built("r/api", "d")}
    assert picked({}, handed) == {"only": ["api", "worker"]}
    assert picked({"only": ["api"]}, handed) == {"only": ["api"]}
    with pytest.raises(InputError, match="names images of the run's set"):
        picked({"images": [{"name": "api"}]}, None)
