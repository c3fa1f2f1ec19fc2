"""Time-based one-time passwords (RFC 6238, with pyotp), their QR code, and recovery codes.

Pure functions: nothing here touches a store. The TOTP secret is kept sealed (Fernet,
under a key derived from the appliance's secret key), so a copy of the account database
alone cannot produce codes; recovery codes are kept as SHA-256 digests (80 random bits
each, so a digest cannot be reversed by trying).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
from typing import TYPE_CHECKING

import pyotp
import segno
from markupsafe import Markup

if TYPE_CHECKING:
    from cryptography.fernet import Fernet

ISSUER = "Appliance analytics"
STEP_S = 30
ACCEPTED_DRIFT_STEPS = 1  # a code of the step before or after is accepted (clock drift)
RECOVERY_CODES = 10
RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i to misread
_CODE = re.compile(r"^\d{6}$")


def new_secret() -> str:
    return pyotp.random_base32()


def provisioning_uri(secret: str, email: str) -> str:
    """The otpauth:// URI an authenticator app reads from the QR code."""
    return pyotp.TOTP(secret, interval=STEP_S).provisioning_uri(name=email, issuer_name=ISSUER)


def qr_svg(uri: str) -> Markup:
    """The QR code as inline SVG (no image request, no outside service)."""
    svg = segno.make(uri, error="m").svg_inline(
        scale=5, light="#fff", title="QR code for your authenticator app"
    )
    return Markup(svg)  # noqa: S704 (segno's own markup: path data and a fixed title)


def matching_step(secret: str, code: str, now: float | None = None) -> int | None:
    """The time step whose code this is (within the accepted drift), or None."""
    code = code.strip().replace(" ", "")
    if not _CODE.match(code):
        return None
    totp = pyotp.TOTP(secret, interval=STEP_S)
    now = time.time() if now is None else now
    for offset in range(-ACCEPTED_DRIFT_STEPS, ACCEPTED_DRIFT_STEPS + 1):
        at = now + offset * STEP_S
        if hmac.compare_digest(totp.at(at), code):
            return totp.timecode(at)  # type: ignore[arg-type]
    return None


def new_recovery_codes() -> list[str]:
    """Ten codes like `k7mp-3xq9-tw2c-h8fn` (16 characters of 31, about 80 bits)."""
    codes = []
    for _ in range(RECOVERY_CODES):
        raw = "".join(secrets.choice(RECOVERY_ALPHABET) for _ in range(16))
        codes.append("-".join(raw[i : i + 4] for i in range(0, 16, 4)))
    return codes


def normalize_recovery_code(raw: str) -> str | None:
    """`K7MP 3XQ9-tw2c h8fn` -> `k7mp-3xq9-tw2c-h8fn`; None when it cannot be one."""
    letters = re.sub(r"[\s-]", "", raw.lower())
    if len(letters) != 16 or any(c not in RECOVERY_ALPHABET for c in letters):
        return None
    return "-".join(letters[i : i + 4] for i in range(0, 16, 4))


def _fernet(secret_key: str) -> Fernet:
    # Imported on first use: cryptography is ~7 MiB of a server where nobody set up 2FA.
    from cryptography.fernet import Fernet

    key = hmac.new(secret_key.encode(), b"appliance totp secret v1", hashlib.sha256).digest()
    return Fernet(base64.urlsafe_b64encode(key))


def seal(secret: str, secret_key: str) -> str:
    return _fernet(secret_key).encrypt(secret.encode()).decode()


def unseal(sealed: str, secret_key: str) -> str | None:
    """The secret, or None when it was sealed under another secret key."""
    from cryptography.fernet import InvalidToken

    try:
        return _fernet(secret_key).decrypt(sealed.encode()).decode()
    except InvalidToken:
        return None
