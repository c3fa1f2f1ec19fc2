"""Who may open a site's pages: the caller's membership of the site in the path.

Shared by the dashboard, its settings and the members pages, so every site page answers the
same way: a login redirect for nobody, a 404 page for another tenant, 403 for a viewer where
managing is needed.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from appliance.core.accounts import AccountError, Membership, normalize_domain
from appliance.core.stores import call
from appliance.web.access import MANAGE_ROLES
from appliance.web.pages import error_page, login_redirect
from appliance.web.security import appliance_of, current_user


class PageDenied(Exception):
    """Carries the response to give instead of the page."""

    def __init__(self, response: Response) -> None:
        self.response = response


async def site_membership(request: Request, manage: bool = False) -> Membership:
    user = await current_user(request)
    if user is None:
        raise PageDenied(await login_redirect(request))
    try:
        domain = normalize_domain(request.path_params["domain"])
    except AccountError:
        domain = ""
    accounts = appliance_of(request).accounts
    membership = await call(accounts.membership, user.id, domain) if domain else None
    if membership is None:
        raise PageDenied(error_page(request, 404, "No such site", "You have no site by that name."))
    if manage and membership.role not in MANAGE_ROLES:
        raise PageDenied(
            error_page(request, 403, "Not allowed", "Only the site's admins may change it.")
        )
    return membership
