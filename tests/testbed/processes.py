"""Start a service in the background, wait until it answers, stop it by its PID."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path


class ServiceError(RuntimeError):
    """A service of the test bed did not start or stop."""


@dataclass(frozen=True)
class Service:
    name: str
    pid: int
    log: Path

    def alive(self) -> bool:
        return pid_alive(self.pid)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours is not alive: reap it if it is one.
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True
    return done == 0


def start(
    name: str,
    argv: Sequence[str],
    *,
    log: Path,
    ready: Callable[[], bool],
    env: Mapping[str, str] | None = None,
    timeout: float = 60.0,
) -> Service:
    """Start argv detached from our terminal, logging to `log`, and wait until `ready()`."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        process = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            start_new_session=True,  # a Ctrl-C in the test run must not reach the service first
        )
    service = Service(name, process.pid, log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServiceError(
                f"{name} exited at start ({process.returncode}); log: {log}\n{tail(log)}"
            )
        if ready():
            return service
        time.sleep(0.2)
    stop(service)
    raise ServiceError(f"{name} did not answer within {timeout:.0f}s; log: {log}\n{tail(log)}")


def stop(service: Service, *, timeout: float = 30.0) -> None:
    """SIGTERM the service by PID, then SIGKILL what is left after `timeout` seconds."""
    if not service.alive():
        return
    os.kill(service.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not service.alive():
            return
        time.sleep(0.2)
    os.kill(service.pid, signal.SIGKILL)


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def port_open(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def free_port() -> int:
    """A port free on loopback now (the service binds it a moment later; good enough for tests)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
