"""Password login and first-run setup pages."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from appliance.core.accounts import (
    DUMMY_PASSWORD_HASH,
    AccountError,
    check_password_strength,
    hash_password,
    normalize_email,
    verify_password,
)
from appliance.core.stores import call
from appliance.web.pages import render
from appliance.web.security import CSRF_FIELD, appliance_of, csrf_valid, log_in

CSRF_REFUSED = "Invalid or missing CSRF token. Reload the page and try again."


async def password_login(request: Request) -> Response:
    form = await request.form()
    if not csrf_valid(request, str(form.get(CSRF_FIELD, ""))):
        return Response(CSRF_REFUSED, status_code=403)
    appliance = appliance_of(request)
    email = str(form.get("email", "")).strip().lower()
    password = str(form.get("password", ""))
    found = await call(appliance.accounts.user_by_email, email) if email else None
    # Hash either way, so a wrong email takes as long as a wrong password.
    stored_hash = (found[1] if found else None) or DUMMY_PASSWORD_HASH
    if not (verify_password(stored_hash, password) and found and found[1]):
        return render(
            request,
            "login.html",
            {"providers": appliance.auth_providers, "error": "Wrong email or password."},
            status=401,
        )
    response = RedirectResponse("/dashboard", status_code=303)
    await log_in(request, response, found[0])
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
    response = RedirectResponse("/dashboard", status_code=303)
    await log_in(request, response, user)
    return response
