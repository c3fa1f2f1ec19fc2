"""Creating a password account from an invitation link.

The invitation fixes the email; the person chooses a password. The account joins the
invited site(s) at once, then logs in like after any password (two-factor enrolment first
when the settings require it).
"""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import Response

from appliance.core.accounts import (
    AccountError,
    AlreadyExists,
    check_password_strength,
    hash_password,
    token_digest,
)
from appliance.core.stores import call
from appliance.web.invitations import invitation_page
from appliance.web.pages import error_page
from appliance.web.security import CSRF_FIELD, appliance_of, csrf_valid
from plugins.auth_local.routes import CSRF_REFUSED, after_password


async def signup_with_password(request: Request) -> Response:
    """POST /invitations/{token}/password."""
    form = await request.form()
    if not csrf_valid(request, str(form.get(CSRF_FIELD, ""))):
        return Response(CSRF_REFUSED, status_code=403)
    accounts = appliance_of(request).accounts
    token = request.path_params["token"]
    digest = token_digest(token)
    invitation = await call(accounts.invitation_by_token, digest, time.time())
    if invitation is None:
        return error_page(
            request, 404, "Invitation not found", "This invitation expired or was already used."
        )
    password = str(form.get("password", ""))
    try:
        check_password_strength(password)
        if password != str(form.get("password_confirm", "")):
            raise AccountError("password: the two passwords differ")
        user = await call(accounts.create_user, invitation.email, hash_password(password), False)
    except AlreadyExists:
        return await invitation_page(request, error="This email has an account: log in instead.")
    except AccountError as error:
        return await invitation_page(request, error=str(error), status=400)
    # after_password accepts the invitations to this email once every factor is checked.
    return await after_password(request, user)
