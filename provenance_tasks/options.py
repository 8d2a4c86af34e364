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


LOGIN = frozenset(
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
BUILDS = frozenset({"build", "build-sign-verify"})
SIGNS = frozenset({"sign", "attest", "build-sign-verify"})
VERIFIES = frozenset({"verify", "verify-attestation", "publish", "build-sign-verify"})
RUNS = LOGIN - {"login"}
ALL = SIGNS | VERIFIES
B, S, V = "build-sign-verify", "sign", "verify"


def _o(
    key: str, default: Any, help: str, *tasks: str | frozenset[str], flag: str | None = None
) -> Option:
    names: set[str] = set()
    for t in tasks:
        names |= {t} if isinstance(t, str) else set(t)
    return Option(key, default, help, frozenset(names), flag)


#: Every setting, in the order `--help` lists them. Tasks take a flag only where they use it;
#: the rest are config-only (invoke.yaml, INVOKE_PROVENANCE_*).
OPTIONS: tuple[Option, ...] = (
    # build
    _o("context", ".", "build context folder (default: .)", BUILDS),
    _o("file", None, "Dockerfile path (default: CONTEXT/Dockerfile)", BUILDS),
    _o("image", None, "repository, without tag (default: from CI, or localhost:5000/FOLDER)", RUNS),
    _o(
        "tags",
        [],
        "tag to push and sign (repeatable; default: from CI, e.g. the short commit SHA)",
        RUNS,
        flag="tag",
    ),
    _o(
        "build_args",
        [],
        "NAME=value build argument (repeatable; secrets are refused: use --secret)",
        BUILDS,
        flag="build_arg",
    ),
    _o("platforms", [], "target platform, e.g. linux/amd64 (repeatable)", BUILDS, flag="platform"),
    _o("target", None, "Dockerfile stage to build", BUILDS),
    _o("builder", None, "buildx builder to use", BUILDS),
    _o("pull", False, "always pull newer base images", BUILDS),
    _o("cache_from", [], "buildx --cache-from spec (repeatable)", BUILDS),
    _o("cache_to", None, "buildx --cache-to spec", BUILDS),
    _o(
        "secrets",
        [],
        "buildx --secret spec, e.g. id=npmrc,env=NPM_TOKEN (repeatable)",
        BUILDS,
        flag="secret",
    ),
    _o(
        "labels",
        [],
        "KEY=VALUE image label, added to the CI's OCI labels (repeatable)",
        BUILDS,
        flag="label",
    ),
    _o(
        "oci_annotations",
        [],
        "[LEVEL:]KEY=VALUE OCI annotation on the manifest (default), the "
        "index, or both (given at each level) (repeatable)",
        BUILDS,
        flag="oci_annotation",
    ),
    _o(
        "provenance",
        None,
        "buildx's own (unsigned) SLSA attestation: off, mode=min or mode=max "
        "(true is mode=min; default: buildx's)",
    ),
    _o(
        "sign_attestation_manifests",
        False,
        "also sign (and verify) BuildKit's attestation manifests in the index, each by its digest",
    ),
    _o(
        "reproducible",
        False,
        "the same commit builds the same digest: layer times from "
        "SOURCE_DATE_EPOCH or the commit date, buildx's provenance off (needs an OCI export)",
        BUILDS,
    ),
    _o(
        "require_clean",
        False,
        "refuse to build when tracked files differ from the commit "
        "(default: warn, and record them in the report)",
        BUILDS,
    ),
    # sign
    _o("mode", "auto", "signing mode: auto, key, keyless or certificate", ALL),
    _o(
        "key",
        None,
        "private key: a file, env://VAR or a KMS URI (password from COSIGN_PASSWORD)",
        ALL,
    ),
    _o(
        "public_key",
        None,
        "public key for verify (default: KEY with .pub, or the KMS URI)",
        VERIFIES,
    ),
    _o("certificate", None, "signing certificate (certificate mode)", SIGNS),
    _o(
        "certificate_chain",
        None,
        "CA chain of the certificate (certificate mode and its verify)",
        ALL,
    ),
    _o(
        "annotations",
        [],
        "key=value annotation added to every signature (repeatable)",
        ALL,
        flag="annotation",
    ),
    _o(
        "second_key",
        None,
        "a key (file or KMS URI) that co-signs the index and every platform "
        "next to the main signature, and is verified too (podman/CRI-O take no CI keyless)",
    ),
    _o(
        "second_public_key",
        None,
        "the second key's public key for verify (default: KEY with .pub, or the KMS URI)",
    ),
    _o(
        "tlog",
        True,
        "sign and verify without a transparency log (key and certificate modes; warns)",
        ALL,
        flag="no_tlog",
    ),
    _o(
        "bundle_format",
        "classic",
        "signature format: classic (default, read by every verifier "
        "of image signatures), new (cosign 3), or both (cosign 3: each, for each reader)",
        "sign",
        B,
    ),
    _o(
        "referrers",
        "auto",
        "where cosign 3's bundles are listed on a registry: auto (its "
        "referrers API, else the sha256-<digest> fallback tag, whose index is repaired to name "
        "each bundle's type), tag (the fallback tag always, typed), or api (the API: a registry "
        "without it is refused before the build)",
        SIGNS,
    ),
    _o("key_folder", ".provenance/keys", "where a laptop's key pair is made on first use"),
    # the Sigstore instance (see provenance_tasks/sigstore.py): None everywhere is the public one
    _o("fulcio_url", None, "Fulcio of a private Sigstore"),
    _o("rekor_url", None, "Rekor of a private Sigstore"),
    _o("tsa_url", None, "an RFC 3161 timestamp authority (off by default)"),
    _o("signing_config", None, "signing_config.json naming the services (cosign 3 reads it)"),
    _o(
        "trusted_root", None, "trusted_root.json of a private Sigstore (its keys and CAs)", VERIFIES
    ),
    _o("unsafe_ignore_sct", False, "don't check certificates' SCT (warned every time)"),
    # cosign's own settings that are the user's to make, passed on on purpose
    _o("cosign_repository", None, "COSIGN_REPOSITORY: where signatures are stored"),
    _o("cosign_docker_media_types", None, "COSIGN_DOCKER_MEDIA_TYPES: docker media types"),
    # verify
    _o("identity", None, "expected certificate identity (default: derived from CI)", VERIFIES),
    _o(
        "builder_id",
        None,
        "expected SLSA builder.id of the provenance (default: this CI's "
        "configuration, e.g. $CI_PROJECT_URL//$CI_CONFIG_PATH)",
        "verify-attestation",
        B,
    ),
    _o("issuer", None, "expected OIDC issuer (default: derived from CI)", VERIFIES),
    _o(
        "digest",
        None,
        "digest to sign or verify (default: IMAGE_REF of an earlier run)",
        S,
        V,
        "publish",
        "attest",
        "verify-attestation",
    ),
    _o("attest", True, "don't attach (and verify) signed SLSA v1 provenance", B, flag="no_attest"),
    _o(
        "predicates",
        [],
        "TYPE[@os/arch]=FILE attached as a signed attestation: cyclonedx, "
        "spdxjson, slsaprovenance1 or a type URI (repeatable)",
        "attest",
        B,
        flag="predicate",
    ),
    _o(
        "stage",
        False,
        "push by digest only, no tag: the publish task tags it once verified",
        "build",
    ),
    _o(
        "push_then_sign",
        False,
        "publish the tags right after the push, before signing (the "
        "tutorial's order: a sign that fails leaves them on an unsigned image)",
        B,
    ),
    # registry and tools
    _o("registry", None, "registry to log in to (default: from CI)", LOGIN),
    _o("username", None, "registry user (default: from CI)", LOGIN),
    _o("password_env", None, "name of the variable holding the registry password", LOGIN),
    _o(
        "docker_config",
        None,
        "docker config folder for this run's logins (default: a new private one)",
        LOGIN,
    ),
    _o(
        "keep_docker_config",
        False,
        "keep the private docker config folder (and its login) at the end",
        B,
    ),
    _o("docker_host", None, "the docker engine to use (DOCKER_HOST)"),
    _o("cosign", "cosign", "the cosign binary (a name on PATH or a path)"),
    _o(
        "buildx",
        None,
        "the buildx plugin binary to run (default: found where docker finds its "
        "plugins); docker: `docker buildx`, through a docker that is a wrapper (sudo, a shim)",
    ),
    _o("timeout", 120, "seconds for each cosign attempt (never past the retry budget)"),
    # retries of every registry call (see provenance_tasks/retry.py and the README's worst case)
    _o("retry_attempts", 8, "attempts of one registry call, the first included"),
    _o("retry_budget", 300, "seconds for all attempts of one call"),
    _o("retry_wait", 1, "seconds before the second attempt, doubling up to 30"),
    _o("rate_limit_wait", 5, "seconds before the attempt after a 429, doubling up to 30"),
    # many images (steps/images.py)
    _o(
        "images",
        None,
        "the images of a monorepo: a list of mappings, each a name and its own "
        "context, file, image, tags, platforms, build_args, target, annotations, labels, "
        "predicates (invoke.yaml only)",
    ),
    _o("images_file", None, "a YAML file holding the same list as provenance.images"),
    _o("only", [], "run only this image of provenance.images (repeatable; default: all)", RUNS),
    _o(
        "image_name",
        None,
        "the image of provenance.images to work on: its IMAGE_REF from the "
        "report or the dotenv (<NAME>_IMAGE_REF)",
        S,
        V,
        "publish",
        "attest",
        "verify-attestation",
    ),
    _o("jobs", 0, "images worked on at once (default: the CPU count)", RUNS),
    _o(
        "bake",
        True,
        "build each image of a set in its own buildx call, at most jobs at a "
        "time (default: all in one buildx bake)",
        BUILDS,
        flag="no_bake",
    ),
    _o("fail_fast", False, "start no new image after one failed (default: run every image)", RUNS),
    _o(
        "shard",
        None,
        "I/N: work on share I of N of the images, decided by name (default: "
        "GitLab's CI_NODE_INDEX/CI_NODE_TOTAL under parallel: N)",
        RUNS,
    ),
    _o("docker_context", None, "the docker context to build on (another engine, e.g. over ssh)"),
    # outputs and behaviour
    _o(
        "dry_run",
        False,
        "print the exact commands, secrets redacted, and change nothing",
        "login",
        BUILDS,
        SIGNS,
        VERIFIES,
    ),
    _o(
        "report",
        "provenance-report.json",
        "path of the JSON report (default: provenance-report.json)",
        RUNS,
    ),
    _o("dotenv", "provenance.env", "path of the dotenv for later jobs"),
    _o(
        "verified_dotenv",
        "provenance-verified.env",
        "where verify writes what it verified "
        "(VERIFIED_IMAGE_REF; a set's <NAME>_VERIFIED_IMAGE_REF), for a deploy job to pin",
    ),
    _o("log_format", "auto", "auto, console or json", LOGIN),
)
