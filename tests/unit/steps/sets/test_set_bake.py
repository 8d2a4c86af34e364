"""The set's bake as each image sees it: its metadata where its own build would write it, or
None (build alone) when the bake failed, said once in the bake's own log."""

from __future__ import annotations

import io
import json
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from provenance_tasks.adapters.docker import BuildRequest, Docker
from provenance_tasks.redaction import Redactor
from provenance_tasks.steps.runlog import RunLog
from provenance_tasks.steps.sets.bake import SetBuild
from provenance_tasks.steps.sets.log import ImageLog


class Tools:
    """What the bake uses of the run's tools: its docker client and private folder."""

    def __init__(self, folder: Path, docker: Docker) -> None:
        self.folder, self.docker = folder, docker

    def private_folder(self) -> Path:
        return self.folder


def requests(tmp_path: Path) -> dict[str, BuildRequest]:
    return {
        name: BuildRequest(
            context=tmp_path / name,
            dockerfile=None,
            tags=[],
            metadata_file=tmp_path / name / "metadata.json",
            layout=tmp_path / name / "layout",
        )
        for name in ("api", "web")
    }


def baked(tmp_path: Path, script: str) -> tuple[SetBuild, io.StringIO]:
    for name in ("api", "web"):
        (tmp_path / name).mkdir()
    plugin = tmp_path / "docker-buildx"
    plugin.write_text("#!/bin/sh\n" + script)
    plugin.chmod(0o755)
    out = io.StringIO()
    log = ImageLog(RunLog({}, "console", out, Redactor()), "bake", threading.Lock())
    tools = Tools(tmp_path / "run", Docker(redactor=Redactor(), buildx=str(plugin)))
    started = SetBuild(requests(tmp_path), tools, log)  # type: ignore[arg-type]
    started._thread.start()
    return started, out


def said(out: io.StringIO, capfd: pytest.CaptureFixture[str]) -> str:
    captured = capfd.readouterr()  # the log's stream, wherever structlog was first pointed
    return out.getvalue() + captured.out + captured.err


def test_each_image_finds_its_metadata_where_its_own_build_writes_it(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    started, out = baked(
        tmp_path,
        (
            'while [ "$1" != --metadata-file ]; do shift; done\n'
            """printf '{"api": {"containerimage.digest": "sha256:a"}, """
            """"web": {"containerimage.digest": "sha256:w"}}' > "$2"\n"""
        ),
    )
    wanted = requests(tmp_path)
    found = started.result("api", wanted["api"], threading.Event())
    assert found == tmp_path / "api" / "metadata.json"
    assert json.loads(found.read_text()) == {"containerimage.digest": "sha256:a"}
    assert started.result("other", wanted["api"], threading.Event()) is None  # not the bake's
    # The image's own request, if it differs in any flag, is built on its own.
    other = replace(wanted["web"], labels={"changed": "since the bake"})
    assert started.result("web", other, threading.Event()) is None
    started.stop()
    assert "built in one buildx bake: api, web" in said(out, capfd)


def test_a_failed_bake_leaves_each_image_to_build_alone(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    started, out = baked(tmp_path, 'echo "ERROR: failed to solve: broken" >&2\nexit 1\n')
    wanted = requests(tmp_path)
    assert started.result("api", wanted["api"], threading.Event()) is None
    assert started.result("web", wanted["web"], threading.Event()) is None
    started.stop()
    text = said(out, capfd)
    assert text.count("the set's buildx bake failed (ERROR: failed to solve: broken)") == 1
    assert not (tmp_path / "api" / "metadata.json").exists()


def test_an_image_that_ends_stops_waiting_for_the_bake(tmp_path: Path) -> None:
    # A bake that would succeed, later: an image already ending takes nothing from it.
    started, _ = baked(
        tmp_path,
        (
            "sleep 2\n"
            'while [ "$1" != --metadata-file ]; do shift; done\n'
            """printf '{"api": {"containerimage.digest": "sha256:a"}, """
            """"web": {"containerimage.digest": "sha256:w"}}' > "$2"\n"""
        ),
    )
    ending = threading.Event()
    ending.set()
    assert started.result("api", requests(tmp_path)["api"], ending) is None
    started.stop()  # the bake's buildx is ended, not waited for
    assert not (tmp_path / "api" / "metadata.json").exists()


def test_no_bake_for_one_image_a_dry_run_or_bake_off() -> None:
    from types import SimpleNamespace

    def image(name: str, *, build: object = "inputs", **settings: bool) -> tuple[str, Any, Any]:
        values = {"dry_run": False, "bake": True, **settings}
        run = SimpleNamespace(settings=SimpleNamespace(**values))
        return name, run, SimpleNamespace(build=build)

    log: Any = None
    assert SetBuild.start(None, log, [image("api"), image("web", build=None)]) is None  # type: ignore[arg-type]
    assert SetBuild.start(None, log, [image("api"), image("web", dry_run=True)]) is None  # type: ignore[arg-type]
    assert SetBuild.start(None, log, [image("api", bake=False), image("web")]) is None  # type: ignore[arg-type]
