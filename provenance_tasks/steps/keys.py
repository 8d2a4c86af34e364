"""Key references a run signs and verifies with, checked before anything runs: a file (read
now), `env://VAR` (set now), or a KMS URI of a scheme cosign knows; and provenance.second_key's
pair, the co-signature's."""

from __future__ import annotations

import os

from provenance_tasks.errors import InputError
from provenance_tasks.models import KMS_SCHEMES, KeyPolicy, KeyRef, KeySigning
from provenance_tasks.steps.run import Run


def check_key_ref(run: Run, key: str, what: str) -> str:
    ref = KeyRef.parse(key)
    variable = ref.env_variable
    if variable == "":
        raise InputError(f"{what} {key} names no variable", hint="write env://NAME")
    if variable is not None:
        if not run.environ.get(variable):
            raise InputError(
                f"{what} {key}: the variable is not set",
                hint=f"export {variable} with the PEM key",
            )
        return key
    if ref.path is None:
        if not ref.is_kms:
            raise InputError(
                f"{what} {key}: unknown KMS scheme {ref.scheme}",
                hint=f"use a file, env://VAR, or one of {', '.join(KMS_SCHEMES)}",
            )
        return key
    path = (run.cwd / ref.path).resolve()
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
    if key and KeyRef.parse(key).is_env:
        raise InputError(
            "provenance.second_key can't be an env:// key",
            hint="use a key file or a KMS URI for the co-signature",
        )
    signer = None
    if key and signs:
        signer = KeySigning(check_key_ref(run, key, "provenance.second_key"))
    if not verifies:
        return signer, None
    if not public:
        half = KeyRef.parse(key).public_half() if key else None
        assert half is not None  # a file or a KMS URI: env:// was refused above
        public = str(half)
    checked = (
        public
        if KeyRef.parse(public).is_kms
        else check_key_ref(run, public, "provenance.second_public_key")
    )
    return signer, KeyPolicy(checked)
