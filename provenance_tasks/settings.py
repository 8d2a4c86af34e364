"""Every setting, its default, and how flags, environment and invoke.yaml combine into one object.

Precedence: task flag, then invoke config (INVOKE_PROVENANCE_* variables over invoke.yaml), then
the defaults below. Every key is declared here, because invoke only lets an environment variable
override a key that exists. invoke can't cast a list from an environment variable, so every list
setting also accepts a comma-separated string.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from provenance_tasks.errors import InputError

#: The `provenance` namespace of invoke's config, with every key and its default.
DEFAULTS: dict[str, Any] = {
    # build
    "context": ".",
    "file": None,
    "image": None,  # repository; default from the CI provider
    "tags": [],  # default from the CI provider
    "build_args": [],  # "NAME=value"
    "platforms": [],
    "target": None,
    "builder": None,
    "pull": False,
    "cache_from": [],
    "cache_to": None,
    "secrets": [],  # buildx --secret specs: "id=npmrc,src=.npmrc"
    "provenance": None,  # buildx's own SLSA attestation: None leaves buildx's default
    # sign
    "mode": "auto",  # auto, key, keyless, certificate
    "key": None,  # file, env://VAR or a KMS URI
    "public_key": None,  # for verify in key mode; default: KEY with .pub for .key, or the KMS URI
    "certificate": None,
    "certificate_chain": None,
    "annotations": [],  # "key=value"
    "tlog": True,
    "bundle_format": "classic",  # classic or new (cosign 3.x)
    "key_folder": ".provenance/keys",
    # the Sigstore instance (see provenance_tasks/sigstore.py): None everywhere is the public one
    "fulcio_url": None,
    "rekor_url": None,
    "tsa_url": None,  # an RFC 3161 timestamp authority, off by default
    "signing_config": None,  # signing_config.json naming the services (cosign 3 reads it)
    "trusted_root": None,  # trusted_root.json: the keys and certificates of that instance
    "unsafe_ignore_sct": False,  # don't check Fulcio certificates' SCT (warned every time)
    # cosign's own settings that are the user's to make, passed on on purpose
    "cosign_repository": None,  # COSIGN_REPOSITORY: where signatures are stored
    "cosign_docker_media_types": None,  # COSIGN_DOCKER_MEDIA_TYPES: docker media types
    # verify
    "identity": None,
    "issuer": None,
    "digest": None,
    # registry and tools
    "registry": None,
    "username": None,
    "password_env": None,  # name of the variable that holds the password
    "docker_config": None,  # a private folder for this run's logins; default: a new one
    "keep_docker_config": False,
    "docker_host": None,
    "cosign": "cosign",
    "timeout": 120,  # seconds for each cosign attempt (never past the retry budget)
    # retries of every registry call (see provenance_tasks/retry.py and the README's worst case)
    "retry_attempts": 8,
    "retry_budget": 300,  # seconds, for all attempts of one call
    "retry_wait": 1,  # seconds before the second attempt, doubling up to 30
    "rate_limit_wait": 5,  # seconds before the attempt after a 429, doubling up to 30
    # outputs and behaviour
    "dry_run": False,
    "report": "provenance-report.json",
    "dotenv": "provenance.env",
    "log_format": "auto",  # auto, console or json
}

LIST_KEYS = frozenset(k for k, v in DEFAULTS.items() if isinstance(v, list))
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
BUNDLE_FORMATS = ("classic", "new")
LOG_FORMATS = ("auto", "console", "json")


@dataclass(frozen=True)
class Settings:
    context: str
    file: str | None
    image: str | None
    tags: tuple[str, ...]
    build_args: tuple[str, ...]
    platforms: tuple[str, ...]
    target: str | None
    builder: str | None
    pull: bool
    cache_from: tuple[str, ...]
    cache_to: str | None
    secrets: tuple[str, ...]
    provenance: bool | None
    mode: str
    key: str | None
    public_key: str | None
    certificate: str | None
    certificate_chain: str | None
    annotations: tuple[str, ...]
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
    report: str | None
    dotenv: str | None
    log_format: str


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
    for source in (config, flags or {}):
        for key, value in source.items():
            if key not in DEFAULTS:
                if source is not flags:
                    raise InputError(
                        f"unknown setting provenance.{key}",
                        hint=f"known settings: {', '.join(sorted(DEFAULTS))}",
                    )
                raise KeyError(key)  # a task passed a flag this module does not know: a bug
            if value is None or (key in LIST_KEYS and source is flags and value == []):
                continue
            merged[key] = value
    values: dict[str, Any] = {}
    for f in fields(Settings):
        value = merged[f.name]
        if f.name in LIST_KEYS:
            value = as_list(value, f.name)
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
        values["provenance"] = as_bool(values["provenance"], "provenance")
    return Settings(**values)


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
