"""verify must fail, and say why, when the registry or the signatures were tampered with."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration import pipelines
from tests.integration.conftest import Registry, Runner, make_context, make_key_pair


def signed(
    runner: Runner, context: Path, key_pair: tuple[Path, Path, str], cosign: str
) -> tuple[dict[str, str], str]:
    key, _, password = key_pair
    env = pipelines.gitlab_key_mode(runner.testbed, cosign, password)
    done = runner.run("build-sign-verify", "--context", str(context), "--key", str(key), env=env)
    assert done.returncode == 0, done.stderr
    return env, (runner.cwd / "provenance.env").read_text()


def verify(runner: Runner, env: dict[str, str], pub: Path, *extra: str) -> tuple[int, str]:
    done = runner.run("verify", "--public-key", str(pub), "--mode", "key", *extra, env=env)
    assert "Traceback" not in done.stderr
    return done.returncode, done.stderr


@pytest.mark.integration
def test_a_tag_re_pointed_after_signing_fails(
    runner: Runner, context: Path, tmp_path: Path, key_pair: tuple[Path, Path, str], cosign: str
) -> None:
    env, _ = signed(runner, context, key_pair, cosign)
    tag = env["CI_COMMIT_SHORT_SHA"]
    assert verify(runner, env, key_pair[1], "--tag", tag)[0] == 0
    # Someone pushes another image to the same tag.
    other = runner.run(
        "build",
        "--context",
        str(make_context(tmp_path / "evil")),
        "--report",
        "other.json",
        env={**env, "INVOKE_PROVENANCE_DOTENV": "o.env"},
    )
    assert other.returncode == 0, other.stderr
    code, err = verify(runner, env, key_pair[1], "--tag", tag)
    assert code == 3
    assert f"tag {tag} points at" in err


@pytest.mark.integration
def test_a_signature_by_another_key_fails(
    runner: Runner, context: Path, tmp_path: Path, key_pair: tuple[Path, Path, str], cosign: str
) -> None:
    env, _ = signed(runner, context, key_pair, cosign)
    _, stranger = make_key_pair(cosign, tmp_path / "stranger" / "k")
    code, err = verify(runner, env, stranger)
    assert code == 3
    assert "no signature on" in err and "verifies against public key" in err


@pytest.mark.integration
@pytest.mark.parametrize(
    ("change", "expected_text"),
    [
        ({"CI_PIPELINE_ID": "999"}, "com.gitlab.ci.pipeline.id: expected '999', found '4242'"),
        ({"GITLAB_USER_NAME": "Mallory"}, "com.gitlab.ci.user.name: expected 'Mallory'"),
    ],
    ids=["altered-pipeline-id", "altered-user"],
)
def test_an_altered_annotation_fails_and_names_it(
    runner: Runner,
    context: Path,
    key_pair: tuple[Path, Path, str],
    cosign: str,
    change: dict[str, str],
    expected_text: str,
) -> None:
    env, _ = signed(runner, context, key_pair, cosign)
    code, err = verify(runner, {**env, **change}, key_pair[1])
    assert code == 3
    assert expected_text in err


@pytest.mark.integration
def test_a_missing_annotation_fails_and_names_it(
    runner: Runner,
    registry: Registry,
    context: Path,
    key_pair: tuple[Path, Path, str],
    cosign: str,
) -> None:
    env, _ = signed(runner, context, key_pair, cosign)
    code, err = verify(runner, env, key_pair[1], "--annotation", "com.example.reviewed=yes")
    assert code == 3
    assert "com.example.reviewed: missing (expected 'yes')" in err
