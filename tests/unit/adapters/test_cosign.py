"""The cosign adapter: exact command lines per major, major detection, verify output parsing.

No real cosign runs here: argv is built and compared, and detection talks to a fake `cosign`
shell script on PATH.
"""

from __future__ import annotations

import json
import stat
from dataclasses import replace
from pathlib import Path

import pytest

from provenance_tasks.adapters.cosign import Cosign, parse_verify_output
from provenance_tasks.errors import InputError, ProvenanceError
from provenance_tasks.models import (
    CertificateSigning,
    IdentityPolicy,
    KeylessSigning,
    KeyPolicy,
    KeySigning,
)
from provenance_tasks.redaction import Redactor
from provenance_tasks.sigstore import SigstoreInstance

REF = "registry.example.com/group/app@sha256:" + "a" * 64
IDENTITY = "https://gitlab.example.com/group/app//.gitlab-ci.yml@refs/heads/main"
ISSUER = "https://gitlab.example.com"


def cosign(major: int, *, timeout: float | None = None) -> Cosign:
    return Cosign(binary="cosign", major=major, redactor=Redactor(), timeout=timeout)


def flag_value(argv: list[str], flag: str) -> str:
    """The argument after `flag` (which must be present exactly once)."""
    assert argv.count(flag) == 1, argv
    return argv[argv.index(flag) + 1]


# --- sign: what is signed --------------------------------------------------------------------


@pytest.mark.parametrize("major", [2, 3])
@pytest.mark.parametrize(
    "ref",
    ["registry.example.com/group/app:v1", "registry.example.com/group/app", "localhost:5000/x"],
)
def test_sign_refuses_a_tag_or_bare_repository(major: int, ref: str) -> None:
    with pytest.raises(ValueError, match="refusing to sign a tag"):
        cosign(major).sign_argv(ref, KeySigning("cosign.key"), {})


@pytest.mark.parametrize("major", [2, 3])
def test_sign_puts_the_digest_reference_last_and_always_says_yes(major: int) -> None:
    argv = cosign(major).sign_argv(REF, KeySigning("cosign.key"), {"k": "v"})
    assert argv[:3] == ["cosign", "sign", "--yes"]
    assert argv[-1] == REF
    assert argv.count(REF) == 1


@pytest.mark.parametrize("major", [2, 3])
def test_several_platform_digests_are_signed_in_one_call_and_none_may_be_a_tag(major: int) -> None:
    first, second = REF, REF.rsplit("@", 1)[0] + "@sha256:" + "e" * 64
    argv = cosign(major).sign_argv([first, second], KeySigning("cosign.key"), {"k": "v"})
    assert argv[-2:] == [first, second] and argv.count("-a") == 1
    with pytest.raises(ValueError, match="refusing to sign a tag"):
        cosign(major).sign_argv(
            [first, "registry.example.com/group/app:v1"], KeySigning("cosign.key"), {}
        )


# --- sign: transparency log and bundle format, per major -------------------------------------


def test_sign_key_mode_without_tlog_on_cosign2_only_turns_off_the_upload() -> None:
    argv = cosign(2).sign_argv(REF, KeySigning("cosign.key"), {}, tlog=False)
    assert argv == ["cosign", "sign", "--yes", "--key", "cosign.key", "--tlog-upload=false", REF]
    assert "--use-signing-config=false" not in argv
    assert not any(a.startswith("--new-bundle-format") for a in argv)


def test_sign_key_mode_without_tlog_on_cosign3_turns_off_signing_config_and_new_bundle() -> None:
    argv = cosign(3).sign_argv(REF, KeySigning("cosign.key"), {}, tlog=False)
    assert argv == [
        "cosign",
        "sign",
        "--yes",
        "--key",
        "cosign.key",
        "--use-signing-config=false",
        "--tlog-upload=false",
        "--new-bundle-format=false",
        REF,
    ]


def test_sign_on_cosign3_writes_the_new_bundle_by_a_signing_config_with_no_format_flag() -> None:
    argv = cosign(3).sign_argv(
        REF,
        KeySigning("cosign.key"),
        {},
        tlog=False,
        new_bundle_format=True,
        signing_config=WRITTEN,
    )
    assert flag_value(argv, "--signing-config") == str(WRITTEN)
    kept = ("--new-bundle-format", "--tlog-upload", "--use-signing")
    assert not any(a.startswith(kept) for a in argv)
    with pytest.raises(ValueError, match="signing config"):  # without one: a bug, never a guess
        cosign(3).sign_argv(REF, KeySigning("cosign.key"), {}, tlog=False, new_bundle_format=True)


def test_sign_on_cosign2_never_passes_a_bundle_format_flag() -> None:
    for new in (False, True):
        argv = cosign(2).sign_argv(REF, KeySigning("k.key"), {}, new_bundle_format=new)
        assert not any(a.startswith("--new-bundle-format") for a in argv)
        assert not any(a.startswith("--use-signing-config") for a in argv)


# What each major accepted when run against the Sigstore test bed (tests/testbed/sigstore):
# the Sigstore flags between the material and the annotations, for a private instance given by
# URLs and a trusted root (URLS), by a signing config too (CONFIG), and for the public instance.
URLS = SigstoreInstance(
    fulcio_url="http://127.0.0.1:9001",
    rekor_url="http://127.0.0.1:9002",
    trusted_root=Path("/trust/trusted_root.json"),
)
CONFIG = SigstoreInstance(
    signing_config=Path("/trust/signing_config.json"),
    trusted_root=Path("/trust/trusted_root.json"),
    configured=("http://127.0.0.1:9001", "http://127.0.0.1:9002", None),
)
TSA = SigstoreInstance(
    fulcio_url="http://f",
    rekor_url="http://r",
    tsa_url="http://t/api/v1/timestamp",
    trusted_root=Path("/trust/trusted_root.json"),
)
PUBLIC = SigstoreInstance()
ROOT = ["--trusted-root", "/trust/trusted_root.json"]
TOKEN = Path("/run/private/id-token")
WRITTEN = Path("/run/private/signing-config.json")  # what signing_config_for writes for a run

SIGN_CASES = [
    # (major, keyless, tlog, new bundle, instance, the flags)
    (
        3,
        True,
        True,
        False,
        URLS,
        [
            "--identity-token",
            str(TOKEN),
            "--use-signing-config=false",
            "--fulcio-url",
            "http://127.0.0.1:9001",
            "--rekor-url",
            "http://127.0.0.1:9002",
            *ROOT,
            "--new-bundle-format=false",
        ],
    ),
    # the new bundle by a signing config (written for the run from URLs), no format flag: the
    # flags cosign 4 keeps
    (
        3,
        True,
        True,
        True,
        URLS,
        ["--identity-token", str(TOKEN), "--signing-config", str(WRITTEN), *ROOT],
    ),
    (
        3,
        True,
        True,
        True,
        CONFIG,
        ["--identity-token", str(TOKEN), "--signing-config", "/trust/signing_config.json", *ROOT],
    ),
    # classic with a log is refused by a signing config: it signs by the config's URLs
    (
        3,
        True,
        True,
        False,
        CONFIG,
        [
            "--identity-token",
            str(TOKEN),
            "--use-signing-config=false",
            "--fulcio-url",
            "http://127.0.0.1:9001",
            "--rekor-url",
            "http://127.0.0.1:9002",
            *ROOT,
            "--new-bundle-format=false",
        ],
    ),
    (
        3,
        False,
        True,
        False,
        URLS,
        [
            "--use-signing-config=false",
            "--rekor-url",
            "http://127.0.0.1:9002",
            *ROOT,
            "--new-bundle-format=false",
        ],
    ),
    (3, False, True, True, CONFIG, ["--signing-config", "/trust/signing_config.json", *ROOT]),
    (3, False, False, True, URLS, ["--signing-config", str(WRITTEN), *ROOT]),
    (
        3,
        False,
        False,
        False,
        URLS,
        ["--use-signing-config=false", "--tlog-upload=false", *ROOT, "--new-bundle-format=false"],
    ),
    (
        3,
        True,
        True,
        False,
        TSA,
        [
            "--identity-token",
            str(TOKEN),
            "--use-signing-config=false",
            "--fulcio-url",
            "http://f",
            "--rekor-url",
            "http://r",
            "--timestamp-server-url",
            "http://t/api/v1/timestamp",
            *ROOT,
            "--new-bundle-format=false",
        ],
    ),
    # the public instance: URLs are cosign's defaults, the new bundle follows TUF's signing config
    (
        3,
        True,
        True,
        False,
        PUBLIC,
        ["--identity-token", str(TOKEN), "--use-signing-config=false", "--new-bundle-format=false"],
    ),
    (3, True, True, True, PUBLIC, ["--identity-token", str(TOKEN)]),
    (
        3,
        False,
        False,
        False,
        PUBLIC,
        ["--use-signing-config=false", "--tlog-upload=false", "--new-bundle-format=false"],
    ),
    # cosign 2: URLs only (its trust is in SIGSTORE_* variables), never a bundle flag
    (
        2,
        True,
        True,
        False,
        URLS,
        [
            "--identity-token",
            str(TOKEN),
            "--fulcio-url",
            "http://127.0.0.1:9001",
            "--rekor-url",
            "http://127.0.0.1:9002",
        ],
    ),
    (
        2,
        True,
        True,
        False,
        CONFIG,
        [
            "--identity-token",
            str(TOKEN),
            "--fulcio-url",
            "http://127.0.0.1:9001",
            "--rekor-url",
            "http://127.0.0.1:9002",
        ],
    ),
    (2, False, True, False, URLS, ["--rekor-url", "http://127.0.0.1:9002"]),
    (
        2,
        True,
        True,
        False,
        TSA,
        [
            "--identity-token",
            str(TOKEN),
            "--fulcio-url",
            "http://f",
            "--rekor-url",
            "http://r",
            "--timestamp-server-url",
            "http://t/api/v1/timestamp",
        ],
    ),
    (2, False, False, False, URLS, ["--tlog-upload=false"]),
    (2, True, True, False, PUBLIC, ["--identity-token", str(TOKEN)]),
    (2, False, True, False, PUBLIC, []),
]


@pytest.mark.parametrize(("major", "keyless", "tlog", "new", "sigstore", "flags"), SIGN_CASES)
def test_sign_points_each_major_at_its_sigstore(
    major: int, keyless: bool, tlog: bool, new: bool, sigstore: SigstoreInstance, flags: list[str]
) -> None:
    runner = Cosign(binary="cosign", major=major, redactor=Redactor(), sigstore=sigstore)
    material = KeylessSigning() if keyless else KeySigning("cosign.key")
    config = (sigstore.signing_config or WRITTEN) if new and sigstore.private else None
    argv = runner.sign_argv(
        REF,
        material,
        {"k": "v"},
        tlog=tlog,
        new_bundle_format=new,
        identity_token=TOKEN if keyless else None,
        signing_config=config,
    )
    head = ["cosign", "sign", "--yes"] + ([] if keyless else ["--key", "cosign.key"])
    assert argv == [*head, *flags, "-a", "k=v", REF]
    if tlog:
        assert "--tlog-upload=false" not in argv


@pytest.mark.parametrize("major", [2, 3])
def test_sign_keyless_hands_cosign_a_token_file_never_the_token(major: int) -> None:
    token = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"
    runner = Cosign(binary="cosign", major=major, redactor=Redactor([token]), sigstore=URLS)
    argv = runner.sign_argv(REF, KeylessSigning(), {"k": "v"}, identity_token=TOKEN)
    assert "--key" not in argv
    assert flag_value(argv, "--identity-token") == str(TOKEN)
    assert not any(token in a for a in argv)


# --- sign: signing material ------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        "awskms://alias/x",
        "gcpkms://projects/p/locations/l/keyRings/r/cryptoKeys/k/versions/1",
        "hashivault://k",
        "gitlab://123",
        "azurekms://vault.vault.azure.net/k",
        "env://SIGNING_KEY",
    ],
)
@pytest.mark.parametrize("major", [2, 3])
def test_sign_passes_key_references_through_unchanged(key: str, major: int) -> None:
    argv = cosign(major).sign_argv(REF, KeySigning(key), {})
    assert flag_value(argv, "--key") == key


@pytest.mark.parametrize("major", [2, 3])
def test_sign_certificate_mode_passes_key_certificate_and_chain(major: int) -> None:
    material = CertificateSigning("signer.key", Path("/pki/signer.pem"), Path("/pki/chain.pem"))
    argv = cosign(major).sign_argv(REF, material, {})
    assert argv[3:9] == [
        "--key",
        "signer.key",
        "--certificate",
        "/pki/signer.pem",
        "--certificate-chain",
        "/pki/chain.pem",
    ]


# --- sign: annotations and timeout -----------------------------------------------------------


@pytest.mark.parametrize("major", [2, 3])
def test_sign_annotations_are_csv_quoted_only_when_needed(major: int) -> None:
    annotations = {"com.x": "Doe, Jo", "com.plain": "value", "tag": "v1"}
    argv = cosign(major).sign_argv(REF, KeySigning("k.key"), annotations)
    pairs = [argv[i + 1] for i, a in enumerate(argv) if a == "-a"]
    assert pairs == ['"com.x=Doe, Jo"', "com.plain=value", "tag=v1"]
    assert argv[-1] == REF


def test_sign_annotation_with_a_raw_equals_sign_is_refused() -> None:
    with pytest.raises(InputError, match="raw '='"):
        cosign(2).sign_argv(REF, KeySigning("k.key"), {"com.x": "a=b"})


@pytest.mark.parametrize("major", [2, 3])
def test_sign_passes_the_timeout_in_whole_seconds(major: int) -> None:
    argv = cosign(major, timeout=300).sign_argv(REF, KeySigning("k.key"), {})
    assert flag_value(argv, "--timeout") == "300s"
    assert argv[-1] == REF


def test_sign_without_timeout_passes_no_timeout_flag() -> None:
    assert "--timeout" not in cosign(3).sign_argv(REF, KeySigning("k.key"), {})


# --- verify ----------------------------------------------------------------------------------


@pytest.mark.parametrize("major", [2, 3])
def test_verify_key_policy_uses_the_key_and_no_identity(major: int) -> None:
    argv = cosign(major).verify_argv(REF, KeyPolicy("/keys/cosign.pub"))
    assert argv[:4] == ["cosign", "verify", "--output", "json"]
    assert flag_value(argv, "--key") == "/keys/cosign.pub"
    assert "--certificate-identity" not in argv
    assert "--certificate-oidc-issuer" not in argv
    assert argv[-1] == REF


@pytest.mark.parametrize("major", [2, 3])
def test_verify_identity_policy_uses_identity_and_issuer_and_never_a_key(major: int) -> None:
    argv = cosign(major).verify_argv(REF, IdentityPolicy(IDENTITY, ISSUER))
    assert flag_value(argv, "--certificate-identity") == IDENTITY
    assert flag_value(argv, "--certificate-oidc-issuer") == ISSUER
    assert "--key" not in argv
    # Sigstore's public instance: its SCTs are checked, no private chain or root.
    assert "--insecure-ignore-sct" not in argv
    assert "--certificate-chain" not in argv
    assert "--trusted-root" not in argv


@pytest.mark.parametrize("major", [2, 3])
def test_verify_private_chain_passes_the_chain_and_ignores_the_sct(major: int) -> None:
    policy = IdentityPolicy(IDENTITY, ISSUER, chain=Path("/pki/chain.pem"))
    argv = cosign(major).verify_argv(REF, policy)
    assert flag_value(argv, "--certificate-chain") == "/pki/chain.pem"
    assert "--insecure-ignore-sct" in argv
    assert "--key" not in argv


@pytest.mark.parametrize("new", [False, True])
def test_verify_on_cosign3_takes_a_private_instance_trust_from_its_trusted_root(new: bool) -> None:
    runner = Cosign(binary="cosign", major=3, redactor=Redactor(), sigstore=URLS)
    argv = runner.verify_argv(REF, IdentityPolicy(IDENTITY, ISSUER), new_bundle_format=new)
    assert flag_value(argv, "--trusted-root") == "/trust/trusted_root.json"
    assert "--insecure-ignore-sct" not in argv  # the trusted root has a CT log: SCTs are checked
    assert "--insecure-ignore-tlog" not in argv
    assert "--rekor-url" not in argv
    key = runner.verify_argv(REF, KeyPolicy("k.pub"))
    assert flag_value(key, "--trusted-root") == "/trust/trusted_root.json"  # the log's key


def test_verify_on_cosign2_names_the_private_rekor_and_takes_trust_from_the_environment() -> None:
    runner = Cosign(binary="cosign", major=2, redactor=Redactor(), sigstore=URLS)
    argv = runner.verify_argv(REF, IdentityPolicy(IDENTITY, ISSUER))
    assert "--trusted-root" not in argv
    assert flag_value(argv, "--rekor-url") == "http://127.0.0.1:9002"
    assert "--insecure-ignore-sct" not in argv


@pytest.mark.parametrize("major", [2, 3])
def test_verify_ignores_the_sct_only_without_a_ct_log_or_when_told_to(major: int) -> None:
    policy = IdentityPolicy(IDENTITY, ISSUER)
    no_ct_log = replace(URLS, ct_log=False)
    told = replace(URLS, unsafe_ignore_sct=True)
    for sigstore, ignored in ((URLS, False), (PUBLIC, False), (no_ct_log, True), (told, True)):
        runner = Cosign(binary="cosign", major=major, redactor=Redactor(), sigstore=sigstore)
        assert ("--insecure-ignore-sct" in runner.verify_argv(REF, policy)) is ignored
        assert "--insecure-ignore-sct" not in runner.verify_argv(REF, KeyPolicy("k.pub"))


@pytest.mark.parametrize("major", [2, 3])
@pytest.mark.parametrize("policy", [KeyPolicy("k.pub"), IdentityPolicy(IDENTITY, ISSUER)])
def test_verify_without_tlog_ignores_the_tlog_only_when_asked(major: int, policy: object) -> None:
    runner = cosign(major)
    assert "--insecure-ignore-tlog" in runner.verify_argv(REF, policy, tlog=False)  # type: ignore[arg-type]
    assert "--insecure-ignore-tlog" not in runner.verify_argv(REF, policy, tlog=True)  # type: ignore[arg-type]


def test_verify_on_cosign3_names_only_the_classic_format_and_cosign2_never_does() -> None:
    policy = KeyPolicy("k.pub")
    assert "--new-bundle-format=false" in cosign(3).verify_argv(REF, policy)
    bundle = cosign(3).verify_argv(REF, policy, new_bundle_format=True)  # cosign 3's default
    assert not any(a.startswith("--new-bundle-format") for a in bundle)
    for new in (False, True):
        argv = cosign(2).verify_argv(REF, policy, new_bundle_format=new)
        assert not any(a.startswith("--new-bundle-format") for a in argv)


def test_verify_checks_annotations_and_passes_the_timeout() -> None:
    annotations = {"com.x": "Doe, Jo", "a": "b"}
    argv = cosign(2, timeout=90).verify_argv(REF, KeyPolicy("k.pub"), annotations)
    pairs = [argv[i + 1] for i, a in enumerate(argv) if a == "-a"]
    assert pairs == ['"com.x=Doe, Jo"', "a=b"]
    assert flag_value(argv, "--timeout") == "90s"
    assert argv[-1] == REF


# --- detect ----------------------------------------------------------------------------------


def fake_cosign(folder: Path, help_text: str, *, name: str = "cosign", exit_code: int = 0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "help.txt").write_text(help_text)
    script = folder / name
    script.write_text(
        "#!/bin/sh\n"
        # Both subcommands answer with the same flags: the ones detect probes are in either.
        f'if [ "$2" = --help ]; then cat "{folder / "help.txt"}"; exit {exit_code}; fi\n'
        "exit 64\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return script


HELP_2 = """Sign the supplied container image.
Flags:
      --key string                 path to the private key file, KMS URI or Kubernetes Secret
      --tlog-upload                whether or not to upload to the tlog (default true)
      --new-bundle-format          expect the signature/attestation to be packaged in a bundle
"""
HELP_3 = HELP_2 + (
    "      --use-signing-config    whether to use a TUF-provided signing config (default true)\n"
)


@pytest.mark.parametrize(("help_text", "major"), [(HELP_2, 2), (HELP_3, 3)])
def test_detect_finds_the_major_from_sign_help(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, help_text: str, major: int
) -> None:
    script = fake_cosign(tmp_path / "bin", help_text)
    monkeypatch.setenv("PATH", f"{script.parent}:/usr/bin:/bin")
    found = Cosign.detect("cosign", redactor=Redactor(), env={"PATH": "/usr/bin:/bin"}, timeout=60)
    assert found.major == major
    assert found.binary == str(script)
    assert found.timeout == 60
    assert found.env == {"PATH": "/usr/bin:/bin"}


def test_the_probes_and_the_key_check_yield_the_cpu_to_the_build(tmp_path: Path) -> None:
    """They run beside the build, and the run waits on the build: each at a lower priority."""
    import os

    from provenance_tasks.adapters.process import YIELDING_NICE

    script = fake_cosign(tmp_path / "bin", HELP_2)  # cosign 2: its verify is probed too
    log = tmp_path / "nice.log"
    body = script.read_text().replace(
        "#!/bin/sh\n", f"#!/bin/sh\necho \"$1 $(cut -d' ' -f19 /proc/$$/stat)\" >> {log}\n"
    )
    script.write_text(body.replace("exit 64", 'echo "PUBLIC KEY"; exit 0'))
    cosign = Cosign.detect(str(script), redactor=Redactor(), env={})
    cosign.check_key(str(tmp_path / "cosign.key"))
    nicer = min(19, os.getpriority(os.PRIO_PROCESS, 0) + YIELDING_NICE)
    assert log.read_text().split("\n")[:-1] == [
        f"sign {nicer}",
        f"verify {nicer}",
        f"public-key {nicer}",
    ]


def test_detect_refuses_a_cosign_older_than_2_4(tmp_path: Path) -> None:
    old = HELP_2.replace("      --new-bundle-format", "      --other-flag")
    script = fake_cosign(tmp_path / "tools", old, name="cosign-2.2")
    with pytest.raises(InputError) as caught:
        Cosign.detect(str(script), redactor=Redactor(), env={})
    assert "older than cosign 2.4" in caught.value.message
    assert "install cosign 2.4+" in (caught.value.hint or "")


def test_detect_accepts_a_path_to_the_binary(tmp_path: Path) -> None:
    script = fake_cosign(tmp_path / "tools", HELP_3, name="cosign3")
    found = Cosign.detect(str(script), redactor=Redactor(), env={})
    assert (found.binary, found.major) == (str(script), 3)


def test_detect_missing_binary_raises_input_error_with_install_hint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(InputError) as caught:
        Cosign.detect("cosign", redactor=Redactor(), env={})
    assert "cosign not found" in caught.value.message
    assert caught.value.hint is not None
    assert "install cosign" in caught.value.hint
    assert "provenance.cosign" in caught.value.hint
    assert caught.value.exit_code == 2


@pytest.mark.parametrize(
    ("help_text", "exit_code"),
    [("usage: something else entirely\n", 0), (HELP_3, 1)],
    ids=["not-cosign", "help-fails"],
)
def test_detect_something_that_is_not_cosign_raises_input_error(
    tmp_path: Path, help_text: str, exit_code: int
) -> None:
    script = fake_cosign(tmp_path, help_text, exit_code=exit_code)
    with pytest.raises(ProvenanceError) as caught:
        Cosign.detect(str(script), redactor=Redactor(), env={})
    assert isinstance(caught.value, InputError)
    assert "does not look like cosign" in caught.value.message
    assert caught.value.hint is not None and "install cosign" in caught.value.hint


# --- parse_verify_output ---------------------------------------------------------------------

PAYLOAD_1 = {
    "critical": {"image": {"docker-manifest-digest": "sha256:" + "a" * 64}},
    "optional": {"tag": "v1"},
}
PAYLOAD_2 = {
    "critical": {"image": {"docker-manifest-digest": "sha256:" + "a" * 64}},
    "optional": {"tag": "v2"},
}


def test_parse_verify_output_reads_a_json_array_after_a_leading_newline() -> None:
    stdout = "\n" + json.dumps([PAYLOAD_1, PAYLOAD_2]) + "\n"
    assert parse_verify_output(stdout) == [PAYLOAD_1, PAYLOAD_2]


def test_parse_verify_output_reads_one_object_per_line() -> None:
    stdout = json.dumps(PAYLOAD_1) + "\n" + json.dumps(PAYLOAD_2) + "\n"
    assert parse_verify_output(stdout) == [PAYLOAD_1, PAYLOAD_2]


def test_parse_verify_output_skips_prose_lines_between_documents() -> None:
    stdout = (
        "Verification for registry.example.com/group/app@sha256:aaaa --\n"
        "The following checks were performed on each of these signatures:\n"
        + json.dumps(PAYLOAD_1)
        + "\n"
        "  - The signatures were verified against the specified public key\n"
        + json.dumps([PAYLOAD_2])
        + "\n"
    )
    assert parse_verify_output(stdout) == [PAYLOAD_1, PAYLOAD_2]


def test_parse_verify_output_of_nothing_is_no_payload() -> None:
    assert parse_verify_output("") == []
    assert parse_verify_output("\n  \nno signatures found\n") == []


def test_parse_verify_output_keeps_only_objects_from_arrays() -> None:
    assert parse_verify_output(json.dumps([PAYLOAD_1, "x", 3, None])) == [PAYLOAD_1]
