"""Every setting, declared once: its key, default, help and the tasks that take it as a flag.

`settings.py` combines flags, environment and invoke.yaml into one `Settings` from this table;
`tasks/image.py` makes each task's flags from it, so a flag's name and help live here only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Option:
    """One setting: its key under `provenance`, its default, its help, and the tasks that take it
    as a flag (named `flag`, or the key with dashes). The one place a setting is declared."""

    key: str
    default: Any
    help: str
    tasks: frozenset[str] = frozenset()
    flag: str | None = None  # the flag's parameter name, when it isn't the key

    @property
    def param(self) -> str:
        return self.flag or self.key


#: The tasks, in the groups that take the same flags.
EVERY_TASK = frozenset(
    {
        "login",
        "build",
        "sign",
        "attest",
        "verify",
        "verify-attestation",
        "publish",
        "build-sign-verify",
    }
)
RUNS = EVERY_TASK - {"login"}  # every task that works on an image
BUILDS = frozenset({"build", "build-sign-verify"})
SIGNS = frozenset({"sign", "attest", "build-sign-verify"})
VERIFIES = frozenset({"verify", "verify-attestation", "publish", "build-sign-verify"})
SIGNS_OR_VERIFIES = SIGNS | VERIFIES
WHOLE_JOB = frozenset({"build-sign-verify"})
#: The tasks that go on from an earlier run's digest (its IMAGE_REF, or --digest).
ON_A_DIGEST = frozenset({"sign", "attest", "verify", "verify-attestation", "publish"})


#: Every setting, in the order `--help` lists them. Tasks take a flag only where they use it;
#: the rest are config-only (invoke.yaml, INVOKE_PROVENANCE_*).
OPTIONS: tuple[Option, ...] = (
    # build
    Option(
        key="context",
        default=".",
        help="build context folder (default: .)",
        tasks=BUILDS,
    ),
    Option(
        key="file",
        default=None,
        help="Dockerfile path (default: CONTEXT/Dockerfile)",
        tasks=BUILDS,
    ),
    Option(
        key="image",
        default=None,
        help="repository, without tag (default: from CI, or localhost:5000/FOLDER)",
        tasks=RUNS,
    ),
    Option(
        key="tags",
        default=[],
        help="tag to push and sign (repeatable; default: from CI, e.g. the short commit SHA)",
        tasks=RUNS,
        flag="tag",
    ),
    Option(
        key="build_args",
        default=[],
        help="NAME=value build argument (repeatable; secrets are refused: use --secret)",
        tasks=BUILDS,
        flag="build_arg",
    ),
    Option(
        key="platforms",
        default=[],
        help="target platform, e.g. linux/amd64 (repeatable)",
        tasks=BUILDS,
        flag="platform",
    ),
    Option(
        key="target",
        default=None,
        help="Dockerfile stage to build",
        tasks=BUILDS,
    ),
    Option(
        key="builder",
        default=None,
        help="buildx builder to use",
        tasks=BUILDS,
    ),
    Option(
        key="pull",
        default=False,
        help="always pull newer base images",
        tasks=BUILDS,
    ),
    Option(
        key="cache_from",
        default=[],
        help="buildx --cache-from spec (repeatable)",
        tasks=BUILDS,
    ),
    Option(
        key="cache_to",
        default=None,
        help="buildx --cache-to spec",
        tasks=BUILDS,
    ),
    Option(
        key="secrets",
        default=[],
        help="buildx --secret spec, e.g. id=npmrc,env=NPM_TOKEN (repeatable)",
        tasks=BUILDS,
        flag="secret",
    ),
    Option(
        key="labels",
        default=[],
        help="KEY=VALUE image label, added to the CI's OCI labels (repeatable)",
        tasks=BUILDS,
        flag="label",
    ),
    Option(
        key="oci_annotations",
        default=[],
        help=(
            "[LEVEL:]KEY=VALUE OCI annotation on the manifest (default), the index, or both (given "
            "at each level) (repeatable)"
        ),
        tasks=BUILDS,
        flag="oci_annotation",
    ),
    Option(
        key="provenance",
        default=None,
        help=(
            "buildx's own (unsigned) SLSA attestation: off, mode=min or mode=max (true is mode=min;"
            " default: buildx's)"
        ),
    ),
    Option(
        key="sign_attestation_manifests",
        default=False,
        help=(
            "also sign (and verify) BuildKit's attestation manifests in the index, each by its "
            "digest"
        ),
    ),
    Option(
        key="reproducible",
        default=False,
        help=(
            "the same commit builds the same digest: layer times from SOURCE_DATE_EPOCH or the "
            "commit date, buildx's provenance off (needs an OCI export)"
        ),
        tasks=BUILDS,
    ),
    Option(
        key="require_clean",
        default=False,
        help=(
            "refuse to build when tracked files differ from the commit (default: warn, and record "
            "them in the report)"
        ),
        tasks=BUILDS,
    ),
    # sign
    Option(
        key="mode",
        default="auto",
        help="signing mode: auto, key, keyless or certificate",
        tasks=SIGNS_OR_VERIFIES,
    ),
    Option(
        key="key",
        default=None,
        help="private key: a file, env://VAR or a KMS URI (password from COSIGN_PASSWORD)",
        tasks=SIGNS_OR_VERIFIES,
    ),
    Option(
        key="public_key",
        default=None,
        help="public key for verify (default: KEY with .pub, or the KMS URI)",
        tasks=VERIFIES,
    ),
    Option(
        key="certificate",
        default=None,
        help="signing certificate (certificate mode)",
        tasks=SIGNS,
    ),
    Option(
        key="certificate_chain",
        default=None,
        help="CA chain of the certificate (certificate mode and its verify)",
        tasks=SIGNS_OR_VERIFIES,
    ),
    Option(
        key="annotations",
        default=[],
        help="key=value annotation added to every signature (repeatable)",
        tasks=SIGNS_OR_VERIFIES,
        flag="annotation",
    ),
    Option(
        key="second_key",
        default=None,
        help=(
            "a key (file or KMS URI) that co-signs the index and every platform next to the main "
            "signature, and is verified too (podman/CRI-O take no CI keyless)"
        ),
    ),
    Option(
        key="second_public_key",
        default=None,
        help="the second key's public key for verify (default: KEY with .pub, or the KMS URI)",
    ),
    Option(
        key="tlog",
        default=True,
        help="sign and verify without a transparency log (key and certificate modes; warns)",
        tasks=SIGNS_OR_VERIFIES,
        flag="no_tlog",
    ),
    Option(
        key="bundle_format",
        default="classic",
        help=(
            "signature format: classic (default, read by every verifier of image signatures), new "
            "(cosign 3), or both (cosign 3: each, for each reader)"
        ),
        tasks=WHOLE_JOB | {"sign"},
    ),
    Option(
        key="referrers",
        default="auto",
        help=(
            "where cosign 3's bundles are listed on a registry: auto (its referrers API, else the "
            "sha256-<digest> fallback tag, whose index is repaired to name each bundle's type), tag"
            " (the fallback tag always, typed), or api (the API: a registry without it is refused "
            "before the build)"
        ),
        tasks=SIGNS,
    ),
    Option(
        key="key_folder",
        default=".provenance/keys",
        help="where a laptop's key pair is made on first use",
    ),
    # the Sigstore instance (see provenance_tasks/sigstore.py): None everywhere is the public one
    Option(
        key="fulcio_url",
        default=None,
        help="Fulcio of a private Sigstore",
    ),
    Option(
        key="rekor_url",
        default=None,
        help="Rekor of a private Sigstore",
    ),
    Option(
        key="tsa_url",
        default=None,
        help="an RFC 3161 timestamp authority (off by default)",
    ),
    Option(
        key="signing_config",
        default=None,
        help="signing_config.json naming the services (cosign 3 reads it)",
    ),
    Option(
        key="trusted_root",
        default=None,
        help="trusted_root.json of a private Sigstore (its keys and CAs)",
        tasks=VERIFIES,
    ),
    Option(
        key="unsafe_ignore_sct",
        default=False,
        help="don't check certificates' SCT (warned every time)",
    ),
    # cosign's own settings that are the user's to make, passed on on purpose
    Option(
        key="cosign_repository",
        default=None,
        help="COSIGN_REPOSITORY: where signatures are stored",
    ),
    Option(
        key="cosign_docker_media_types",
        default=None,
        help="COSIGN_DOCKER_MEDIA_TYPES: docker media types",
    ),
    # verify
    Option(
        key="identity",
        default=None,
        help="expected certificate identity (default: derived from CI)",
        tasks=VERIFIES,
    ),
    Option(
        key="builder_id",
        default=None,
        help=(
            "expected SLSA builder.id of the provenance (default: this CI's configuration, e.g. "
            "$CI_PROJECT_URL//$CI_CONFIG_PATH)"
        ),
        tasks=WHOLE_JOB | {"verify-attestation"},
    ),
    Option(
        key="issuer",
        default=None,
        help="expected OIDC issuer (default: derived from CI)",
        tasks=VERIFIES,
    ),
    Option(
        key="digest",
        default=None,
        help="digest to sign or verify (default: IMAGE_REF of an earlier run)",
        tasks=ON_A_DIGEST,
    ),
    Option(
        key="attest",
        default=True,
        help="don't attach (and verify) signed SLSA v1 provenance",
        tasks=WHOLE_JOB,
        flag="no_attest",
    ),
    Option(
        key="predicates",
        default=[],
        help=(
            "TYPE[@os/arch]=FILE attached as a signed attestation: cyclonedx, spdxjson, "
            "slsaprovenance1 or a type URI (repeatable)"
        ),
        tasks=WHOLE_JOB | {"attest"},
        flag="predicate",
    ),
    Option(
        key="stage",
        default=False,
        help="push by digest only, no tag: the publish task tags it once verified",
        tasks=frozenset({"build"}),
    ),
    Option(
        key="push_then_sign",
        default=False,
        help=(
            "publish the tags right after the push, before signing (the tutorial's order: a sign "
            "that fails leaves them on an unsigned image)"
        ),
        tasks=WHOLE_JOB,
    ),
    # registry and tools
    Option(
        key="registry",
        default=None,
        help="registry to log in to (default: from CI)",
        tasks=EVERY_TASK,
    ),
    Option(
        key="username",
        default=None,
        help="registry user (default: from CI)",
        tasks=EVERY_TASK,
    ),
    Option(
        key="password_env",
        default=None,
        help="name of the variable holding the registry password",
        tasks=EVERY_TASK,
    ),
    Option(
        key="docker_config",
        default=None,
        help="docker config folder for this run's logins (default: a new private one)",
        tasks=EVERY_TASK,
    ),
    Option(
        key="keep_docker_config",
        default=False,
        help="keep the private docker config folder (and its login) at the end",
        tasks=WHOLE_JOB,
    ),
    Option(
        key="docker_host",
        default=None,
        help="the docker engine to use (DOCKER_HOST)",
    ),
    Option(
        key="cosign",
        default="cosign",
        help="the cosign binary (a name on PATH or a path)",
    ),
    Option(
        key="buildx",
        default=None,
        help=(
            "the buildx plugin binary to run (default: found where docker finds its plugins); "
            "docker: `docker buildx`, through a docker that is a wrapper (sudo, a shim)"
        ),
    ),
    Option(
        key="timeout",
        default=120,
        help="seconds for each cosign attempt (never past the retry budget)",
    ),
    # retries of every registry call (see provenance_tasks/retry.py and the README's worst case)
    Option(
        key="retry_attempts",
        default=8,
        help="attempts of one registry call, the first included",
    ),
    Option(
        key="retry_budget",
        default=300,
        help="seconds for all attempts of one call",
    ),
    Option(
        key="retry_wait",
        default=1,
        help="seconds before the second attempt, doubling up to 30",
    ),
    Option(
        key="rate_limit_wait",
        default=5,
        help="seconds before the attempt after a 429, doubling up to 30",
    ),
    # many images (steps/images.py)
    Option(
        key="images",
        default=None,
        help=(
            "the images of a monorepo: a list of mappings, each a name and its own context, file, "
            "image, tags, platforms, build_args, target, annotations, labels, predicates "
            "(invoke.yaml only)"
        ),
    ),
    Option(
        key="images_file",
        default=None,
        help="a YAML file holding the same list as provenance.images",
    ),
    Option(
        key="only",
        default=[],
        help="run only this image of provenance.images (repeatable; default: all)",
        tasks=RUNS,
    ),
    Option(
        key="image_name",
        default=None,
        help=(
            "the image of provenance.images to work on: its IMAGE_REF from the report or the dotenv"
            " (<NAME>_IMAGE_REF)"
        ),
        tasks=ON_A_DIGEST,
    ),
    Option(
        key="jobs",
        default=0,
        help="images worked on at once (default: the CPU count)",
        tasks=RUNS,
    ),
    Option(
        key="bake",
        default=True,
        help=(
            "build each image of a set in its own buildx call, at most jobs at a time (default: all"
            " in one buildx bake)"
        ),
        tasks=BUILDS,
        flag="no_bake",
    ),
    Option(
        key="fail_fast",
        default=False,
        help="start no new image after one failed (default: run every image)",
        tasks=RUNS,
    ),
    Option(
        key="shard",
        default=None,
        help=(
            "I/N: work on share I of N of the images, decided by name (default: GitLab's "
            "CI_NODE_INDEX/CI_NODE_TOTAL under parallel: N)"
        ),
        tasks=RUNS,
    ),
    Option(
        key="docker_context",
        default=None,
        help="the docker context to build on (another engine, e.g. over ssh)",
    ),
    # outputs and behaviour
    Option(
        key="dry_run",
        default=False,
        help="print the exact commands, secrets redacted, and change nothing",
        tasks=EVERY_TASK,
    ),
    Option(
        key="report",
        default="provenance-report.json",
        help="path of the JSON report (default: provenance-report.json)",
        tasks=RUNS,
    ),
    Option(
        key="dotenv",
        default="provenance.env",
        help="path of the dotenv for later jobs",
    ),
    Option(
        key="verified_dotenv",
        default="provenance-verified.env",
        help=(
            "where verify writes what it verified (VERIFIED_IMAGE_REF; a set's "
            "<NAME>_VERIFIED_IMAGE_REF), for a deploy job to pin"
        ),
    ),
    Option(
        key="log_format",
        default="auto",
        help="auto, console or json",
        tasks=EVERY_TASK,
    ),
)
