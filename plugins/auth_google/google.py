"""Google through OpenID Connect: discovery, and the identity from a checked ID token.

Authlib reads Google's discovery document (endpoints, issuer, JWKS), and checks the ID
token's signature against the JWKS and its claims: issuer, audience (our client id),
expiry and the nonce sent with this browser's request. The email must be verified.
"""

from __future__ import annotations

from typing import Any

from appliance.core.admission import ExternalIdentity, SignInRefused

SECTION = "auth_google"
LEEWAY_S = 60  # clock difference tolerated on exp/iat


def build_client(settings: Any) -> Any:
    section = settings.get(SECTION)
    # Imported here: the plugin loads without a provider on (Authlib is ~15 MiB).
    from authlib.integrations.starlette_client import OAuth

    return OAuth().register(
        name="google",
        client_id=str(section.get("client_id")),
        client_secret=str(section.get("client_secret")),
        server_metadata_url=section.get("discovery_url"),
        client_kwargs={"scope": "openid email", "code_challenge_method": "S256", "timeout": 10},
    )


async def fetch_identity(client: Any, token: dict[str, Any], nonce: str | None) -> ExternalIdentity:
    metadata = await client.load_server_metadata()
    claims = await client.parse_id_token(
        token,
        nonce=nonce,
        claims_options={
            "iss": {"essential": True, "values": [metadata["issuer"]]},
            "aud": {"essential": True, "values": [client.client_id]},
            "exp": {"essential": True},
            "nonce": {"essential": True},
        },
        leeway=LEEWAY_S,
    )
    if claims is None:
        raise SignInRefused("Google sent no ID token. Start again from the login page.")
    if claims.get("email_verified") is not True or not claims.get("email"):
        raise SignInRefused("Your Google account's email is not verified.")
    return ExternalIdentity(provider="google", subject=str(claims["sub"]), email=claims["email"])
