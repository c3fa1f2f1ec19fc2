"""Sign in with GitHub (an OAuth app), for people the admin lets in.

Settings, section `auth_github`: `client_id` and `client_secret` (the OAuth app's; the
secret from the environment, APPLIANCE_AUTH_GITHUB__CLIENT_SECRET), `allowed_domains` and
`allowed_organizations` (who may sign in besides invited emails), and `authorize_url`,
`token_url`, `api_url` (GitHub's; tests point them at a fake). Without credentials the
provider is off (a warning names the missing key when only one of them is set). The
app's callback URL is `<public_url>/login/github/callback`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from appliance import hookimpl
from appliance.core.auth import AuthProvider
from appliance.web.oauth import oauth_provider
from appliance.web.oauth_settings import provider_problems
from plugins.auth_github.github import SECTION, build_client, identity_fetcher


@hookimpl
def settings_defaults() -> dict[str, Any]:
    return {
        SECTION: {
            "client_id": "",
            "client_secret": "",
            "allowed_domains": [],
            "allowed_organizations": [],
            "authorize_url": "https://github.com/login/oauth/authorize",
            "token_url": "https://github.com/login/oauth/access_token",
            "api_url": "https://api.github.com/",
        }
    }


@hookimpl
def validate_settings(settings: Any) -> list[str]:
    return provider_problems(
        settings,
        SECTION,
        list_keys=("allowed_domains", "allowed_organizations"),
        url_keys=("authorize_url", "token_url", "api_url"),
    )


@hookimpl
def register_auth_providers(appliance: Any) -> list[AuthProvider]:
    return oauth_provider(
        appliance.settings,
        SECTION,
        "GitHub",
        order=20,
        build_client=build_client,
        identity_for=lambda policy: identity_fetcher(bool(policy.allowed_organizations)),
    )


@hookimpl
def template_dirs() -> list[str]:
    return [str(Path(__file__).parent / "templates")]
