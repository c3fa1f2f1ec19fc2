"""The step between a right password and a session: a short-lived, single-use token.

When an account has two-factor login (or must enrol in it), the password form does not
log in; it gives the browser this token (an HttpOnly cookie limited to /login) and asks
for the code. Each code attempt redeems the token; a wrong code gets a fresh one, up to
MAX_ATTEMPTS, then the password must be entered again.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from appliance.web.challenges import issue_challenge, redeem_challenge
from appliance.web.security import appliance_of

PENDING_COOKIE = "appliance_pending_login"
COOKIE_PATH = "/login"
PENDING_TTL_S = 300
MAX_ATTEMPTS = 5
TOTP_STEP = "totp"  # enrolled: enter a code
ENROL_STEP = "totp_enrol"  # two-factor login is required and not set up yet


async def start_pending_login(
    request: Request, response: Response, step: str, user_id: int, email: str, attempts: int = 0
) -> None:
    payload = {"user_id": user_id, "email": email, "attempts": attempts}
    token = await issue_challenge(appliance_of(request).accounts, step, payload, PENDING_TTL_S)
    secure = bool(appliance_of(request).settings.auth.secure_cookies)
    response.set_cookie(
        PENDING_COOKIE,
        token,
        max_age=PENDING_TTL_S,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=secure or request.url.scheme == "https",
    )


async def take_pending_login(request: Request, step: str) -> dict[str, Any] | None:
    """The pending login's payload (user_id, email, attempts), once; None if there is none."""
    token = request.cookies.get(PENDING_COOKIE)
    return await redeem_challenge(appliance_of(request).accounts, token, step)


def end_pending_login(response: Response) -> None:
    response.delete_cookie(PENDING_COOKIE, path=COOKIE_PATH)
