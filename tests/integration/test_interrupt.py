"""^C and SIGTERM in the middle of a build: the run ends its tools at once, removes its private
folders, pushes and tags nothing, and exits 130 (143) with one line that says so.

The signal goes to the Python process alone, not its group, as `kill -INT PID` sends it: a
terminal's ^C reaches the tools too, but a wrapper or a CI runner may signal the parent only.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration import pipelines
from tests.integration.conftest import COSIGNS, Registry, Runner, make_context, make_key_pair

pytestmark = pytest.mark.integration


def descendants(pid: int) -> dict[int, str]:
    """Every process below `pid`, by PID, with its command line, from /proc."""
    found: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_text().replace("\0", " ").strip()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found[int(entry.name)] = cmdline
            found.update(descendants(int(entry.name)))
    return found


def alive(pid: int) -> bool:
    """Running, not a zombie waiting to be reaped."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_during_a_long_build_ends_it_now_and_leaves_nothing(
    runner: Runner, registry: Registry, tmp_path: Path, signum: signal.Signals
) -> None:
    context = make_context(tmp_path / "ctx")
    busybox = '["/bin/busybox", "sleep", "40"]'  # FROM scratch: busybox is the only program
    dockerfile = context / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text() + f"RUN {busybox}\n")
    cosign = str(COSIGNS["cosign3"])
    key, _ = make_key_pair(cosign, tmp_path / "keys" / "cosign", "pw-int")
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = {**pipelines.gitlab_key_mode(runner.testbed, cosign, "pw-int"), "TMPDIR": str(temp)}
    argv = [sys.executable, "-m", "provenance_tasks.cli", "build-sign-verify"]
    process = subprocess.Popen(
        [*argv, "--context", str(context), "--key", str(key)],
        cwd=runner.cwd,
        env=runner.env(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not any("buildx" in c for c in descendants(process.pid).values()):  # the build runs
        assert time.monotonic() < deadline and process.poll() is None, process.stderr
        time.sleep(0.1)
    time.sleep(2)  # well inside the 40-second RUN
    started = descendants(process.pid)
    sent = time.monotonic()
    os.kill(process.pid, signum)
    _, stderr = process.communicate(timeout=60)
    took = time.monotonic() - sent
    assert process.returncode == 128 + signum, stderr[-2000:]
    assert took < 20, f"{took:.1f}s: the build was waited for"  # loosely: not the 40 s RUN
    assert "provenance-tasks: interrupted" in stderr and "Traceback" not in stderr
    left = [command for pid, command in started.items() if alive(pid)]
    assert not left, left  # buildx (and whatever else ran) ended, not orphaned
    assert not [p.name for p in temp.iterdir() if p.name.startswith("provenance-")]
    assert registry.holds_nothing(env["CI_REGISTRY_IMAGE"])


def test_sigint_while_cosign_signs_ends_cosign_too(runner: Runner, tmp_path: Path) -> None:
    """The main thread waits on cosign itself here (Fulcio answers in 40 s): the signal reaches
    that wait, and cosign is killed before the run removes the token folder it reads."""
    from tests.integration.test_sigstore_faults import keyless, through
    from tests.testbed.faultproxy import FaultProxy, Faults

    upstream = runner.sigstore.url.removeprefix("http://")
    with FaultProxy(upstream=upstream) as proxy:
        slow = Faults(rate=1.0, kinds={"slow": 1}, slow_seconds=40, only=r"signingCert")
        proxy.set_faults(slow)
        temp = tmp_path / "tmp"
        temp.mkdir()
        extra = {"TMPDIR": str(temp), **through(proxy)}
        env = runner.env(keyless(runner, str(COSIGNS["cosign3"]), **extra))
        context = make_context(tmp_path / "ctx")
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "provenance_tasks.cli",
                "build-sign-verify",
                "--context",
                str(context),
            ],
            cwd=runner.cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 90
        while not any(" sign " in c for c in descendants(process.pid).values()):
            assert time.monotonic() < deadline and process.poll() is None, process.stderr
            time.sleep(0.1)
        time.sleep(1)
        started = descendants(process.pid)
        os.kill(process.pid, signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr[-2000:]
    left = [command for pid, command in started.items() if alive(pid)]
    assert not left, left
    assert "provenance-tasks: interrupted (SIGINT)" in stderr and "Traceback" not in stderr
    assert not [p.name for p in temp.iterdir() if p.name.startswith("provenance-")]
