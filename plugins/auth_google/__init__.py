"""Sign in with Google (OpenID Connect), for people the admin lets in.

Settings, section `auth_google`: `client_id` and `client_secret` (the OAuth client's; the
secret from the environment, APPLIANCE_AUTH_GOOGLE__CLIENT_SECRET), `allowed_domains` (who
may sign in besides invited emails), and `discovery_url` (Google's OpenID configuration;
tests point it at a fake). Without credentials the provider is off (a warning names the
missing key when only one of them is set). The client's redirect URI is
`<public_url>/login/google/callback`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from appliance import hookimpl
from appliance.core.auth import AuthProvider
from appliance.web.oauth import oauth_provider
from appliance.web.oauth_settings import provider_problems
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
    return oauth_provider(
        appliance.settings,
        SECTION,
        "Google",
        order=30,
        build_client=build_client,
        identity_for=lambda policy: fetch_identity,
    )


@hookimpl
def template_dirs() -> list[str]:
    return [str(Path(__file__).parent / "templates")]
