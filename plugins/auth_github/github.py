"""GitHub's OAuth app flow: the Authlib client, and who the signed-in GitHub user is.

The identity is GitHub's numeric user id with the account's primary email, which must be
verified at GitHub; the user's organizations are read only when an allow list names some.
"""

from __future__ import annotations

from typing import Any

from appliance.core.admission import ExternalIdentity, SignInRefused

SECTION = "auth_github"
GITHUB_API_HEADERS = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}


def build_client(settings: Any) -> Any:
    """An Authlib client for the configured GitHub (or the tests' fake) endpoints."""
    section = settings.get(SECTION)
    scope = "read:user user:email"
    if section.get("allowed_organizations"):
        scope += " read:org"  # private organization memberships too
    # Imported here: the plugin loads without a provider on (Authlib is ~15 MiB).
    from authlib.integrations.starlette_client import OAuth

    return OAuth().register(
        name="github",
        client_id=str(section.get("client_id")),
        client_secret=str(section.get("client_secret")),
        authorize_url=section.get("authorize_url"),
        access_token_url=section.get("token_url"),
        api_base_url=section.get("api_url"),
        client_kwargs={
            "scope": scope,
            "code_challenge_method": "S256",
            "token_endpoint_auth_method": "client_secret_post",
            "timeout": 10,
        },
    )


def identity_fetcher(wants_organizations: bool) -> Any:
    async def fetch_identity(
        client: Any, token: dict[str, Any], nonce: str | None
    ) -> ExternalIdentity:
        user = await _get(client, "user", token)
        emails = await _get(client, "user/emails", token)
        primary = next((entry for entry in emails if entry.get("primary")), None)
        if primary is None or not primary.get("verified"):
            raise SignInRefused(
                "Your GitHub account's primary email is not verified. Verify it at GitHub,"
                " then sign in again."
            )
        organizations: frozenset[str] = frozenset()
        if wants_organizations:
            listed = await _get(client, "user/orgs?per_page=100", token)
            organizations = frozenset(str(org["login"]).lower() for org in listed)
        return ExternalIdentity(
            provider="github",
            subject=str(user["id"]),
            email=str(primary["email"]),
            organizations=organizations,
        )

    return fetch_identity


async def _get(client: Any, path: str, token: dict[str, Any]) -> Any:
    response = await client.get(path, token=token, headers=GITHUB_API_HEADERS)
    response.raise_for_status()
    return response.json()
