"""Every tool probe of a run, once each and side by side, before anything is pushed.

The probes are independent and each waits on a process or the network: cosign's age and the
signing key (the slowest: `cosign public-key` decrypts the key, so a wrong password is found
before anything is pushed), docker's presence, the Sigstore services, and the imports the build
will need. A build that pushes nothing runs beside them (steps/pipeline.py). They run in
parallel and their errors are raised in a fixed order, the signing side's first, so the same bad
input always gives the same message.

What the probes learn completes the plan: the signer a GitHub token names, and the trusted root
a certificate chain needs, written into the run's private folder.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from provenance_tasks.adapters.services import unreachable
from provenance_tasks.ci.oidc import claim, decode_claims
from provenance_tasks.errors import InputError, ToolError
from provenance_tasks.logs import StepLog
from provenance_tasks.models import (
    CertificateSigning,
    IdentityPolicy,
    KeylessSigning,
    KeyPolicy,
    KeySigning,
    SigningMaterial,
    VerificationPolicy,
)
from provenance_tasks.steps.plan import Plan
from provenance_tasks.steps.run import Run, Tools
from provenance_tasks.steps.tokens import check_token, fresh_token


class _Findings:
    """What the probes learnt, written by one probe thread each."""

    token_claims: dict[str, object] | None = None
    public_key_pem: str | None = None  # the signing key's public half, from its check
    referrers_api: bool | None = None  # provenance.referrers api: the registry has it

    def api(self, found: bool | None) -> None:
        self.referrers_api = found

    def key(self, pem: str | None) -> None:
        self.public_key_pem = pem

    def claims(self, claims: dict[str, object] | None) -> None:
        self.token_claims = claims


_REGISTRY_STEPS = ("build", "sign", "attest", "verify", "verify-attestation")


def preflight(run: Run, tools: Tools, log: StepLog, plan: Plan) -> Plan:
    """Probe what the plan's steps will use, once each; returns the plan, completed."""
    found = _Findings()
    probes: list[Callable[[], object]] = []
    if plan.signing is not None:
        material = plan.signing
        # Each probe once per run, though many images ask (tools.once): the same answer.
        probes += [
            lambda: signing_cosign(run, tools),
            lambda: found.key(
                tools.once(
                    ("key", getattr(material, "key", "")), lambda: signing_key(run, tools, material)
                )
            ),
            lambda: found.claims(
                tools.once(("services",), lambda: signing_services(run, tools, log, material))
            ),
        ]
    elif plan.policy is not None:  # a verify alone: what it reads, its cosign must read
        policy = plan.policy
        probes.append(lambda: readable_by_cosign(run, tools, policy))
    if plan.build is not None:
        # buildx needs no probe: the build, which runs beside these, is one (adapters/docker.py
        # says when it is missing); a builder asked for by name is. The push's imports are
        # paid here, in the shade.
        probes += [tools.docker.check_present, _import_for_the_build]
        if run.settings.builder and not run.settings.dry_run:
            builder = run.settings.builder
            probes.append(
                lambda: tools.once(
                    ("builder", builder), lambda: tools.docker.check_builder(builder)
                )
            )
    if not run.settings.dry_run and any(step in plan.steps for step in _REGISTRY_STEPS):
        from provenance_tasks.references import registry_of

        registry = registry_of(plan.target.repository)
        probes.append(
            lambda: tools.once(
                ("registry", registry), lambda: registry_answers(plan.target.repository)
            )
        )
    if run.settings.referrers == "api":  # cosign 3's bundles must go to the referrers API
        from provenance_tasks.steps import referrers

        if referrers.needs_api(run, plan.steps):
            probes.append(lambda: found.api(_referrers_api(run, tools, log, plan)))
    if run.settings.dry_run or len(probes) < 2:
        for probe in probes:
            probe()
    else:
        # What the threads share is made here, before them: the docker client, the Sigstore.
        tools.docker  # noqa: B018 - cached properties, built once
        if tools.sigstore.private:
            tools.private_folder()  # cosign's TUF_ROOT: one folder, not one per thread
        with ThreadPoolExecutor(max_workers=len(probes), thread_name_prefix="probe") as pool:
            futures = [pool.submit(probe) for probe in probes]
        for future in futures:
            error = future.exception()
            if error is not None:
                raise error
    if found.referrers_api is False:
        from provenance_tasks.steps.referrers import refuse_without_api

        refuse_without_api(run, tools, plan.target.repository)
    return replace(plan, policy=_completed_policy(run, tools, plan, found))


def _completed_policy(
    run: Run, tools: Tools, plan: Plan, found: _Findings
) -> VerificationPolicy | None:
    policy = plan.policy
    if isinstance(policy, KeyPolicy) and policy.of_signing_key:
        if not found.public_key_pem:
            return policy  # no cosign to check it with: signing_cosign has said so
        pub = tools.private_folder() / "signing-key.pub"
        pub.write_text(found.public_key_pem)
        return replace(policy, public_key=str(pub))
    if not isinstance(policy, IdentityPolicy):
        return policy
    ci = run.ci
    claimed = claim(found.token_claims, ci.identity_claim) if ci.identity_claim else None
    if claimed and not run.settings.identity:
        # The signer the run's own token names: a reusable workflow's file, which no variable
        # names, is what Fulcio puts in the certificate.
        policy = replace(policy, identity=f"{ci.identity_prefix}{claimed}")
    sigstore = tools.sigstore
    # cosign 3 takes a chain inside a trusted root; only the public instance's log can't be put
    # there beside it (cosign_flags.KEPT_DEPRECATED: --certificate-chain).
    in_a_root = sigstore.private or not run.settings.tlog or run.settings.bundle_format != "classic"
    if policy.chain is not None and in_a_root:
        from provenance_tasks.sigstore import chain_trusted_root

        root = chain_trusted_root(
            policy.chain, sigstore.trusted_root, tools.private_folder() / "trust"
        )
        policy = replace(policy, chain_root=root)
    return policy


def signing_cosign(run: Run, tools: Tools) -> None:
    """cosign is there, new enough, and its major can sign in the format asked for."""
    cosign = tools.cosign  # detect now: a missing or too old cosign is bad input (exit 2)
    if run.settings.bundle_format in ("new", "both") and cosign.major < 3:
        raise InputError(
            f"provenance.bundle_format {run.settings.bundle_format}: cosign 2 can't sign an "
            "image in the new bundle format (its sign has no such flag)",
            hint="set provenance.bundle_format to classic, or install cosign 3.0.3+",
        )


def readable_by_cosign(run: Run, tools: Tools, policy: VerificationPolicy) -> None:
    """A verify whose cosign can't read the configured format is bad input (exit 2)."""
    from provenance_tasks.steps.consumer import refuse_unreadable

    refuse_unreadable(run, policy, tools.cosign.major)


def signing_key(run: Run, tools: Tools, material: SigningMaterial) -> str | None:
    """The key opens with the password the run has: `cosign public-key` decrypts it, and its
    public half is returned. It needs no probed major, so it runs beside the probe."""
    from provenance_tasks.adapters.cosign import Cosign

    if not isinstance(material, KeySigning | CertificateSigning):
        return None
    key = material.ref
    local_to_make = key.path is not None and not key.path.exists()  # made on first use, locally
    if key.is_kms or local_to_make:
        return None
    binary = shutil.which(run.settings.cosign)
    if binary is None:
        return None  # signing_cosign says what is missing
    cosign = Cosign(binary, 0, run.redactor, env=tools.cosign_environment())
    return cosign.check_key(material.key)


def signing_services(
    run: Run, tools: Tools, log: StepLog, material: SigningMaterial
) -> dict[str, object] | None:
    """The token endpoint and the Sigstore services the signing needs answer; returns the
    claims of a token asked for now."""
    s = run.settings
    if s.dry_run:
        return None
    claims = None
    if isinstance(material, KeylessSigning) and material.token.from_endpoint:
        # Asked once now, so a job without `id-token: write` fails before the push; its claims
        # name the signer.
        token = fresh_token(run, log, material.token)
        check_token(run, token)
        claims = dict(decode_claims(token.value) or {})
    keyless = isinstance(material, KeylessSigning)
    for name, url in tools.sigstore.services(keyless=keyless, tlog=s.tlog).items():
        reason = unreachable(url)
        if reason is not None:
            raise ToolError(
                f"{name} at {url} does not answer: {reason}",
                hint="check provenance.fulcio_url / rekor_url / tsa_url and the network; "
                "sign with --key --no-tlog where no Sigstore can be reached",
            )
    return claims


def registry_answers(repository: str) -> None:
    """A registry that refuses connections or doesn't resolve fails the run within seconds,
    not after the retry budget (300 s by default) of the first real call."""
    from provenance_tasks.adapters.services import refuses_connections
    from provenance_tasks.references import registry_of

    registry = registry_of(repository)
    if _proxied(registry):
        return  # docker and cosign go through the proxy: a direct connection proves nothing
    reason = refuses_connections(registry)
    if reason is not None:
        raise ToolError(
            f"cannot reach the registry: {reason}",
            hint=f"check the registry's host and port in {repository}, and that it is up",
        )


def _referrers_api(run: Run, tools: Tools, log: StepLog, plan: Plan) -> bool | None:
    """Whether the registry has the referrers API, asked once it is known to answer at all
    (a refused connection fails in seconds, not after the retries of an HTTP request)."""
    from provenance_tasks.references import registry_of
    from provenance_tasks.steps.referrers import probe_api

    repository = plan.target.repository
    tools.once(("registry", registry_of(repository)), lambda: registry_answers(repository))
    return probe_api(run, tools, log, repository)


def _proxied(registry: str) -> bool:
    import urllib.parse
    import urllib.request

    host = urllib.parse.urlsplit(f"//{registry}").hostname or registry
    return bool(urllib.request.getproxies().get("https")) and not urllib.request.proxy_bypass(host)


def _import_for_the_build() -> None:
    """The push's slow imports (http.client, ssl, urllib), paid while the other probes wait on
    their tools."""
    from provenance_tasks.adapters import registry  # noqa: F401
