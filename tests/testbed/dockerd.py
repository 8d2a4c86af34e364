"""A Docker engine for tests and laptops: reuse one that answers, or start our own.

Two kinds, both real: "classic" is bookworm's dockerd 20.10 with its graph drivers (buildx pushes a
single manifest), "current" is sid's dockerd 28 + containerd 2 unpacked by ci/install-tools, run
with the containerd image store as Docker 29 and GitLab's docker:dind do (buildx pushes an OCI index
with attestation manifests). Only one of ours runs at a time: both use the docker0 bridge.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.testbed import processes

TOOLS = Path(os.environ.get("PROVENANCE_TOOLS", "/opt/provenance-tools"))
ENGINES = ("current", "classic")


@dataclass(frozen=True)
class Engine:
    kind: str  # "current", "classic" or "external" (one we found answering)
    host: str  # DOCKER_HOST value
    service: processes.Service | None  # None when we did not start it


def answers(host: str) -> bool:
    """True when a Docker engine answers at host (a `docker version` round trip)."""
    result = subprocess.run(
        ["docker", "--host", host, "version", "--format", "{{.Server.Version}}"],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    return result.returncode == 0 and bool(result.stdout.strip())


def start(kind: str, state: Path, *, name: str | None = None, bridge: bool = True) -> Engine:
    """Start our own dockerd of `kind` with all its state under `state` (in `docker-NAME`).

    `bridge=False`: a second engine beside the first, as a remote builder stands in, on a
    bridge of its own (REMOTE_BRIDGE, made here): two engines can't share docker0, and dockerd
    with `--bridge none` deletes docker0 when it starts, breaking the first engine's builds."""
    if kind not in ENGINES:
        raise processes.ServiceError(f"unknown engine {kind!r}: choose one of {', '.join(ENGINES)}")
    root = state / f"docker-{name or kind}"
    root.mkdir(parents=True, exist_ok=True)
    socket = root / "docker.sock"
    host = f"unix://{socket}"
    config = root / "daemon.json"
    settings: dict[str, object] = {}
    env = dict(os.environ)
    if kind == "current":
        bin_dir = TOOLS / "engine-current" / "bin"
        if not (bin_dir / "dockerd").exists():
            raise processes.ServiceError(
                f"the current engine is not installed in {bin_dir}: "
                "run ci/install-tools --engine current"
            )
        env["PATH"] = f"{bin_dir}:{env.get('PATH', '')}"
        settings["features"] = {"containerd-snapshotter": True}
        dockerd = str(bin_dir / "dockerd")
    else:
        found = shutil.which("dockerd", path="/usr/sbin:/usr/bin")
        if not found:
            raise processes.ServiceError("bookworm's dockerd is missing: run ci/install-tools")
        dockerd = found
    config.write_text(json.dumps(settings))
    argv = [
        dockerd,
        "--config-file",
        str(config),
        "--data-root",
        str(root / "data"),
        "--exec-root",
        str(root / "exec"),
        "--pidfile",
        str(root / "dockerd.pid"),
        "--host",
        host,
    ]
    if not bridge:
        _make_bridge(REMOTE_BRIDGE, REMOTE_NETWORK)
        argv += ["--bridge", REMOTE_BRIDGE, "--iptables=false", "--ip6tables=false"]
    service = processes.start(
        f"dockerd ({name or kind})",
        argv,
        log=root / "dockerd.log",
        env=env,
        ready=lambda: socket.exists() and answers(host),
    )
    return Engine(kind, host, service)


def stop(engine: Engine) -> None:
    if engine.service is not None:
        processes.stop(engine.service)
    if engine.service is not None and "remote" in engine.service.name:
        subprocess.run(["ip", "link", "delete", REMOTE_BRIDGE], capture_output=True, check=False)


REMOTE_BRIDGE, REMOTE_NETWORK = "pt-remote0", "172.31.250.1/24"


def _make_bridge(name: str, address: str) -> None:
    """A bridge for a second engine, made once (ip, as root): its own, not docker0."""
    if subprocess.run(["ip", "link", "show", name], capture_output=True).returncode == 0:
        return
    for argv in (
        ["ip", "link", "add", "name", name, "type", "bridge"],
        ["ip", "addr", "add", address, "dev", name],
        ["ip", "link", "set", name, "up"],
    ):
        subprocess.run(argv, capture_output=True, check=True)
