"""An invitation link's page: sign up (with any provider offering it), or accept it when
already logged in with the invited email.

The link's token is the only credential here; the page shows the site, the role and the
invited email to whoever holds it, and nothing else.
"""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from appliance.core.accounts import Invitation, token_digest
from appliance.core.stores import call
from appliance.web.pages import error_page, render
from appliance.web.security import CSRF_FIELD, appliance_of, csrf_valid, current_user


async def _invitation(request: Request) -> Invitation | None:
    token = request.path_params["token"]
    if len(token) > 200:
        return None
    accounts = appliance_of(request).accounts
    return await call(accounts.invitation_by_token, token_digest(token), time.time())


def _not_found(request: Request) -> Response:
    return error_page(
        request,
        404,
        "Invitation not found",
        "This invitation expired, was already used or was withdrawn. Ask for a new one.",
    )


async def invitation_page(request: Request, error: str = "", status: int = 200) -> Response:
    """GET /invitations/{token}."""
    invitation = await _invitation(request)
    if invitation is None:
        return _not_found(request)
    appliance = appliance_of(request)
    user = await current_user(request)
    has_account = await call(appliance.accounts.user_by_email, invitation.email) is not None
    providers = [p for p in appliance.auth_providers if p.signup_template]
    context = {
        "invitation": invitation,
        "invitation_token": request.path_params["token"],
        "user": user,
        "has_account": has_account,
        "providers": providers,
        "error": error,
    }
    response = render(request, "invitation.html", context, status=status)
    response.headers["cache-control"] = "no-store"
    return response


async def accept_invitation(request: Request) -> Response:
    """POST /invitations/{token}/accept: the logged-in invitee joins the site."""
    user = await current_user(request)
    if user is None:
        return RedirectResponse("/login", status_code=303)
    form = await request.form()
    if not csrf_valid(request, str(form.get(CSRF_FIELD, ""))):
        return Response("Invalid or missing CSRF token.", status_code=403)
    invitation = await _invitation(request)
    if invitation is None:
        return _not_found(request)
    if invitation.email != user.email:
        return await invitation_page(
            request, error=f"This invitation is for {invitation.email}.", status=403
        )
    await call(appliance_of(request).accounts.accept_invitations, user.id, user.email, time.time())
    return RedirectResponse(f"/sites/{invitation.site.domain}", status_code=303)


routes = [
    Route("/invitations/{token}", invitation_page, methods=["GET"]),
    Route("/invitations/{token}/accept", accept_invitation, methods=["POST"]),
]
