"""The fault proxy against real traffic: it must be invisible at rate 0 (same digests as the direct
registry, for buildx, containerd and crane) and fail exactly as configured otherwise, or the retry
tests that stand on it would prove nothing.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import TOOLS, make_context, tool_path
from tests.testbed.bed import TestBed
from tests.testbed.faultproxy import FaultProxy, Faults

pytestmark = pytest.mark.integration

CRANE = str(TOOLS / "bin" / "crane")
ACCEPT = ", ".join(
    [
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]
)


@pytest.fixture
def proxy(testbed: TestBed) -> Iterator[FaultProxy]:
    with FaultProxy(upstream=testbed.plain_registry) as running:
        yield running


def repo() -> str:
    return f"fixture-fp-{uuid.uuid4().hex[:8]}"


def env(testbed: TestBed, config: Path) -> dict[str, str]:
    # An empty DOCKER_CONFIG: no credential helper or stored login may change what crane sends.
    return {**os.environ, **testbed.environ(), "PATH": tool_path(), "DOCKER_CONFIG": str(config)}


def crane(
    testbed: TestBed, tmp_path: Path, *args: str, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CRANE, *args],
        env=env(testbed, tmp_path),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def request(
    proxy: FaultProxy, method: str, path: str, body: bytes | None = None
) -> tuple[http.client.HTTPResponse, bytes]:
    connection = http.client.HTTPConnection(proxy.address, timeout=10)
    connection.request(method, path, body=body)
    response = connection.getresponse()
    data = response.read()
    connection.close()
    return response, data


def test_rate_zero_is_invisible_to_buildx_and_crane(
    testbed: TestBed, proxy: FaultProxy, tmp_path: Path
) -> None:
    name = repo()
    context = make_context(tmp_path / "ctx")
    pushed = subprocess.run(
        ["docker", "buildx", "build", "--push", "--tag", f"{proxy.address}/{name}:v1", context],
        env=env(testbed, tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert pushed.returncode == 0, pushed.stderr
    through = crane(testbed, tmp_path, "digest", f"{proxy.address}/{name}:v1")
    direct = crane(testbed, tmp_path, "digest", f"{testbed.plain_registry}/{name}:v1")
    assert through.returncode == 0, through.stderr
    assert through.stdout.strip() == direct.stdout.strip()
    assert through.stdout.startswith("sha256:")

    stats = proxy.stats()
    assert stats.faults == {}
    assert stats.seen == stats.forwarded > 0
    assert any(e.method == "PUT" and "/manifests/" in e.path for e in stats.log)
    # HEAD answers carry the blob's length but no body, and the connection stays usable.
    manifest = json.loads(crane(testbed, tmp_path, "manifest", f"{proxy.address}/{name}:v1").stdout)
    connection = http.client.HTTPConnection(proxy.address, timeout=10)
    for _ in range(2):
        connection.request("HEAD", f"/v2/{name}/manifests/v1", headers={"Accept": ACCEPT})
        head = connection.getresponse()
        assert head.status == 200
        assert head.read() == b""
        assert int(head.headers["Content-Length"]) > 0
    connection.close()
    assert manifest["schemaVersion"] == 2


def test_an_outage_mid_push_is_ridden_out_by_buildkits_own_retries(
    testbed: TestBed, proxy: FaultProxy, tmp_path: Path
) -> None:
    # buildkit retries a failed push after 1 s, 2 s and 4 s: a 1.5 s outage is survivable, and
    # the log shows it began exactly at the first manifest upload.
    proxy.outage(1.5, start_after=r"^PUT .*/manifests/")
    name = repo()
    context = make_context(tmp_path / "ctx")
    pushed = subprocess.run(
        ["docker", "buildx", "build", "--push", "--tag", f"{proxy.address}/{name}:v1", context],
        env=env(testbed, tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert pushed.returncode == 0, pushed.stderr
    log = proxy.stats().log
    first = next(i for i, e in enumerate(log) if e.outcome == "outage")
    assert log[first].method == "PUT" and "/manifests/" in log[first].path
    assert all(e.outcome == "forwarded" for e in log[:first])
    assert any(e.method == "PUT" and e.status == 201 for e in log[first:])
    direct = crane(testbed, tmp_path, "digest", f"{testbed.plain_registry}/{name}:v1")
    assert direct.returncode == 0, direct.stderr


def test_always_503_fails_crane_and_counts_the_faults(
    testbed: TestBed, proxy: FaultProxy, tmp_path: Path
) -> None:
    proxy.always("503")
    done = crane(testbed, tmp_path, "digest", f"{proxy.address}/{repo()}:v1")
    assert done.returncode != 0
    assert "503" in done.stderr or "UNAVAILABLE" in done.stderr, done.stderr
    stats = proxy.stats()
    assert stats.forwarded == 0
    assert stats.faults["503"] == stats.seen >= 1
    assert {e.status for e in stats.log} == {503}

    proxy.always(None)
    response, _ = request(proxy, "GET", "/v2/")
    assert response.status == 200


def test_error_answers_look_like_a_registry(proxy: FaultProxy) -> None:
    proxy.always("429")
    response, body = request(proxy, "GET", "/v2/")
    assert response.status == 429
    assert response.headers["Retry-After"] == "1"
    assert json.loads(body)["errors"][0]["code"] == "TOOMANYREQUESTS"

    proxy.always("503")
    response, body = request(proxy, "PUT", "/v2/x/manifests/v1", body=b"{}")
    assert response.status == 503
    assert response.headers["Content-Type"].startswith("application/json")
    assert json.loads(body) == {
        "errors": [{"code": "UNAVAILABLE", "message": "service unavailable"}]
    }

    proxy.always("401")
    response, body = request(proxy, "GET", "/v2/")
    assert response.status == 401
    assert response.headers["WWW-Authenticate"] == 'Basic realm="fault-proxy"'
    assert json.loads(body)["errors"][0]["code"] == "UNAUTHORIZED"

    proxy.always("403")
    response, body = request(proxy, "GET", "/v2/")
    assert response.status == 403
    assert json.loads(body)["errors"][0] == {
        "code": "DENIED",
        "message": "requested access to the resource is denied",
    }

    proxy.always("400-name-invalid", only=r"^PUT ")
    response, body = request(proxy, "PUT", "/v2/x/manifests/v1", body=b"{}")
    assert response.status == 400
    assert json.loads(body)["errors"][0]["code"] == "NAME_INVALID"
    response, _ = request(proxy, "GET", "/v2/")  # not matched by `only`
    assert response.status == 200


def test_drop_closes_the_connection_after_reading_the_request(proxy: FaultProxy) -> None:
    proxy.always("drop")
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as client:
        client.sendall(
            b"PUT /v2/x/blobs/uploads/1 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
        )
        assert client.recv(1024) == b""  # EOF without a status line
    stats = proxy.stats()
    assert stats.faults == {"drop": 1}
    assert stats.log[0].outcome == "drop"
    assert stats.log[0].status is None


def test_reset_resets_the_connection(proxy: FaultProxy) -> None:
    proxy.always("reset")
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as client:
        client.sendall(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n")
        with pytest.raises(ConnectionResetError):
            client.recv(1024)
    assert proxy.stats().faults == {"reset": 1}


def test_slow_answers_late_but_right(proxy: FaultProxy) -> None:
    proxy.set_faults(Faults(rate=1.0, kinds={"slow": 1}, slow_seconds=0.6))
    started = time.monotonic()
    response, _ = request(proxy, "GET", "/v2/")
    assert response.status == 200
    assert time.monotonic() - started >= 0.6
    assert proxy.stats().forwarded == 1


def test_random_faults_follow_rate_seed_and_only(proxy: FaultProxy) -> None:
    def outcomes() -> list[str]:
        proxy.reset_stats()
        for _ in range(40):
            request(proxy, "GET", "/v2/")
        request(proxy, "GET", "/v2/_catalog")
        return [e.outcome for e in proxy.stats().log]

    proxy.set_faults(Faults(rate=0.5, kinds={"503": 1, "429": 1}, seed=7, only=r"^GET /v2/$"))
    first = outcomes()
    assert first[-1] == "forwarded"  # _catalog is outside `only`
    assert {"503", "429", "forwarded"} == set(first[:-1])
    assert 8 <= first.count("forwarded") <= 32
    proxy.set_faults(Faults(rate=0.5, kinds={"503": 1, "429": 1}, seed=7, only=r"^GET /v2/$"))
    assert outcomes() == first  # the same seed, the same faults
    with pytest.raises(ValueError, match="unknown fault kinds"):
        Faults(rate=0.1, kinds={"418": 1})


def test_outage_starts_at_the_matching_request_and_ends(proxy: FaultProxy) -> None:
    proxy.outage(1.5, start_after=r"^GET .*/tags/list$")
    assert request(proxy, "GET", "/v2/")[0].status == 200
    started = time.monotonic()
    assert request(proxy, "GET", "/v2/fixture-none/tags/list")[0].status == 503
    assert request(proxy, "GET", "/v2/")[0].status == 503
    time.sleep(max(0.0, 1.6 - (time.monotonic() - started)))
    assert request(proxy, "GET", "/v2/")[0].status == 200
    outcomes = [(e.path, e.outcome) for e in proxy.stats().log]
    assert outcomes == [
        ("/v2/", "forwarded"),
        ("/v2/fixture-none/tags/list", "outage"),
        ("/v2/", "outage"),
        ("/v2/", "forwarded"),
    ]


def test_chunked_blob_upload_is_forwarded(testbed: TestBed, proxy: FaultProxy) -> None:
    name = repo()
    blob = os.urandom(300_000)
    digest = "sha256:" + hashlib.sha256(blob).hexdigest()
    connection = http.client.HTTPConnection(proxy.address, timeout=30)
    connection.request("POST", f"/v2/{name}/blobs/uploads/", headers={"Content-Length": "0"})
    started = connection.getresponse()
    started.read()
    assert started.status == 202
    location = started.headers["Location"]
    # Host went through unchanged, so the registry sends the client back to the proxy.
    assert location.startswith(f"http://{proxy.address}/")

    pieces = (blob[i : i + 70_000] for i in range(0, len(blob), 70_000))
    connection.request(
        "PATCH",
        location,
        body=pieces,
        headers={"Content-Type": "application/octet-stream"},
        encode_chunked=True,
    )
    patched = connection.getresponse()
    patched.read()
    assert patched.status == 202, patched.status
    assert patched.headers["Range"] == f"0-{len(blob) - 1}"

    location = patched.headers["Location"]
    separator = "&" if "?" in location else "?"
    connection.request("PUT", f"{location}{separator}digest={digest}", body=b"")
    put = connection.getresponse()
    put.read()
    assert put.status == 201, put.status
    connection.close()

    direct = http.client.HTTPConnection(testbed.plain_registry, timeout=30)
    direct.request("GET", f"/v2/{name}/blobs/{digest}")
    assert direct.getresponse().read() == blob
    direct.close()
    assert request(proxy, "GET", f"/v2/{name}/blobs/{digest}")[1] == blob


def test_standalone_prints_its_port_and_serves(testbed: TestBed) -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.testbed.faultproxy",
            "--upstream",
            testbed.plain_registry,
            "--always",
            "429",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).parents[2],  # tests.testbed lives in the repository, not the package
    )
    try:
        assert process.stdout is not None
        port = process.stdout.readline().strip()
        assert re.fullmatch(r"\d+", port), port
        connection = http.client.HTTPConnection(f"127.0.0.1:{port}", timeout=10)
        connection.request("GET", "/v2/")
        assert connection.getresponse().status == 429
        connection.close()
    finally:
        process.terminate()
        _, err = process.communicate(timeout=10)
    assert process.returncode == 0, err
    assert "faults {'429': 1}" in err
