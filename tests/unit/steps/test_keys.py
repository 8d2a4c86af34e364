"""Key references as a run resolves them: the key it signs with, the public half it verifies
with (given, beside the file, the KMS URI, or the signing key's own), and the co-signature's."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from provenance_tasks.errors import InputError
from provenance_tasks.models import KeyPolicy, KeySigning, SigningMaterial
from provenance_tasks.settings import resolve
from provenance_tasks.steps import plan
from provenance_tasks.steps.keys import check_key_ref, second_signer
from provenance_tasks.steps.run import Run, Tools
from tests.unit.gitlab_env import GITLAB_ENV

KMS = "awskms://localhost:4566/alias/signing"


def gitlab_run(tmp_path: Path, environ: dict[str, str] | None = None, **flags: object) -> Run:
    """A GitLab job's run: no git is asked, and no key pair is made on first use."""
    env = {"HOME": str(tmp_path), **GITLAB_ENV, **(environ or {})}
    return Run.start(resolve(None, flags), environ=env, cwd=tmp_path)


def files(folder: Path, *names: str) -> None:
    for name in names:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text("x\n")


def policy(run: Run, signing: SigningMaterial | None = None) -> object:
    return plan.verification_policy(run, Tools(run), "key", signing)


@pytest.mark.parametrize(
    ("key", "message", "hint"),
    [
        ("env://", "signing key env:// names no variable", "write env://NAME"),
        (
            "env://SIGNING_KEY",
            "signing key env://SIGNING_KEY: the variable is not set",
            "export SIGNING_KEY with the PEM key",
        ),
    ],
)
def test_an_env_key_whose_variable_is_unset_or_unnamed_is_bad_input(
    tmp_path: Path, key: str, message: str, hint: str
) -> None:
    with pytest.raises(InputError) as caught:
        check_key_ref(gitlab_run(tmp_path), key, "signing key")
    assert caught.value.exit_code == 2
    assert (caught.value.message, caught.value.hint) == (message, hint)


def test_a_relative_key_file_is_checked_in_the_run_s_folder(tmp_path: Path) -> None:
    files(tmp_path, "keys/signing.key")
    checked = check_key_ref(gitlab_run(tmp_path), "keys/signing.key", "signing key")
    assert checked == str((tmp_path / "keys/signing.key").resolve())


def test_verify_reads_the_pub_beside_the_signing_key(tmp_path: Path) -> None:
    files(tmp_path, "keys/signing.key", "keys/signing.pub")
    run = gitlab_run(tmp_path, key="keys/signing.key")
    signing = plan.signing_material(run, "key")
    assert policy(run, signing) == KeyPolicy(str((tmp_path / "keys/signing.pub").resolve()))
    assert policy(run) == KeyPolicy(str((tmp_path / "keys/signing.pub").resolve()))


def test_a_key_with_no_pub_beside_it_is_verified_with_its_own_public_half(tmp_path: Path) -> None:
    files(tmp_path, "signing.key")
    run = gitlab_run(tmp_path, key="signing.key")
    signing = plan.signing_material(run, "key")
    assert isinstance(signing, KeySigning)
    assert policy(run, signing) == KeyPolicy(signing.key, of_signing_key=signing.key)


def test_an_env_key_is_verified_with_its_own_public_half(tmp_path: Path) -> None:
    run = gitlab_run(tmp_path, {"SIGNING_KEY": "pem"}, key="env://SIGNING_KEY")
    signing = plan.signing_material(run, "key")
    assert policy(run, signing) == KeyPolicy(
        "env://SIGNING_KEY", of_signing_key="env://SIGNING_KEY"
    )


def test_a_kms_key_is_its_own_public_key(tmp_path: Path) -> None:
    run = gitlab_run(tmp_path, key=KMS)
    assert policy(run, plan.signing_material(run, "key")) == KeyPolicy(KMS)
    assert policy(run) == KeyPolicy(KMS)


@pytest.mark.parametrize("key", ["signing.pem", "env://SIGNING_KEY"])
def test_a_verify_alone_guesses_no_public_key_but_a_pair_s(tmp_path: Path, key: str) -> None:
    files(tmp_path, "signing.pem", "signing.pub")
    with pytest.raises(InputError, match="cannot tell the public key for verify"):
        policy(gitlab_run(tmp_path, {"SIGNING_KEY": "pem"}, key=key))


def test_a_given_public_key_wins_and_env_is_taken_as_is(tmp_path: Path) -> None:
    files(tmp_path, "signing.key", "other.pub")
    run = gitlab_run(tmp_path, key="signing.key", public_key="other.pub")
    assert policy(run, plan.signing_material(run, "key")) == KeyPolicy(
        str((tmp_path / "other.pub").resolve())
    )
    assert policy(gitlab_run(tmp_path, public_key="env://PUBLIC")) == KeyPolicy("env://PUBLIC")
    with pytest.raises(InputError, match="cannot read public key"):
        policy(gitlab_run(tmp_path, public_key="missing.pub"))


def test_a_laptop_verifies_with_the_pub_of_the_pair_made_on_first_use(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    env = {"HOME": str(tmp_path), "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    run = Run.start(resolve(None, {"key_folder": "pair"}), environ=env, cwd=tmp_path)
    folder = (tmp_path / "pair").resolve()
    assert plan.signing_material(run, "key") == KeySigning(str(folder / "cosign.key"))
    assert policy(run) == KeyPolicy(str(folder / "cosign.pub"))  # not there yet: made at sign


@pytest.mark.parametrize(
    ("key", "public"), [("second.key", "second.pub"), ("second.pem", "second.pub")]
)
def test_the_second_key_is_verified_with_the_pub_beside_it(
    tmp_path: Path, key: str, public: str
) -> None:
    files(tmp_path, key, public)
    run = gitlab_run(tmp_path, second_key=key)
    signer, verifier = second_signer(run, signs=True, verifies=True)
    assert signer == KeySigning(str((tmp_path / key).resolve()))
    assert verifier == KeyPolicy(str((tmp_path / public).resolve()))


def test_a_kms_second_key_is_its_own_public_key(tmp_path: Path) -> None:
    run = gitlab_run(tmp_path, second_key=KMS)
    assert second_signer(run, signs=True, verifies=True) == (KeySigning(KMS), KeyPolicy(KMS))
    assert second_signer(run, signs=True, verifies=False) == (KeySigning(KMS), None)


def test_a_second_public_key_in_a_variable_must_be_set(tmp_path: Path) -> None:
    run = gitlab_run(tmp_path, {"SECOND_PUB": "pem"}, second_public_key="env://SECOND_PUB")
    assert second_signer(run, signs=False, verifies=True) == (None, KeyPolicy("env://SECOND_PUB"))
    with pytest.raises(InputError, match="the variable is not set"):
        second_signer(
            gitlab_run(tmp_path, second_public_key="env://UNSET"), signs=False, verifies=True
        )


def test_the_second_key_can_t_be_an_env_key(tmp_path: Path) -> None:
    run = gitlab_run(tmp_path, {"SECOND": "pem"}, second_key="env://SECOND")
    with pytest.raises(InputError, match="can't be an env:// key") as caught:
        second_signer(run, signs=True, verifies=True)
    assert caught.value.exit_code == 2
