"""The release of tasks.py, from nox: the same API, in the session's process.

nox -s release -- --tag v1          (nox's own options before --, the run's after)
"""

from __future__ import annotations

import nox

from provenance_tasks import Built
from provenance_tasks.nox import provenance

nox.options.default_venv_backend = "none"  # the API runs here: no virtualenv to make


@nox.session(python=False)
def release(session: nox.Session) -> None:
    """Build (staged), sign, attest, verify, then publish one image."""
    with provenance(session) as run:
        image = run.build(stage=True)
        assert isinstance(image, Built)
        with run.step("check", "the repository's own check"):
            if not image.ref.startswith(f"{image.repository}@sha256:"):
                session.error(f"{image.ref} is not a reference by digest")
        run.sign(image)
        run.attest(image)
        verification = run.verify(image)
        run.verify_attestation(image)
        published = run.publish(image)
    session.log(f"verified={verification.ok} published={','.join(published.tags)} {image.ref}")
