"""Build a container image, push it, sign it with cosign and provenance annotations, verify it.

    invoke build-sign-verify          the whole job (GitLab CI, GitHub Actions or a laptop)
    invoke login | build | sign | verify | publish    one step each

Settings live under `provenance` in invoke's config (invoke.yaml, INVOKE_PROVENANCE_* variables);
flags win over config, config over defaults. Exit codes: 2 bad input or configuration (nothing
was built, pushed or signed), 3 verification failed, 4 a registry or tool failure.

Another repository's tasks.py can reuse the collection:

    from invoke import Collection
    from provenance_tasks.tasks import ns as provenance
    ns = Collection(provenance)      # or ns.add_collection(provenance, name="image")
"""

from __future__ import annotations

from invoke.collection import Collection

from provenance_tasks.settings import invoke_defaults
from provenance_tasks.tasks.image import (
    attest,
    build,
    build_sign_verify,
    login,
    promote,
    publish,
    sign,
    verify,
    verify_attestation,
)

ns = Collection(
    "provenance",
    login,
    build,
    sign,
    attest,
    verify,
    verify_attestation,
    publish,
    build_sign_verify,
    promote,
)
ns.configure({"provenance": invoke_defaults()})

__all__ = [
    "attest",
    "build",
    "build_sign_verify",
    "login",
    "ns",
    "promote",
    "publish",
    "sign",
    "verify",
    "verify_attestation",
]
