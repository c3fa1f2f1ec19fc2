"""Single-use tokens that carry a login from one request to the next.

An OAuth `state` and the "password was right, now the code" step are both such tokens: the
browser holds the token, the account store holds its digest and a small JSON payload until
it is redeemed once or expires. Kept in the account store (not in memory) so a login that
starts on one appliance process can finish on another.
"""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

from appliance.core.accounts import token_digest
from appliance.core.stores import call


async def issue_challenge(
    accounts: Any, kind: str, payload: dict[str, Any], ttl_s: int, token: str | None = None
) -> str:
    """Store a challenge and return its token (shown to the browser, never stored); a
    random one unless `token` (e.g. an OAuth state made by the client library) is given."""
    token = token or secrets.token_urlsafe(32)
    expires_at = time.time() + ttl_s
    await call(
        accounts.create_login_challenge, token_digest(token), kind, json.dumps(payload), expires_at
    )
    return token


async def redeem_challenge(accounts: Any, token: str | None, kind: str) -> dict[str, Any] | None:
    """The challenge's payload, once: a second redemption, a wrong kind or an expired
    token gives None."""
    if not token or len(token) > 200:
        return None
    payload = await call(accounts.take_login_challenge, token_digest(token), kind, time.time())
    return json.loads(payload) if payload is not None else None
