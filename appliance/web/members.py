"""A site's members page: who can see it, with which role, and invitations.

Only the site's owner and admins may open it or change anything (viewers read stats
only). The owner cannot be removed or demoted; roles given here are admin or viewer.
"""

from __future__ import annotations

import time
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from appliance.core.accounts import INVITE_ROLES, AccountError, Membership
from appliance.core.invitations import invitation_url, invite
from appliance.core.stores import call
from appliance.web.pages import render
from appliance.web.security import CSRF_FIELD, appliance_of, csrf_valid, current_user
from appliance.web.site_pages import PageDenied, site_membership


async def managed_site(request: Request) -> Membership:
    """The caller's membership of the site in the path, which must let them manage it."""
    return await site_membership(request, manage=True)


async def _managed_form(request: Request) -> tuple[Membership, Any]:
    membership = await managed_site(request)
    form = await request.form()
    if not csrf_valid(request, str(form.get(CSRF_FIELD, ""))):
        raise PageDenied(Response("Invalid or missing CSRF token.", status_code=403))
    return membership, form


async def members_page(
    request: Request,
    message: str = "",
    error: str = "",
    link: str = "",
    status: int = 200,
) -> Response:
    try:
        membership = await managed_site(request)
    except PageDenied as denied:
        return denied.response
    accounts = appliance_of(request).accounts
    site = membership.site
    context = {
        "site": site,
        "me": await current_user(request),
        "members": await call(accounts.site_members, site.id),
        "invitations": await call(accounts.open_invitations, site.id, time.time()),
        "roles": INVITE_ROLES,
        "message": message,
        "error": error,
        "link": link,
    }
    response = render(request, "members.html", context, status=status)
    if link:
        response.headers["cache-control"] = "no-store"
    return response


async def invite_member(request: Request) -> Response:
    try:
        membership, form = await _managed_form(request)
    except PageDenied as denied:
        return denied.response
    appliance = appliance_of(request)
    user = await current_user(request)
    try:
        invitation, token = await invite(
            appliance.accounts,
            membership.site.id,
            str(form.get("email", ""))[:320],
            str(form.get("role", "")),
            user.id if user else None,
        )
    except AccountError as error:
        return await members_page(request, error=str(error), status=400)
    base = appliance.settings.get("public_url") or str(request.base_url)
    return await members_page(
        request,
        message=f"Invited {invitation.email} as {invitation.role}. Send them this link"
        " (shown once; it works for 7 days):",
        link=invitation_url(base, token),
    )


async def change_role(request: Request) -> Response:
    try:
        membership, form = await _managed_form(request)
    except PageDenied as denied:
        return denied.response
    role = str(form.get("role", ""))
    if role not in INVITE_ROLES:
        return await members_page(
            request, error=f"role: must be one of {', '.join(INVITE_ROLES)}", status=400
        )
    user_id = _int(request.path_params["user_id"])
    changed = await call(
        appliance_of(request).accounts.set_member_role, membership.site.id, user_id, role
    )
    if not changed:
        return await members_page(request, error="That member's role cannot change.", status=400)
    return RedirectResponse(f"/sites/{membership.site.domain}/members", status_code=303)


async def remove_member(request: Request) -> Response:
    try:
        membership, _ = await _managed_form(request)
    except PageDenied as denied:
        return denied.response
    user_id = _int(request.path_params["user_id"])
    accounts = appliance_of(request).accounts
    if not await call(accounts.remove_member, membership.site.id, user_id):
        return await members_page(request, error="That member cannot be removed.", status=400)
    user = await current_user(request)
    if user is not None and user.id == user_id:  # left the site themselves
        return RedirectResponse("/dashboard", status_code=303)
    return RedirectResponse(f"/sites/{membership.site.domain}/members", status_code=303)


async def revoke_invitation(request: Request) -> Response:
    try:
        membership, _ = await _managed_form(request)
    except PageDenied as denied:
        return denied.response
    invitation_id = _int(request.path_params["invitation_id"])
    accounts = appliance_of(request).accounts
    await call(accounts.revoke_invitation, membership.site.id, invitation_id)
    return RedirectResponse(f"/sites/{membership.site.domain}/members", status_code=303)


def _int(raw: str) -> int:
    return int(raw) if raw.isdigit() and len(raw) < 19 else -1


routes = [
    Route("/sites/{domain}/members", members_page, methods=["GET"]),
    Route("/sites/{domain}/members/invite", invite_member, methods=["POST"]),
    Route("/sites/{domain}/members/{user_id}/role", change_role, methods=["POST"]),
    Route("/sites/{domain}/members/{user_id}/remove", remove_member, methods=["POST"]),
    Route(
        "/sites/{domain}/invitations/{invitation_id}/revoke", revoke_invitation, methods=["POST"]
    ),
]
