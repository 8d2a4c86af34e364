"""The bench's start-up case and its Markdown table."""

from __future__ import annotations

import os
import shutil
import statistics
import tempfile
from pathlib import Path

from bench.measure import timed

ROOT = Path(__file__).resolve().parents[1]


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
        f"engine: {results['engine']}; network: {results.get('profile', 'loopback')}.",
        "",
        "| case | provenance-tasks | shell job | ratio | paired | floor | vs floor (paired) "
        "| peak RSS (ours / shell) | processes (ours) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    requests = []
    for row in results["cases"]:  # type: ignore[attr-defined]
        o, s = row["ours"], row["shell"]
        f = row.get("floor")
        procs = ", ".join(f"{k}: {v}" for k, v in sorted(row["processes"]["ours"].items()))
        floor = f"{f['median_s']} s ({f['min_s']}-{f['max_s']})" if f else "-"
        lines.append(
            f"| {row['case']} | {o['median_s']} s ({o['min_s']}-{o['max_s']}) | "
            f"{s['median_s']} s ({s['min_s']}-{s['max_s']}) | **{row['ratio']}x** | "
            f"{row.get('paired_ratio', '-')}x | {floor} | {row.get('floor_paired_ratio', '-')}x | "
            f"{o['peak_rss_mb']} / {s['peak_rss_mb']} MB | {procs} |"
        )
        for side, counts in row.get("requests", {}).items():
            if counts:
                said = ", ".join(f"{k}: {v}" for k, v in counts.items())
                requests.append(f"| {row['case']} | {side} | {said} |")
    if requests:
        lines += ["", "| case | side | requests per service |", "|---|---|---|", *requests]
    lines += ["", "| start-up | ours | bare tasks.py | ratio |", "|---|---|---|---|"]
    for row in results["startup"]:  # type: ignore[attr-defined]
        lines.append(
            f"| {row['case']} | {row['ours_median_s']} s | {row['bare_median_s']} s | "
            f"**{row['ratio']}x** |"
        )
    return "\n".join(lines) + "\n"
