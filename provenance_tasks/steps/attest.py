"""Signed SLSA v1 provenance: attached to the image and to each platform manifest, one cosign
call per digest (cosign 3's attest has no --recursive), in the format of the signatures. Its
verification, predicate and all, is attest_verify.py.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from provenance_tasks import slsa
from provenance_tasks.adapters.cosign_attest import (
    attest_argv,
    signing_config_for,
)
from provenance_tasks.adapters.process import render
from provenance_tasks.errors import ToolError
from provenance_tasks.models import (
    ImageRef,
    KeylessSigning,
    SigningMaterial,
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
from provenance_tasks.steps.sigstore_writes import within

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

    gated = within(tools.sigstore_writes, log, "attest", 1 if run.settings.tlog else 0, attempt)
    with_retries(
        log, tools.retry_policy, "attest", f"attest {reference}", registry_of(reference), gated
    )


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


def _metadata(tools: Tools) -> dict[str, Any]:
    """buildx's metadata file of this run's build, if it made one."""
    try:
        found = json.loads((tools.private_folder() / "build" / "metadata.json").read_text())
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}
