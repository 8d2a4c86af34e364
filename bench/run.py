"""build-sign-verify against the shell jobs a user would write, on the same registry and Sigstore.

    .venv/bin/python -m bench.run [--runs 7] [--engine current] [--configs contract,keyless]
                                  [--profile cloud]

Both sides run as a GitLab job would (the same CI_* variables, a registry with a login), in
pairs (triples, with the floor) whose order rotates, so drift on the machine hits all alike.
Configurations (CONFIGS): `contract` is key mode without a transparency log on both sides;
`keyless` signs against our Sigstore test bed beside the key-mode tutorial job (what keyless
costs); `attested` is the contract plus signed SLSA provenance, against the tutorial job plus
`cosign attest` and `verify-attestation`; `keyless-attested`, the tool's default run, against the
same done keyless by hand. Cases: warm (cached layers, a new repository per run) and cold (a new
50 MB layer each run). `--profile` puts a network profile (bench/profiles.toml) in front of the
registry and Sigstore for every side, and the cases print what each side asked of each service.
Many images (`--images 4,16`): one run of a `provenance.images` set against as many shell jobs
one after another, warm, `jobs` at its default. Start-up compares `invoke --list` and
`provenance-tasks --help` with the collection imported against a bare tasks.py. Tool processes are
counted per run by logging shims put first on PATH, in separate runs, so timings carry no shim.

Writes bench/results/latest-<engine>[-<profile>].json and .md (bench/README.md keeps the figures).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("PROVENANCE_SHARED", ROOT.parent / "shared")) / "bench"
RESULTS = ROOT / "bench" / "results"

sys.path.insert(0, str(ROOT))
from bench.measure import TOOLS, Case, Sample, shimmed, timed  # noqa: E402
from bench.network import Network  # noqa: E402
from bench.report import markdown, startup  # noqa: E402
from tests.integration import pipelines  # noqa: E402
from tests.integration.conftest import make_context, make_key_pair  # noqa: E402
from tests.integration.test_process_counts import kinds  # noqa: E402
from tests.testbed import bed  # noqa: E402
from tests.testbed import sigstore as sigstore_bed  # noqa: E402


@dataclass(frozen=True)
class Config:
    flags: tuple[str, ...]  # ours' flags; KEY stands for the bench's key
    shell: Path
    floor: Path | None = None
    keyless: bool = False


KEY = "{key}"
CONFIGS = {
    "contract": Config(
        ("--no-attest", "--key", KEY, "--no-tlog"),
        SHARED / "tutorial_job.sh",
        SHARED / "floor_job.sh",
    ),
    "keyless": Config(("--no-attest",), SHARED / "tutorial_job.sh", keyless=True),
    "attested": Config(("--key", KEY, "--no-tlog"), SHARED / "tutorial_attest_job.sh"),
    "keyless-attested": Config(
        (),
        SHARED / "tutorial_attest_keyless.sh",
        ROOT / "bench" / "floor_keyless_attest.sh",
        keyless=True,
    ),
}


class Bench:
    def __init__(self, testbed: bed.TestBed, network: Network, work: Path):
        self.testbed, self.network, self.work = testbed, network, work
        self.sigstore = network.sigstore
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
        registry = self.network.registry
        env["CI_REGISTRY_IMAGE"] = env["CI_REGISTRY_IMAGE"].replace(env["CI_REGISTRY"], registry)
        env["CI_REGISTRY"] = registry
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
        if CONFIGS[config].keyless and self.sigstore is not None:
            url = self.network.sigstore_url
            env.update(self.sigstore.settings())
            env["INVOKE_PROVENANCE_FULCIO_URL"] = env["INVOKE_PROVENANCE_REKOR_URL"] = url
            env["SIGSTORE_ID_TOKEN"] = self.sigstore.mint(sigstore_bed.gitlab_claims(env))
            # What the keyless shell jobs read (../shared/bench/tutorial_attest_keyless.sh).
            env["COSIGN"] = str(TOOLS / "bin" / "cosign3")
            env["TRUST"] = str(self.sigstore.trusted_root)
            env["SIGNCFG"] = str(self.network.signing_config())
            env["ID"] = pipelines.identity(env)
        return env

    def ours_argv(self, context: Path | None, config: str) -> list[str]:
        argv = [str(ROOT / ".venv/bin/provenance-tasks"), "build-sign-verify"]
        argv += ["--context", str(context)] if context else []
        return argv + [str(self.key) if f == KEY else f for f in CONFIGS[config].flags]

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

    def sides(self, case: str, config: str) -> dict[str, Callable[[], Sample]]:
        """Each side of the case as a measurement that makes its own job environment."""
        chosen = CONFIGS[config]
        sides = {
            "ours": lambda: timed(
                self.ours_argv(self.context(case), config),
                self.job_env(self.context(case), config),
                cwd=self.work,
            ),
            "shell": lambda: timed(
                ["bash", str(chosen.shell)], self.job_env(self.context(case), config)
            ),
        }
        if chosen.floor is not None:
            floor = chosen.floor
            sides["floor"] = lambda: timed(
                ["bash", str(floor)], self.job_env(self.context(case), config)
            )
        return sides

    def run_case(self, case: str, config: str, runs: int) -> Case:
        result = Case(f"{case}, {config}")
        self.rotate(result, self.sides(case, config), runs)
        chosen = CONFIGS[config]
        argvs = {"ours": self.ours_argv(self.context(case), config)}
        argvs["shell"] = ["bash", str(chosen.shell)]
        if chosen.floor is not None:
            argvs["floor"] = ["bash", str(chosen.floor)]
        for side, argv in argvs.items():
            env = self.job_env(self.context(case), config)
            result.processes[side], result.requests[side] = self.count(argv, env, self.work)
        return result

    def run_many(self, count: int, config: str, runs: int) -> Case:
        """`count` images in one run (provenance.images, `jobs` at its default) against `count`
        shell jobs of the configuration one after another, warm."""
        result = Case(f"warm, {config}, {count} images")
        folder = self.work / f"many-{count}"
        names = [f"img{n}" for n in range(count)]
        contexts = [make_context(folder / name, content=f"bench-{count}-{name}") for name in names]
        images = "".join(f"    - name: {name}\n      context: {name}\n" for name in names)
        (folder / "invoke.yaml").write_text(f"provenance:\n  images:\n{images}")
        ours = self.ours_argv(None, config)
        shell = ["bash", str(CONFIGS[config].shell)]

        def measure_shell() -> Sample:
            env = self.job_env(contexts[0], config)  # one pipeline: a job per image
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

        sides = {
            "ours": lambda: timed(ours, self.job_env(contexts[0], config), cwd=folder),
            "shell": measure_shell,
        }
        self.rotate(result, sides, runs)
        env = self.job_env(contexts[0], config)
        result.processes["ours"], result.requests["ours"] = self.count(ours, env, folder)
        return result

    @staticmethod
    def rotate(result: Case, sides: dict[str, Callable[[], Sample]], runs: int) -> None:
        """`runs` rounds of every side, the order rotating each round, after one unmeasured
        round in which images and caches settle. Each side gets its own context (cold: its own
        new layer), so none builds from what another just cached."""
        order = list(sides)
        for run in range(runs + 1):
            for side in order[run % len(order) :] + order[: run % len(order)]:
                sample = sides[side]()
                if run:
                    getattr(result, side).append(sample)

    def count(
        self, argv: list[str], env: dict[str, str], cwd: Path
    ) -> tuple[dict[str, int], dict[str, int]]:
        """The tool processes of one run, and its requests per service under a profile."""
        log = self.work / f"shim-{uuid.uuid4().hex[:6]}.log"
        self.network.reset()
        timed(argv, shimmed(env, self.work / "shims", log), cwd=cwd)
        return (dict(kinds(log)) if log.exists() else {}), self.network.requests()


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
    parser.add_argument(
        "--profile", help="a network profile of bench/profiles.toml (default: plain loopback)"
    )
    parser.add_argument(
        "--many-config", default="contract", help="the configuration of the many-images cases"
    )
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)
    if not (SHARED / "tutorial_job.sh").exists():
        raise SystemExit(f"bench: no {SHARED / 'tutorial_job.sh'} (set PROVENANCE_SHARED)")
    compile_package()
    work = Path(tempfile.mkdtemp(prefix="bench-"))
    configs = args.configs.split(",")
    unknown = sorted(set(configs) - set(CONFIGS))
    if unknown:
        raise SystemExit(f"bench: unknown configurations {unknown}: choose from {list(CONFIGS)}")
    testbed = bed.up(work / "bed", engine=args.engine)
    keyless = any(CONFIGS[c].keyless for c in [*configs, args.many_config])
    sigstore = sigstore_bed.start(work / "sigstore") if keyless else None
    try:
        with Network(args.profile, testbed, sigstore, work) as network:
            bench = Bench(testbed, network, work)
            cases = [
                bench.run_case(case, config, args.runs).summary()
                for config in configs
                for case in args.cases.split(",")
                if case
            ]
            cases += [
                bench.run_many(int(n), args.many_config, args.runs).summary()
                for n in args.images.split(",")
                if n
            ]
    finally:
        if sigstore is not None:
            sigstore_bed.stop(sigstore)
        bed.down(testbed)
    results = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{os.cpu_count()} cores",
        "engine": args.engine,
        "profile": args.profile or "loopback",
        "runs": args.runs,
        "cases": cases,
        "startup": startup(max(args.runs, 10)),
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"latest-{args.engine}" + (f"-{args.profile}" if args.profile else "")
    (out / f"{stem}.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / f"{stem}.md").write_text(markdown(results))
    print(markdown(results))
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
