"""Verify IMAGE@DIGEST: cosign checks signatures and signer, then we check digest and annotations.

cosign 3.0.0-3.0.2 reported annotations as verified that they never checked, so cosign's word on
annotations is not enough: the JSON it prints is parsed here and every expected annotation is
compared, by its encoded value, against the verified signatures. One cosign call per format read.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from provenance_tasks.adapters.cosign_env import shown
from provenance_tasks.adapters.process import render
from provenance_tasks.causes import REGISTRY_FAILURES, outlasted_retries
from provenance_tasks.errors import CommandFailed, ToolError, VerificationError, last_lines
from provenance_tasks.models import IdentityPolicy, ImageRef, Target, VerificationPolicy
from provenance_tasks.references import registry_of
from provenance_tasks.retry import with_retries
from provenance_tasks.steps.calls import Request
from provenance_tasks.steps.lookup import read_digest
from provenance_tasks.steps.platforms import signed_children
from provenance_tasks.steps.read_back import none_read, read_back
from provenance_tasks.steps.run import Run, Tools
from provenance_tasks.steps.runlog import RunLog
from provenance_tasks.steps.verify_checks import (
    Expectation,
    VerifyReport,
    check,
    expectations,
    summarize,
)
from provenance_tasks.steps.verify_report import print_report


def verify(
    run: Run,
    tools: Tools,
    log: RunLog,
    target: Target,
    image: ImageRef,
    policy: VerificationPolicy,
    *,
    check_tags: tuple[str, ...] = (),
    known_tags: Mapping[str, str] | None = None,
    formats: tuple[str, ...] | None = None,
    media_type: str | None = None,
    second: VerificationPolicy | None = None,
) -> VerifyReport:
    """Verify `image`: cosign checks signature and signer, then we check every annotation.

    `check_tags`: tags that must name the digest at the registry already (verify --tag; a run
    that publishes reads its tags back after publishing, in the audit); `known_tags`: those this
    run just read (verify --tag T took its digest from T), not read again. `formats`: the formats
    that were signed; None (a later job) tries the configured one first and the other only when
    the first finds no signature that satisfies the policy.
    """
    s = run.settings
    reference, digest = str(image), image.digest
    report = VerifyReport(reference, policy.describe(), expectations(target))
    warn_unchecked(run, tools, log, policy)
    with log.step("verify", f"Verify {reference}", collapsed=False) as record:
        for tag in check_tags if not s.dry_run else ():
            at_registry = (known_tags or {}).get(tag) or read_digest(
                tools, log, "verify", f"{image.repository}:{tag}"
            )
            report.tags[tag] = at_registry
            if at_registry != digest:
                report.problems.append(f"tag {tag} points at {at_registry}, not {digest}")
        tag_problems = list(report.problems)
        failures: list[str] = []
        verified = False
        just_signed = formats is not None  # this run signed in them: a lost write is no verdict
        if formats is not None and len(formats) > 1 and not s.dry_run:
            # Each format was written for its own readers: each must verify on its own.
            _verify_each(run, tools, log, report, target, image, policy, formats, media_type)
            verified = True
            formats = ()
        for fmt in formats if formats is not None else _format_order(run, tools):
            if s.dry_run:
                argv = tools.cosign.verify_argv(
                    reference, policy, tlog=s.tlog, new_bundle_format=fmt == "new"
                )
                env = shown(tools.cosign.env)
                log.info("dry-run", command=render(argv, run.redactor, env))
                continue
            # cosign 3 asked for new bundles falls back to classic ones when there are none:
            # the payload's type tells which a signature really is, so none is counted twice.
            one, read = _checked(
                run, tools, log, image, policy, fmt, report.expectations, just_signed=just_signed
            )
            if not read:
                failures += [f"{fmt} format: {p.split(': ', 1)[-1]}" for p in one.problems]
                continue
            verified = True
            report.signatures += one.signatures
            report.problems, report.matches = list(tag_problems), {}
            check(report, image.repository, digest, policy)
            if report.ok:
                verify_platforms(
                    run,
                    tools,
                    log,
                    report,
                    target,
                    image,
                    policy,
                    fmt,
                    media_type,
                    just_signed=just_signed,
                )
                break
        if s.dry_run:
            from provenance_tasks.steps.consumer import consumer_view

            consumer_view(run, tools, log, report, target, image, policy, media_type)
            return report
        if second is not None and report.ok:  # the co-signature, the same way down
            _verify_second(run, tools, log, report, target, image, second, media_type, just_signed)
        if verified and report.ok:  # then as a consumer's job would, which may refuse it
            from provenance_tasks.steps.consumer import consumer_view

            consumer_view(run, tools, log, report, target, image, policy, media_type)
        if not verified:
            signer = _found_signer(" ".join(failures))
            if signer:  # a signature was there, by someone else: expected against found
                report.problems.append(f"signer: expected {report.policy}, found {signer}")
            report.problems.append(
                f"no signature on {reference} verifies against {report.policy}: "
                + " | ".join(failures)
            )
        record.detail = {"digest": digest, "verified": report.ok}
        print_report(run, log, report)
        if not report.ok:
            raise VerificationError(
                f"verification of {reference} failed: " + "; ".join(report.problems),
                hint="see the report above: expected against found",
                report=report,
            )
    return report


def _verify_second(
    run: Run,
    tools: Tools,
    log: RunLog,
    report: VerifyReport,
    target: Target,
    image: ImageRef,
    policy: VerificationPolicy,
    media_type: str | None,
    just_signed: bool,
) -> None:
    """The second key's signatures: on the index, one per tag, and on each platform."""
    fmt = "classic" if run.settings.bundle_format != "new" else "new"
    second, _ = _checked(
        run, tools, log, image, policy, fmt, report.expectations, just_signed=just_signed
    )
    if second.ok:
        verify_platforms(
            run, tools, log, second, target, image, policy, fmt, media_type, just_signed=just_signed
        )
    report.second = second.as_dict()
    report.problems += [f"second key ({second.policy}): {problem}" for problem in second.problems]


def _verify_each(
    run: Run,
    tools: Tools,
    log: RunLog,
    report: VerifyReport,
    target: Target,
    image: ImageRef,
    policy: VerificationPolicy,
    formats: tuple[str, ...],
    media_type: str | None,
) -> None:
    """Every format in `formats` verifies by itself (provenance.bundle_format both), and each
    platform in each; the report lists all signatures, and every problem by its format."""
    for fmt in formats:
        one, _ = _checked(
            run, tools, log, image, policy, fmt, report.expectations, just_signed=True
        )
        report.signatures += one.signatures
        report.problems += [f"{fmt} format: {problem}" for problem in one.problems]
        if one.ok:
            verify_platforms(
                run, tools, log, report, target, image, policy, fmt, media_type, just_signed=True
            )
    matched = VerifyReport(
        report.reference, report.policy, report.expectations, signatures=report.signatures
    )
    check(matched, image.repository, image.digest, policy)
    report.matches = matched.matches


def _checked(
    run: Run,
    tools: Tools,
    log: RunLog,
    image: ImageRef,
    policy: VerificationPolicy,
    fmt: str,
    expected: list[Expectation],
    *,
    just_signed: bool = False,
) -> tuple[VerifyReport, bool]:
    """One cosign verify of `image` in `fmt` for `policy`, then our checks: the report, and
    whether any signature was read. A registry failure is raised (exit 4), not a verdict.
    `just_signed`: this run signed it in `fmt` a moment ago, so none read is read again."""
    one = VerifyReport(str(image), policy.describe(), expected)
    ref = str(image)
    try:
        payloads = cosign_verify(run, tools, log, ref, policy, fmt)
    except CommandFailed as exc:
        if registry_failed(exc):
            raise
        refused_the_call(exc, "verify")
        if not (just_signed and none_read(exc.stderr)):
            one.problems.append(f"no signature verifies: {_last_line(exc.stderr)}")
            return one, False
        payloads = []
    one.signatures = [sig for sig in map(summarize, payloads) if sig.format == fmt]
    if just_signed and not one.signatures:
        one.signatures = read_back(
            tools,
            log,
            ref,
            fmt,
            lambda: cosign_verify(run, tools, log, ref, policy, fmt),
            registry_failed,
        )
    check(one, image.repository, image.digest, policy)
    return one, True


def verify_platforms(
    run: Run,
    tools: Tools,
    log: RunLog,
    report: VerifyReport,
    target: Target,
    image: ImageRef,
    policy: VerificationPolicy,
    fmt: str,
    media_type: str | None,
    *,
    just_signed: bool = False,
) -> None:
    """Each platform manifest of the verified index, by its own digest: the signer and the
    annotations every tag shares. Being listed in the index this verify read by its digest makes
    it a member; a platform that fails fails the run, by name."""
    children = signed_children(run, tools, log, "verify", image, media_type)
    expected = [Expectation(None, target.annotations_for(None))]
    for child in children:
        platform = ImageRef(image.repository, child.digest)
        one, signed = _checked(
            run, tools, log, platform, policy, fmt, expected, just_signed=just_signed
        )
        row: dict[str, Any] = {
            "platform": child.platform,
            "digest": child.digest,
            "format": fmt,
            "signed": signed,
            "verified": one.ok,
            "problem": "; ".join(one.problems) or None,
        }
        report.platforms.append(row)
        if not one.ok:
            report.problems.append(f"platform {child.platform} ({child.digest}): {row['problem']}")


def _found_signer(cosign_error: str) -> str | None:
    """The signer cosign found when identity or issuer didn't match (both majors say it so)."""
    found = re.search(r"got subjects \[([^\]]*)\] with issuer (\S+)", cosign_error)
    return f"identity {found.group(1)} issued by {found.group(2)}" if found else None


def _format_order(run: Run, tools: Tools) -> tuple[str, ...]:
    """cosign 2 reads classic signatures only here (it can't find cosign 3's bundles on a
    registry without the referrers API); cosign 3 reads both, the configured one first."""
    if tools.cosign.major < 3:
        return ("classic",)
    first = run.settings.bundle_format
    return (first, "classic" if first == "new" else "new")


def warn_unchecked(run: Run, tools: Tools, log: RunLog, policy: VerificationPolicy) -> None:
    """Say what this verify does not check, every time: it is the reader's to judge."""
    if not run.settings.tlog:
        log.warning("verifying without the transparency log (--no-tlog): no log entry is checked")
    if not isinstance(policy, IdentityPolicy):
        return
    sigstore = tools.sigstore
    if sigstore.unsafe_ignore_sct:
        log.warning(
            "provenance.unsafe_ignore_sct is set: the certificate's SCT is not checked, so a "
            "certificate missing from the CT log verifies"
        )
    elif policy.chain is not None or not sigstore.ct_log:
        log.warning(
            "the certificate's SCT is not checked: its CA "
            + ("(--certificate-chain)" if policy.chain is not None else "(the trusted root)")
            + " has no certificate transparency log"
        )


def cosign_verify(
    run: Run, tools: Tools, log: RunLog, reference: str, policy: VerificationPolicy, fmt: str
) -> list[dict[str, Any]]:
    """One cosign verify in format `fmt`, retried while the registry fails. No `-a`: every
    annotation is compared here, expected against found, which cosign's filter can't show.
    One of a set of images: one cosign call verifies all of theirs, each taking its own."""
    key = ("verify", registry_of(reference), policy, fmt, run.settings.tlog)
    found: list[dict[str, Any]] = tools.meet(
        Request(
            key,
            (reference,),
            lambda refs: _verify(run, tools, log, refs, policy, fmt),
            mine=_payloads_of,
            note=lambda others: log.info(
                f"verified in one cosign call with {others} other image(s) of the set"
            ),
            shared=outlasted_retries,
        )
    )
    return found


def _payloads_of(payloads: list[dict[str, Any]], refs: tuple[str, ...]) -> list[dict[str, Any]]:
    """The payloads of one call that are of `refs`' digests (a group's call holds others'); a
    same digest in another repository is left to check(), which keeps this repository's."""
    digests = {ref.rpartition("@")[2] for ref in refs}
    return [
        p
        for p in payloads
        if ((p.get("critical") or {}).get("image") or {}).get("docker-manifest-digest") in digests
    ]


def _verify(
    run: Run, tools: Tools, log: RunLog, refs: list[str], policy: VerificationPolicy, fmt: str
) -> list[dict[str, Any]]:
    reference = refs[0] if len(refs) == 1 else f"{len(refs)} images"
    _, payloads = with_retries(
        log,
        tools.retry_policy,
        "verify",
        f"verify {reference}",
        registry_of(refs[0]),
        lambda left: tools.cosign.within(left).verify(
            refs[0] if len(refs) == 1 else refs,
            policy,
            tlog=run.settings.tlog,
            new_bundle_format=fmt == "new",
            on_line=log.tool_output("verify"),
        ),
    )
    return payloads


# cosign could not run the check at all: a flag refused, a file or a root it can't read, a
# format it won't take with the trust given. No signature was judged, so this is a tool failure
# (exit 4) in cosign's own words, never a verdict on the image (exit 3).
_REFUSED_CALL = re.compile(
    r"unknown (shorthand )?flag|flag needs an argument|invalid argument \S+ for \S+ flag"
    r"|if any flags in the group|must be in bundle|must provide --|cannot be used with"
    r"|(reading|loading|parsing|unmarshal\w*) (the )?trusted.?root"
    r"|no such file or directory|is a directory",
    re.IGNORECASE,
)


def refused_call(stderr: str) -> bool:
    """cosign's closing error lines say it refused the call (a flag, a file, a root)."""
    errors = [line for line in stderr.splitlines()[-4:] if "error" in line.lower()]
    return any(_REFUSED_CALL.search(line) for line in errors)


def refused_the_call(exc: CommandFailed, what: str) -> None:
    """Raise a tool failure when cosign refused the call itself rather than the signatures. Only
    its closing error lines count: a warning before them (a TUF fetch it went on without) is
    no answer."""
    if refused_call(exc.stderr):
        raise ToolError(
            f"cosign {what} could not check {exc.argv[-1]}: {_last_line(exc.stderr)}",
            hint="cosign refused the call, not the signature: see its words above",
        ) from exc


def registry_failed(exc: CommandFailed) -> bool:
    """The registry failed cosign, not the signatures: a tool error (exit 4), not a verdict."""
    return exc.cause.kind in REGISTRY_FAILURES


def _last_line(text: str) -> str:
    return "".join(last_lines(text)) or "no output"
