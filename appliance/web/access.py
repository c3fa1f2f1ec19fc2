"""Access rules shared by the API routes: who is asking, and may they touch this site."""

from __future__ import annotations

from starlette.requests import Request

from appliance.core.accounts import AccountError, Membership, User, normalize_domain
from appliance.core.stores import call
from appliance.web.security import CSRF_HEADER, appliance_of, csrf_valid, current_user

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
MANAGE_ROLES = ("owner", "admin")


class ApiDenied(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


async def api_user(request: Request) -> User:
    """The caller (session or API key); cookie-authenticated writes must carry a CSRF token."""
    user = await current_user(request)
    if user is None:
        raise ApiDenied(401, "authentication required: log in or send Authorization: Bearer KEY")
    if (
        request.method not in SAFE_METHODS
        and request.scope.get("appliance.auth") == "session"
        and not csrf_valid(request, request.headers.get(CSRF_HEADER))
    ):
        raise ApiDenied(403, "csrf: send the X-CSRF-Token header from the dashboard page")
    return user


async def site_access(
    request: Request, user: User, raw_domain: str | None, roles: tuple[str, ...] = ()
) -> Membership:
    """The user's membership of the site; 404 when they have none (existence stays secret)."""
    if not raw_domain:
        raise ApiDenied(400, "domain: required")
    try:
        domain = normalize_domain(raw_domain)
    except AccountError as error:
        raise ApiDenied(400, str(error)) from None
    accounts = appliance_of(request).accounts
    membership = await call(accounts.membership, user.id, domain)
    if membership is None:
        raise ApiDenied(404, f"domain: no site {domain!r} for this account")
    if roles and membership.role not in roles:
        raise ApiDenied(403, f"role: {membership.role} may not do this; needs {' or '.join(roles)}")
    return membership
