"""The whole test bed: an engine, a plain registry and a TLS registry with a login, on loopback.

`up()` starts what is missing and writes `state/testbed.json`, so a later `down()` (another process,
for the laptop tasks) stops exactly the processes it started, by PID.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tests.testbed import dockerd, pki, processes, registry
from tests.testbed import sigstore as sigstore_bed

DEFAULT_STATE = Path(os.environ.get("PROVENANCE_TESTBED", "/tmp/provenance-testbed"))
CERTS_D = Path("/etc/docker/certs.d")
# The TLS registry gets a name that is not loopback-looking: buildx and containerd speak plain HTTP
# to "localhost" and 127.0.0.1 whatever the port, which would skip the TLS this registry is for.
SECURE_HOST = "provenance-registry.test"
HOSTS = Path("/etc/hosts")


@dataclass(frozen=True)
class TestBed:
    __test__ = False  # a test bed, not a pytest class
    state: Path
    docker_host: str
    engine: str  # "current", "classic" or "external"
    plain_registry: str  # host:port, HTTP
    secure_registry: str  # host:port, TLS + htpasswd
    username: str
    password: str = field(repr=False)
    ca_file: Path  # the test CA, for --registry-cacert and certs.d
    ca_bundle: Path  # system roots + the test CA, for SSL_CERT_FILE
    services: tuple[processes.Service, ...] = ()
    sigstore_url: str = ""  # our Sigstore (Fulcio, Rekor, TSA), when asked for

    def environ(self) -> dict[str, str]:
        """What a process needs to use the test bed: the engine, trust in the test CA, and the
        settings that point provenance-tasks at our Sigstore when there is one."""
        env = {"DOCKER_HOST": self.docker_host, "SSL_CERT_FILE": str(self.ca_bundle)}
        if self.sigstore_url:
            root = self.state / "sigstore" / "trusted_root.json"
            env.update(
                {
                    "INVOKE_PROVENANCE_FULCIO_URL": self.sigstore_url,
                    "INVOKE_PROVENANCE_REKOR_URL": self.sigstore_url,
                    "INVOKE_PROVENANCE_TRUSTED_ROOT": str(root),
                }
            )
        return env


def up(
    state: Path = DEFAULT_STATE,
    *,
    engine: str | None = None,
    plain_port: int | None = None,
    secure: bool = True,
    sigstore: bool = False,
) -> TestBed:
    """Start the services; engine None reuses one that answers at DOCKER_HOST, else "current"."""
    state.mkdir(parents=True, exist_ok=True)
    started: list[processes.Service] = []
    try:
        existing = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
        if engine is None and dockerd.answers(existing):
            found = dockerd.Engine("external", existing, None)
        else:
            found = dockerd.start(engine or "current", state)
            if found.service:
                started.append(found.service)
        plain = registry.start(state, "plain", port=plain_port)
        started.append(plain.service)
        ca = pki.make_ca(state / "pki", "provenance test bed CA")
        bundle = pki.ca_bundle_with_system(ca, state / "pki" / "bundle.crt")
        username, password = "tester", secrets.token_urlsafe(16)
        secure_address = ""
        if secure:
            server = pki.issue_tls_server_cert(ca, state / "pki", ["localhost", SECURE_HOST])
            port = processes.free_port()
            host = SECURE_HOST if _resolvable(SECURE_HOST) else "127.0.0.1"
            _trust_in_docker(ca.cert, host, port)
            reg = registry.start(
                state,
                "secure",
                port=port,
                tls=(server.cert, server.key),
                login=(username, password),
                ca_file=ca.cert,
            )
            started.append(reg.service)
            secure_address = f"{host}:{port}"
        sigstore_url = ""
        if sigstore:
            running = sigstore_bed.start(state / "sigstore", tsa=True)
            started.append(running.service)
            sigstore_url = running.url
    except BaseException:
        for service in reversed(started):
            processes.stop(service)
        raise
    bed = TestBed(
        state=state,
        docker_host=found.host,
        engine=found.kind,
        plain_registry=plain.address,
        secure_registry=secure_address,
        username=username,
        password=password,
        ca_file=ca.cert,
        ca_bundle=bundle,
        services=tuple(started),
        sigstore_url=sigstore_url,
    )
    _save(bed)
    return bed


def down(bed: TestBed) -> None:
    """Stop the services this test bed started, newest first, by PID."""
    for service in reversed(bed.services):
        processes.stop(service)
    if bed.secure_registry:
        _untrust_in_docker(bed.secure_registry)
    (bed.state / "testbed.json").unlink(missing_ok=True)


def load(state: Path = DEFAULT_STATE) -> TestBed | None:
    """The test bed that `up()` recorded in state, if any."""
    try:
        data = json.loads((state / "testbed.json").read_text())
    except FileNotFoundError:
        return None
    services = tuple(
        processes.Service(s["name"], s["pid"], Path(s["log"])) for s in data.pop("services")
    )
    for key in ("state", "ca_file", "ca_bundle"):
        data[key] = Path(data[key])
    return TestBed(**data, services=services)


def _save(bed: TestBed) -> None:
    data = asdict(bed)
    data["services"] = [{"name": s.name, "pid": s.pid, "log": str(s.log)} for s in bed.services]
    path = bed.state / "testbed.json"
    path.write_text(json.dumps(data, default=str, indent=2))
    path.chmod(0o600)  # it holds the throwaway registry password


def _resolvable(name: str) -> bool:
    """Make `name` resolve to 127.0.0.1 through /etc/hosts (root only); True when it does."""
    try:
        if any(
            name in line.split()[1:]
            for line in HOSTS.read_text().splitlines()
            if not line.lstrip().startswith("#")
        ):
            return True
        with HOSTS.open("a") as hosts:
            hosts.write(f"127.0.0.1 {name}  # provenance-tasks test bed\n")
        return True
    except OSError:
        return False


def _trust_in_docker(ca_cert: Path, host: str, port: int) -> None:
    """dockerd reads per-registry CAs from certs.d (loopback is insecure to it anyway)."""
    folder = CERTS_D / f"{host}:{port}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ca_cert, folder / "ca.crt")
    except PermissionError:
        pass  # not root: docker still treats loopback registries as insecure


def _untrust_in_docker(address: str) -> None:
    shutil.rmtree(CERTS_D / address, ignore_errors=True)
