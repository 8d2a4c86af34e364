"""build-sign-verify against the tutorial's shell job, on the same loopback registry.

    .venv/bin/python -m bench.run [--runs 7] [--engine current] [--configs contract,keyless]

Both sides run as a GitLab job would (the same CI_* variables, a TLS registry with a login), in
pairs whose order alternates, so drift on the machine hits both alike. The contract configuration
is key mode without a transparency log on both sides (`--key --no-tlog` against the script's
`--tlog-upload=false`); `keyless` signs against our Sigstore test bed (the script cannot, so it
stays in key mode there: the ratio shows what keyless costs). Cases: warm (cached layers, a new
repository per run) and cold (a new 50 MB layer each run). Start-up compares `invoke --list` and
`provenance-tasks --help` with the collection imported against a bare tasks.py. Tool processes are
counted per run by logging shims put first on PATH, in separate runs, so timings carry no shim.
Many images (`--images 4,16`): one run of a `provenance.images` set against as many tutorial jobs
one after another, warm, in the contract configuration, `jobs` at its default.

Writes bench/results/latest.json and bench/results/latest.md (the README shows the table).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOOLS = Path(os.environ.get("PROVENANCE_TOOLS", "/opt/provenance-tools"))
SHARED = Path(os.environ.get("PROVENANCE_SHARED", ROOT.parent / "shared")) / "bench"
RESULTS = ROOT / "bench" / "results"
COUNTED = ("docker", "cosign", "crane", "git")

sys.path.insert(0, str(ROOT))
from provenance_tasks.adapters.docker import find_buildx  # noqa: E402
from tests.integration import pipelines  # noqa: E402
from tests.integration.conftest import make_context, make_key_pair  # noqa: E402
from tests.integration.test_process_counts import kinds  # noqa: E402
from tests.testbed import bed  # noqa: E402
from tests.testbed import sigstore as sigstore_bed  # noqa: E402


@dataclass
class Sample:
    seconds: float
    max_rss_kb: int


@dataclass
class Case:
    name: str
    ours: list[Sample] = field(default_factory=list)
    shell: list[Sample] = field(default_factory=list)
    processes: dict[str, dict[str, int]] = field(default_factory=dict)

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
        return {
            "case": self.name,
            "ours": ours,
            "shell": shell,
            "ratio": round(ours["median_s"] / shell["median_s"], 2),
            "paired_ratio": round(statistics.median(pairs), 2),
            "processes": self.processes,
        }


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


class Bench:
    def __init__(self, testbed: bed.TestBed, sigstore: sigstore_bed.Sigstore | None, work: Path):
        self.testbed, self.sigstore, self.work = testbed, sigstore, work
        self.key, self.pub = make_key_pair(str(TOOLS / "bin" / "cosign3"), work / "keys" / "cosign")
        self.base = {
            **sigstore_bed.environ_without_sigstore(),
            **testbed.environ(),
            "PATH": f"{TOOLS / 'bin'}:/usr/sbin:{os.environ['PATH']}",
            "TUF_ROOT": str(work / "tuf"),
            "COSIGN_PASSWORD": "",
        }

    def job_env(self, context: Path, config: str) -> dict[str, str]:
        # A user name without a comma: the tutorial's job splits "Doe, Jo" in two and fails.
        env = {**self.base, **pipelines.gitlab(self.testbed, user_name="Jo Doe")}
        # The shell job's `docker login` writes a config: never the machine's own.
        env["DOCKER_CONFIG"] = str(self.work / "shell-docker")
        env.update(
            {
                "CONTEXT": str(context),
                "SIGN_KEY": str(self.key),
                "VERIFY_PUB": str(self.pub),
                "INVOKE_PROVENANCE_COSIGN": "cosign",
            }
        )
        if config == "keyless" and self.sigstore is not None:
            env.update(self.sigstore.settings())
            env["SIGSTORE_ID_TOKEN"] = self.sigstore.mint(sigstore_bed.gitlab_claims(env))
        return env

    def ours_argv(self, context: Path, config: str) -> list[str]:
        argv = [
            str(ROOT / ".venv/bin/provenance-tasks"),
            "build-sign-verify",
            "--context",
            str(context),
        ]
        # The tutorial's job attests nothing: the contract and keyless cases don't either, and
        # `attested` (the contract, plus signed SLSA provenance, verified) says what it costs.
        if config != "attested":
            argv.append("--no-attest")
        return argv if config == "keyless" else [*argv, "--key", str(self.key), "--no-tlog"]

    def context(self, case: str) -> Path:
        """The build context; for the cold case, with a new 50 MB layer each time it is asked."""
        folder = self.work / f"ctx-{case}"
        if not folder.exists():
            make_context(folder, content="bench")
        if case == "cold":
            (folder / "blob.bin").write_bytes(os.urandom(50 * 1024 * 1024))
            (folder / "Dockerfile").write_text(
                "FROM scratch\nCOPY busybox /bin/busybox\nCOPY id.txt /id.txt\n"
                'COPY blob.bin /blob.bin\nENTRYPOINT ["/bin/busybox", "cat", "/id.txt"]\n'
            )
        return folder

    def run_case(self, case: str, config: str, runs: int) -> Case:
        result = Case(f"{case}, {config}")
        shell = ["bash", str(SHARED / "tutorial_job.sh")]
        # One unmeasured pair first: images and caches settle. Each side gets its own context
        # (cold: its own new layer), so neither builds from what the other just cached.
        for run in range(runs + 1):
            sides: list[tuple[str, Callable[[], Sample]]] = [
                ("ours", lambda: self.measure_ours(case, config)),
                ("shell", lambda: self.measure_shell(case, config, shell)),
            ]
            if run % 2:
                sides.reverse()
            for side, measure in sides:
                sample = measure()
                if run:
                    getattr(result, side).append(sample)
        result.processes = {
            "ours": self.count(self.ours_argv(self.context(case), config), case, config),
            "shell": self.count(shell, case, config),
        }
        return result

    def run_many(self, count: int, runs: int) -> Case:
        """`count` images in one run (provenance.images, `jobs` at its default) against `count`
        tutorial jobs one after another, in the contract configuration, warm."""
        result = Case(f"warm, contract, {count} images")
        folder = self.work / f"many-{count}"
        names = [f"img{n}" for n in range(count)]
        contexts = [make_context(folder / name, content=f"bench-{count}-{name}") for name in names]
        images = "".join(f"    - name: {name}\n      context: {name}\n" for name in names)
        (folder / "invoke.yaml").write_text(f"provenance:\n  images:\n{images}")
        ours = [
            str(ROOT / ".venv/bin/provenance-tasks"),
            "build-sign-verify",
            "--no-attest",
            "--key",
            str(self.key),
            "--no-tlog",
        ]
        shell = ["bash", str(SHARED / "tutorial_job.sh")]

        def measure_ours() -> Sample:
            return timed(ours, self.job_env(contexts[0], "contract"), cwd=folder)

        def measure_shell() -> Sample:
            env = self.job_env(contexts[0], "contract")  # one pipeline: a job per image
            samples = [
                timed(
                    shell,
                    {
                        **env,
                        "CONTEXT": str(context),
                        "CI_REGISTRY_IMAGE": f"{env['CI_REGISTRY_IMAGE']}/{name}",
                    },
                )
                for name, context in zip(names, contexts, strict=True)
            ]
            return Sample(sum(s.seconds for s in samples), max(s.max_rss_kb for s in samples))

        for run in range(runs + 1):
            sides = [("ours", measure_ours), ("shell", measure_shell)]
            for side, measure in reversed(sides) if run % 2 else sides:
                sample = measure()
                if run:
                    getattr(result, side).append(sample)
        log = self.work / f"shim-{uuid.uuid4().hex[:6]}.log"
        env = shimmed(self.job_env(contexts[0], "contract"), self.work / "shims", log)
        timed(ours, env, cwd=folder)
        result.processes = {"ours": dict(kinds(log)) if log.exists() else {}, "shell": {}}
        return result

    def measure_ours(self, case: str, config: str) -> Sample:
        context = self.context(case)
        env = self.job_env(context, config)
        return timed(self.ours_argv(context, config), env, cwd=self.work)

    def measure_shell(self, case: str, config: str, shell: list[str]) -> Sample:
        return timed(shell, self.job_env(self.context(case), config))

    def count(self, argv: list[str], case: str, config: str) -> dict[str, int]:
        log = self.work / f"shim-{uuid.uuid4().hex[:6]}.log"
        env = shimmed(self.job_env(self.context(case), config), self.work / "shims", log)
        timed(argv, env, cwd=self.work)
        return dict(kinds(log)) if log.exists() else {}


def startup(runs: int) -> list[dict[str, object]]:
    """`invoke --list` with the collection against a bare tasks.py, and the console's --help."""
    work = Path(tempfile.mkdtemp(prefix="bench-startup-"))
    bare, ours = work / "bare", work / "ours"
    bare.mkdir()
    ours.mkdir()
    (bare / "tasks.py").write_text("from invoke import task\n\n\n@task\ndef hello(c):\n    pass\n")
    (ours / "tasks.py").write_text("from provenance_tasks.tasks import ns  # noqa: F401\n")
    invoke = str(ROOT / ".venv/bin/invoke")
    rows = []
    for name, argv, cwd in (
        ("invoke --list", [invoke, "--list"], ours),
        ("provenance-tasks --help", [str(ROOT / ".venv/bin/provenance-tasks"), "--help"], ours),
    ):
        mine: list[float] = []
        base: list[float] = []
        for i in range(runs + 1):
            pair = [(mine, argv, cwd), (base, [invoke, "--list"], bare)]
            for samples, command, folder in pair if i % 2 else reversed(pair):
                sample = timed(command, dict(os.environ), cwd=folder)
                if i:
                    samples.append(sample.seconds)
        rows.append(
            {
                "case": f"{name} vs a bare tasks.py",
                "ours_median_s": round(statistics.median(mine), 3),
                "bare_median_s": round(statistics.median(base), 3),
                "ratio": round(statistics.median(mine) / statistics.median(base), 2),
            }
        )
    shutil.rmtree(work, ignore_errors=True)
    return rows


def markdown(results: dict[str, object]) -> str:
    lines = [
        f"Measured {results['date']} on {results['machine']}, {results['runs']} paired runs each "
        f"(median, min-max; ratio: of the medians; paired: the median of each pair's ratio); "
        f"engine: {results['engine']}.",
        "",
        "| case | provenance-tasks | shell job | ratio | paired | peak RSS (ours / shell) "
        "| processes (ours) |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in results["cases"]:  # type: ignore[attr-defined]
        o, s = row["ours"], row["shell"]
        procs = ", ".join(f"{k}: {v}" for k, v in sorted(row["processes"]["ours"].items()))
        lines.append(
            f"| {row['case']} | {o['median_s']} s ({o['min_s']}-{o['max_s']}) | "
            f"{s['median_s']} s ({s['min_s']}-{s['max_s']}) | **{row['ratio']}x** | "
            f"{row.get('paired_ratio', '-')}x | {o['peak_rss_mb']} / {s['peak_rss_mb']} MB | "
            f"{procs} |"
        )
    lines += ["", "| start-up | ours | bare tasks.py | ratio |", "|---|---|---|---|"]
    for row in results["startup"]:  # type: ignore[attr-defined]
        lines.append(
            f"| {row['case']} | {row['ours_median_s']} s | {row['bare_median_s']} s | "
            f"**{row['ratio']}x** |"
        )
    return "\n".join(lines) + "\n"


def compile_package() -> None:
    """The package's byte-code, as `pip install` writes it for an installed copy. The bench runs
    the editable install of this work tree, and under PYTHONDONTWRITEBYTECODE (set on our CI
    machines) Python would compile every module again on each run: 0.05-0.08 s of CPU before
    the first tool starts, which no installed copy pays."""
    import compileall

    compileall.compile_dir(str(ROOT / "provenance_tasks"), quiet=1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--engine", choices=("current", "classic"), default="current")
    parser.add_argument("--cases", default="warm,cold")
    parser.add_argument("--configs", default="contract,keyless,attested")
    parser.add_argument(
        "--images", default="4,16", help="image counts of the many-images cases (empty: none)"
    )
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)
    if not (SHARED / "tutorial_job.sh").exists():
        raise SystemExit(f"bench: no {SHARED / 'tutorial_job.sh'} (set PROVENANCE_SHARED)")
    compile_package()
    work = Path(tempfile.mkdtemp(prefix="bench-"))
    configs = args.configs.split(",")
    testbed = bed.up(work / "bed", engine=args.engine)
    sigstore = sigstore_bed.start(work / "sigstore") if "keyless" in configs else None
    try:
        bench = Bench(testbed, sigstore, work)
        cases = [
            bench.run_case(case, config, args.runs).summary()
            for config in configs
            for case in args.cases.split(",")
            if case
        ]
        cases += [bench.run_many(int(n), args.runs).summary() for n in args.images.split(",") if n]
    finally:
        if sigstore is not None:
            sigstore_bed.stop(sigstore)
        bed.down(testbed)
    results = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{os.cpu_count()} cores",
        "engine": args.engine,
        "runs": args.runs,
        "cases": cases,
        "startup": startup(max(args.runs, 10)),
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"latest-{args.engine}.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / f"latest-{args.engine}.md").write_text(markdown(results))
    print(markdown(results))
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
