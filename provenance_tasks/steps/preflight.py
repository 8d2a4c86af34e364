"""Every tool probe of a run, once each and side by side, before anything is pushed.

The probes are independent and each waits on a process or the network: cosign's age and the
signing key (the slowest: `cosign public-key` decrypts the key, so a wrong password is found
before the build), buildx and its builder, the Sigstore services, and the import of
python-on-whales that the build will need. They run in parallel and their errors are raised in a
fixed order, the signing side's first, so the same bad input always gives the same message.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from provenance_tasks.models import SigningMaterial
from provenance_tasks.steps import plan
from provenance_tasks.steps.session import Session


def preflight(session: Session, material: SigningMaterial | None, *, build: bool) -> None:
    """Probe what the run's steps will use: signing tools for `material`, build tools if `build`."""
    probes: list[Callable[[], object]] = []
    if material is not None:
        probes += [
            lambda: plan.signing_cosign(session),
            lambda: plan.signing_key(session, material),
            lambda: plan.signing_services(session, material),
        ]
    if build:
        probes += [lambda: plan.build_tools(session), _import_python_on_whales]
    if session.settings.dry_run or len(probes) < 2:
        for probe in probes:
            probe()
        return
    # What the threads share is made here, before them: the docker client, the Sigstore.
    session.docker  # noqa: B018 - cached properties, built once
    if session.sigstore.private:
        session.private_folder()  # cosign's TUF_ROOT: one folder, not one per thread
    with ThreadPoolExecutor(max_workers=len(probes), thread_name_prefix="probe") as pool:
        futures = [pool.submit(probe) for probe in probes]
    for future in futures:
        error = future.exception()
        if error is not None:
            raise error


def _import_python_on_whales() -> None:
    """A slow import (pydantic underneath), paid while the other probes wait on their tools."""
    import python_on_whales  # noqa: F401
