"""build-sign-verify through a registry that fails a share of its requests: how many runs verify,
and how long they take.

    .venv/bin/python -m bench.faults [--engine current] [--rate 0.20] [--runs 10]

Each run pushes a new image, key mode with signed SLSA provenance and no transparency log (no
Sigstore in the way: the registry's faults alone), through the test bed's fault proxy: of the
requests, half of the failures answer 503, a quarter 429 (Retry-After: 1) and a quarter are
dropped connections, each run with its own seed. A run counts as verified only when it exits 0
and the digest it verified is what the registry holds under the tag, read around the proxy.
Writes bench/results/faults-<engine>.json and prints a line per run and the summary.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
sys.path.insert(0, str(ROOT))
from bench.measure import TOOLS  # noqa: E402
from tests.integration.conftest import make_context, make_key_pair  # noqa: E402
from tests.testbed import bed  # noqa: E402
from tests.testbed.faultproxy import FaultProxy, Faults  # noqa: E402

KINDS = {"503": 2.0, "429": 1.0, "drop": 1.0}


def one_run(
    proxy: FaultProxy, testbed: bed.TestBed, work: Path, key: Path, n: int, rate: float
) -> dict[str, Any]:
    context = make_context(work / f"ctx-{n}")
    image = f"{proxy.address}/faults/app-{n}-{os.urandom(3).hex()}"
    env = {
        **os.environ,
        **testbed.environ(),
        "PATH": f"{TOOLS / 'bin'}:/usr/sbin:{os.environ['PATH']}",
        "COSIGN_PASSWORD": "",
        "INVOKE_PROVENANCE_COSIGN": str(TOOLS / "bin" / "cosign3"),
    }
    env.pop("CI", None)
    argv = [str(ROOT / ".venv/bin/provenance-tasks"), "build-sign-verify", "--context"]
    argv += [str(context), "--image", image, "--tag", "v1", "--key", str(key), "--no-tlog"]
    argv += ["--log-format", "json"]
    proxy.set_faults(Faults(rate=rate, kinds=KINDS, seed=3000 + n))
    started = time.monotonic()
    done = subprocess.run(argv, env=env, cwd=work, capture_output=True, text=True, timeout=900)
    took = time.monotonic() - started
    proxy.set_faults(Faults())
    records = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    summary = records[-1] if records else {}
    held = subprocess.run(
        ["crane", "digest", f"{image.replace(proxy.address, proxy.upstream, 1)}:v1"],
        env={**env, "DOCKER_CONFIG": str(work / "crane")},
        capture_output=True,
        text=True,
    ).stdout.strip()
    verified = done.returncode == 0 and summary.get("digest") == held and bool(held)
    retried = [r for r in records if "retrying in" in str(r.get("event"))]
    # What the time is made of: each step's seconds (the report's), and the policy's waits.
    steps: dict[str, float] = {}
    try:
        report = json.loads((work / "provenance-report.json").read_text())
        for step in report.get("steps", []):
            steps[step["name"]] = round(steps.get(step["name"], 0.0) + step["duration_s"], 1)
        traffic = report.get("registry_traffic") or {}
    except (OSError, ValueError, KeyError):
        traffic = {}
    failure = summary.get("failure") if isinstance(summary.get("failure"), dict) else None
    return {
        "run": n,
        "exit": done.returncode,
        "verified": verified,
        "seconds": round(took, 1),
        "retries": len(retried),
        "waited_s": round(sum(float(r.get("wait_s", 0.0)) for r in retried), 1),
        "retried_after": [
            f"{r.get('step')}: {r.get('cause')} ({r.get('wait_s')} s)" for r in retried
        ],
        "retried_within_calls": traffic.get("retried"),
        "steps": steps,
        "failure": failure and f"{failure.get('step')}: {failure.get('message')}",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.faults", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--engine", choices=("current", "classic"), default="current")
    parser.add_argument("--rate", type=float, default=0.20)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)
    # A stopped bench still takes its test bed down (the finally below): dockerd, the registry.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    work = Path(tempfile.mkdtemp(prefix="bench-faults-"))
    testbed = bed.up(work / "bed", engine=args.engine)
    key, _ = make_key_pair(str(TOOLS / "bin" / "cosign3"), work / "keys" / "cosign")
    runs: list[dict[str, Any]] = []
    try:
        with FaultProxy(upstream=testbed.plain_registry) as proxy:
            for n in range(args.runs):
                runs.append(one_run(proxy, testbed, work, key, n, args.rate))
                print(json.dumps(runs[-1]), flush=True)
            faults = proxy.stats().faults
    finally:
        bed.down(testbed)
    times = [float(str(r["seconds"])) for r in runs]
    results = {
        "date": time.strftime("%Y-%m-%d"),
        "engine": args.engine,
        "rate": args.rate,
        "kinds": KINDS,
        "verified": sum(bool(r["verified"]) for r in runs),
        "runs": runs,
        "median_s": round(statistics.median(times), 1),
        "median_waited_s": round(statistics.median(float(str(r["waited_s"])) for r in runs), 1),
        "median_step_s": {
            name: round(statistics.median(float(r["steps"].get(name, 0.0)) for r in runs), 1)
            for name in dict.fromkeys(n for r in runs for n in r["steps"])
        },
        "min_s": min(times),
        "max_s": max(times),
        "faults_injected": faults,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"faults-{args.engine}.json").write_text(json.dumps(results, indent=2) + "\n")
    print(
        f"{args.engine}: {results['verified']} of {args.runs} verified at {args.rate:.0%} faults; "
        f"median {results['median_s']} s ({results['min_s']}-{results['max_s']} s); "
        f"injected {faults}"
    )
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
