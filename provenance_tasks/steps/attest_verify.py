"""Verify the signed attestations of an image and each platform manifest, and read them.

cosign's verify-attestation checks the signature and the signer; the statement it prints is then
read here: its predicate type, that its subject is the digest asked about, and that the predicate
names the builder, the source repository and the commit this run expects. A downstream job
expects what its own CI context says, as verify does. Each format the run writes them in
(provenance.bundle_format) is read on its own.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from provenance_tasks import slsa
from provenance_tasks.adapters.cosign_attest import verify_attestation_argv
from provenance_tasks.adapters.process import render
from provenance_tasks.errors import CommandFailed, ToolError, VerificationError
from provenance_tasks.models import ImageRef, VerificationPolicy
from provenance_tasks.predicates import Predicate
from provenance_tasks.references import registry_of
from provenance_tasks.retry import with_retries
from provenance_tasks.settings import bundle_formats
from provenance_tasks.steps.attest import AttestReport, _for, subjects
from provenance_tasks.steps.run import Run, Tools
from provenance_tasks.steps.runlog import RunLog
from provenance_tasks.steps.verify import refused_the_call, registry_failed

STEP = "verify-attestation"


def verify_attestations(
    run: Run,
    tools: Tools,
    log: RunLog,
    image: ImageRef,
    policy: VerificationPolicy,
    *,
    media_type: str | None = None,
    just_attested: bool = False,
    extra: tuple[Predicate, ...] = (),
) -> AttestReport:
    """Each digest's SLSA provenance: signer by cosign, then subject, builder, source, commit.

    `just_attested`: this run attached them a moment ago. cosign says "no matching
    attestations" when a registry read behind it failed, too, so that answer is waited out
    briefly, as a tag just pushed is; if it stays, the attestation didn't land (exit 4), which
    is no verdict on the image."""
    ci = run.ci
    expected = {
        # Elsewhere (a release script) the builder is named: this machine's would be its own.
        "builder": run.settings.builder_id or slsa.builder_id(ci.provider, ci.builder_id),
        "source": ci.labels.get(slsa.SOURCE),
        "commit": ci.labels.get(slsa.REVISION),
    }
    report = AttestReport(slsa.PREDICATE_TYPE, expected["builder"] or "")
    ours = [Predicate(slsa.PREDICATE_TYPE, Path())] if run.settings.attest or not extra else []
    checked = [*ours, *extra]
    with log.step(STEP, f"Verify the attestations of {image}", collapsed=False) as record:
        targets = subjects(run, tools, log, STEP, image, media_type)
        formats = attestation_formats(run, tools)
        for predicate_file in checked:
            for what, digest in _for(predicate_file, targets):
                reference = str(ImageRef(image.repository, digest))
                for fmt in formats:
                    if run.settings.dry_run:
                        argv = verify_attestation_argv(
                            tools.cosign,
                            reference,
                            policy,
                            predicate_file.kind,
                            tlog=run.settings.tlog,
                            new_bundle_format=fmt == "new",
                        )
                        log.info("dry-run", command=render(argv, run.redactor))
                        continue
                    row = _verified(
                        run,
                        tools,
                        log,
                        policy,
                        reference,
                        predicate_file,
                        expected,
                        fmt,
                        just_attested=just_attested,
                    )
                    row.update(subject=what)
                    report.rows.append(row)
                    if row["problem"]:
                        report.problems.append(
                            f"{row['type']} ({fmt}) of {what} ({digest}): {row['problem']}"
                        )
        for row in report.rows:
            mark = "ok" if row["verified"] else f"FAILED: {row['problem']}"
            log.line(STEP, "report", f"  {row['type']} of {row['subject']} {row['digest']}: {mark}")
        record.detail = {"verified": not report.problems}
        if report.problems:
            raise VerificationError(
                "verification of the attestations failed: " + "; ".join(report.problems),
                hint="the attestation's signer, subject, content, builder, source or commit is "
                "not the expected one (see above)",
                report=report,
            )
    return report


def attestation_formats(run: Run, tools: Tools) -> tuple[str, ...]:
    """The formats the attestations are read in: those the signatures are written in. cosign 2
    reads no bundle here: a run configured for them alone is refused up front (preflight)."""
    formats = bundle_formats(run.settings)
    return formats if tools.cosign.major >= 3 else ("classic",)


def _verified(
    run: Run,
    tools: Tools,
    log: RunLog,
    policy: VerificationPolicy,
    reference: str,
    predicate: Predicate,
    expected: dict[str, str | None],
    fmt: str,
    *,
    just_attested: bool,
) -> dict[str, Any]:
    """One verify-attestation of one predicate type in one format on one digest, and our
    reading of it."""
    digest = reference.rsplit("@", 1)[1]
    row: dict[str, Any] = {
        "type": predicate.uri,
        "digest": digest,
        "format": fmt,
        "verified": False,
        "problem": None,
    }

    def attempt(left: float) -> list[dict[str, Any]]:
        cosign = tools.cosign.within(left)
        argv = verify_attestation_argv(
            cosign,
            reference,
            policy,
            predicate.kind,
            tlog=run.settings.tlog,
            new_bundle_format=fmt == "new",
        )
        try:
            return cosign.verify_attestation(argv, on_line=log.tool_output(STEP))
        except CommandFailed as exc:
            if just_attested and _none_found(exc.stderr):
                raise _not_yet_there(exc) from None
            raise

    retry = tools.retry_policy.for_tag_audit() if just_attested else tools.retry_policy
    try:
        envelopes = with_retries(
            log, retry, STEP, f"verify {reference}", registry_of(reference), attempt
        )
    except CommandFailed as exc:
        if just_attested and _none_found(exc.stderr):
            raise ToolError(
                f"cosign attested {reference} in this run, but verify-attestation finds no "
                f"{predicate.kind} attestation ({fmt} format) there",
                hint="the registry lost it or doesn't show it yet; run the job again",
            ) from None
        if registry_failed(exc):
            raise
        refused_the_call(exc, "verify-attestation")
        last = exc.stderr_tail[-1] if exc.stderr_tail else exc.message
        row["problem"] = f"no attestation verifies: {last}"
        return row
    if predicate.uri == slsa.PREDICATE_TYPE:
        found = [_problems(envelope, digest, expected) for envelope in envelopes]
    else:
        content = json.loads(predicate.path.read_text()) if just_attested else None
        found = [_file_problems(envelope, digest, predicate.uri, content) for envelope in envelopes]
    good = [f for f in found if not f]
    row["verified"] = bool(good)
    row["problem"] = None if good else "; ".join(found[0] if found else ["none read"])
    return row


# cosign 2 and 3 with classic attestations, then cosign 3 reading bundles: what each says when
# the registry shows none (a registry read behind them that failed, too).
_NONE_FOUND = ("no matching attestations", "no valid bundles exist", "no attestations found")


def _none_found(stderr: str) -> bool:
    return any(words in stderr for words in _NONE_FOUND)


def _not_yet_there(exc: CommandFailed) -> CommandFailed:
    """The same failure, read as a registry that doesn't show what was just put there."""
    stderr = exc.stderr + "\nmanifest unknown (just attested)"
    return CommandFailed(exc.tool, exc.argv, exc.returncode, stderr, streamed=exc.streamed)


def _file_problems(
    envelope: dict[str, Any], digest: str, uri: str, content: Any | None
) -> list[str]:
    """A handed-in predicate: its type, its subject, and (for this run's own) its content."""
    try:
        statement = json.loads(base64.b64decode(envelope["payload"]))
    except (KeyError, ValueError, TypeError):
        return ["an attestation whose statement can't be read"]
    problems = []
    if statement.get("predicateType") != uri:
        problems.append(f"predicate type {statement.get('predicateType')!r}")
    algorithm, _, value = digest.partition(":")
    if not any(
        (s.get("digest") or {}).get(algorithm) == value for s in statement.get("subject") or []
    ):
        problems.append(f"its subject is not {digest}")
    if content is not None and statement.get("predicate") != content:
        problems.append("its predicate is not the file's content")
    return problems


def _problems(envelope: dict[str, Any], digest: str, expected: dict[str, str | None]) -> list[str]:
    """What is wrong with one verified envelope's statement; [] when it is the expected one."""
    try:
        statement = json.loads(base64.b64decode(envelope["payload"]))
        predicate = statement["predicate"]
    except (KeyError, ValueError, TypeError):
        return ["an attestation whose statement can't be read"]
    problems: list[str] = []
    if statement.get("predicateType") != slsa.PREDICATE_TYPE:
        problems.append(f"predicate type {statement.get('predicateType')!r}")
    algorithm, _, value = digest.partition(":")
    if not any(
        (s.get("digest") or {}).get(algorithm) == value for s in statement.get("subject") or []
    ):
        problems.append(f"its subject is not {digest}")
    definition, details = predicate.get("buildDefinition") or {}, predicate.get("runDetails") or {}
    builder = (details.get("builder") or {}).get("id")
    if builder != expected["builder"]:
        problems.append(f"builder: expected {expected['builder']!r}, found {builder!r}")
    source = (definition.get("externalParameters") or {}).get("source")
    if expected["source"] and source != expected["source"]:
        problems.append(f"source: expected {expected['source']!r}, found {source!r}")
    commits = [
        (d.get("digest") or {}).get("gitCommit")
        for d in definition.get("resolvedDependencies") or []
    ]
    if expected["commit"] and expected["commit"] not in commits:
        problems.append(f"commit: expected {expected['commit']!r}, found {commits[:1] or None}")
    return problems
