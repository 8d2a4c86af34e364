"""A private Sigstore as settings: checked up front, trust files for cosign 2, a chain's root,
cosign's controlled environment, ID-token checks, and the causes of Sigstore failures."""

from __future__ import annotations

import base64
import json
import re
import time
from pathlib import Path

import pytest

from provenance_tasks.adapters.cosign_env import cosign_environment, shown
from provenance_tasks.causes import classify, service_of
from provenance_tasks.ci.oidc import token_problem
from provenance_tasks.errors import InputError
from provenance_tasks.sigstore import (
    PUBLIC_FULCIO,
    PUBLIC_REKOR,
    chain_trusted_root,
    cosign2_trust_files,
    instance,
)

DER = base64.b64encode(b"\x30\x03\x02\x01\x01" * 20).decode()
ROOT = {
    "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
    "tlogs": [{"baseUrl": "http://r", "publicKey": {"rawBytes": DER}}],
    "certificateAuthorities": [{"certChain": {"certificates": [{"rawBytes": DER}]}}],
    "ctlogs": [{"baseUrl": "http://c", "publicKey": {"rawBytes": DER}}],
    "timestampAuthorities": [],
}
CONFIG = {
    "mediaType": "application/vnd.dev.sigstore.signingconfig.v0.2+json",
    "caUrls": [{"url": "http://fulcio.internal"}],
    "rekorTlogUrls": [{"url": "http://rekor.internal"}],
    "tsaUrls": [{"url": "http://tsa.internal/api/v1/timestamp"}],
}


def settings(**given: object) -> dict[str, object]:
    base: dict[str, object] = {
        "fulcio_url": None,
        "rekor_url": None,
        "tsa_url": None,
        "signing_config": None,
        "trusted_root": None,
        "unsafe_ignore_sct": False,
    }
    base.update(given)
    return base


def write(tmp_path: Path, name: str, data: object) -> str:
    (tmp_path / name).write_text(json.dumps(data) if not isinstance(data, str) else data)
    return name


def test_nothing_set_is_the_public_instance(tmp_path: Path) -> None:
    public = instance(**settings(), cwd=tmp_path)  # type: ignore[arg-type]
    assert not public.private
    assert (public.fulcio, public.rekor, public.tsa) == (PUBLIC_FULCIO, PUBLIC_REKOR, None)
    assert public.ct_log


def test_urls_and_a_signing_config_describe_one_private_instance(tmp_path: Path) -> None:
    root = write(tmp_path, "root.json", ROOT)
    config = write(tmp_path, "config.json", CONFIG)
    private = instance(
        **settings(trusted_root=root, signing_config=config),
        cwd=tmp_path,  # type: ignore[arg-type]
    )
    assert private.private and private.trusted_root == (tmp_path / root).resolve()
    # cosign 2 can't read a signing config: the URLs come out of it.
    assert private.fulcio == "http://fulcio.internal"
    assert private.rekor == "http://rekor.internal"
    assert private.tsa == "http://tsa.internal/api/v1/timestamp"
    # A URL setting and the signing config may both be given, for the two majors: they must agree.
    both = instance(
        **settings(trusted_root=root, signing_config=config, rekor_url="http://rekor.internal/"),
        cwd=tmp_path,
    )  # type: ignore[arg-type]
    assert both.services(keyless=True, tlog=True) == {
        "Fulcio": "http://fulcio.internal",
        "Rekor": "http://rekor.internal/",
        "the timestamp authority": "http://tsa.internal/api/v1/timestamp",
    }
    assert both.services(keyless=False, tlog=False) == {
        "the timestamp authority": "http://tsa.internal/api/v1/timestamp"
    }
    with pytest.raises(
        InputError, match=re.escape("the signing config names http://rekor.internal")
    ):
        instance(
            **settings(trusted_root=root, signing_config=config, rekor_url="https://elsewhere"),
            cwd=tmp_path,
        )  # type: ignore[arg-type]


def test_a_signing_config_gives_the_first_v1_service_still_valid(tmp_path: Path) -> None:
    root = write(tmp_path, "root.json", ROOT)
    listed = {
        **CONFIG,
        "rekorTlogUrls": [
            {"url": "http://rekor-v2.internal", "majorApiVersion": 2},
            {
                "url": "http://retired.internal",
                "majorApiVersion": 1,
                "validFor": {"start": "2020-01-01T00:00:00Z", "end": "2021-01-01T00:00:00Z"},
            },
            {"url": "http://rekor-v1.internal", "majorApiVersion": 1},
        ],
    }
    config = write(tmp_path, "config.json", listed)
    found = instance(**settings(trusted_root=root, signing_config=config), cwd=tmp_path)  # type: ignore[arg-type]
    assert found.rekor == "http://rekor-v1.internal"


def test_a_signing_config_naming_only_rekor_v2_is_refused_as_not_supported_yet(
    tmp_path: Path,
) -> None:
    root = write(tmp_path, "root.json", ROOT)
    v2 = {**CONFIG, "rekorTlogUrls": [{"url": "http://rekor-v2.internal", "majorApiVersion": 2}]}
    config = write(tmp_path, "config.json", v2)
    with pytest.raises(InputError, match="Rekor v2 is not supported yet"):
        instance(**settings(trusted_root=root, signing_config=config), cwd=tmp_path)  # type: ignore[arg-type]
    # No log at all (a key, --no-tlog) is not a Rekor v2 configuration.
    config = write(tmp_path, "none.json", {**CONFIG, "rekorTlogUrls": []})
    instance(**settings(trusted_root=root, signing_config=config), cwd=tmp_path)  # type: ignore[arg-type]


def test_cosign2_gets_the_one_current_log_key_or_a_clear_refusal(tmp_path: Path) -> None:
    other = base64.b64encode(b"\x30\x03\x02\x01\x02" * 20).decode()
    retired = {
        "baseUrl": "http://r",
        "publicKey": {
            "rawBytes": other,
            "validFor": {"start": "2020-01-01T00:00:00Z", "end": "2021-01-01T00:00:00Z"},
        },
    }
    rotated = tmp_path / write(
        tmp_path, "rotated.json", {**ROOT, "tlogs": [retired, *ROOT["tlogs"]]}
    )
    env = cosign2_trust_files(rotated, tmp_path / "trust")
    pem = Path(env["SIGSTORE_REKOR_PUBLIC_KEY"]).read_text()
    assert pem.count("BEGIN PUBLIC KEY") == 1
    assert base64.b64decode("".join(pem.splitlines()[1:-1])) == base64.b64decode(DER)
    two = tmp_path / write(tmp_path, "two.json", {**ROOT, "tlogs": ROOT["tlogs"] * 2})
    with pytest.raises(InputError, match="cosign 2 can trust only one"):
        cosign2_trust_files(two, tmp_path / "trust2")


@pytest.mark.parametrize(
    ("given", "needle"),
    [
        ({"rekor_url": "http://r"}, "needs its trusted_root.json"),
        ({"fulcio_url": "ftp://f", "trusted_root": "root.json"}, "not an http(s) URL"),
        ({"trusted_root": "missing.json"}, "cannot read provenance.trusted_root"),
        ({"trusted_root": "garbage.json"}, "is not JSON"),
        ({"trusted_root": "config.json"}, "is not a trusted_root.json"),
        ({"trusted_root": "root.json", "signing_config": "root.json"}, "not a signing_config"),
    ],
)
def test_a_private_instance_that_cannot_work_is_bad_input(
    tmp_path: Path, given: dict[str, object], needle: str
) -> None:
    write(tmp_path, "root.json", ROOT)
    write(tmp_path, "config.json", CONFIG)
    write(tmp_path, "garbage.json", "{not json")
    with pytest.raises(InputError) as caught:
        instance(**settings(**given), cwd=tmp_path)  # type: ignore[arg-type]
    assert needle in caught.value.message
    assert caught.value.hint


def test_empty_values_unset_a_setting(tmp_path: Path) -> None:
    public = instance(**settings(rekor_url="", signing_config=""), cwd=tmp_path)  # type: ignore[arg-type]
    assert not public.private


def test_a_trusted_root_without_a_ct_log_says_so(tmp_path: Path) -> None:
    root = write(tmp_path, "root.json", {**ROOT, "ctlogs": []})
    assert not instance(**settings(trusted_root=root), cwd=tmp_path).ct_log  # type: ignore[arg-type]


def test_cosign2_trust_files_are_pem_files_from_the_trusted_root(tmp_path: Path) -> None:
    root = tmp_path / write(tmp_path, "root.json", ROOT)
    env = cosign2_trust_files(root, tmp_path / "trust")
    assert set(env) == {
        "SIGSTORE_ROOT_FILE",
        "SIGSTORE_CT_LOG_PUBLIC_KEY_FILE",
        "SIGSTORE_REKOR_PUBLIC_KEY",
    }  # (no TSA in this root: no TSA file)
    fulcio = Path(env["SIGSTORE_ROOT_FILE"]).read_text()
    assert fulcio.startswith("-----BEGIN CERTIFICATE-----\n")
    body = "".join(fulcio.splitlines()[1:-1])
    assert base64.b64decode(body) == base64.b64decode(DER)
    assert Path(env["SIGSTORE_REKOR_PUBLIC_KEY"]).read_text().startswith("-----BEGIN PUBLIC KEY")
    assert (tmp_path / "trust").stat().st_mode & 0o777 == 0o700


def test_a_chain_becomes_a_trusted_root_with_the_instance_logs(tmp_path: Path) -> None:
    chain = tmp_path / "chain.pem"
    chain.write_text(f"-----BEGIN CERTIFICATE-----\n{DER}\n-----END CERTIFICATE-----\n" * 2)
    base = tmp_path / write(tmp_path, "root.json", ROOT)
    made = json.loads(chain_trusted_root(chain, base, tmp_path / "out").read_text())
    (ca,) = made["certificateAuthorities"]
    assert [c["rawBytes"] for c in ca["certChain"]["certificates"]] == [DER, DER]
    assert made["tlogs"] == ROOT["tlogs"]  # the log's key stays: the signature was logged
    assert made["ctlogs"] == []  # a CA of your own has no CT log
    (tmp_path / "empty.pem").write_text("nothing here\n")
    with pytest.raises(InputError, match="no PEM certificate"):
        chain_trusted_root(tmp_path / "empty.pem", base, tmp_path / "out")


# --- the environment cosign sees -------------------------------------------------------------


def test_cosign_sees_only_what_the_run_decides() -> None:
    job = {
        "PATH": "/usr/bin",
        "HOME": "/home/ci",
        "LC_ALL": "C.UTF-8",
        "HTTPS_PROXY": "http://p",
        "AWS_REGION": "eu-west-1",
        "VAULT_ADDR": "https://vault",
        "GITLAB_TOKEN": "kms-token",
        "COSIGN_PASSWORD": "pw",
        "COSIGN_KEY": "/other/job.key",
        "COSIGN_NEW_BUNDLE_FORMAT": "true",
        "COSIGN_TLOG_UPLOAD": "false",
        "SIGSTORE_ID_TOKEN": "a-token",
        "SIGSTORE_ROOT_FILE": "/stray/root.pem",
        "TUF_MIRROR": "http://mirror",
        "ACTIONS_ID_TOKEN_REQUEST_URL": "http://runner/token",
        "CI_JOB_TOKEN": "job-token",
        "COSIGN_REPOSITORY": "registry/signatures",
    }
    env = cosign_environment(
        job,
        docker_config="/tmp/provenance-docker-x",
        tuf_root="/tmp/run/tuf",
        trust={"SIGSTORE_REKOR_PUBLIC_KEY": "/tmp/run/trust/rekor.pub"},
        settings={"cosign_repository": None, "cosign_docker_media_types": "1"},
    )
    assert env == {
        "PATH": "/usr/bin",
        "HOME": "/home/ci",
        "LC_ALL": "C.UTF-8",
        "HTTPS_PROXY": "http://p",
        "AWS_REGION": "eu-west-1",
        "VAULT_ADDR": "https://vault",
        "GITLAB_TOKEN": "kms-token",
        "DOCKER_CONFIG": "/tmp/provenance-docker-x",
        "COSIGN_PASSWORD": "pw",
        "COSIGN_YES": "true",
        "TUF_ROOT": "/tmp/run/tuf",
        "SIGSTORE_REKOR_PUBLIC_KEY": "/tmp/run/trust/rekor.pub",
        "COSIGN_REPOSITORY": "registry/signatures",
        "COSIGN_DOCKER_MEDIA_TYPES": "1",
    }
    assert "COSIGN_PASSWORD" not in shown(env)
    assert shown(env)["DOCKER_CONFIG"] == "/tmp/provenance-docker-x"


def test_a_setting_beats_the_users_cosign_variable() -> None:
    env = cosign_environment(
        {"COSIGN_REPOSITORY": "from/env"},
        docker_config=None,
        tuf_root=None,
        trust={},
        settings={"cosign_repository": "from/settings"},
    )
    assert env["COSIGN_REPOSITORY"] == "from/settings"
    assert env["COSIGN_PASSWORD"] == ""  # never a prompt
    assert "TUF_ROOT" not in env and "DOCKER_CONFIG" not in env


# --- ID tokens ----------------------------------------------------------------------------------


def jwt(claims: dict[str, object]) -> str:
    def seg(data: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{seg({'alg': 'RS256'})}.{seg(claims)}.c2ln"


@pytest.mark.parametrize(
    ("claims", "problem"),
    [
        ({"aud": "sigstore", "exp": 2_000_000_000}, None),
        ({"aud": ["x", "sigstore"], "exp": 2_000_000_000}, None),
        ({"aud": "sigstore", "exp": 1_000}, "expired"),
        ({"aud": "gitlab", "exp": 2_000_000_000}, "audience gitlab"),
        ({"exp": 2_000_000_000}, "audience none"),
        ({"aud": "sigstore"}, "no expiry"),
    ],
)
def test_token_problem_reads_audience_and_expiry(
    claims: dict[str, object], problem: str | None
) -> None:
    found = token_problem(jwt(claims), now=time.time())
    assert (found is None) if problem is None else (problem in (found or ""))


# --- Sigstore failures, as the real cosign 2.5 and 3.1 printed them -----------------------------

HOST = "http://127.0.0.1:40437"
LINES = {
    "cosign2-fulcio-503": (
        f"signing digest: getting signer: getting key from Fulcio: retrieving cert: POST "
        f"{HOST}/api/v1/signingCert returned 503 Service Unavailable",
        "transient",
        "Fulcio",
    ),
    "cosign2-rekor-503": (
        f'signing digest: Post "{HOST}/api/v1/log/entries": POST {HOST}/api/v1/log/entries '
        "giving up after 4 attempt(s)",
        "transient",
        "Rekor",
    ),
    "cosign2-fulcio-401": (
        f"getting signer: getting key from Fulcio: retrieving cert: POST {HOST}/api/v1/signingCert"
        " returned 401 Unauthorized",
        "permanent",
        "Fulcio",
    ),
    "cosign3-fulcio-503": (
        "signing digest: signing bundle: error signing bundle: http: read on closed response body",
        "transient",
        "Sigstore (Fulcio, Rekor or the timestamp authority)",
    ),
    "cosign3-rekor-503": (
        f'error signing bundle: Post "{HOST}/api/v1/log/entries": giving up after 2 attempt(s):'
        " status 503",
        "transient",
        "Rekor",
    ),
    "cosign3-fulcio-401": (
        "signing bundle: error signing bundle: Fulcio returned 401: unauthorized",
        "permanent",
        "Fulcio",
    ),
    "cosign3-refused": (
        f'error signing bundle: Post "{HOST}/api/v2/signingCert": dial tcp: connect: connection '
        "refused",
        "transient",
        "Fulcio",
    ),
    "rekor-409": (
        "signing bundle: error signing bundle: [POST /api/v1/log/entries][409] "
        'createLogEntryConflict {"code":409}',
        "transient",
        "Rekor",
    ),
    "rekor-409-then-404": (
        "[GET /api/v1/log/entries/{entryUUID}][404] getLogEntryByUuidNotFound",
        "transient",
        "Rekor",
    ),
}


@pytest.mark.parametrize("case", sorted(LINES))
def test_sigstore_failures_are_classified_and_named(case: str) -> None:
    line, kind, service = LINES[case]
    cause = classify(f"Error: {line}\nerror during command execution: {line}\n", 1)
    assert (cause.kind, cause.service) == (kind, service)


def test_registry_failures_name_no_sigstore_service() -> None:
    line = "GET https://registry.example/v2/app/manifests/sha256-abc.sig: 503 Service Unavailable"
    assert service_of(line) is None
    assert classify(line, 1).service is None


def test_an_env_key_variable_is_passed_on_on_purpose() -> None:
    job = {"PATH": "/bin", "SIGNING_KEY": "-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----"}
    env = cosign_environment(
        job,
        docker_config=None,
        tuf_root=None,
        trust={},
        settings={},
        key_variables=("SIGNING_KEY",),
    )
    assert env["SIGNING_KEY"] == job["SIGNING_KEY"]
    assert "SIGNING_KEY" not in cosign_environment(
        job, docker_config=None, tuf_root=None, trust={}, settings={}
    )
