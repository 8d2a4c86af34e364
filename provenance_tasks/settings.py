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
from dataclasses import dataclass, fields, replace
from typing import Any

from provenance_tasks.errors import InputError
from provenance_tasks.options import OPTIONS, Option

__all__ = ["OPTIONS", "Option", "Settings", "resolve"]


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
REFERRERS = ("auto", "tag", "api")
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
    referrers: str  # auto, tag or api: where cosign 3's bundles are listed
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
    promote_from: str | None  # promote: REPO@DIGEST
    promote_to: str | None  # promote: the destination repository
    registry: str | None
    username: str | None
    password_env: str | None
    docker_config: str | None
    keep_docker_config: bool
    docker_host: str | None
    docker_context: str | None
    images: tuple[Mapping[str, Any], ...]  # checked by steps/sets/entries.py, which knows the keys
    images_file: str | None
    only: tuple[str, ...]
    image_name: str | None
    jobs: int
    bake: bool
    fail_fast: bool
    shard: str | None
    cosign: str
    buildx: str | None
    timeout: float
    retry_attempts: int
    retry_budget: float
    retry_wait: float
    rate_limit_wait: float
    sigstore_jobs: int
    rekor_writes_per_minute: int
    dry_run: bool
    attest: bool
    predicates: tuple[str, ...]
    stage: bool
    push_then_sign: bool
    report: str | None
    dotenv: str | None
    verified_dotenv: str | None
    log_format: str
    # The keys a flag or a Python caller gave, not invoke.yaml or the environment: a set takes
    # them as the caller's words (ONE_IMAGE_KEYS name one image, and win over its own values).
    given: frozenset[str] = frozenset()

    @property
    def of_a_set(self) -> bool:
        """The run works on a set of images (provenance.images, its file, or --image-name)."""
        return bool(self.images or self.images_file or self.image_name)


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
    by_caller: set[str] = set()
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
            if source is flags:
                by_caller.add(key)
            if key in ADDITIVE_KEYS and source is flags:
                added[key] = as_list(value, key)
                continue
            merged[key] = value
    for key, given in added.items():
        merged[key] = _add_by_key(as_list(merged[key], key), given)
    values: dict[str, Any] = {"given": frozenset(by_caller)}
    for f in fields(Settings):
        if f.name not in DEFAULTS:
            continue  # not a setting: what resolve() found out
        value = merged[f.name]
        if f.name in LIST_KEYS:
            value = as_list(value, f.name)
            if f.name in COMMA_LISTS:
                value = comma_split(value)
        elif f.name in BOOL_KEYS:
            value = as_bool(value, f.name)
        values[f.name] = value
    for key in ("timeout", "retry_budget", "retry_wait", "rate_limit_wait"):
        values[key] = _number(key, values[key], float, "a number of seconds")
    values["retry_attempts"] = _number("retry_attempts", values["retry_attempts"], int, "a count")
    for key in ("jobs", "sigstore_jobs", "rekor_writes_per_minute"):
        values[key] = _number(key, values[key], int, "a count")
    values["images"] = _images(values["images"])
    if values["retry_attempts"] < 1:
        raise InputError(
            "provenance.retry_attempts must be 1 or more",
            hint="set it to 1 for no retries, or leave it at the default (8)",
        )
    if values["docker_host"] and values["docker_context"]:
        raise InputError(
            "provenance.docker_host and provenance.docker_context both name an engine",
            hint="keep one: the context, or the host",
        )
    _check_choice("mode", values["mode"], MODES)
    _check_choice("bundle_format", values["bundle_format"], BUNDLE_FORMATS)
    _check_choice("referrers", values["referrers"], REFERRERS)
    _check_choice("log_format", values["log_format"], LOG_FORMATS)
    if values["provenance"] is not None:
        values["provenance"] = _provenance_mode(values["provenance"])
    _one_image_given(values)
    return Settings(**values)


#: Settings that describe one image's build: given by the caller for a whole set, every image
#: left without its own would build the same thing, and those with their own would ignore it.
#: (`image` is the set's base, documented; tags, platforms, build args, target, annotations,
#: labels and predicates are meant for every image, as in invoke.yaml.)
ONE_IMAGE_KEYS = ("context", "file")
#: How a caller names the one image they are for.
PICK_AN_IMAGE = "--only NAME on the command line (images=[NAME] from Python)"


def _one_image_given(values: Mapping[str, Any]) -> None:
    """A set's run refuses --context or --file unless one image is named (--only NAME)."""
    keys = [key for key in ONE_IMAGE_KEYS if key in values["given"]]
    if not keys or not (values["images"] or values["images_file"]):
        return
    named = dict.fromkeys([*values["only"], *filter(None, [values["image_name"]])])
    if len(named) == 1:
        return
    said = " and ".join(f"--{key} {values[key]}" for key in keys)
    source = "provenance.images" if values["images"] else "provenance.images_file"
    if named:
        which = f"--only names {len(named)} images ({', '.join(named)})"
    else:
        which = f"this run works on every image of {source}"
    raise InputError(
        f"{said} {'is' if len(keys) == 1 else 'are'} one image's, but {which}: it would "
        "build each alike, or be ignored by those that give their own",
        hint=f"pick the image: {PICK_AN_IMAGE}; or give each image its own "
        f"{' and '.join(keys)} in {source}",
    )


def comma_split(items: tuple[str, ...]) -> tuple[str, ...]:
    """Items that may each hold several, comma-separated (`--tag a,b`), except that a tag rule
    keeps its own `key=value` parts: `type=raw,value=latest,enable=default-branch` is one."""
    found: list[str] = []
    for item in items:
        for part in (p.strip() for p in item.split(",")):
            if not part:
                continue
            if (
                found
                and found[-1].startswith("type=")
                and "=" in part
                and not part.startswith("type=")
            ):
                found[-1] += f",{part}"
            else:
                found.append(part)
    return tuple(found)


def for_image(settings: Settings, overrides: Mapping[str, Any]) -> Settings:
    """The settings of one image of provenance.images: its own values over the run's. Its
    annotations and labels add to the run's (a key given both ways takes the image's)."""
    values: dict[str, Any] = {}
    for key, value in overrides.items():
        if value is None:
            continue
        if key in LIST_KEYS:
            items = as_list(value, key)
            if key in COMMA_LISTS:
                items = comma_split(items)
            if key in ADDITIVE_KEYS:
                items = _add_by_key(getattr(settings, key), items)
            values[key] = items
        else:
            values[key] = str(value)
    return replace(settings, **values)


def _images(value: Any) -> tuple[Mapping[str, Any], ...]:
    """provenance.images as given: a list of mappings (steps/sets/entries.py checks their keys)."""
    if value is None or value == []:
        return ()
    if isinstance(value, list | tuple) and all(isinstance(item, Mapping) for item in value):
        return tuple(dict(item) for item in value)
    raise InputError(
        "provenance.images must be a list of mappings, each with a name",
        hint="declare it in invoke.yaml (an environment variable can't hold it), or name a "
        "YAML file with provenance.images_file",
    )


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
    raise InputError(f"provenance.provenance is {value!r}", hint="choose off, mode=min or mode=max")


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
