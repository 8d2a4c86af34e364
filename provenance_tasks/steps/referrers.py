"""After cosign 3 wrote its bundles: a client that looks for them finds them, typed.

cosign 3 stores each Sigstore bundle (a signature or an attestation in the new format:
provenance.bundle_format new or both) as a referrer manifest of the digest it signs. A registry
with the OCI referrers API lists it there; on one without (distribution 2.8, GHCR, Docker Hub)
cosign lists it in the fallback tag `sha256-<digest>`, typed "empty" and without its annotations
(adapters/registry/referrers.py says why).
`provenance.referrers` decides what this run makes sure of:

- `auto` (the default): the API is probed once per repository; where it is missing, each
  fallback index cosign wrote is repaired once cosign is done with that image;
- `tag`: the fallback index lists every referrer, typed, even where the API exists (for clients
  that only read the tag);
- `api`: the registry must have the API; preflight refuses one without it before the build
  (`refuse_without_api`), so there is nothing to repair after.

`settle()` is called by the signing and attesting steps once after all of cosign's writes to an
image: with its digest and each platform's. Every registry call runs under the run's retry
policy; a registry that keeps failing ends the run as a registry failure (exit 4).
"""

from __future__ import annotations

import base64
import functools
import json
from collections.abc import Callable, Collection, Sequence
from typing import TypeVar

from provenance_tasks.adapters.registry import (
    PROBE_DIGEST,
    Referrer,
    Registry,
    Repair,
    Unserved,
    fallback_tag,
)
from provenance_tasks.errors import InputError
from provenance_tasks.references import registry_of
from provenance_tasks.retry import RetryLog, with_retries
from provenance_tasks.settings import Settings
from provenance_tasks.steps.run import Run, Tools
from provenance_tasks.steps.runlog import RunLog

T = TypeVar("T")


def writes_bundles(settings: Settings, cosign_major: int, steps: Collection[str]) -> bool:
    """cosign 3 writes bundles as referrers: signatures and attestations in the new format
    (bundle_format new or both); the classic format's go to `.sig` and `.att` tags."""
    new_format = cosign_major >= 3 and settings.bundle_format in ("new", "both")
    return new_format and ("sign" in steps or "attest" in steps)


def settle(
    run: Run, tools: Tools, log: RunLog, step: str, repository: str, digests: Sequence[str]
) -> list[Repair]:
    """Make sure the referrers cosign just wrote of each of `digests` (an image and its
    platforms) are listed as provenance.referrers asks; one log line per digest. A no-op where
    the step wrote no bundle; a dry run only says what it would do."""
    s = run.settings
    if not digests or not writes_bundles(s, tools.cosign.major, (step,)):
        return []
    subjects = list(dict.fromkeys(digests))
    repository = stored_in(run, repository)
    if s.referrers == "api":
        checked = "not asked in a dry run" if s.dry_run else "checked before the build"
        log.info(
            f"the referrers API of {registry_of(repository)} lists the bundles "
            f"(provenance.referrers api, {checked})",
            step=step,
        )
        return []
    if s.dry_run:
        when = "" if s.referrers == "tag" else f" if {registry_of(repository)} has no referrers API"
        for digest in subjects:
            log.info(
                f"dry-run: would type the fallback index {repository}:{fallback_tag(digest)}"
                f"{when} (provenance.referrers {s.referrers})",
                step=step,
            )
        return []
    settled = _settled(run, tools, log, step, repository, subjects)
    if isinstance(settled, Unserved):  # no tool reads or writes referrers for us
        log.warning(
            f"the referrers of {repository} are left as cosign listed them: the login "
            f"is a credential helper's ({settled}), which this run's HTTP client can't use",
            step=step,
        )
        return []
    return settled


def _settled(
    run: Run, tools: Tools, log: RunLog, step: str, repository: str, subjects: list[str]
) -> list[Repair] | Unserved:
    """Probe (once per run and repository), then repair each digest's fallback index."""
    client = tools.registry
    api = has_api(tools, log, step, repository, subjects[0], lambda: client)
    if isinstance(api, Unserved):
        return api
    if api and run.settings.referrers == "auto":
        log.info(
            f"{registry_of(repository)} has the referrers API: it lists the bundles, "
            "typed; no fallback index to repair",
            step=step,
        )
        return []
    # What each fallback index listed once this run had typed it: a later writer (cosign's
    # attest reading the index through a failed request) can drop a line, which is put back.
    seen: dict[tuple[str, str], tuple[Referrer, ...]] = tools.once(("referrers-seen",), dict)
    repairs = []
    for digest in subjects:
        what = f"repair the fallback index {repository}:{fallback_tag(digest)}"
        before = seen.get((repository, digest), ())
        repair = _retried(
            tools,
            log,
            step,
            what,
            repository,
            functools.partial(_repaired, client, repository, digest, api, before),
        )
        if isinstance(repair, Unserved):
            return repair
        seen[(repository, digest)] = repair.referrers
        log.info(repair.describe(), step=step)
        repairs.append(repair)
    log.keep_rows("referrers", [{"step": step, **r.as_dict()} for r in repairs])
    return repairs


def _repaired(
    client: Registry,
    repository: str,
    digest: str,
    from_api: bool,
    before: tuple[Referrer, ...],
    left: float,
) -> Repair | Unserved:
    """One attempt: the fallback index of `digest` typed, listing again what it listed after
    this run's earlier repair (`before`), and what the API lists (provenance.referrers tag)."""
    timeout = min(left, 30.0)
    listed = client.referrers_of(repository, digest, timeout=timeout) if from_api else ()
    if isinstance(listed, Unserved):
        return listed
    return client.repair_fallback_index(
        repository, digest, listed=(*listed, *before), timeout=timeout
    )


def has_api(
    tools: Tools,
    log: RetryLog,
    step: str,
    repository: str,
    digest: str,
    client: Callable[[], Registry],
) -> bool | Unserved:
    """Whether the registry answers the referrers API, asked once per run and repository
    (`client`: the registry client with the login to ask with, made only by the one that asks)."""
    return tools.once(
        ("referrers-api", repository),
        lambda: _retried(
            tools,
            log,
            step,
            f"ask {registry_of(repository)} for its referrers API",
            repository,
            lambda left: client().has_referrers_api(repository, digest, timeout=min(left, 30.0)),
        ),
    )


def _retried(
    tools: Tools, log: RetryLog, step: str, what: str, repository: str, call: Callable[[float], T]
) -> T:
    return with_retries(log, tools.retry_policy, step, what, registry_of(repository), call)


# --- preflight: provenance.referrers api ----------------------------------------------------


def stored_in(run: Run, repository: str) -> str:
    """Where cosign stores the bundles of `repository`'s images: provenance.cosign_repository
    (COSIGN_REPOSITORY) moves them, referrers and fallback tag alike."""
    return run.settings.cosign_repository or repository


def needs_api(run: Run, steps: Collection[str]) -> bool:
    """provenance.referrers api, and the plan's steps would write bundles with cosign 3."""
    s = run.settings
    return s.referrers == "api" and not s.dry_run and writes_bundles(s, 3, steps)


def probe_api(run: Run, tools: Tools, log: RetryLog, repository: str) -> bool | None:
    """The preflight's probe: does the registry have the referrers API? Before the run's login
    (it runs beside the probes), so with the login's credentials in a config of its own; None
    when a credential helper holds the login and this can't be told."""
    repository = stored_in(run, repository)
    client = functools.partial(_probe_client, run, tools, registry_of(repository))
    api = has_api(tools, log, "preflight", repository, PROBE_DIGEST, client)
    return None if isinstance(api, Unserved) else api


def refuse_without_api(run: Run, tools: Tools, repository: str) -> None:
    """Bad input (exit 2, before anything is pushed): provenance.referrers api on a registry
    that has no referrers API, where cosign 3 will write bundles."""
    if tools.cosign.major < 3:
        return  # cosign 2 writes no bundle: nothing for the API to list
    registry = registry_of(stored_in(run, repository))
    raise InputError(
        f"provenance.referrers api: {registry} has no OCI referrers API (GET /v2/<name>/"
        "referrers/<digest> answers 404), so cosign 3 would list its bundles in the "
        "sha256-<digest> fallback tag instead",
        hint="set provenance.referrers to auto (the fallback tag, its index typed) or tag, or "
        "push to a registry that has the referrers API",
    )


def _probe_client(run: Run, tools: Tools, registry: str) -> Registry:
    """A registry client with the run's login to `registry` in a docker config of its own, in
    the run's private folder (0700, removed at the end), as `docker login` will write it; else
    the run's client."""
    from provenance_tasks.steps.login import credentials

    login = credentials(run)
    if login is None or login[0] != registry:
        return tools.registry
    folder = tools.private_folder() / "referrers-probe"
    folder.mkdir(mode=0o700, exist_ok=True)
    auth = base64.b64encode(f"{login[1]}:{login[2]}".encode()).decode()
    path = folder / "config.json"
    path.touch(mode=0o600)
    path.write_text(json.dumps({"auths": {registry: {"auth": auth}}}))
    return Registry(folder)  # for the referrers API alone: nothing to ask imagetools
