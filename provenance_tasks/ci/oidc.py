"""Read the claims of an OIDC ID token (a JWT) without verifying it.

The claims only tell us which identity and issuer a keyless signature made with this token will
carry, so verification can expect exactly those; Fulcio verifies the token itself when it issues
the certificate. Nothing here verifies a signature, so nothing here may be trusted for access.

The token is a secret: it is never logged, never kept in an exception, and a malformed token gives
None instead of an error whose text or traceback could quote it.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping

__all__ = ["SIGSTORE_AUDIENCE", "claim", "decode_claims", "token_problem"]

_SEGMENT_RE = re.compile(r"[A-Za-z0-9_-]+")


def decode_claims(token: str | None) -> Mapping[str, object] | None:
    """The payload claims of a compact JWS `header.payload.signature`, or None if it is not one."""
    if not token:
        return None
    parts = token.strip().split(".")
    if len(parts) != 3 or not _SEGMENT_RE.fullmatch(parts[1]):
        return None
    segment = parts[1]
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
        claims = json.loads(raw.decode("utf-8"))
    except (ValueError, binascii.Error, RecursionError):
        # ValueError covers UnicodeDecodeError and JSONDecodeError; drop the exception so no
        # traceback can show a fragment of the token.
        return None
    if not isinstance(claims, dict):
        return None
    return claims


def claim(claims: Mapping[str, object] | None, name: str) -> str | None:
    """A non-empty string claim, or None when the claims or the claim are missing or not text."""
    if claims is None:
        return None
    value = claims.get(name)
    if isinstance(value, str) and value:
        return value
    return None


#: The audience Fulcio asks of an ID token.
SIGSTORE_AUDIENCE = "sigstore"


def token_problem(token: str, *, now: float, audience: str = SIGSTORE_AUDIENCE) -> str | None:
    """Why Fulcio would refuse this token on its face (not a JWT, expired, wrong audience), or
    None. Only the claims are read: the signature is Fulcio's to check. Never quotes the token."""
    claims = decode_claims(token)
    if claims is None:
        return "is not a JWT (three base64url parts with a JSON payload)"
    aud = claims.get("aud")
    audiences = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
    if audience not in audiences:
        shown = ", ".join(str(a) for a in audiences) or "none"
        return f"has the audience {shown}, not {audience!r}"
    exp = claims.get("exp")
    if not isinstance(exp, int | float):
        return "has no expiry (exp claim)"
    if exp <= now:
        return f"expired {int(now - exp)}s ago"
    return None
