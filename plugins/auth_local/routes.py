"""Password login (with its throttle and second step) and first-run setup pages."""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from appliance.core.accounts import (
    DUMMY_PASSWORD_HASH,
    AccountError,
    User,
    check_password_strength,
    hash_password,
    normalize_email,
    verify_password,
)
from appliance.core.stores import call
from appliance.web.pages import render
from appliance.web.security import CSRF_FIELD, appliance_of, csrf_valid, log_in
from plugins.auth_local import throttle, two_factor
from plugins.auth_local.pending_login import ENROL_STEP, TOTP_STEP, start_pending_login
from plugins.auth_local.totp import provisioning_uri, qr_svg

CSRF_REFUSED = "Invalid or missing CSRF token. Reload the page and try again."


def login_refused(request: Request, error: str, status: int) -> Response:
    providers = appliance_of(request).auth_providers
    return render(request, "login.html", {"providers": providers, "error": error}, status=status)


def too_many_attempts(request: Request, wait_s: int) -> Response:
    minutes = max(1, wait_s // 60)
    response = login_refused(
        request, f"Too many failed logins. Try again in {minutes} minutes.", status=429
    )
    response.headers["retry-after"] = str(wait_s)
    return response


async def password_login(request: Request) -> Response:
    form = await request.form()
    if not csrf_valid(request, str(form.get(CSRF_FIELD, ""))):
        return Response(CSRF_REFUSED, status_code=403)
    appliance = appliance_of(request)
    email = str(form.get("email", "")).strip().lower()
    password = str(form.get("password", ""))
    # Before any hashing, and the same for registered and unknown emails.
    if (wait_s := await throttle.retry_after(request, email)) is not None:
        return too_many_attempts(request, wait_s)
    found = await call(appliance.accounts.user_by_email, email) if email else None
    # Hash either way, so a wrong email takes as long as a wrong password.
    stored_hash = (found[1] if found else None) or DUMMY_PASSWORD_HASH
    if not (verify_password(stored_hash, password) and found and found[1]):
        await throttle.record_failure(request, email)
        return login_refused(request, "Wrong email or password.", status=401)
    return await after_password(request, found[0])


async def after_password(request: Request, user: User) -> Response:
    """The password was right: ask for the second factor, or for enrolment when the
    settings require it, or log in."""
    appliance = appliance_of(request)
    accounts = appliance.accounts
    enrolled = await two_factor.is_enrolled(accounts, user.id)
    secret = None
    if not enrolled and appliance.settings.auth_local.require_two_factor:
        secret = await two_factor.begin_enrolment(accounts, appliance.secret_key, user.id)
        enrolled = secret is None  # enrolment was confirmed a moment ago
    if enrolled:
        response = render(request, "auth_local/two_factor_login.html", {"error": ""})
        await start_pending_login(request, response, TOTP_STEP, user.id, user.email)
    elif secret is not None:
        response = enrolment_page(request, "/login/two-factor/enrol", user.email, secret)
        await start_pending_login(request, response, ENROL_STEP, user.id, user.email)
    else:
        return await complete_login(request, user)
    response.headers["cache-control"] = "no-store"
    return response


def enrolment_page(
    request: Request, action: str, email: str, secret: str, error: str = "", status: int = 200
) -> Response:
    """The QR code (and the key, for typing in) and a field for the first code."""
    context = {
        "action": action,
        "qr": qr_svg(provisioning_uri(secret, email)),
        "secret": secret,
        "required": bool(appliance_of(request).settings.auth_local.require_two_factor),
        "error": error,
    }
    response = render(request, "auth_local/two_factor_enrol.html", context, status=status)
    response.headers["cache-control"] = "no-store"
    return response


async def complete_login(
    request: Request, user: User, response: Response | None = None
) -> Response:
    """Every factor checked: clear the failure count, join invited sites, start a session."""
    await throttle.record_success(request, user.email)
    accounts = appliance_of(request).accounts
    await call(accounts.accept_invitations, user.id, user.email, time.time())
    response = response or RedirectResponse("/dashboard", status_code=303)
    await log_in(request, response, user)
    return response


async def setup_page(request: Request) -> Response:
    if await call(appliance_of(request).accounts.count_users):
        return RedirectResponse("/login", status_code=303)
    return render(request, "auth_local/setup.html", {"error": "", "email": ""})


async def setup_submit(request: Request) -> Response:
    form = await request.form()
    if not csrf_valid(request, str(form.get(CSRF_FIELD, ""))):
        return Response(CSRF_REFUSED, status_code=403)
    accounts = appliance_of(request).accounts
    raw_email = str(form.get("email", ""))
    password = str(form.get("password", ""))
    try:
        email = normalize_email(raw_email)
        check_password_strength(password)
        if password != str(form.get("password_confirm", "")):
            raise AccountError("password: the two passwords differ")
    except AccountError as error:
        context = {"error": str(error), "email": raw_email[:254]}
        return render(request, "auth_local/setup.html", context, status=400)
    user = await call(accounts.create_first_admin, email, hash_password(password))
    if user is None:
        return RedirectResponse("/login", status_code=303)
    return await after_password(request, user)
