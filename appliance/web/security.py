"""Who is asking: login sessions, API keys, CSRF tokens, client IPs and security headers."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
import time
from typing import Any

from starlette.datastructures import MutableHeaders
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from appliance.core.accounts import User, new_token, token_digest
from appliance.core.stores import call

SESSION_COOKIE = "appliance_session"
CSRF_COOKIE = "appliance_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"


def appliance_of(connection: HTTPConnection) -> Any:
    return connection.app.state.appliance


# --- identity ---------------------------------------------------------------------------


async def current_user(request: Request) -> User | None:
    """The user behind a Bearer API key or a login-session cookie (cached per request)."""
    if "appliance.user" in request.scope:
        return request.scope["appliance.user"]
    accounts = appliance_of(request).accounts
    user = None
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credentials:
        user = await call(accounts.user_by_api_key, token_digest(credentials.strip()))
        request.scope["appliance.auth"] = "api_key"
    elif token := request.cookies.get(SESSION_COOKIE):
        user = await call(accounts.user_by_login_session, token_digest(token), time.time())
        request.scope["appliance.auth"] = "session"
    request.scope["appliance.user"] = user
    return user


def _cookie_secure(request: Request) -> bool:
    return bool(appliance_of(request).settings.auth.secure_cookies) or request.url.scheme == "https"


async def log_in(request: Request, response: Response, user: User) -> None:
    """Start a new session (never reuse one from before login) and rotate the CSRF nonce."""
    appliance = appliance_of(request)
    accounts = appliance.accounts
    if old := request.cookies.get(SESSION_COOKIE):
        await call(accounts.delete_login_session, token_digest(old))
    token = new_token("s")
    lifetime = int(appliance.settings.auth.session_days) * 86400
    await call(accounts.create_login_session, token_digest(token), user.id, time.time() + lifetime)
    secure = _cookie_secure(request)
    response.set_cookie(
        SESSION_COOKIE, token, max_age=lifetime, httponly=True, samesite="lax", secure=secure
    )
    response.set_cookie(
        CSRF_COOKIE, secrets.token_urlsafe(24), httponly=True, samesite="lax", secure=secure
    )


async def log_out(request: Request, response: Response) -> None:
    if token := request.cookies.get(SESSION_COOKIE):
        await call(appliance_of(request).accounts.delete_login_session, token_digest(token))
    response.delete_cookie(SESSION_COOKIE)


# --- CSRF (a per-browser nonce cookie; forms carry an HMAC of it) --------------------------


def csrf_token(request: Request) -> str:
    nonce = request.scope.get("csrf_nonce") or request.cookies.get(CSRF_COOKIE, "")
    key = appliance_of(request).secret_key.encode()
    return hmac.new(key, f"csrf:{nonce}".encode(), hashlib.sha256).hexdigest()


def csrf_valid(request: Request, submitted: str | None) -> bool:
    if not submitted or not request.cookies.get(CSRF_COOKIE):
        return False
    return hmac.compare_digest(csrf_token(request), submitted)


# --- client IP --------------------------------------------------------------------------


def client_ip(request: Request, trusted_proxies: frozenset[str]) -> str:
    """The peer address, or the nearest untrusted X-Forwarded-For hop behind trusted proxies."""
    peer = request.client.host if request.client else ""
    if peer not in trusted_proxies:
        return peer
    # Several X-Forwarded-For headers are one list (RFC 9110), the proxy's own line last.
    forwarded_for = ", ".join(request.headers.getlist("x-forwarded-for"))
    return forwarded_client(peer, forwarded_for, trusted_proxies)


def forwarded_client(peer: str, forwarded_for: str, trusted_proxies: frozenset[str]) -> str:
    """The nearest hop of X-Forwarded-For that is not a trusted proxy (`peer` is one)."""
    hops = [hop.strip() for hop in forwarded_for.split(",")]
    for hop in reversed(hops):
        if hop and hop not in trusted_proxies:
            try:
                return str(ipaddress.ip_address(hop))
            except ValueError:
                return peer
    return peer


# --- middleware -------------------------------------------------------------------------


def route_path(scope: Scope) -> str:
    """The path the app routes on: without the root path it is mounted or served under."""
    path, root = scope["path"], scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


_SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
    "content-security-policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
        "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
}


# What visitors' browsers load from tracked sites: no cookie may ever be set there.
TRACKING_PATHS = frozenset({"/api/events", "/tracker.js", "/api/pixel.gif"})


class BrowserSecurityMiddleware:
    """Security headers on every page, and a CSRF nonce cookie for browsers without one.

    Plain ASGI (no per-request task) so the ingest endpoint pays next to nothing.
    """

    def __init__(self, app: ASGIApp, secure_cookies: bool) -> None:
        self.app = app
        self.secure_cookies = secure_cookies

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or route_path(scope) in TRACKING_PATHS:
            await self.app(scope, receive, send)
            return
        new_nonce = None
        if CSRF_COOKIE not in HTTPConnection(scope).cookies:
            new_nonce = scope["csrf_nonce"] = secrets.token_urlsafe(24)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in _SECURITY_HEADERS.items():
                    headers.setdefault(name, value)
                if new_nonce and not any(
                    v.startswith(CSRF_COOKIE + "=") for v in headers.getlist("set-cookie")
                ):
                    flags = "; Path=/; HttpOnly; SameSite=Lax"
                    flags += "; Secure" if self.secure_cookies else ""
                    headers.append("set-cookie", f"{CSRF_COOKIE}={new_nonce}{flags}")
            await send(message)

        await self.app(scope, receive, send_with_headers)
