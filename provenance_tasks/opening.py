"""What opening a run reads: the config of an invoke Context (or a folder's invoke.yaml), the
settings a Python caller gives, and which of them belong to the whole run. And the signals a
run exits on (api.py)."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from provenance_tasks.errors import InputError
from provenance_tasks.settings import DEFAULTS

#: Settings that shape the run's tools and files, made once when it opens: a call can't change
#: them (its cosign, key, Sigstore, engine, login and report are the run's).
RUN_WIDE = frozenset(
    {
        "bundle_format",
        "certificate",
        "certificate_chain",
        "cosign",
        "cosign_docker_media_types",
        "cosign_repository",
        "buildx",
        "docker_config",
        "docker_context",
        "docker_host",
        "dotenv",
        "dry_run",
        "fulcio_url",
        "identity",
        "images",
        "images_file",
        "issuer",
        "keep_docker_config",
        "key",
        "key_folder",
        "log_format",
        "mode",
        "password_env",
        "public_key",
        "referrers",
        "registry",
        "rekor_url",
        "report",
        "second_key",
        "second_public_key",
        "secrets",
        "signing_config",
        "timeout",
        "tlog",
        "trusted_root",
        "tsa_url",
        "unsafe_ignore_sct",
        "username",
        "verified_dotenv",
    }
)


def checked(settings: Mapping[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(settings) - set(DEFAULTS))
    if unknown:
        raise InputError(
            f"unknown setting {', '.join(unknown)}",
            hint=f"known settings: {', '.join(sorted(DEFAULTS))}",
        )
    return dict(settings)


def picked(settings: Mapping[str, Any], image: object) -> dict[str, Any]:
    """A call's settings with `images=[NAME, ...]` read as `only` (the images of the run's set
    it works on; the set itself is the run's), and a mapping of results handed in picking its
    own images unless the call named them."""
    given = dict(settings)
    names = given.pop("images", None)
    if names is not None:
        if not isinstance(names, list | tuple) or not all(isinstance(n, str) for n in names):
            raise InputError(
                "a call's images= names images of the run's set",
                hint="images=['api'], and declare the set itself when opening the run",
            )
        given["only"] = list(names)
    if isinstance(image, Mapping) and image and "only" not in given:
        given["only"] = sorted(str(name) for name in image)
    return given


def config_of(c: Any, cwd: Path) -> tuple[dict[str, Any], bool]:
    """The `provenance` config and invoke's --dry: of a Context, a mapping, or cwd's
    invoke.yaml."""
    if isinstance(c, Mapping):
        return dict(c), False
    if c is None:
        from invoke.config import Config

        config = Config(project_location=cwd)
        config.load_project()
        c_config: Any = config
    else:
        c_config = c.config
    provenance = dict(c_config.get("provenance", {}) or {})
    return provenance, bool(c_config.get("run", {}).get("dry"))


def exit_on_signals() -> Callable[[], None]:
    """A cancelled CI job gets SIGTERM, a terminal's ^C SIGINT: exit through the run's close
    (143, 130) instead of dying in place, so its tools are ended and its private docker config
    and token folder removed. Returns the undo. Only the main thread can take signals."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def stop(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    previous = {signum: signal.signal(signum, stop) for signum in (signal.SIGTERM, signal.SIGINT)}

    def restore() -> None:
        for signum, handler in previous.items():
            signal.signal(signum, handler)

    return restore
