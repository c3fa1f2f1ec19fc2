"""Sign in with GitHub (an OAuth app), for people the admin lets in.

Settings, section `auth_github`: `client_id` and `client_secret` (the OAuth app's; the
secret from the environment, APPLIANCE_AUTH_GITHUB__CLIENT_SECRET), `allowed_domains` and
`allowed_organizations` (who may sign in besides invited emails), and `authorize_url`,
`token_url`, `api_url` (GitHub's; tests point them at a fake). Without credentials the
provider is off and start-up logs which key to set. The app's callback URL is
`<public_url>/login/github/callback`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from appliance import hookimpl
from appliance.core.auth import AuthProvider
from appliance.web.oauth import OAuthSignIn, policy_from
from appliance.web.oauth_settings import missing_credentials, provider_problems, warn_disabled
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
    settings = appliance.settings
    missing = missing_credentials(settings, SECTION)
    if missing:
        warn_disabled(SECTION, "GitHub", missing)
        return []
    policy = policy_from(settings, SECTION)
    sign_in = OAuthSignIn(
        provider="github",
        label="GitHub",
        client=build_client(settings),
        fetch_identity=identity_fetcher(bool(policy.allowed_organizations)),
        policy=policy,
    )
    return [
        AuthProvider(
            id="github",
            label="GitHub",
            login_template="auth_github/button.html",
            signup_template="auth_github/button.html",
            order=20,
            routes=sign_in.routes(),
        )
    ]


@hookimpl
def template_dirs() -> list[str]:
    return [str(Path(__file__).parent / "templates")]
