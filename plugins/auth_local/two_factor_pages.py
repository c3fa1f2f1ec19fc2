"""Pages of two-factor login: the code step after the password, enrolment (required at
login, or chosen on the account page), recovery codes, and turning it off."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from appliance.core.accounts import User
from appliance.core.stores import call
from appliance.web.pages import error_page, login_redirect, render
from appliance.web.security import CSRF_FIELD, appliance_of, csrf_valid, current_user
from plugins.auth_local import throttle, two_factor
from plugins.auth_local.pending_login import (
    ENROL_STEP,
    MAX_ATTEMPTS,
    TOTP_STEP,
    end_pending_login,
    start_pending_login,
    take_pending_login,
)
from plugins.auth_local.routes import (
    CSRF_REFUSED,
    complete_login,
    enrolment_page,
    login_refused,
    too_many_attempts,
)

WRONG_CODE = "That code is not right, or it was used already."
ACCOUNT_PAGE = "/account/two-factor"


class Refused(Exception):
    def __init__(self, response: Response) -> None:
        self.response = response


async def _form(request: Request) -> Any:
    form = await request.form()
    if not csrf_valid(request, str(form.get(CSRF_FIELD, ""))):
        raise Refused(Response(CSRF_REFUSED, status_code=403))
    return form


async def _pending_user(request: Request, step: str) -> tuple[User, dict[str, Any]]:
    """The user whose password was right a moment ago (redeems the pending token)."""
    pending = await take_pending_login(request, step)
    found = None
    if pending is not None:
        found = await call(appliance_of(request).accounts.user_by_email, pending["email"])
    if pending is None or found is None or found[0].id != pending["user_id"]:
        response = login_refused(request, "The login expired. Enter your password again.", 400)
        end_pending_login(response)
        raise Refused(response)
    if (wait_s := await throttle.retry_after(request, pending["email"])) is not None:
        response = too_many_attempts(request, wait_s)
        end_pending_login(response)
        raise Refused(response)
    return found[0], pending


async def _wrong_code(
    request: Request, user: User, pending: dict[str, Any], step: str, response: Response
) -> Response:
    """Count the failure; give the browser a fresh pending token unless attempts ran out."""
    await throttle.record_failure(request, user.email)
    attempts = int(pending["attempts"]) + 1
    if attempts >= MAX_ATTEMPTS:
        refused = login_refused(request, "Too many wrong codes. Log in again.", 401)
        end_pending_login(refused)
        return refused
    await start_pending_login(request, response, step, user.id, user.email, attempts)
    response.headers["cache-control"] = "no-store"
    return response


async def login_code(request: Request) -> Response:
    """POST /login/two-factor: the authenticator code (or a recovery code) after the password."""
    try:
        form = await _form(request)
        user, pending = await _pending_user(request, TOTP_STEP)
    except Refused as refused:
        return refused.response
    appliance = appliance_of(request)
    code = str(form.get("code", ""))[:64]
    if await two_factor.check_second_factor(
        appliance.accounts, appliance.secret_key, user.id, code
    ):
        response = await complete_login(request, user)
        end_pending_login(response)
        return response
    page = render(request, "auth_local/two_factor_login.html", {"error": WRONG_CODE}, status=401)
    return await _wrong_code(request, user, pending, TOTP_STEP, page)


async def login_enrol(request: Request) -> Response:
    """POST /login/two-factor/enrol: the first code when the settings require enrolment."""
    try:
        form = await _form(request)
        user, pending = await _pending_user(request, ENROL_STEP)
    except Refused as refused:
        return refused.response
    appliance = appliance_of(request)
    accounts, key = appliance.accounts, appliance.secret_key
    codes = await two_factor.confirm_enrolment(accounts, key, user.id, str(form.get("code", "")))
    if codes is not None:
        page = _recovery_codes_page(request, codes)
        response = await complete_login(request, user, page)
        end_pending_login(response)
        return response
    secret = await two_factor.pending_secret(accounts, key, user.id)
    if secret is None:  # enrolment finished in another tab, or the key changed
        return login_refused(request, "The login expired. Enter your password again.", 400)
    page = enrolment_page(
        request, "/login/two-factor/enrol", user.email, secret, error=WRONG_CODE, status=401
    )
    return await _wrong_code(request, user, pending, ENROL_STEP, page)


def _recovery_codes_page(request: Request, codes: list[str]) -> Response:
    response = render(request, "auth_local/recovery_codes.html", {"codes": codes})
    response.headers["cache-control"] = "no-store"
    return response


# --- the account page (logged in) ------------------------------------------------------


async def _account_user(request: Request) -> User:
    user = await current_user(request)
    if user is None:
        raise Refused(await login_redirect(request))
    return user


async def account_page(
    request: Request, message: str = "", error: str = "", status: int = 200
) -> Response:
    try:
        user = await _account_user(request)
    except Refused as refused:
        return refused.response
    appliance = appliance_of(request)
    found = await call(appliance.accounts.user_by_email, user.email)
    context = {
        "user": user,
        "has_password": bool(found and found[1]),
        "enrolled": await two_factor.is_enrolled(appliance.accounts, user.id),
        "codes_left": await call(appliance.accounts.unused_recovery_codes, user.id),
        "required": bool(appliance.settings.auth_local.require_two_factor),
        "message": message,
        "error": error,
    }
    return render(request, "auth_local/two_factor_settings.html", context, status=status)


async def account_start(request: Request) -> Response:
    try:
        user = await _account_user(request)
        await _form(request)
    except Refused as refused:
        return refused.response
    appliance = appliance_of(request)
    secret = await two_factor.begin_enrolment(appliance.accounts, appliance.secret_key, user.id)
    if secret is None:
        return RedirectResponse(ACCOUNT_PAGE, status_code=303)
    return enrolment_page(request, f"{ACCOUNT_PAGE}/confirm", user.email, secret)


async def account_confirm(request: Request) -> Response:
    try:
        user = await _account_user(request)
        form = await _form(request)
    except Refused as refused:
        return refused.response
    appliance = appliance_of(request)
    accounts, key = appliance.accounts, appliance.secret_key
    codes = await two_factor.confirm_enrolment(accounts, key, user.id, str(form.get("code", "")))
    if codes is not None:
        return _recovery_codes_page(request, codes)
    secret = await two_factor.pending_secret(accounts, key, user.id)
    if secret is None:
        return RedirectResponse(ACCOUNT_PAGE, status_code=303)
    action = f"{ACCOUNT_PAGE}/confirm"
    return enrolment_page(request, action, user.email, secret, error=WRONG_CODE, status=400)


async def account_disable(request: Request) -> Response:
    try:
        user = await _account_user(request)
        form = await _form(request)
    except Refused as refused:
        return refused.response
    appliance = appliance_of(request)
    if appliance.settings.auth_local.require_two_factor:
        return error_page(
            request, 403, "Not allowed", "The administrator requires two-factor login."
        )
    if await throttle.retry_after(request, user.email) is not None:
        return await account_page(request, error="Too many wrong codes; wait a while.", status=429)
    code = str(form.get("code", ""))[:64]
    if not await two_factor.check_second_factor(
        appliance.accounts, appliance.secret_key, user.id, code
    ):
        await throttle.record_failure(request, user.email)
        return await account_page(request, error=WRONG_CODE, status=400)
    await two_factor.disable(appliance.accounts, user.id)
    return await account_page(request, message="Two-factor login is off.")
