"""Measuring one side of a pair: wall time and peak RSS of a run, and the tool processes it
started, counted by logging shims put first on PATH (in separate runs, so timings carry none)."""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from provenance_tasks.adapters.docker import find_buildx

TOOLS = Path(os.environ.get("PROVENANCE_TOOLS", "/opt/provenance-tools"))
COUNTED = ("docker", "cosign", "crane", "git")


@dataclass
class Sample:
    seconds: float
    max_rss_kb: int


@dataclass
class Case:
    name: str
    ours: list[Sample] = field(default_factory=list)
    shell: list[Sample] = field(default_factory=list)
    floor: list[Sample] = field(default_factory=list)  # the tool calls alone, where there is one
    processes: dict[str, dict[str, int]] = field(default_factory=dict)
    requests: dict[str, dict[str, int]] = field(default_factory=dict)  # per side, per service

    def summary(self) -> dict[str, object]:
        def stats(samples: list[Sample]) -> dict[str, float]:
            times = [s.seconds for s in samples]
            return {
                "median_s": round(statistics.median(times), 3),
                "min_s": round(min(times), 3),
                "max_s": round(max(times), 3),
                "peak_rss_mb": round(max(s.max_rss_kb for s in samples) / 1024, 1),
            }

        ours, shell = stats(self.ours), stats(self.shell)
        # Each pair ran back to back: its ratio is free of the machine's drift over the case
        # (a cold case's shell job here took 1.8 s early and 2.4 s late in the same run).
        pairs = [o.seconds / s.seconds for o, s in zip(self.ours, self.shell, strict=True)]
        summary: dict[str, object] = {
            "case": self.name,
            "ours": ours,
            "shell": shell,
            "ratio": round(ours["median_s"] / shell["median_s"], 2),
            "paired_ratio": round(statistics.median(pairs), 2),
            "processes": self.processes,
            "requests": self.requests,
        }
        if self.floor:
            to_floor = [o.seconds / f.seconds for o, f in zip(self.ours, self.floor, strict=True)]
            summary["floor"] = stats(self.floor)
            summary["floor_paired_ratio"] = round(statistics.median(to_floor), 2)
        return summary


def timed(argv: Sequence[str], env: dict[str, str], cwd: Path | None = None) -> Sample:
    """Wall time and the child's peak RSS (wait4), failing loudly on a non-zero exit."""
    started = time.perf_counter()
    with tempfile.TemporaryFile() as out:
        process = subprocess.Popen(list(argv), env=env, cwd=cwd, stdout=out, stderr=out)
        # wait4, not wait: its rusage is this child's own, peak RSS included.
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
        if os.waitstatus_to_exitcode(status) != 0:
            out.seek(0)
            tail = out.read().decode(errors="replace")[-3000:]
            raise SystemExit(f"bench: {' '.join(argv[:3])} failed ({status}):\n{tail}")
    return Sample(seconds, usage.ru_maxrss)


def shims(folder: Path, log: Path) -> Path:
    """Wrappers that log each tool process, then exec the real tool found further on PATH."""
    folder.mkdir(parents=True, exist_ok=True)
    path = os.environ["PATH"]
    for tool in COUNTED:
        real = shutil.which(tool, path=f"{TOOLS / 'bin'}:/usr/local/lib/docker/cli-plugins:{path}")
        if not real:
            continue
        shim = folder / tool
        shim.write_text(f'#!/bin/sh\necho "{tool} $*" >> "{log}"\nexec "{real}" "$@"\n')
        shim.chmod(0o755)
    # provenance-tasks runs the buildx plugin itself, found first in the user's config folder.
    users = folder / "users-docker"
    (users / "cli-plugins").mkdir(parents=True, exist_ok=True)
    real = find_buildx([])
    if real:
        shim = users / "cli-plugins" / "docker-buildx"
        shim.write_text(f'#!/bin/sh\necho "docker buildx $*" >> "{log}"\nexec "{real}" "$@"\n')
        shim.chmod(0o755)
    return folder


def shimmed(env: dict[str, str], folder: Path, log: Path) -> dict[str, str]:
    """`env` with the logging shims first on PATH and the user's config holding buildx's."""
    shim_folder = shims(folder, log)
    return {
        **env,
        "PATH": f"{shim_folder}:{env['PATH']}",
        "DOCKER_CONFIG": str(shim_folder / "users-docker"),
    }
