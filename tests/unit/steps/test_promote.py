"""promote's pieces without tools: its input checks, what it copies, what the destination's
signature says, the report's shape and the task's flags. The promote itself runs on real tools
in tests/integration/test_promote.py."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from provenance_tasks import InputError, Provenance
from provenance_tasks.models import Annotation, ImageRef, Target
from provenance_tasks.settings import resolve
from provenance_tasks.steps.promote import (
    PROMOTED_FROM,
    PromoteReport,
    copy_plan,
    destination_target,
    endpoints,
)
from provenance_tasks.steps.run import Run
from provenance_tasks.steps.verify_checks import Expectation, FoundSignature, VerifyReport

D = "sha256:" + "a" * 64
P1 = "sha256:" + "b" * 64
P2 = "sha256:" + "c" * 64
LOCAL = {"HOME": "/nonexistent", "PATH": "/usr/bin:/bin"}


def make_run(tmp_path: Path, **flags: object) -> Run:
    return Run.start(resolve(None, flags), environ=dict(LOCAL), cwd=tmp_path)


def test_from_and_to_are_checked_before_anything_runs(tmp_path: Path) -> None:
    run = make_run(
        tmp_path, promote_from=f"reg.example/staging/app@{D}", promote_to="reg2.example/app"
    )
    assert endpoints(run) == (ImageRef("reg.example/staging/app", D), "reg2.example/app")
    cases = {
        "has no digest": {"promote_from": "reg.example/app:1.0", "promote_to": "r.example/x"},
        "--from REPO@DIGEST": {"promote_to": "r.example/x"},
        "pass --to": {"promote_from": f"reg.example/app@{D}"},
        "is the repository of --from": {
            "promote_from": f"reg.example/app@{D}",
            "promote_to": "reg.example/app",
        },
    }
    for words, flags in cases.items():
        with pytest.raises(InputError) as raised:
            endpoints(make_run(tmp_path, **flags))
        assert words in raised.value.diagnostics(), words
        assert raised.value.exit_code == 2


def test_the_copy_plan_carries_the_image_then_each_digests_signatures_and_referrers() -> None:
    items = copy_plan(D, (P1, P2))
    assert items[0].reference == D and items[0].kind == "image" and not items[0].is_tag
    tags = [(i.reference, i.kind) for i in items[1:]]
    for subject in (D, P1, P2):
        tag = subject.replace(":", "-")
        assert (f"{tag}.sig", "signatures") in tags
        assert (f"{tag}.att", "attestations") in tags
        assert (tag, "referrers") in tags  # the referrers fallback index
    assert all(i.is_tag for i in items[1:]) and len(items) == 1 + 3 * 3


def test_the_destination_signs_with_the_sources_annotations_its_tags_and_its_origin() -> None:
    source = ImageRef("reg.example/staging/app", D)
    found = VerifyReport(
        str(source),
        "public key a.pub",
        [Expectation(None, {})],
        signatures=[
            FoundSignature(
                "classic",
                D,
                "reg.example/staging/app",
                {"tag": "s1", "com.example.who": "Doe, J%3D", PROMOTED_FROM: "older@" + P1},
            )
        ],
        matches={"*": 0},
    )
    planned = Target("reg.example/prod/app", ("1.0", "latest"), (), ())
    run_settings = resolve(None, {})
    target = destination_target(
        type("R", (), {"settings": run_settings})(),  # type: ignore[arg-type]
        found,
        planned,
        source,
    )
    signed = target.annotations_for("1.0")
    assert signed["tag"] == "1.0"
    assert signed["com.example.who"] == "Doe, J%3D"  # decoded, then encoded once again
    assert signed[PROMOTED_FROM] == str(source)  # where it came from now, not before
    assert target.tags == ("1.0", "latest") and target.repository == "reg.example/prod/app"
    assert Annotation(PROMOTED_FROM, str(source), "promote") in target.user_annotations


def test_the_report_names_both_places_and_both_signers() -> None:
    report = PromoteReport(
        f"reg.example/staging/app@{D}",
        f"reg2.example/app@{D}",
        ("1.0",),
        "public key a.pub",
        "public key b.pub",
        copied=[{"reference": D, "kind": "image", "manifests": [D]}],
        published=["1.0"],
    )
    assert report.as_dict() == {
        "source": {"reference": f"reg.example/staging/app@{D}", "signer": "public key a.pub"},
        "destination": {"reference": f"reg2.example/app@{D}", "signer": "public key b.pub"},
        "tags": ["1.0"],
        "published": ["1.0"],
        "copied": [{"reference": D, "kind": "image", "manifests": [D]}],
    }


def test_the_api_refuses_a_source_without_a_digest_before_anything_runs(tmp_path: Path) -> None:
    with (
        Provenance.open({}, environ=LOCAL, cwd=tmp_path) as run,
        pytest.raises(InputError, match="has no digest"),
    ):
        run.promote("reg.example/staging/app:1.0", "reg.example/prod/app")


def test_the_task_takes_from_and_to_and_exits_2_on_bad_input(tmp_path: Path) -> None:
    argv = ["promote", "--from", "r.example/app", "--to", "r.example/prod"]
    done = subprocess.run(
        [sys.executable, "-m", "provenance_tasks.cli", *argv],
        cwd=tmp_path,
        env={**LOCAL, "PYTHONPATH": str(Path(__file__).resolve().parents[3])},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert "--from 'r.example/app' has no digest" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_set_promotes_each_images_own_ref_under_to_by_name(tmp_path: Path) -> None:
    from dataclasses import replace

    run = replace(make_run(tmp_path, promote_to="reg.example/prod"), image_name="api")
    assert endpoints(run, f"reg.example/staging/api@{D}") == (
        ImageRef("reg.example/staging/api", D),
        "reg.example/prod/api",
    )
    given = replace(run, settings=replace(run.settings, promote_from=f"reg.example/x@{D}"))
    with pytest.raises(InputError, match="--from names one image"):
        endpoints(given)


def test_a_set_without_its_builds_outputs_is_bad_input_naming_the_image(tmp_path: Path) -> None:
    images = [{"name": "api", "image": "reg.example/api"}, {"name": "web", "image": "r.example/w"}]
    with (
        Provenance.open({"images": images}, environ=LOCAL, cwd=tmp_path) as run,
        pytest.raises(InputError, match="image api: no digest to work on"),
    ):
        run.promote(to="reg.example/prod")
