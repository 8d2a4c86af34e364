"""`cosign attest` and `verify-attestation` lines per major and format: the classic `.att` the
signatures' format asks for by default, and the signing config cosign 3 writes a bundle by."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from provenance_tasks.adapters.cosign import Cosign
from provenance_tasks.adapters.cosign_attest import (
    attest_argv,
    signing_config_for,
    verify_attestation_argv,
)
from provenance_tasks.models import (
    IdentityPolicy,
    IdentityToken,
    KeylessSigning,
    KeyPolicy,
    KeySigning,
)
from provenance_tasks.redaction import Redactor
from provenance_tasks.sigstore import SigstoreInstance

REF = "registry.example.com/group/app@sha256:" + "a" * 64
TYPE = "https://slsa.dev/provenance/v1"
PRIVATE = SigstoreInstance(
    fulcio_url="http://127.0.0.1:9001",
    rekor_url="http://127.0.0.1:9002",
    trusted_root=Path("/trust/trusted_root.json"),
)


def cosign(major: int, sigstore: SigstoreInstance = PRIVATE) -> Cosign:
    return Cosign(binary="cosign", major=major, redactor=Redactor(), sigstore=sigstore)


def test_cosign2_attests_by_service_urls_and_classic_att() -> None:
    argv = attest_argv(
        cosign(2),
        REF,
        KeySigning("k.key"),
        TYPE,
        Path("p.json"),
        tlog=True,
        identity_token=None,
        signing_config=None,
    )
    assert argv[:3] == ["cosign", "attest", "--yes"] and argv[-1] == REF
    assert argv[argv.index("--type") + 1] == TYPE and "--rekor-url" in argv
    assert not any(a.startswith("--new-bundle-format") for a in argv)
    quiet = attest_argv(
        cosign(2),
        REF,
        KeySigning("k.key"),
        TYPE,
        Path("p.json"),
        tlog=False,
        identity_token=None,
        signing_config=None,
    )
    assert "--tlog-upload=false" in quiet and "--rekor-url" not in quiet


def test_cosign3_attests_a_bundle_by_a_signing_config_never_by_urls(tmp_path: Path) -> None:
    config = signing_config_for(PRIVATE, keyless=True, tlog=True, folder=tmp_path)
    assert config is not None
    written = json.loads(config.read_text())
    assert [u["url"] for u in written["caUrls"]] == ["http://127.0.0.1:9001"]
    assert [u["url"] for u in written["rekorTlogUrls"]] == ["http://127.0.0.1:9002"]
    token = tmp_path / "id-token"
    keyless = KeylessSigning(IdentityToken("t", "SIGSTORE_ID_TOKEN"))
    argv = attest_argv(
        cosign(3),
        REF,
        keyless,
        TYPE,
        Path("p.json"),
        tlog=True,
        identity_token=token,
        signing_config=config,
        new_bundle_format=True,
    )
    assert argv[argv.index("--signing-config") + 1] == str(config)
    assert argv[argv.index("--identity-token") + 1] == str(token)  # a path, never the token
    assert "--rekor-url" not in argv and "--fulcio-url" not in argv
    assert not any(a.startswith(("--new-bundle-format", "--tlog-upload")) for a in argv)


def test_cosign3_attests_the_classic_att_as_its_classic_sign_does() -> None:
    argv = attest_argv(
        cosign(3),
        REF,
        KeySigning("k.key"),
        TYPE,
        Path("p.json"),
        tlog=False,
        identity_token=None,
        signing_config=None,
    )
    assert "--use-signing-config=false" in argv and "--new-bundle-format=false" in argv
    assert "--tlog-upload=false" in argv and "--signing-config" not in argv
    logged = attest_argv(
        cosign(3),
        REF,
        KeySigning("k.key"),
        TYPE,
        Path("p.json"),
        tlog=True,
        identity_token=None,
        signing_config=None,
    )
    assert logged[logged.index("--rekor-url") + 1] == "http://127.0.0.1:9002"


def test_without_a_log_the_signing_config_names_no_rekor(tmp_path: Path) -> None:
    config = signing_config_for(PRIVATE, keyless=False, tlog=False, folder=tmp_path)
    assert config is not None and json.loads(config.read_text())["rekorTlogUrls"] == []
    public = SigstoreInstance()
    assert signing_config_for(public, keyless=True, tlog=True, folder=tmp_path) is None  # TUF's


@pytest.mark.parametrize("major", [2, 3])
def test_verify_attestation_takes_verifys_trust_and_reads_the_format_asked(major: int) -> None:
    argv = verify_attestation_argv(cosign(major), REF, KeyPolicy("k.pub"), TYPE, tlog=False)
    assert argv[:2] == ["cosign", "verify-attestation"] and argv[-1] == REF
    assert "--insecure-ignore-tlog" in argv and argv[argv.index("--key") + 1] == "k.pub"
    classic = ["--new-bundle-format=false"] if major == 3 else []
    assert [a for a in argv if a.startswith("--new-bundle-format")] == classic
    bundle = verify_attestation_argv(
        cosign(major), REF, KeyPolicy("k.pub"), TYPE, tlog=False, new_bundle_format=True
    )
    assert not any(a.startswith("--new-bundle-format") for a in bundle)
    keyless = verify_attestation_argv(
        cosign(major), REF, IdentityPolicy("https://id", "https://iss"), TYPE, tlog=True
    )
    assert keyless[keyless.index("--certificate-identity") + 1] == "https://id"


def test_a_tag_is_never_attested() -> None:
    with pytest.raises(ValueError, match="refusing to attest a tag"):
        attest_argv(
            cosign(3),
            "registry.example.com/app:v1",
            KeySigning("k"),
            TYPE,
            Path("p"),
            tlog=True,
            identity_token=None,
            signing_config=None,
        )


def test_a_users_signing_config_that_also_lists_rekor_v2_is_given_with_v1_only(
    tmp_path: Path,
) -> None:
    both = {
        "mediaType": "application/vnd.dev.sigstore.signingconfig.v0.2+json",
        "caUrls": [{"url": "http://f", "majorApiVersion": 1}],
        "rekorTlogUrls": [
            {"url": "http://rekor-v2", "majorApiVersion": 2},
            {"url": "http://rekor-v1", "majorApiVersion": 1},
        ],
    }
    (tmp_path / "sc.json").write_text(json.dumps(both))
    users = SigstoreInstance(
        signing_config=tmp_path / "sc.json", trusted_root=Path("/trust/trusted_root.json")
    )
    given = signing_config_for(users, keyless=True, tlog=True, folder=tmp_path)
    assert given is not None and given != tmp_path / "sc.json"
    assert [u["url"] for u in json.loads(given.read_text())["rekorTlogUrls"]] == ["http://rekor-v1"]
    only_v1 = {**both, "rekorTlogUrls": both["rekorTlogUrls"][1:]}  # type: ignore[index]
    (tmp_path / "v1.json").write_text(json.dumps(only_v1))
    users = SigstoreInstance(signing_config=tmp_path / "v1.json", trusted_root=Path("/t.json"))
    assert (
        signing_config_for(users, keyless=True, tlog=True, folder=tmp_path) == tmp_path / "v1.json"
    )
