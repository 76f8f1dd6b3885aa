"""Mint PostgREST keys: HS256 JWTs signed with the project's JWT secret (standard library only)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

from .errors import UsageError

ISSUER = "listing-sync"
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def mint_jwt(
    secret: str,
    role: str,
    *,
    expires_in: int | None = None,
    issuer: str = ISSUER,
    now: float | None = None,
) -> str:
    """Return an HS256 JWT with claims role, iss, iat (and exp when ``expires_in`` is given)."""
    issued = int(time.time() if now is None else now)
    claims: dict[str, object] = {"role": role, "iss": issuer, "iat": issued}
    if expires_in is not None:
        claims["exp"] = issued + expires_in
    header = {"alg": "HS256", "typ": "JWT"}
    signing_input = (
        _b64url(json.dumps(header, separators=(",", ":")).encode())
        + "."
        + _b64url(json.dumps(claims, separators=(",", ":")).encode())
    )
    signature = hmac.new(secret.encode(), signing_input.encode("ascii"), hashlib.sha256).digest()
    return signing_input + "." + _b64url(signature)


def parse_lifetime(text: str) -> int:
    """Read a key lifetime: seconds, or a number with s, m, h or d (365d)."""
    raw = text.strip().lower()
    factor = _UNITS.get(raw[-1:], 1)
    digits = raw[:-1] if raw[-1:] in _UNITS else raw
    if not digits.isdigit() or int(digits) == 0:
        raise UsageError(f"--expires-in must be a duration such as 365d, 12h or 3600, got {text!r}")
    return int(digits) * factor
