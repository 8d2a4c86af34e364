"""Signed SLSA v1 provenance: attached to the image and to each platform manifest, one cosign
call per digest (cosign 3's attest has no --recursive), then verified, predicate and all.

cosign's verify-attestation checks the signature and the signer; the statement it prints is then
read here: its predicate type, that its subject is the digest asked about, and that the predicate
names the builder, the source repository and the commit this run expects. A downstream job
expects what its own CI context says, as verify does.
"""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from provenance_tasks import slsa
from provenance_tasks.adapters.cosign_attest import (
    attest_argv,
    signing_config_for,
    verify_attestation_argv,
)
from provenance_tasks.adapters.process import render
from provenance_tasks.errors import CommandFailed, ToolError, VerificationError
from provenance_tasks.models import (
    ImageRef,
    KeylessSigning,
    SigningMaterial,
    VerificationPolicy,
)
from provenance_tasks.predicates import Predicate
from provenance_tasks.references import registry_of
from provenance_tasks.retry import with_retries
from provenance_tasks.settings import bundle_formats
from provenance_tasks.steps.build_inputs import BuildInputs
from provenance_tasks.steps.platforms import platforms_of
from provenance_tasks.steps.referrers import settle
from provenance_tasks.steps.run import Run, Tools
from provenance_tasks.steps.runlog import RunLog
from provenance_tasks.steps.sign import certificate_root, token_file
from provenance_tasks.steps.verify import refused_the_call, registry_failed

STEP = "verify-attestation"


@dataclass
class AttestReport:
    """What was attested, or verified: one row per digest (the image, then each platform)."""

    predicate_type: str
    builder_id: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    buildx: dict[str, Any] | None = None  # buildx's own, unsigned provenance, named beside ours

    def as_dict(self) -> dict[str, Any]:
        found: dict[str, Any] = {
            "predicate_type": self.predicate_type,
            "builder_id": self.builder_id,
            "subjects": self.rows,
            "problems": self.problems,
        }
        if self.buildx is not None:
            found["buildx_provenance"] = self.buildx
        return found


def subjects(
    run: Run, tools: Tools, log: RunLog, step: str, image: ImageRef, media_type: str | None
) -> list[tuple[str, str]]:
    """(what, digest) of the image and each of its platform manifests."""
    children = platforms_of(run, tools, log, step, image, media_type).platforms
    return [("image", image.digest), *((c.platform, c.digest) for c in children)]


def attest(
    run: Run,
    tools: Tools,
    log: RunLog,
    image: ImageRef,
    material: SigningMaterial,
    inputs: BuildInputs | None,
    *,
    media_type: str | None = None,
    started: float | None = None,
    extra: tuple[Predicate, ...] = (),
) -> AttestReport:
    """Our SLSA provenance, and each predicate handed in (`extra`: SBOMs...), on the image and
    each platform manifest (a predicate for one platform: on that one)."""
    s, ci = run.settings, run.ci
    finished = time.time()
    predicate = slsa.predicate(
        provider=ci.provider,
        labels=ci.labels,
        ci_builder=ci.builder_id,
        invocation_id=ci.invocation_id or f"urn:provenance-tasks:run:{run.id}",
        source_ref=ci.source_ref,
        config_path=ci.config_path,
        runner=ci.runner,
        context=inputs.context if inputs else run.cwd,
        dockerfile=inputs.dockerfile if inputs else run.cwd / "Dockerfile",
        target=s.target,
        platforms=inputs.platforms if inputs else (),
        build_args=inputs.build_args if inputs else {},
        base_images=slsa.base_images(_metadata(tools)),
        started=started or finished,
        finished=finished,
    )
    path = tools.private_folder() / "slsa-provenance.json"
    path.write_text(json.dumps(predicate, indent=2))
    report = AttestReport(slsa.PREDICATE_TYPE, predicate["runDetails"]["builder"]["id"])
    buildkit = platforms_of(run, tools, log, "attest", image, media_type).attestations
    report.buildx = {  # buildx's own record, next to ours: the one to trust is ours, signed
        "setting": s.provenance or "buildx's default",
        "attestation_manifests": [a.digest for a in buildkit],
        "signed": s.sign_attestation_manifests and bool(buildkit),
    }
    formats = bundle_formats(s)  # in the signatures' format: each for its own readers
    config, root = _signing_trust(run, tools, material, formats)
    ours = [Predicate(slsa.PREDICATE_TYPE, path)] if s.attest or not extra else []
    attached = [*ours, *extra]  # --no-attest with predicates: only those
    with log.step("attest", f"Attest {image} (SLSA v1 provenance)") as record:
        targets = subjects(run, tools, log, "attest", image, media_type)
        for predicate_file in attached:
            for what, digest in _for(predicate_file, targets):
                reference = str(ImageRef(image.repository, digest))
                kind, file = predicate_file.kind, predicate_file.path
                for fmt in formats:
                    if s.dry_run:
                        token = token_file(run, tools, log, material, write=False)
                        argv = attest_argv(
                            tools.cosign,
                            reference,
                            material,
                            kind,
                            file,
                            tlog=s.tlog,
                            signing_config=config,
                            trusted_root=root,
                            identity_token=token,
                            new_bundle_format=fmt == "new",
                        )
                        log.info("dry-run", command=render(argv, run.redactor))
                    else:
                        _attest_once(
                            run, tools, log, material, reference, kind, file, config, root, fmt
                        )
                    report.rows.append(
                        {
                            "type": predicate_file.uri,
                            "subject": what,
                            "digest": digest,
                            "format": fmt,
                            "attested": not s.dry_run,
                        }
                    )
        settle(run, tools, log, "attest", image.repository, [d for _, d in targets])
        record.detail = {"attestations": len(report.rows)}
    log.results.attest = report
    return report


def _signing_trust(
    run: Run, tools: Tools, material: SigningMaterial, formats: tuple[str, ...]
) -> tuple[Path | None, Path | None]:
    """cosign 3's signing config for a bundle, and a trusted root that holds a certificate's own
    chain, so that cosign checks the leaf it signed with."""
    if tools.cosign.major < 3:
        return None, None
    config = None
    if "new" in formats:
        config = signing_config_for(
            tools.sigstore,
            keyless=isinstance(material, KeylessSigning),
            tlog=run.settings.tlog,
            folder=tools.private_folder(),
        )
    return config, certificate_root(tools, material)


def _attest_once(
    run: Run,
    tools: Tools,
    log: RunLog,
    material: SigningMaterial,
    reference: str,
    kind: str,
    predicate: Path,
    config: Path | None,
    root: Path | None,
    fmt: str,
) -> None:
    """One attestation of `reference` in format `fmt`, retried on registry failures; the ID
    token is on disk only while cosign runs."""

    def attempt(left: float) -> object:
        cosign = tools.cosign.within(left)
        token = token_file(run, tools, log, material, write=True)
        try:
            argv = attest_argv(
                cosign,
                reference,
                material,
                kind,
                predicate,
                tlog=run.settings.tlog,
                identity_token=token,
                signing_config=config,
                trusted_root=root,
                new_bundle_format=fmt == "new",
            )
            return cosign.attest(argv, on_line=log.tool_output("attest"))
        finally:
            if token is not None:
                token.unlink(missing_ok=True)

    with_retries(
        log, tools.retry_policy, "attest", f"attest {reference}", registry_of(reference), attempt
    )


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
        log.results.attestations = report
        if report.problems:
            raise VerificationError(
                "verification of the attestations failed: " + "; ".join(report.problems),
                hint="the attestation's signer, subject, content, builder, source or commit is "
                "not the expected one (see above)",
            )
    return report


def attestation_formats(run: Run, tools: Tools) -> tuple[str, ...]:
    """The formats the attestations are read in: those the signatures are written in. cosign 2
    reads no bundle here: a run configured for them alone is refused up front (preflight)."""
    formats = bundle_formats(run.settings)
    return formats if tools.cosign.major >= 3 else ("classic",)


def _for(predicate: Predicate, targets: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The subjects a predicate goes on: all, or its one platform (refused if there is none)."""
    if predicate.platform is None:
        return targets
    found = [(what, digest) for what, digest in targets if what == predicate.platform]
    if not found:
        platforms = ", ".join(what for what, _ in targets[1:]) or "none"
        raise ToolError(
            f"--predicate for {predicate.platform}: the image has no such platform",
            hint=f"its platforms: {platforms}",
        )
    return found


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


def _metadata(tools: Tools) -> dict[str, Any]:
    """buildx's metadata file of this run's build, if it made one."""
    try:
        found = json.loads((tools.private_folder() / "build" / "metadata.json").read_text())
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}
