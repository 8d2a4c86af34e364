"""Key references a run signs and verifies with, checked before anything runs: a file (read
now), `env://VAR` (set now), or a KMS URI of a scheme cosign knows; and provenance.second_key's
pair, the co-signature's."""

from __future__ import annotations

import os
from pathlib import Path

from provenance_tasks.errors import InputError
from provenance_tasks.models import KMS_SCHEMES, KeyPolicy, KeySigning
from provenance_tasks.steps.run import Run


def check_key_ref(run: Run, key: str, what: str) -> str:
    if "://" in key:
        scheme = key.split("://", 1)[0] + "://"
        if scheme == "env://":
            if not run.environ.get(key[len("env://") :]):
                raise InputError(
                    f"{what} {key}: the variable is not set",
                    hint=f"export {key[len('env://') :]} with the PEM key",
                )
            return key
        if scheme not in KMS_SCHEMES:
            raise InputError(
                f"{what} {key}: unknown KMS scheme {scheme}",
                hint=f"use a file, env://VAR, or one of {', '.join(KMS_SCHEMES)}",
            )
        return key
    path = (run.cwd / key).resolve()
    if not path.is_file() or not os.access(path, os.R_OK):
        raise InputError(f"cannot read {what} {path}", hint="check the path and its permissions")
    return str(path)


def second_signer(
    run: Run, *, signs: bool, verifies: bool
) -> tuple[KeySigning | None, KeyPolicy | None]:
    """provenance.second_key, checked now: the key signs (a file or KMS URI) and its public
    half verifies (the .pub beside the file, the KMS URI, or provenance.second_public_key)."""
    s = run.settings
    key, public = s.second_key, s.second_public_key
    if not key and not public:
        return None, None
    if key and key.startswith("env://"):
        raise InputError(
            "provenance.second_key can't be an env:// key",
            hint="use a key file or a KMS URI for the co-signature",
        )
    signer = None
    if key and signs:
        signer = KeySigning(check_key_ref(run, key, "provenance.second_key"))
    if not verifies:
        return signer, None
    if not public and key:
        public = key if key.startswith(KMS_SCHEMES) else str(Path(key).with_suffix(".pub"))
    assert public is not None
    checked = (
        public
        if public.startswith(KMS_SCHEMES)
        else check_key_ref(run, public, "provenance.second_public_key")
    )
    return signer, KeyPolicy(checked)
