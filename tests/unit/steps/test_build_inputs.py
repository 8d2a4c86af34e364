"""The build's inputs, checked before anything is built, and what the source says of itself:
when the commit was made (the image's created) and which tracked files differ from it.

Each test makes a real Run in a temporary folder; git repositories are made with real git.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from provenance_tasks.errors import InputError
from provenance_tasks.settings import resolve
from provenance_tasks.steps import build_inputs
from provenance_tasks.steps.run import Run

GIT_ENV = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.com",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.com",
    "GIT_COMMITTER_DATE": "@1700000000 +0000",
    "GIT_AUTHOR_DATE": "@1700000000 +0000",
}


@pytest.fixture(autouse=True)
def _no_git_repository_above(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """git must not find this checkout's repository above tmp_path."""
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)


def make_run(tmp_path: Path, environ: dict[str, str] | None = None, **flags: object) -> Run:
    env = {"HOME": str(tmp_path), "PATH": "/usr/local/bin:/usr/bin:/bin", **(environ or {})}
    return Run.start(resolve(None, flags), environ=env, cwd=tmp_path)


def with_dockerfile(tmp_path: Path) -> Path:
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    return tmp_path


def committed(folder: Path) -> Path:
    """`folder` as a git repository with everything in it committed at 1700000000."""
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "first"]):
        subprocess.run(["git", "-C", str(folder), *args], check=True, env={**os.environ, **GIT_ENV})
    return folder


@pytest.mark.parametrize(
    "name", ["NPM_TOKEN", "DB_PASSWORD", "AWS_SECRET_ACCESS_KEY", "GH_API_KEY", "npm_token"]
)
def test_build_arg_named_like_a_secret_is_refused_with_a_secret_hint(
    tmp_path: Path, name: str
) -> None:
    run = make_run(tmp_path, build_args=[f"{name}=x"])
    with pytest.raises(InputError) as caught:
        build_inputs.build_args(run)
    assert name in caught.value.message
    assert caught.value.hint is not None
    assert f"--secret id={name.lower()},env={name}" in caught.value.hint


def test_build_arg_whose_value_is_a_known_secret_is_refused(tmp_path: Path) -> None:
    run = make_run(tmp_path, {"COSIGN_PASSWORD": "supersecret"}, build_args=["FOO=supersecret"])
    with pytest.raises(InputError) as caught:
        build_inputs.build_args(run)
    assert "FOO" in caught.value.message
    assert "supersecret" not in caught.value.diagnostics()
    assert caught.value.hint is not None and "--secret" in caught.value.hint


def test_build_arg_taken_from_the_environment_is_refused_when_it_is_a_secret(
    tmp_path: Path,
) -> None:
    environ = {"COSIGN_PASSWORD": "supersecret", "FOO": "supersecret"}
    run = make_run(tmp_path, environ, build_args=["FOO"])
    with pytest.raises(InputError, match="FOO carries a secret"):
        build_inputs.build_args(run)


def test_ordinary_build_args_pass_and_a_bare_name_reads_the_environment(tmp_path: Path) -> None:
    run = make_run(
        tmp_path,
        {"FROM_ENV": "hello"},
        build_args=["VERSION=1.2=3", "EMPTY=", "FROM_ENV", "UNSET_IN_ENV"],
    )
    assert build_inputs.build_args(run) == {
        "VERSION": "1.2=3",
        "EMPTY": "",
        "FROM_ENV": "hello",
        "UNSET_IN_ENV": "",
    }


@pytest.mark.parametrize("text", ["1BAD=x", "=x", "WITH SPACE=x", "DASH-ED=x"])
def test_build_arg_with_an_invalid_name_is_refused(tmp_path: Path, text: str) -> None:
    run = make_run(tmp_path, build_args=[text])
    with pytest.raises(InputError, match="is not NAME=value"):
        build_inputs.build_args(run)


# --- build inputs ------------------------------------------------------------------------------


def test_build_inputs_are_the_context_and_its_dockerfile(tmp_path: Path) -> None:
    context = tmp_path / "app"
    context.mkdir()
    (context / "Dockerfile").write_text("FROM scratch\n")
    run = make_run(tmp_path, context="app")
    assert build_inputs.context_and_dockerfile(run) == (
        context.resolve(),
        (context / "Dockerfile").resolve(),
    )


def test_missing_context_folder_is_refused_naming_the_path(tmp_path: Path) -> None:
    run = make_run(tmp_path, context="no-such-folder")
    with pytest.raises(InputError) as caught:
        build_inputs.context_and_dockerfile(run)
    assert str((tmp_path / "no-such-folder").resolve()) in caught.value.message
    assert caught.value.hint is not None and "--context" in caught.value.hint


def test_context_that_is_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    run = make_run(tmp_path, context="Dockerfile")
    with pytest.raises(InputError, match="is not a folder"):
        build_inputs.context_and_dockerfile(run)


def test_missing_dockerfile_is_refused_naming_the_path(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    with pytest.raises(InputError) as caught:
        build_inputs.context_and_dockerfile(run)
    assert str((tmp_path / "Dockerfile").resolve()) in caught.value.message
    assert caught.value.hint is not None and "--file" in caught.value.hint


def test_missing_dockerfile_given_with_file_is_refused_naming_that_path(tmp_path: Path) -> None:
    with_dockerfile(tmp_path)  # the default one exists, the asked-for one does not
    run = make_run(tmp_path, file="docker/Release.Dockerfile")
    with pytest.raises(InputError) as caught:
        build_inputs.context_and_dockerfile(run)
    assert str((tmp_path / "docker" / "Release.Dockerfile").resolve()) in caught.value.message


# --- signing mode and material -----------------------------------------------------------------


@pytest.mark.parametrize("value", ["linux", "linux/", "Linux/AMD64", "linux/amd64/v8/x", "amd64 "])
def test_a_platform_that_is_not_os_arch_variant_is_refused_before_the_build(
    tmp_path: Path, value: str
) -> None:
    with pytest.raises(InputError, match="is not os/arch"):
        build_inputs.platforms(make_run(tmp_path, platforms=[value]))


def test_platforms_may_come_comma_separated_and_once_each(tmp_path: Path) -> None:
    run = make_run(tmp_path, platforms=["linux/amd64,linux/arm64/v8", "linux/amd64"])
    assert build_inputs.platforms(run) == ("linux/amd64", "linux/arm64/v8")


def test_user_labels_add_to_the_cis_and_win_per_key(tmp_path: Path) -> None:
    run = make_run(
        tmp_path, labels=["com.example.team=platform", "org.opencontainers.image.title=Better"]
    )
    run = replace(
        run,
        ci=replace(
            run.ci,
            labels={
                "org.opencontainers.image.title": "app",
                "org.opencontainers.image.revision": "abc",
            },
        ),
    )
    assert build_inputs.labels(run) == {
        "org.opencontainers.image.title": "Better",
        "org.opencontainers.image.revision": "abc",
        "com.example.team": "platform",
    }


@pytest.mark.parametrize(
    ("label", "message"),
    [
        ("no-equals", "is not KEY=VALUE"),
        ("=x", "is not KEY=VALUE"),
        ("bad key=x", "is not KEY=VALUE"),
        ("org.opencontainers.image.created=2020-01-01T00:00:00Z", "it is the commit's time"),
        ("com.example.note=two\nlines", "control character"),
    ],
)
def test_a_bad_label_is_refused_before_the_build(tmp_path: Path, label: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        build_inputs.labels(make_run(tmp_path, labels=[label]))


def test_created_is_the_commits_time_from_git_never_now(tmp_path: Path) -> None:
    committed(with_dockerfile(tmp_path))
    run = make_run(tmp_path)
    facts = build_inputs.source_facts(run, build_inputs.resolve(run))
    assert (facts.epoch, facts.epoch_source) == (1700000000, "git log -1 --format=%ct")
    assert facts.created == "2023-11-14T22:13:20Z"
    assert facts.changed == ()


def test_source_date_epoch_beats_the_ci_which_beats_git(tmp_path: Path) -> None:
    committed(with_dockerfile(tmp_path))
    run = make_run(tmp_path)
    from_ci = replace(
        run, ci=replace(run.ci, commit_time=1600000000, commit_time_source="CI_COMMIT_TIMESTAMP")
    )
    inputs = build_inputs.resolve(run)
    assert build_inputs.commit_time(from_ci, inputs) == (1600000000, "CI_COMMIT_TIMESTAMP")
    given = replace(from_ci, environ={**from_ci.environ, "SOURCE_DATE_EPOCH": "1500000000"})
    assert build_inputs.commit_time(given, inputs) == (1500000000, "SOURCE_DATE_EPOCH")
    as_arg = make_run(tmp_path, build_args=["SOURCE_DATE_EPOCH=1400000000"])
    assert build_inputs.commit_time(as_arg, build_inputs.resolve(as_arg))[0] == 1400000000


def test_a_source_date_epoch_that_is_no_number_is_refused(tmp_path: Path) -> None:
    run = make_run(with_dockerfile(tmp_path), {"SOURCE_DATE_EPOCH": "yesterday"})
    with pytest.raises(InputError, match="not a number of seconds"):
        build_inputs.source_facts(run, build_inputs.resolve(run))


def test_no_commit_and_no_epoch_is_said_not_made_up(tmp_path: Path) -> None:
    run = make_run(with_dockerfile(tmp_path))
    facts = build_inputs.source_facts(run, build_inputs.resolve(run))
    assert (facts.epoch, facts.created) == (None, None)
    reproducible = make_run(tmp_path, reproducible=True)
    with pytest.raises(InputError, match="needs a time"):
        build_inputs.source_facts(reproducible, build_inputs.resolve(reproducible))


def test_tracked_changes_are_found_our_outputs_and_untracked_files_aside(tmp_path: Path) -> None:
    committed(with_dockerfile(tmp_path))
    (tmp_path / "provenance.env").write_text("IMAGE_REF=x\n")
    subprocess.run(["git", "-C", str(tmp_path), "add", "provenance.env"], check=True)
    (tmp_path / "provenance.env").write_text("IMAGE_REF=y\n")  # our own output, tracked
    (tmp_path / "artifact.bin").write_text("downloaded")  # untracked: an artifact
    (tmp_path / "Dockerfile").write_text("FROM scratch\nCOPY . /\n")  # a real change
    run = make_run(tmp_path)
    facts = build_inputs.source_facts(run, build_inputs.resolve(run))
    assert facts.changed == ("Dockerfile",)
    assert facts.as_dict()["clean"] is False
    strict = make_run(tmp_path, require_clean=True)
    with pytest.raises(InputError, match="tracked files differ from the commit: Dockerfile"):
        build_inputs.source_facts(strict, build_inputs.resolve(strict))


def test_reproducible_refuses_buildx_provenance(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="both asked for"):
        build_inputs.resolve(
            make_run(with_dockerfile(tmp_path), reproducible=True, provenance=True)
        )


def test_a_tracked_file_named_like_our_output_elsewhere_still_counts(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "provenance.env").write_text("A=1\n")
    committed(with_dockerfile(tmp_path))
    (tmp_path / "sub" / "provenance.env").write_text("A=2\n")  # not ours: ours is ./provenance.env
    run = make_run(tmp_path)
    assert build_inputs.tracked_changes(run, build_inputs.resolve(run)) == ("sub/provenance.env",)


def test_no_repository_is_unknown_not_clean(tmp_path: Path) -> None:
    run = make_run(with_dockerfile(tmp_path))
    facts = build_inputs.source_facts(run, build_inputs.resolve(run))
    assert facts.changed is None and facts.as_dict()["clean"] is None
    strict = make_run(tmp_path, require_clean=True)
    with pytest.raises(InputError, match="git can't say"):
        build_inputs.source_facts(strict, build_inputs.resolve(strict))


@pytest.mark.parametrize("value", ["²", "1700000000000", "-1", "1.5", "10" * 10])
def test_an_epoch_out_of_seconds_is_bad_input_not_a_traceback(tmp_path: Path, value: str) -> None:
    run = make_run(with_dockerfile(tmp_path), {"SOURCE_DATE_EPOCH": value})
    with pytest.raises(InputError, match="not a number of seconds"):
        build_inputs.source_facts(run, build_inputs.resolve(run))


def test_labels_that_would_contradict_the_signature_or_carry_a_secret_are_refused(
    tmp_path: Path,
) -> None:
    run = make_run(tmp_path, labels=["org.opencontainers.image.revision=other"])
    run = replace(run, ci=replace(run.ci, labels={"org.opencontainers.image.revision": "abc"}))
    with pytest.raises(InputError, match="the local run's own"):
        build_inputs.labels(run)
    with pytest.raises(InputError, match="given twice"):
        build_inputs.labels(make_run(tmp_path, labels=["a.b=1", "a.b=2"]))
    secret = make_run(
        tmp_path, {"COSIGN_PASSWORD": "hunter2-secret"}, labels=["a.b=x-hunter2-secret"]
    )
    with pytest.raises(InputError, match="carries a secret"):
        build_inputs.labels(secret)


def test_oci_annotations_go_on_the_manifest_unless_the_index_is_named(tmp_path: Path) -> None:
    run = make_run(
        tmp_path,
        oci_annotations=["com.example.a=1", "index:com.example.b=2", "manifest:com.example.c=3"],
        platforms=["linux/amd64", "linux/arm64"],
    )
    assert build_inputs.oci_annotations(run, ("linux/amd64", "linux/arm64")) == (
        "manifest:com.example.a=1",
        "index:com.example.b=2",
        "manifest:com.example.c=3",
    )
    one = make_run(tmp_path, oci_annotations=["index:com.example.b=2"])
    with pytest.raises(InputError, match="needs an index"):
        build_inputs.oci_annotations(one, ())
    with pytest.raises(InputError, match="is not \\[LEVEL:\\]KEY=VALUE"):
        build_inputs.oci_annotations(make_run(tmp_path, oci_annotations=["index:no-value"]), ())
