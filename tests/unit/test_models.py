"""KeyRef: what a key reference is, read from its text alone (no file is opened)."""

from __future__ import annotations

from pathlib import Path

import pytest

from provenance_tasks.models import (
    KMS_SCHEMES,
    CertificateSigning,
    KeyPolicy,
    KeyRef,
    KeySigning,
)

KMS_URIS = {
    "awskms://": "awskms://localhost:4566/alias/signing",
    "gcpkms://": "gcpkms://projects/p/locations/l/keyRings/r/cryptoKeys/k/versions/1",
    "azurekms://": "azurekms://vault.vault.azure.net/signing",
    "hashivault://": "hashivault://signing",
    "gitlab://": "gitlab://group/project",
    "k8s://": "k8s://namespace/secret",
}


def test_every_kms_scheme_cosign_knows_has_an_example_here() -> None:
    assert set(KMS_URIS) == set(KMS_SCHEMES)


@pytest.mark.parametrize(("scheme", "uri"), KMS_URIS.items())
def test_a_kms_uri_is_its_own_public_half(scheme: str, uri: str) -> None:
    ref = KeyRef.parse(uri)
    assert (ref.is_kms, ref.is_env, ref.is_file) == (True, False, False)
    assert ref.scheme == scheme
    assert str(ref) == uri  # what cosign takes after --key, unchanged
    assert ref.public_half() == ref
    assert (ref.path, ref.public_path, ref.env_variable) == (None, None, None)


def test_an_env_reference_names_its_variable_and_has_no_public_half_to_read() -> None:
    ref = KeyRef.parse("env://SIGNING_KEY")
    assert (ref.is_kms, ref.is_env, ref.is_file) == (False, True, False)
    assert ref.env_variable == "SIGNING_KEY"
    assert str(ref) == "env://SIGNING_KEY"
    assert ref.public_half() is None  # only `cosign public-key` can print it
    assert (ref.path, ref.public_path, ref.is_pair_file) == (None, None, False)


def test_an_env_reference_without_a_name_names_the_empty_variable() -> None:
    """Parsing judges nothing: steps/keys.py refuses it (tests/unit/steps/test_keys.py)."""
    ref = KeyRef.parse("env://")
    assert ref.is_env and ref.env_variable == ""


@pytest.mark.parametrize(
    ("text", "public"),
    [
        ("cosign.key", "cosign.pub"),
        ("keys/signing.key", "keys/signing.pub"),
        ("/etc/keys/signing.key", "/etc/keys/signing.pub"),
        ("keys/release.v2.key", "keys/release.v2.pub"),
    ],
)
def test_a_file_named_as_cosign_names_a_pair_has_its_pub_beside_it(text: str, public: str) -> None:
    ref = KeyRef.parse(text)
    assert (ref.is_kms, ref.is_env, ref.is_file, ref.is_pair_file) == (False, False, True, True)
    assert ref.path == Path(text)
    assert ref.public_path == Path(public)
    assert ref.public_half() == KeyRef("", public)
    assert str(ref) == text


@pytest.mark.parametrize(
    ("text", "public"), [("keys/signing.pem", "keys/signing.pub"), ("k", "k.pub")]
)
def test_another_file_name_gets_pub_for_its_suffix(text: str, public: str) -> None:
    ref = KeyRef.parse(text)
    assert ref.is_file and not ref.is_pair_file
    assert ref.public_path == Path(public)


def test_an_unknown_scheme_is_neither_a_file_nor_a_key_cosign_knows() -> None:
    ref = KeyRef.parse("vault://signing")
    assert (ref.is_kms, ref.is_env, ref.is_file) == (False, False, False)
    assert ref.scheme == "vault://"
    assert str(ref) == "vault://signing"
    assert ref.public_half() is None


def test_the_materials_and_the_key_policy_give_their_reference() -> None:
    assert KeySigning("env://K").ref.env_variable == "K"
    certificate = CertificateSigning("/pki/leaf.key", Path("/pki/leaf.pem"), Path("/pki/ca.pem"))
    assert certificate.ref.public_path == Path("/pki/leaf.pub")
    assert KeyPolicy(KMS_URIS["awskms://"]).ref.is_kms
