"""Verify's report as a job log shows it: expected against found, per tag, then each platform."""

from __future__ import annotations

from typing import TYPE_CHECKING

from provenance_tasks.steps.run import Run
from provenance_tasks.steps.runlog import RunLog

if TYPE_CHECKING:
    from provenance_tasks.steps.verify_checks import VerifyReport


def print_report(run: Run, log: RunLog, report: VerifyReport) -> None:
    """Expected against found, readable in a job log."""
    out = [f"Verification of {report.reference}", f"  signer: {report.policy}"]
    for tag, at in report.tags.items():
        out.append(
            f"  tag {tag} -> {at} {'ok' if report.reference.endswith('@' + at) else 'MISMATCH'}"
        )
    if not report.signatures:
        # Nothing was read to compare with: say so once, not "found None" on every line.
        out.append("  no signature could be read that satisfies the signer above")
        out += [
            f"    expected: {k} = {v!r}"
            for e in report.expectations[:1]
            for k, v in e.annotations.items()
        ]
    for expectation in report.expectations if report.signatures else ():
        label = expectation.tag or "*"
        index = report.matches.get(label)
        found = report.signatures[index].annotations if index is not None else {}
        head = f"signature {index + 1}" if index is not None else "no matching signature"
        out.append(f"  expected for tag {label}: {head}")
        job = [f"{k}={found[k]}" for k in run.ci.own_annotations if found.get(k)]
        if job:
            out.append(f"    signed by: {', '.join(job)}")  # which job signed what was found
        for key, value in expectation.annotations.items():
            got = found.get(key)
            mark = "ok" if got == value else "MISMATCH"
            out.append(
                f"    {mark:8} {key} = {value!r}" + ("" if got == value else f" (found {got!r})")
            )
    others = [i for i in range(len(report.signatures)) if i not in report.matches.values()]
    for i in others:
        sig = report.signatures[i]
        out.append(f"  other signature {i + 1} ({sig.format}): tag={sig.annotations.get('tag')!r}")
    for row in report.platforms:
        mark = "ok" if row["verified"] else "FAILED"
        out.append(f"  platform {row['platform']} {row['digest']}: {mark}")
    out.append("  result: " + ("VERIFIED" if report.ok else "FAILED"))
    out += [f"  problem: {p}" for p in report.problems]
    for line in out:
        log.line("verify", "report", run.redactor.redact(line))
