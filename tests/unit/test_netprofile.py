"""The network profiles checked into bench/profiles.toml, and how the shaper routes and accounts."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.testbed.netprofile import Link, Shaper, load


def test_the_cloud_profile_is_the_one_step_14_names() -> None:
    cloud = load("cloud")
    assert cloud.registry == Link(rtt=0.04, up_bits=200_000_000)
    assert cloud.sigstore == Link(rtt=0.04, fulcio=0.3, rekor_write=1.5, tsa=0.2)
    assert load("far").sigstore.rekor_write == 4.0
    assert load("lan").registry == Link(rtt=0.002)


def test_an_unknown_profile_or_field_is_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="choose from lan, cloud, far"):
        load("moon")
    bad = tmp_path / "profiles.toml"
    bad.write_text("[x]\nregistry = { rtt = 2 }\n")
    with pytest.raises(ValueError, match=r"unknown fields \['rtt'\]"):
        load("x", bad)


@pytest.mark.parametrize(
    ("line", "service"),
    [
        ("POST /api/v2/signingCert", "fulcio"),
        ("POST /api/v1/signingCert", "fulcio"),
        ("POST /api/v1/log/entries", "rekor-write"),
        ("POST /api/v1/log/entries/retrieve", "rekor"),
        ("GET /api/v1/log/entries/abc", "rekor"),
        ("POST /api/v1/index/retrieve", "rekor"),
        ("POST /api/v1/timestamp", "tsa"),
        ("GET /api/v1/log/publicKey", "rekor"),
        ("GET /", "probe"),
        ("GET /healthz", "other"),
    ],
)
def test_sigstore_requests_are_routed_by_path(line: str, service: str) -> None:
    method, path = line.split(" ", 1)
    assert Shaper(Link(), sigstore=True).route(method, path) == service
    assert Shaper(Link()).route(method, path) == "registry"


def test_a_request_costs_its_round_trips_and_its_service_work() -> None:
    shaper = Shaper(Link(rtt=0.1, rekor_write=1.5), sigstore=True)
    assert shaper.before("POST", "/api/v1/log/entries", new_connection=True) == (
        "rekor-write",
        pytest.approx(1.8),  # three round trips (TCP, TLS, the request) and the write
    )
    assert shaper.before("GET", "/api/v1/log/entries/x", new_connection=False)[1] == 0.1
    seen = shaper.stats()
    assert (seen["rekor-write"].requests, seen["rekor-write"].connections) == (1, 1)
    assert seen["rekor"].delay == pytest.approx(0.1)


def test_uploads_share_one_link_and_every_byte_is_counted() -> None:
    shaper = Shaper(Link(up_bits=8_000_000))  # 1 MB/s
    first = shaper.pace("registry", 500_000)
    second = shaper.pace("registry", 500_000)  # queued behind the first on the same link
    assert first == pytest.approx(0.5, abs=0.05)
    assert second == pytest.approx(1.0, abs=0.05)
    seen = shaper.stats()["registry"]
    assert (seen.up_bytes, seen.paced) == (1_000_000, pytest.approx(1.0))
    unlimited = Shaper(Link())
    assert unlimited.pace("registry", 10**9) == 0.0
    assert unlimited.stats()["registry"].up_bytes == 10**9
