"""Sign-in through an OAuth 2 / OpenID Connect provider, bound to the browser that started it.

Authlib speaks the protocol: the authorization URL with PKCE (S256) and, for OpenID Connect,
a nonce; the code-for-token exchange; the ID token's signature and claims. This module makes
each attempt single-use and tied to one browser, which the library leaves to the framework:

- `start` keeps, under a digest of the `state` Authlib made, the PKCE verifier, the nonce,
  the redirect URI and a digest of a random value the browser holds in an HttpOnly cookie,
  for ten minutes, in the account store (so any appliance process can finish the login);
- `callback` redeems that record once - a replayed, unknown, missing or expired state is
  refused before the provider is asked anything - checks the browser's cookie matches (a
  state started in another browser is refused), then exchanges the code with the verifier
  and hands the provider plugin's `ExternalIdentity` to `admit`.

Provider plugins (`plugins/auth_github`, `plugins/auth_google`) build an `OAuthSignIn` and
return its `routes()` with their `AuthProvider`.
"""

from __future__ import annotations

import functools
import hmac
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from appliance.core.accounts import token_digest
from appliance.core.admission import (
    AdmissionPolicy,
    ExternalIdentity,
    SignInRefused,
    admit,
)
from appliance.core.auth import AuthProvider
from appliance.core.stores import call
from appliance.web.challenges import issue_challenge, redeem_challenge
from appliance.web.oauth_settings import missing_credentials, report_missing
from appliance.web.pages import render
from appliance.web.security import appliance_of, log_in

log = logging.getLogger(__name__)

BINDING_COOKIE = "appliance_oauth"
COOKIE_PATH = "/login"
STATE_TTL_S = 600


@functools.cache
def provider_errors() -> tuple[type[Exception], ...]:
    """What a failed exchange or identity look-up can raise: the provider's error answers,
    bad ID tokens, network trouble, and answers that are not the JSON expected. Imported when
    a provider is on (`oauth_provider`): Authlib, joserfc and httpx2 are ~15 MiB of a server
    that has none."""
    import httpx2
    from authlib.common.errors import AuthlibBaseError
    from joserfc.errors import JoseError

    return (AuthlibBaseError, JoseError, httpx2.HTTPError, AttributeError, KeyError, TypeError,
            ValueError)  # fmt: skip


# (client, token, nonce) -> the identity; raises SignInRefused when it is not acceptable.
IdentityFetcher = Callable[[Any, dict[str, Any], str | None], Awaitable[ExternalIdentity]]


def callback_url(request: Request, provider: str) -> str:
    """Where the provider sends the browser back: `public_url` when set (behind a proxy)."""
    base = appliance_of(request).settings.get("public_url") or str(request.base_url)
    return f"{base.rstrip('/')}/login/{provider}/callback"


def refusal(request: Request, status: int, message: str) -> Response:
    return render(request, "signin_refused.html", {"message": message}, status=status)


@dataclass(frozen=True)
class OAuthSignIn:
    provider: str  # "github": the routes are /login/github and /login/github/callback
    label: str  # "GitHub", for messages
    client: Any  # an Authlib Starlette OAuth 2 app (authlib.integrations.starlette_client)
    fetch_identity: IdentityFetcher
    policy: AdmissionPolicy

    @property
    def kind(self) -> str:
        return f"oauth:{self.provider}"

    def routes(self) -> list[Route]:
        return [
            Route(f"/login/{self.provider}", self.start, methods=["GET"]),
            Route(f"/login/{self.provider}/callback", self.callback, methods=["GET"]),
        ]

    async def start(self, request: Request) -> Response:
        """Send the browser to the provider, with this attempt's state, PKCE and nonce."""
        accounts = appliance_of(request).accounts
        if await call(accounts.count_users) == 0:  # the first admin is made by /setup
            return RedirectResponse("/setup", status_code=303)
        # New for every attempt, never taken from the request: a cookie planted by someone
        # else cannot match a state they started.
        binding = secrets.token_urlsafe(32)
        redirect_uri = callback_url(request, self.provider)
        try:
            authorization = await self.client.create_authorization_url(redirect_uri)
        except provider_errors() as error:
            log.warning("%s sign-in could not start: %s", self.provider, type(error).__name__)
            return refusal(request, 502, f"{self.label} cannot be reached; try again later.")
        payload = {
            "binding": token_digest(binding),
            "code_verifier": authorization["code_verifier"],
            "nonce": authorization.get("nonce"),
            "redirect_uri": redirect_uri,
        }
        await issue_challenge(
            accounts, self.kind, payload, STATE_TTL_S, token=authorization["state"]
        )
        response = RedirectResponse(authorization["url"], status_code=302)
        secure = bool(appliance_of(request).settings.auth.secure_cookies)
        response.set_cookie(
            BINDING_COOKIE,
            binding,
            max_age=STATE_TTL_S,
            path=COOKIE_PATH,
            httponly=True,
            samesite="lax",  # sent on the provider's top-level redirect back, not on posts
            secure=secure or request.url.scheme == "https",
        )
        return response

    async def callback(self, request: Request) -> Response:
        accounts = appliance_of(request).accounts
        params = request.query_params
        # Redeemed first, whatever follows: a state works once.
        attempt = await redeem_challenge(accounts, params.get("state"), self.kind)
        if attempt is None:
            return refusal(
                request,
                400,
                f"This {self.label} sign-in has expired or was already used. Start again from"
                " the login page.",
            )
        binding = request.cookies.get(BINDING_COOKIE, "")
        if not hmac.compare_digest(token_digest(binding), attempt["binding"]):
            return refusal(
                request,
                400,
                f"This {self.label} sign-in was started in another browser, or a newer one"
                " replaced it. Start again from the login page.",
            )
        if params.get("error") or not params.get("code"):
            reason = params.get("error", "no code")[:100]
            return refusal(request, 403, f"{self.label} did not sign you in ({reason}).")
        try:
            identity = await self._identity(params["code"], attempt)
            user = await admit(accounts, identity, self.policy)
        except SignInRefused as refused:
            log.info("%s sign-in refused: %s", self.provider, refused)
            return refusal(request, 403, str(refused))
        response = RedirectResponse("/dashboard", status_code=303)
        await log_in(request, response, user)
        response.delete_cookie(BINDING_COOKIE, path=COOKIE_PATH)
        return response

    async def _identity(self, code: str, attempt: dict[str, Any]) -> ExternalIdentity:
        """Exchange the code (with this attempt's PKCE verifier) and ask who it is; any
        failure on the provider's side is a SignInRefused."""
        try:
            token = await self.client.fetch_access_token(
                redirect_uri=attempt["redirect_uri"],
                code=code,
                code_verifier=attempt["code_verifier"],
            )
            return await self.fetch_identity(self.client, token, attempt.get("nonce"))
        except provider_errors() as error:
            # The error's code only: descriptions may quote what the provider was sent.
            reason = getattr(error, "error", None) or type(error).__name__
            log.warning("%s sign-in failed: %s", self.provider, reason)
            raise SignInRefused(
                f"{self.label} did not confirm the sign-in. Start again from the login page."
            ) from None


def policy_from(settings: Any, section: str) -> AdmissionPolicy:
    """A provider's allow lists from its settings section (`allowed_domains`, and for
    GitHub `allowed_organizations`)."""
    values = settings.get(section) or {}

    def lowered(key: str) -> frozenset[str]:
        return frozenset(str(item).strip().lower() for item in values.get(key) or ())

    return AdmissionPolicy(
        allowed_domains=lowered("allowed_domains"),
        allowed_organizations=lowered("allowed_organizations"),
    )


def oauth_provider(
    settings: Any,
    section: str,
    label: str,
    order: int,
    build_client: Callable[[Any], Any],
    identity_for: Callable[[AdmissionPolicy], IdentityFetcher],
) -> list[AuthProvider]:
    """An OAuth plugin's sign-in (routes /login/<name>[/callback], a button from its
    `<section>/button.html`), or nothing while its credentials are not set."""
    missing = missing_credentials(settings, section)
    if missing:
        report_missing(label, missing)
        return []
    provider_errors()  # loaded now, not in the middle of a sign-in
    name = section.removeprefix("auth_")
    policy = policy_from(settings, section)
    sign_in = OAuthSignIn(
        provider=name,
        label=label,
        client=build_client(settings),
        fetch_identity=identity_for(policy),
        policy=policy,
    )
    button = f"{section}/button.html"
    return [
        AuthProvider(
            id=name,
            label=label,
            login_template=button,
            signup_template=button,
            order=order,
            routes=sign_in.routes(),
        )
    ]
