"""provenance.referrers in a run: `settle()` after cosign's writes (auto, tag, api; dry runs; no
bundles), under the run's retry policy, and preflight's refusal of `api` on a registry without
the API, before anything is pushed.

Against an in-process registry (tests/unit/referrers_registry.py). No registry with the OCI
referrers API runs on this machine: the API path is tested against that fake only.
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import structlog

from provenance_tasks.adapters.registry.failures import TRIES
from provenance_tasks.adapters.registry.traffic import TRAFFIC
from provenance_tasks.errors import CommandFailed, InputError, VerificationError
from provenance_tasks.models import Target
from provenance_tasks.redaction import Redactor
from provenance_tasks.retry import RetryPolicy
from provenance_tasks.settings import resolve
from provenance_tasks.steps.plan import Plan
from provenance_tasks.steps.preflight import preflight
from provenance_tasks.steps.referrers import settle
from provenance_tasks.steps.run import Run, Tools
from provenance_tasks.steps.runlog import RunLog
from tests.unit.referrers_registry import (
    BUNDLE,
    EMPTY,
    NAME,
    Registry,
    State,
    bundle,
    ggcr_index,
    image,
    serving,
)

SIGNED = {"dev.sigstore.bundle.predicateType": "https://sigstore.dev/cosign/sign/v1"}
ATTESTED = {"dev.sigstore.bundle.predicateType": "https://slsa.dev/provenance/v1"}
PROBE = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"  # OCI empty


@pytest.fixture
def server() -> Iterator[str]:
    with serving() as address:
        yield address


def state() -> State:
    return Registry.state


def started(
    tmp_path: Path, *, cosign_major: int = 3, environ: dict[str, str] | None = None, **settings: Any
) -> tuple[Run, Tools, RunLog]:
    """A run with a docker config of its own (no login in it) and retries that wait nothing."""
    config = {"docker_config": str(tmp_path / "docker"), "bundle_format": "new", **settings}
    env = {"HOME": str(tmp_path), **(environ or {})}
    run = Run.start(resolve(config, {}), environ=env, cwd=tmp_path)
    tools = Tools(run)
    folder = {"DOCKER_CONFIG": config["docker_config"]}  # as cosign was probed, in the run's
    tools.__dict__["probed_cosign"] = SimpleNamespace(major=cosign_major, env=folder)
    tools.__dict__["retry_policy"] = RetryPolicy(attempts=3, wait_s=0.0, jitter=lambda: 0.0)
    return run, tools, RunLog({}, "console", None, Redactor([]))


def signed_image(st: State) -> tuple[str, str, list[str]]:
    """An image and one platform, each with a sign and an attest bundle listed "empty" in its
    fallback tag, as cosign 3 leaves them; (image digest, platform digest, their tags)."""
    subjects = [image(st, "index"), image(st, "amd64")]
    tags = []
    for subject in subjects:
        found = [bundle(st, subject, annotations=a) for a in (SIGNED, ATTESTED)]
        tags.append(ggcr_index(st, subject, found))
    return subjects[0]["digest"], subjects[1]["digest"], tags


def events(logs: list[MutableMapping[str, Any]]) -> list[str]:
    return [str(e["event"]) for e in logs]


def test_auto_without_the_api_types_the_image_and_each_platform(
    server: str, tmp_path: Path
) -> None:
    st = state()
    digest, platform, tags = signed_image(st)
    run, tools, log = started(tmp_path)
    with structlog.testing.capture_logs() as logs:
        repairs = settle(run, tools, log, "attest", f"{server}/{NAME}", [digest, platform, digest])

    assert [r.subject for r in repairs] == [digest, platform]  # each digest once
    for tag in tags:
        assert [d["artifactType"] for d in st.json(tag)["manifests"]] == [BUNDLE, BUNDLE]
    assert events(logs) == [
        f"fallback index {tag}: 2 referrers, 2 typed (was empty)" for tag in tags
    ]
    assert log.results.get("referrers") is not None
    assert [(r["step"], r["tag"], r["rewritten"]) for r in log.results["referrers"]] == [
        ("attest", tags[0], True),
        ("attest", tags[1], True),
    ]
    # A second step's call adds to what the report shows; an index already typed is not put.
    settle(run, tools, log, "sign", f"{server}/{NAME}", [digest])
    assert [r["step"] for r in log.results["referrers"]] == ["attest", "attest", "sign"]
    assert len(st.writes()) == 2


def test_auto_where_the_api_answers_writes_nothing(server: str, tmp_path: Path) -> None:
    st = state()
    st.api = True
    digest, platform, _ = signed_image(st)
    run, tools, log = started(tmp_path)
    with structlog.testing.capture_logs() as logs:
        assert settle(run, tools, log, "sign", f"{server}/{NAME}", [digest, platform]) == []
        assert settle(run, tools, log, "attest", f"{server}/{NAME}", [digest, platform]) == []
    assert st.writes() == []
    # Asked once per run and repository, with the first digest
    assert st.seen == [("GET", f"/v2/{NAME}/referrers/{digest}")]
    assert "has the referrers API" in events(logs)[0]
    assert "referrers" not in log.results


def test_tag_lists_the_api_s_referrers_in_the_fallback_index_too(
    server: str, tmp_path: Path
) -> None:
    st = state()
    st.api = True
    subject = image(st)
    signed = bundle(st, subject, annotations=SIGNED)
    run, tools, log = started(tmp_path, referrers="tag")

    (repair,) = settle(run, tools, log, "sign", f"{server}/{NAME}", [subject["digest"]])

    tag = "sha256-" + str(subject["digest"]).removeprefix("sha256:")
    assert st.json(tag)["manifests"] == [{**signed, "artifactType": BUNDLE, "annotations": SIGNED}]
    assert repair.added == (signed["digest"],)


def test_tag_without_the_api_repairs_as_auto_does(server: str, tmp_path: Path) -> None:
    st = state()
    digest, _, tags = signed_image(st)
    run, tools, log = started(tmp_path, referrers="tag")
    (repair,) = settle(run, tools, log, "attest", f"{server}/{NAME}", [digest])
    assert repair.rewritten and st.json(tags[0])["manifests"][0]["artifactType"] == BUNDLE


@pytest.mark.parametrize(
    ("step", "major", "settings"),
    [
        ("sign", 3, {"bundle_format": "classic"}),  # the .sig tag: no referrer
        ("attest", 3, {"bundle_format": "classic"}),  # the .att tag: no referrer
        ("attest", 2, {}),  # cosign 2's .att: no referrer
        ("sign", 3, {"referrers": "api"}),  # preflight made sure the API lists them
    ],
)
def test_nothing_to_settle_asks_the_registry_nothing(
    server: str, tmp_path: Path, step: str, major: int, settings: dict[str, Any]
) -> None:
    st = state()
    digest, _, _ = signed_image(st)
    run, tools, log = started(tmp_path, cosign_major=major, **settings)
    assert settle(run, tools, log, step, f"{server}/{NAME}", [digest]) == []
    assert st.seen == []


def test_bundles_moved_by_cosign_repository_are_repaired_there(server: str, tmp_path: Path) -> None:
    st = state()
    digest, _, tags = signed_image(st)
    run, tools, log = started(tmp_path, cosign_repository=f"{server}/{NAME}")
    (repair,) = settle(run, tools, log, "attest", f"{server}/elsewhere/app", [digest])
    assert repair.rewritten and st.json(tags[0])["manifests"][0]["artifactType"] == BUNDLE


def test_a_dry_run_says_what_it_would_do_and_asks_nothing(server: str, tmp_path: Path) -> None:
    st = state()
    digest, platform, tags = signed_image(st)
    run, tools, log = started(tmp_path, dry_run=True)
    with structlog.testing.capture_logs() as logs:
        assert settle(run, tools, log, "attest", f"{server}/{NAME}", [digest, platform]) == []
    assert st.seen == []
    said = events(logs)
    assert len(said) == 2 and all(e.startswith("dry-run: would type") for e in said)
    assert tags[0] in said[0] and tags[1] in said[1]


def test_a_503_during_the_repair_is_retried(server: str, tmp_path: Path) -> None:
    st = state()
    digest, _, tags = signed_image(st)
    st.fail["PUT manifests"] = [503]
    run, tools, log = started(tmp_path)
    meter = TRAFFIC.meter()
    with structlog.testing.capture_logs() as logs:
        (repair,) = settle(run, tools, log, "attest", f"{server}/{NAME}", [digest])
    meter.close()
    assert repair.rewritten and st.json(tags[0])["manifests"][0]["artifactType"] == BUNDLE
    # Tried again at once within the call (counted for the report), not by the run's policy.
    assert meter.read()["retried"] == 1
    assert not any("attempt 1 failed" in e for e in events(logs))
    # Past what one call tries again, the run's policy takes over and says so.
    st.fail["PUT manifests"] = [503] * (TRIES + 1)
    signed_image(st)
    with structlog.testing.capture_logs() as logs:
        settle(run, tools, log, "attest", f"{server}/{NAME}", [digest])
    assert any("attempt 1 failed (5xx)" in e for e in events(logs))


def test_a_registry_that_keeps_failing_ends_the_run_as_a_registry_failure(
    server: str, tmp_path: Path
) -> None:
    st = state()
    digest, _, tags = signed_image(st)
    st.fail["PUT manifests"] = [503] * 100
    run, tools, log = started(tmp_path)
    with pytest.raises(CommandFailed) as caught:
        settle(run, tools, log, "attest", f"{server}/{NAME}", [digest])
    assert not isinstance(caught.value, VerificationError)
    assert caught.value.exit_code == 4
    assert "failed after 3 attempts" in caught.value.message
    assert st.json(tags[0])["manifests"][0]["artifactType"] == EMPTY  # nothing half-written


def test_a_credential_helpers_login_leaves_the_referrers_as_cosign_listed_them(
    server: str, tmp_path: Path
) -> None:
    """No tool reads or writes referrers for this run: the registry client says the call is
    unserved, and the step says so once, asks nothing, and goes on."""
    st = state()
    digest, platform, tags = signed_image(st)
    run, tools, log = started(tmp_path)
    (tmp_path / "docker").mkdir()
    (tmp_path / "docker" / "config.json").write_text('{"credsStore": "desktop"}')
    with structlog.testing.capture_logs() as logs:
        assert settle(run, tools, log, "attest", f"{server}/{NAME}", [digest, platform]) == []
    assert st.seen == [] and st.json(tags[0])["manifests"][0]["artifactType"] == EMPTY
    (warning,) = [e for e in logs if e["log_level"] == "warning"]
    assert "left as cosign listed them" in warning["event"] and server in warning["event"]


def test_the_probe_cannot_tell_where_a_credential_helper_holds_the_login(
    server: str, tmp_path: Path
) -> None:
    run, tools, log = started(tmp_path, referrers="api")
    (tmp_path / "docker").mkdir()
    (tmp_path / "docker" / "config.json").write_text('{"credsStore": "desktop"}')
    preflight(run, tools, log, planned(server))  # can't be told: no refusal
    assert state().seen == []


# --- preflight: provenance.referrers api ----------------------------------------------------


def planned(server: str) -> Plan:
    steps = ("build", "push", "sign", "attest", "verify", "verify-attestation", "publish")
    return Plan(steps, Target(f"{server}/{NAME}", ("v1",)))


def test_api_on_a_registry_without_it_is_refused_before_anything_is_pushed(
    server: str, tmp_path: Path
) -> None:
    run, tools, log = started(tmp_path, referrers="api")
    with pytest.raises(InputError) as caught:
        preflight(run, tools, log, planned(server))
    assert caught.value.exit_code == 2
    assert "provenance.referrers api" in caught.value.message
    assert "no OCI referrers API" in caught.value.message
    assert caught.value.hint is not None and "auto" in caught.value.hint
    assert state().seen == [("GET", f"/v2/{NAME}/referrers/{PROBE}")]  # one probe, no write


def test_the_probe_logs_in_with_the_run_s_credentials_before_the_login_step(
    server: str, tmp_path: Path
) -> None:
    """Preflight runs beside the login: the probe has the login's credentials in a config of
    its own, in the run's private folder."""
    st = state()
    st.login = True
    run, tools, log = started(
        tmp_path,
        referrers="api",
        registry=server,
        username="user",
        password_env="REGISTRY_PW",
        environ={"REGISTRY_PW": "s3cret"},
    )
    with pytest.raises(InputError, match="no OCI referrers API"):
        preflight(run, tools, log, planned(server))
    assert st.seen == [("GET", f"/v2/{NAME}/referrers/{PROBE}")] * 2  # 401, then with the login
    config = tools.private_folder() / "referrers-probe" / "config.json"
    assert oct(config.stat().st_mode & 0o777) == "0o600"
    tools.close()
    assert not config.exists()


def test_api_on_a_registry_with_it_passes_preflight(server: str, tmp_path: Path) -> None:
    state().api = True
    run, tools, log = started(tmp_path, referrers="api")
    preflight(run, tools, log, planned(server))
    assert len(state().seen) == 1


@pytest.mark.parametrize(
    ("major", "settings", "asked"),
    [
        # cosign 2 writes no bundle; its major is known only once the probes are back
        (2, {"referrers": "api"}, True),
        (3, {"referrers": "api", "bundle_format": "classic"}, False),  # .sig and .att tags
        (3, {"referrers": "auto"}, False),  # auto asks after cosign, not before
    ],
)
def test_preflight_refuses_only_a_run_that_writes_bundles(
    server: str, tmp_path: Path, major: int, settings: dict[str, Any], asked: bool
) -> None:
    run, tools, log = started(tmp_path, cosign_major=major, **settings)
    preflight(run, tools, log, planned(server))  # no refusal
    assert any("referrers" in path for _, path in state().seen) == asked


def test_a_line_a_later_writer_dropped_from_the_index_is_listed_again(
    server: str, tmp_path: Path
) -> None:
    """cosign's attest reads the fallback index to add its bundle; a read that failed under
    registry faults makes it write an index of its bundle alone. The signature's bundle, which
    this run's earlier repair saw listed, is put back (its manifest is still there)."""
    st = state()
    subject = image(st, "index")
    signature = bundle(st, subject, annotations=SIGNED)
    tag = ggcr_index(st, subject, [signature])
    run, tools, log = started(tmp_path)
    settle(run, tools, log, "sign", f"{server}/{NAME}", [subject["digest"]])
    attestation = bundle(st, subject, annotations=ATTESTED)
    ggcr_index(st, subject, [attestation])  # the attest's index: the signature's line is gone
    with structlog.testing.capture_logs() as logs:
        settle(run, tools, log, "attest", f"{server}/{NAME}", [subject["digest"]])
    listed = {d["digest"]: d["artifactType"] for d in st.json(tag)["manifests"]}
    assert listed == {signature["digest"]: BUNDLE, attestation["digest"]: BUNDLE}
    assert "1 listed again" in events(logs)[-1]
