"""Sign in with Google (OpenID Connect), for people the admin lets in.

Settings, section `auth_google`: `client_id` and `client_secret` (the OAuth client's; the
secret from the environment, APPLIANCE_AUTH_GOOGLE__CLIENT_SECRET), `allowed_domains` (who
may sign in besides invited emails), and `discovery_url` (Google's OpenID configuration;
tests point it at a fake). Without credentials the provider is off and start-up logs
which key to set. The client's redirect URI is `<public_url>/login/google/callback`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from appliance import hookimpl
from appliance.core.auth import AuthProvider
from appliance.web.oauth import OAuthSignIn, policy_from
from appliance.web.oauth_settings import missing_credentials, provider_problems, warn_disabled
from plugins.auth_google.google import SECTION, build_client, fetch_identity


@hookimpl
def settings_defaults() -> dict[str, Any]:
    return {
        SECTION: {
            "client_id": "",
            "client_secret": "",
            "allowed_domains": [],
            "discovery_url": "https://accounts.google.com/.well-known/openid-configuration",
        }
    }


@hookimpl
def validate_settings(settings: Any) -> list[str]:
    return provider_problems(
        settings, SECTION, list_keys=("allowed_domains",), url_keys=("discovery_url",)
    )


@hookimpl
def register_auth_providers(appliance: Any) -> list[AuthProvider]:
    settings = appliance.settings
    missing = missing_credentials(settings, SECTION)
    if missing:
        warn_disabled(SECTION, "Google", missing)
        return []
    sign_in = OAuthSignIn(
        provider="google",
        label="Google",
        client=build_client(settings),
        fetch_identity=fetch_identity,
        policy=policy_from(settings, SECTION),
    )
    return [
        AuthProvider(
            id="google",
            label="Google",
            login_template="auth_google/button.html",
            signup_template="auth_google/button.html",
            order=30,
            routes=sign_in.routes(),
        )
    ]


@hookimpl
def template_dirs() -> list[str]:
    return [str(Path(__file__).parent / "templates")]
