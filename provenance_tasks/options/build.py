"""The settings of the build: what buildx is told, and what is checked before it."""

from __future__ import annotations

from provenance_tasks.options.option import BUILDS, PROMOTES, RUNS, Option

BUILD: tuple[Option, ...] = (
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
        tasks=RUNS | PROMOTES,
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
)
