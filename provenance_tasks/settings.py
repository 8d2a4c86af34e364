"""Every setting, its default, and how flags, environment and invoke.yaml combine into one object.

Precedence: task flag, then invoke config (INVOKE_PROVENANCE_* variables over invoke.yaml), then
the defaults below. Every key is declared here, because invoke only lets an environment variable
override a key that exists. invoke can't cast a list from an environment variable, so every list
setting also accepts a comma-separated string.

Lists given as flags (or by a Python caller) replace the configured list, except annotations and
labels (ADDITIVE_KEYS): those add to the configured ones, a key given both ways taking the flag's
value, so a wrapper task's `annotation=[...]` keeps the team's invoke.yaml annotations. Tags and
platforms are also split on commas, so `--tag "$IMAGE_TAGS"` takes a dotenv's list back.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from provenance_tasks.errors import InputError


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


LOGIN = frozenset({"login", "build", "sign", "attest", "verify", "verify-attestation", "publish",
                   "build-sign-verify"})  # fmt: skip
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
    _o("image", None, "repository, without tag (default: from CI, or localhost:5000/FOLDER)",
       RUNS),
    _o("tags", [], "tag to push and sign (repeatable; default: from CI, e.g. the short commit "
       "SHA)", RUNS, flag="tag"),
    _o("build_args", [], "NAME=value build argument (repeatable; secrets are refused: use "
       "--secret)", BUILDS, flag="build_arg"),
    _o("platforms", [], "target platform, e.g. linux/amd64 (repeatable)", BUILDS, flag="platform"),
    _o("target", None, "Dockerfile stage to build", BUILDS),
    _o("builder", None, "buildx builder to use", BUILDS),
    _o("pull", False, "always pull newer base images", BUILDS),
    _o("cache_from", [], "buildx --cache-from spec (repeatable)", BUILDS),
    _o("cache_to", None, "buildx --cache-to spec", BUILDS),
    _o("secrets", [], "buildx --secret spec, e.g. id=npmrc,env=NPM_TOKEN (repeatable)", BUILDS,
       flag="secret"),
    _o("labels", [], "KEY=VALUE image label, added to the CI's OCI labels (repeatable)", BUILDS,
       flag="label"),
    _o("oci_annotations", [], "[LEVEL:]KEY=VALUE OCI annotation on the manifest (default), the "
       "index, or both (given at each level) (repeatable)", BUILDS, flag="oci_annotation"),
    _o("provenance", None, "buildx's own (unsigned) SLSA attestation: off, mode=min or mode=max "
       "(true is mode=min; default: buildx's)"),
    _o("sign_attestation_manifests", False, "also sign (and verify) BuildKit's attestation "
       "manifests in the index, each by its digest"),
    _o("reproducible", False, "the same commit builds the same digest: layer times from "
       "SOURCE_DATE_EPOCH or the commit date, buildx's provenance off (needs an OCI export)",
       BUILDS),
    _o("require_clean", False, "refuse to build when tracked files differ from the commit "
       "(default: warn, and record them in the report)", BUILDS),
    # sign
    _o("mode", "auto", "signing mode: auto, key, keyless or certificate", ALL),
    _o("key", None, "private key: a file, env://VAR or a KMS URI (password from "
       "COSIGN_PASSWORD)", ALL),
    _o("public_key", None, "public key for verify (default: KEY with .pub, or the KMS URI)",
       VERIFIES),
    _o("certificate", None, "signing certificate (certificate mode)", SIGNS),
    _o("certificate_chain", None, "CA chain of the certificate (certificate mode and its verify)",
       ALL),
    _o("annotations", [], "key=value annotation added to every signature (repeatable)", ALL,
       flag="annotation"),
    _o("second_key", None, "a key (file or KMS URI) that co-signs the index and every platform "
       "next to the main signature, and is verified too (podman/CRI-O take no CI keyless)"),
    _o("second_public_key", None, "the second key's public key for verify (default: KEY with "
       ".pub, or the KMS URI)"),
    _o("tlog", True, "sign and verify without a transparency log (key and certificate modes; "
       "warns)", ALL, flag="no_tlog"),
    _o("bundle_format", "classic", "signature format: classic (default, read by every verifier "
       "of image signatures), new (cosign 3), or both (cosign 3: each, for each reader)",
       "sign", B),
    _o("key_folder", ".provenance/keys", "where a laptop's key pair is made on first use"),
    # the Sigstore instance (see provenance_tasks/sigstore.py): None everywhere is the public one
    _o("fulcio_url", None, "Fulcio of a private Sigstore"),
    _o("rekor_url", None, "Rekor of a private Sigstore"),
    _o("tsa_url", None, "an RFC 3161 timestamp authority (off by default)"),
    _o("signing_config", None, "signing_config.json naming the services (cosign 3 reads it)"),
    _o("trusted_root", None, "trusted_root.json of a private Sigstore (its keys and CAs)",
       VERIFIES),
    _o("unsafe_ignore_sct", False, "don't check certificates' SCT (warned every time)"),
    # cosign's own settings that are the user's to make, passed on on purpose
    _o("cosign_repository", None, "COSIGN_REPOSITORY: where signatures are stored"),
    _o("cosign_docker_media_types", None, "COSIGN_DOCKER_MEDIA_TYPES: docker media types"),
    # verify
    _o("identity", None, "expected certificate identity (default: derived from CI)", VERIFIES),
    _o("builder_id", None, "expected SLSA builder.id of the provenance (default: this CI's "
       "configuration, e.g. $CI_PROJECT_URL//$CI_CONFIG_PATH)", "verify-attestation", B),
    _o("issuer", None, "expected OIDC issuer (default: derived from CI)", VERIFIES),
    _o("digest", None, "digest to sign or verify (default: IMAGE_REF of an earlier run)", S, V,
       "publish", "attest", "verify-attestation"),
    _o("attest", True, "don't attach (and verify) signed SLSA v1 provenance", B,
       flag="no_attest"),
    _o("predicates", [], "TYPE[@os/arch]=FILE attached as a signed attestation: cyclonedx, "
       "spdxjson, slsaprovenance1 or a type URI (repeatable)", "attest", B, flag="predicate"),
    _o("stage", False, "push by digest only, no tag: the publish task tags it once verified",
       "build"),
    _o("push_then_sign", False, "publish the tags right after the push, before signing (the "
       "tutorial's order: a sign that fails leaves them on an unsigned image)", B),
    # registry and tools
    _o("registry", None, "registry to log in to (default: from CI)", LOGIN),
    _o("username", None, "registry user (default: from CI)", LOGIN),
    _o("password_env", None, "name of the variable holding the registry password", LOGIN),
    _o("docker_config", None, "docker config folder for this run's logins (default: a new "
       "private one)", LOGIN),
    _o("keep_docker_config", False, "keep the private docker config folder (and its login) at "
       "the end", B),
    _o("docker_host", None, "the docker engine to use (DOCKER_HOST)"),
    _o("cosign", "cosign", "the cosign binary (a name on PATH or a path)"),
    _o("timeout", 120, "seconds for each cosign attempt (never past the retry budget)"),
    # retries of every registry call (see provenance_tasks/retry.py and the README's worst case)
    _o("retry_attempts", 8, "attempts of one registry call, the first included"),
    _o("retry_budget", 300, "seconds for all attempts of one call"),
    _o("retry_wait", 1, "seconds before the second attempt, doubling up to 30"),
    _o("rate_limit_wait", 5, "seconds before the attempt after a 429, doubling up to 30"),
    # outputs and behaviour
    _o("dry_run", False, "print the exact commands, secrets redacted, and change nothing",
       "login", BUILDS, SIGNS, VERIFIES),
    _o("report", "provenance-report.json", "path of the JSON report (default: "
       "provenance-report.json)", RUNS),
    _o("dotenv", "provenance.env", "path of the dotenv for later jobs"),
    _o("log_format", "auto", "auto, console or json", LOGIN),
)

#: The `provenance` namespace of invoke's config, with every key and its default.
DEFAULTS: dict[str, Any] = {o.key: o.default for o in OPTIONS}

LIST_KEYS = frozenset(k for k, v in DEFAULTS.items() if isinstance(v, list))
#: Lists a flag adds to rather than replaces (KEY=VALUE items: the flag's value wins per key).
ADDITIVE_KEYS = frozenset({"annotations", "labels"})
#: Lists whose items never hold a comma, so one item may carry several (`--tag a,b`).
COMMA_LISTS = frozenset({"tags", "platforms"})
BOOL_KEYS = frozenset(k for k, v in DEFAULTS.items() if isinstance(v, bool))
NUMBER_KEYS = frozenset(
    k for k, v in DEFAULTS.items() if isinstance(v, int | float) and not isinstance(v, bool)
)


def invoke_defaults() -> dict[str, Any]:
    """The `provenance` namespace as declared to invoke.

    Lists, booleans and numbers are declared as None: invoke refuses to cast an environment
    string into a list, casts any non-empty string (even "false") into True, and lets int("soon")
    raise a traceback. Declared None, the variable's text comes through and `resolve()` parses it
    with a clear message; None itself means "use the default".
    """
    untyped = LIST_KEYS | BOOL_KEYS | NUMBER_KEYS
    return {k: None if k in untyped else v for k, v in DEFAULTS.items()}


MODES = ("auto", "key", "keyless", "certificate")
BUNDLE_FORMATS = ("classic", "new", "both")
LOG_FORMATS = ("auto", "console", "json")


@dataclass(frozen=True)
class Settings:
    context: str
    file: str | None
    image: str | None
    tags: tuple[str, ...]
    build_args: tuple[str, ...]
    labels: tuple[str, ...]
    oci_annotations: tuple[str, ...]
    platforms: tuple[str, ...]
    target: str | None
    builder: str | None
    pull: bool
    cache_from: tuple[str, ...]
    cache_to: str | None
    secrets: tuple[str, ...]
    provenance: str | None  # off, mode=min, mode=max; None: buildx's default
    sign_attestation_manifests: bool
    reproducible: bool
    require_clean: bool
    mode: str
    key: str | None
    public_key: str | None
    certificate: str | None
    certificate_chain: str | None
    annotations: tuple[str, ...]
    second_key: str | None
    second_public_key: str | None
    tlog: bool
    bundle_format: str
    key_folder: str
    fulcio_url: str | None
    rekor_url: str | None
    tsa_url: str | None
    signing_config: str | None
    trusted_root: str | None
    unsafe_ignore_sct: bool
    cosign_repository: str | None
    cosign_docker_media_types: str | None
    identity: str | None
    builder_id: str | None
    issuer: str | None
    digest: str | None
    registry: str | None
    username: str | None
    password_env: str | None
    docker_config: str | None
    keep_docker_config: bool
    docker_host: str | None
    cosign: str
    timeout: float
    retry_attempts: int
    retry_budget: float
    retry_wait: float
    rate_limit_wait: float
    dry_run: bool
    attest: bool
    predicates: tuple[str, ...]
    stage: bool
    push_then_sign: bool
    report: str | None
    dotenv: str | None
    log_format: str


def bundle_formats(settings: Settings) -> tuple[str, ...]:
    """The formats a signing run writes: `both` is classic, then the new bundle."""
    return ("classic", "new") if settings.bundle_format == "both" else (settings.bundle_format,)


def as_list(value: Any, key: str) -> tuple[str, ...]:
    """A list setting from YAML (a list), a flag (a list) or an environment variable (a string)."""
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    if isinstance(value, list | tuple):
        return tuple(str(item) for item in value)
    raise InputError(f"provenance.{key} must be a list or a comma-separated string, not {value!r}")


def as_bool(value: Any, key: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on"):
        return True
    if isinstance(value, str) and value.lower() in ("0", "false", "no", "off", ""):
        return False
    raise InputError(f"provenance.{key} must be true or false, not {value!r}")


def environment_overrides(environ: Mapping[str, str]) -> dict[str, str]:
    """INVOKE_PROVENANCE_* variables as their raw text.

    invoke casts such a variable by the type of the value it replaces, so with `tlog: true` in
    invoke.yaml it turns "false" into True. Read raw and parsed by `resolve()`, "false" is False.
    """
    found = {}
    for key in DEFAULTS:
        name = f"INVOKE_PROVENANCE_{key.upper()}"
        if name in environ:
            found[key] = environ[name]
    return found


def resolve(
    config: Mapping[str, Any] | None,
    flags: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Flags (None means "not given") over environment over config over DEFAULTS."""
    merged: dict[str, Any] = dict(DEFAULTS)
    config = {**(config or {}), **environment_overrides(environ or {})}
    added: dict[str, tuple[str, ...]] = {}
    for source in (config, flags or {}):
        for key, value in source.items():
            if key not in DEFAULTS:
                if source is not flags:
                    raise InputError(
                        f"unknown setting provenance.{key}",
                        hint=f"known settings: {', '.join(sorted(DEFAULTS))}",
                    )
                raise KeyError(key)  # a task passed a flag this module does not know: a bug
            if key in LIST_KEYS and source is flags and isinstance(value, list | tuple):
                value = [item for item in value if str(item).strip()]  # `--tag "$UNSET"`
            if value is None or (key in LIST_KEYS and source is flags and value == []):
                continue
            if key in ADDITIVE_KEYS and source is flags:
                added[key] = as_list(value, key)
                continue
            merged[key] = value
    for key, given in added.items():
        merged[key] = _add_by_key(as_list(merged[key], key), given)
    values: dict[str, Any] = {}
    for f in fields(Settings):
        value = merged[f.name]
        if f.name in LIST_KEYS:
            value = as_list(value, f.name)
            if f.name in COMMA_LISTS:
                value = tuple(part.strip() for item in value for part in item.split(",")
                              if part.strip())  # fmt: skip
        elif f.name in BOOL_KEYS:
            value = as_bool(value, f.name)
        values[f.name] = value
    for key in ("timeout", "retry_budget", "retry_wait", "rate_limit_wait"):
        values[key] = _number(key, values[key], float, "a number of seconds")
    values["retry_attempts"] = _number("retry_attempts", values["retry_attempts"], int, "a count")
    if values["retry_attempts"] < 1:
        raise InputError(
            "provenance.retry_attempts must be 1 or more",
            hint="set it to 1 for no retries, or leave it at the default (8)",
        )
    _check_choice("mode", values["mode"], MODES)
    _check_choice("bundle_format", values["bundle_format"], BUNDLE_FORMATS)
    _check_choice("log_format", values["log_format"], LOG_FORMATS)
    if values["provenance"] is not None:
        values["provenance"] = _provenance_mode(values["provenance"])
    return Settings(**values)


def _add_by_key(configured: tuple[str, ...], given: tuple[str, ...]) -> tuple[str, ...]:
    """The configured KEY=VALUE items whose key the flags don't give, then the flags' own (a
    key given twice in the flags stays twice, for the caller to refuse if the values differ)."""
    keys = {item.partition("=")[0] for item in given}
    return (*(item for item in configured if item.partition("=")[0] not in keys), *given)


def _provenance_mode(value: Any) -> str:
    """buildx's --provenance: off, mode=min or mode=max (a boolean or a bare mode says one)."""
    text = str(value).strip().lower()
    if isinstance(value, bool) or text in ("1", "true", "yes", "on", "0", "false", "no", "off"):
        on = value if isinstance(value, bool) else text in ("1", "true", "yes", "on")
        return "mode=min" if on else "off"
    mode = text.removeprefix("mode=")
    if mode in ("min", "max"):
        return f"mode={mode}"
    raise InputError(f"provenance.provenance is {value!r}",
                     hint="choose off, mode=min or mode=max")  # fmt: skip


def _number(key: str, value: Any, kind: type[float] | type[int], what: str) -> Any:
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise InputError(
            f"provenance.{key} must be {what}, not {value!r}", hint=f"set {key} to {what}"
        ) from None
    if number < 0:
        raise InputError(
            f"provenance.{key} must not be negative, not {value!r}", hint=f"set {key} to {what}"
        )
    return number


def _check_choice(key: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise InputError(
            f"provenance.{key} is {value!r}",
            hint=f"choose one of: {', '.join(choices)}",
        )
