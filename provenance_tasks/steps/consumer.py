"""The consumer's view: after our own checks, the run's cosign verifies as a user's job would.

Our verify reads each format it wrote, pinned, and compares every annotation itself. A consumer
runs the tutorial's command: `cosign verify -a tag=T` with the signer, cosign's own discovery
(no format flag), on the digest the tags name. cosign 3.0-3.1 take any bundle among an image's
referrers for its signature (sigstore/cosign#4573), so what we accept can still be refused
downstream. A refusal here is never VERIFIED: it is a problem of the report like any other
(exit 3, naming the verifier and its words), and nothing is published.
"""

from __future__ import annotations

from provenance_tasks import compatibility
from provenance_tasks.adapters.cosign_env import shown
from provenance_tasks.adapters.process import render
from provenance_tasks.causes import outlasted_retries
from provenance_tasks.errors import CommandFailed, InputError
from provenance_tasks.models import IdentityPolicy, ImageRef, KeyPolicy, Target
from provenance_tasks.models import VerificationPolicy as Policy
from provenance_tasks.references import registry_of
from provenance_tasks.retry import with_retries
from provenance_tasks.steps.calls import Request
from provenance_tasks.steps.platforms import signed_children
from provenance_tasks.steps.run import Run, Tools
from provenance_tasks.steps.runlog import RunLog
from provenance_tasks.steps.verify import refused_the_call, registry_failed
from provenance_tasks.steps.verify_checks import VerifyReport


def publication(run: Run, policy: Policy) -> compatibility.Publication:
    """What this run publishes, as a verifier sees it."""
    s = run.settings
    if isinstance(policy, KeyPolicy):
        mode = "key"
    else:
        mode = "certificate" if isinstance(policy, IdentityPolicy) and policy.chain else "keyless"
    return compatibility.Publication(
        mode,
        s.bundle_format,
        s.attest or bool(s.predicates),
        second_key=bool(s.second_key),
        tlog=s.tlog,
    )


def refuse_unreadable(run: Run, policy: Policy, major: int) -> None:
    """A configuration the run's own cosign can't read is bad input, said before the build."""
    refused = compatibility.refused_by_own_cosign(publication(run, policy), major)
    if refused is not None:
        raise InputError(
            f"cosign {major} can't read what provenance.bundle_format "
            f"{run.settings.bundle_format} publishes: {refused.why}",
            hint="install cosign 3.0.3+, or set provenance.bundle_format to classic or both",
        )


def consumer_view(
    run: Run,
    tools: Tools,
    log: RunLog,
    report: VerifyReport,
    target: Target,
    image: ImageRef,
    policy: Policy,
    media_type: str | None,
) -> None:
    """The tutorial's verify of the index for each tag, and of each platform manifest, with the
    run's cosign as it comes; the report says what it ran and which verifiers can read it."""
    report.readers = compatibility.readers(publication(run, policy))
    verifier = f"cosign {tools.cosign.major} verify (the tutorial's command)"
    if tools.cosign.major < 3 or run.settings.bundle_format in ("new", "both"):
        # Our own call already was the consumer's: no format flag (cosign 2 has none, and the
        # new bundle, read for `new` and `both`, is cosign 3's default). The same process again
        # would tell nothing new.
        report.consumer = {"verifier": verifier, "verified": True, "same_call_as_ours": True}
        return
    children = signed_children(run, tools, log, "verify", image, media_type)
    # The index once per tag, as each tag's consumer asks; a digest with no tag (verify
    # --digest) by its signer alone.
    checks: list[tuple[list[str], dict[str, str]]] = [
        ([str(image)], {"tag": tag}) for tag in target.tags
    ] or [([str(image)], {})]
    if children:
        checks.append(([str(ImageRef(image.repository, c.digest)) for c in children], {}))
    for refs, wanted in checks:
        argv = tools.cosign.verify_argv(
            refs, policy, wanted, tlog=run.settings.tlog, new_bundle_format=True
        )  # cosign's default: no flag
        if run.settings.dry_run:
            log.info("dry-run", command=render(argv, run.redactor, shown(tools.cosign.env)))
            continue
        try:
            _verify(run, tools, log, refs, policy, wanted)
        except CommandFailed as exc:
            if registry_failed(exc):
                raise
            refused_the_call(exc, "verify")
            words = "".join(exc.stderr_tail[-1:]) or exc.message
            report.consumer = {"verifier": verifier, "verified": False, "words": words}
            # A problem like any other: the report is printed and kept, exit 3, nothing published.
            report.problems.append(
                f"{verifier} refuses {refs[0]}, which our own checks accepted: {words} (a "
                "consumer running the tutorial's verify would refuse it)"
            )
            return
    report.consumer = {"verifier": verifier, "verified": True, "checked": len(checks)}
    log.line("verify", "report", f"  consumer's view: {verifier}: ok")


def _verify(
    run: Run, tools: Tools, log: RunLog, refs: list[str], policy: Policy, wanted: dict[str, str]
) -> None:
    """One such cosign verify, retried while the registry fails. One of a set of images: one
    call for every image that asks the same (a refusal is then tried again image by image)."""
    key = ("consumer", registry_of(refs[0]), policy, tuple(sorted(wanted.items())))
    tools.meet(
        Request(
            key,
            tuple(refs),
            lambda group: _call(run, tools, log, group, policy, wanted),
            shared=outlasted_retries,
        )
    )


def _call(
    run: Run, tools: Tools, log: RunLog, refs: list[str], policy: Policy, wanted: dict[str, str]
) -> None:

    def attempt(left: float) -> object:
        return tools.cosign.within(left).verify(
            refs if len(refs) > 1 else refs[0],
            policy,
            wanted,
            tlog=run.settings.tlog,
            new_bundle_format=True,
            on_line=log.tool_output("verify"),
        )

    with_retries(
        log,
        tools.retry_policy,
        "verify",
        f"the consumer's verify of {refs[0]}",
        registry_of(refs[0]),
        attempt,
    )
