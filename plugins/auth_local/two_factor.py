"""Two-factor login for password accounts: enrol, check a code, turn it off.

Uses the account store's TOTP records; a code is accepted once (its time step is recorded,
so the same code cannot be replayed while it is still valid), a recovery code once ever.
"""

from __future__ import annotations

import time
from typing import Any

from appliance.core.accounts import token_digest
from appliance.core.stores import call
from plugins.auth_local import totp


async def is_enrolled(accounts: Any, user_id: int) -> bool:
    record = await call(accounts.totp_secret, user_id)
    return record is not None and record[1]


async def begin_enrolment(accounts: Any, secret_key: str, user_id: int) -> str | None:
    """A new secret, stored unconfirmed; None when two-factor login is already on."""
    secret = totp.new_secret()
    started = await call(accounts.start_totp_enrolment, user_id, totp.seal(secret, secret_key))
    return secret if started else None


async def pending_secret(accounts: Any, secret_key: str, user_id: int) -> str | None:
    """The unconfirmed secret of an enrolment in progress (to show its QR code again)."""
    record = await call(accounts.totp_secret, user_id)
    if record is None or record[1]:
        return None
    return totp.unseal(record[0], secret_key)


async def confirm_enrolment(
    accounts: Any, secret_key: str, user_id: int, code: str
) -> list[str] | None:
    """Switch two-factor login on when `code` is right; returns the new recovery codes
    (shown once, stored as digests), or None."""
    secret = await pending_secret(accounts, secret_key, user_id)
    step = totp.matching_step(secret, code) if secret else None
    if step is None:
        return None
    codes = totp.new_recovery_codes()
    digests = [token_digest(code) for code in codes]
    confirmed = await call(accounts.confirm_totp, user_id, step, digests, time.time())
    return codes if confirmed else None


async def check_second_factor(accounts: Any, secret_key: str, user_id: int, code: str) -> bool:
    """A current authenticator code not used before, or an unused recovery code."""
    record = await call(accounts.totp_secret, user_id)
    if record is None or not record[1]:
        return False
    secret = totp.unseal(record[0], secret_key)
    step = totp.matching_step(secret, code) if secret else None
    if step is not None:
        return bool(await call(accounts.use_totp_step, user_id, step))
    recovery = totp.normalize_recovery_code(code)
    if recovery is None:
        return False
    return bool(
        await call(accounts.use_recovery_code, user_id, token_digest(recovery), time.time())
    )


async def disable(accounts: Any, user_id: int) -> None:
    await call(accounts.delete_totp, user_id)
