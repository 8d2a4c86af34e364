"""What a CI provider knows about the run it is in: values, defaults and the signer it expects."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from provenance_tasks.ci._env import ID_TOKEN_VARIABLE
from provenance_tasks.models import Annotation
from provenance_tasks.tag_rules import RefFacts

__all__ = ["Annotation", "CIContext", "iso_time"]


@dataclass(frozen=True)
class CIContext:
    """Everything the steps need from the environment, already resolved; no I/O after detection.

    Secrets (passwords, tokens) are held here only so the steps can hand them to a tool on stdin
    or in its environment; `secrets` lists every secret value so logs and errors can redact them.
    """

    provider: str  # "gitlab", "github", "unknown-ci" or "local"
    annotations: tuple[Annotation, ...]  # provenance annotations, without "tag"
    labels: Mapping[str, str]  # OCI labels for the build (org.opencontainers.image.*)
    default_repository: str | None
    default_tags: tuple[str, ...]
    identity: str | None  # the certificate identity a keyless signature must carry
    issuer: str | None  # the OIDC issuer a keyless signature must carry
    registry: str | None = None  # the registry to log in to
    registry_user: str | None = None
    registry_password: str | None = field(default=None, repr=False)
    registry_password_source: str | None = None  # the variable it came from
    id_token: str | None = field(default=None, repr=False)  # OIDC token for keyless signing
    id_token_source: str | None = None
    secrets: tuple[str, ...] = field(default=(), repr=False)
    # What the provider decides about the run, so that no step compares provider names:
    keyless_by_default: bool = False  # `mode: auto` signs keyless (the job has an ID token)
    keyless_hint: str = (
        f"set {ID_TOKEN_VARIABLE} to a token with the audience sigstore, or sign with --key"
    )
    local_keys: bool = False  # a key pair may be made on first use (a laptop)
    output_file_variable: str | None = None  # where step outputs go (GitHub's GITHUB_OUTPUT)
    # A token asked for later (GitHub's runner endpoint) names the signer in this claim, which
    # Fulcio puts after this prefix: it beats the identity read from the variables.
    identity_claim: str | None = None
    identity_prefix: str = ""
    # What was detected, in the words the run's first line says it, and what to pass where the
    # provider gives no default (an unknown CI gives none: nothing is guessed there).
    detected: str = ""
    # Annotations that hold only for the job that signed: a later job verifies them against
    # the values that job wrote in its dotenv (annotation key -> dotenv variable).
    own_annotations: Mapping[str, str] = field(default_factory=dict)
    # Annotations of the pipeline run (who, which pipeline, which job): a verify outside that
    # run (another pipeline, a release script) can't know them, and checks the rest.
    run_annotations: tuple[str, ...] = ()
    # When the commit was made (seconds since the epoch), where the CI says it: what the image's
    # `created` is made of when no SOURCE_DATE_EPOCH is given. None: ask git when building.
    commit_time: int | None = None
    commit_time_source: str | None = None
    # What signed SLSA provenance names (slsa.py): the builder, a stable id a verifier can
    # expect (the project's CI configuration), this run of it, and the git ref built.
    builder_id: str | None = None
    invocation_id: str | None = None
    source_ref: str | None = None
    config_path: str | None = None  # the CI configuration file that ran the build
    runner: str | None = None  # the machine that ran it (a runner's name and version)
    # The commit and ref the run builds, which tag rules (`type=sha`, `type=semver`, ...)
    # resolve against. None: the provider can't say reliably (an unknown CI), and rules can't
    # be resolved there.
    refs: RefFacts | None = None
    image_hint: str = "pass --image REPOSITORY or set provenance.image"
    key_hint: str = "pass --key (a file, env://VAR or a KMS URI)"


def iso_time(environ: Mapping[str, str], name: str) -> int | None:
    """The ISO 8601 time in variable `name` as seconds since the epoch; None when it is unset
    or unreadable (then git is asked: a commit date is never made up)."""
    text = environ.get(name, "").strip()
    try:
        moment = datetime.fromisoformat(text) if text else None
    except ValueError:
        return None
    if moment is None or moment.tzinfo is None:
        return None  # a time without its zone could be hours off
    return int(moment.timestamp())
