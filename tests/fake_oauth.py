"""A fake OAuth 2 / OpenID Connect provider on loopback, standing in for GitHub and Google.

GitHub and Google are the only parts of the system outside this machine, so the suite
serves their endpoints itself, over real HTTP: the appliance's OAuth client (Authlib on
httpx) talks to this server exactly as it would to the real ones; only the URLs differ.

It enforces what the real providers enforce: registered client id, secret and redirect
URI; single-use codes; PKCE (S256) on the token exchange. ID tokens are real RS256 JWTs,
signed with a key generated per server and published at /jwks. The "person" who signs in
at the provider is `next_account`; tests can bend an ID token's claims (`id_token_changes`)
or sign it with a key the JWKS does not hold (`sign_with_unknown_key`).
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote_plus, urlencode, urlsplit

from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey

CLIENT_ID = "fake-client-id"
CLIENT_SECRET = "fake-client-secret-that-is-long-enough"  # a test value, not a secret


@dataclass
class FakeAccount:
    """The person signed in at the provider."""

    subject: str
    email: str
    email_verified: bool = True
    organizations: tuple[str, ...] = ()


@dataclass
class IssuedCode:
    account: FakeAccount
    redirect_uri: str
    code_challenge: str
    nonce: str | None
    scope: str


@dataclass
class TokenRequest:
    code: str
    code_verifier: str | None
    outcome: str  # "ok" or the error sent back


@dataclass
class FakeProvider:
    """One provider; `flavour` is "github" (OAuth app + REST API) or "google" (OIDC)."""

    flavour: str
    next_account: FakeAccount | None = None
    id_token_changes: dict[str, Any] = field(default_factory=dict)
    sign_with_unknown_key: bool = False
    token_requests: list[TokenRequest] = field(default_factory=list)
    authorize_requests: list[dict[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.key = RSAKey.generate_key(2048, parameters={"kid": "fake-1", "use": "sig"})
        self.unknown_key = RSAKey.generate_key(2048, parameters={"kid": "fake-1", "use": "sig"})
        self.codes: dict[str, IssuedCode] = {}
        self.access_tokens: dict[str, FakeAccount] = {}
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    # --- settings the appliance needs to use this provider -----------------------------

    def settings(self, **allow: Any) -> dict[str, Any]:
        common = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, **allow}
        if self.flavour == "github":
            return {
                "auth_github": common
                | {
                    "authorize_url": f"{self.url}/login/oauth/authorize",
                    "token_url": f"{self.url}/login/oauth/access_token",
                    "api_url": f"{self.url}/api/",
                }
            }
        return {
            "auth_google": common
            | {"discovery_url": f"{self.url}/.well-known/openid-configuration"}
        }

    # --- endpoints ----------------------------------------------------------------------

    def discovery(self) -> dict[str, Any]:
        return {
            "issuer": self.url,
            "authorization_endpoint": f"{self.url}/o/oauth2/v2/auth",
            "token_endpoint": f"{self.url}/token",
            "userinfo_endpoint": f"{self.url}/v1/userinfo",
            "jwks_uri": f"{self.url}/oauth2/v3/certs",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
        }

    def authorize(self, query: dict[str, str]) -> tuple[int, dict[str, str], Any]:
        """The person is already signed in here and consents: redirect back with a code."""
        self.authorize_requests.append(query)
        redirect_uri = query.get("redirect_uri", "")
        if query.get("client_id") != CLIENT_ID or not redirect_uri.endswith(
            f"/login/{self.flavour}/callback"
        ):
            return 400, {}, {"error": "redirect_uri or client_id not registered"}
        if query.get("code_challenge_method") != "S256" or not query.get("code_challenge"):
            return 400, {}, {"error": "PKCE required"}
        back = {"state": query["state"]} if "state" in query else {}
        if self.next_account is None:
            back["error"] = "access_denied"
        else:
            code = secrets.token_urlsafe(16)
            with self.lock:
                self.codes[code] = IssuedCode(
                    self.next_account,
                    redirect_uri,
                    query["code_challenge"],
                    query.get("nonce"),
                    query.get("scope", ""),
                )
            back["code"] = code
        return 302, {"location": f"{redirect_uri}?{urlencode(back)}"}, None

    def token(self, form: dict[str, str], basic: tuple[str, str] | None) -> tuple[int, Any]:
        client_id, client_secret = basic or (form.get("client_id"), form.get("client_secret"))
        code = form.get("code", "")
        verifier = form.get("code_verifier")
        with self.lock:
            issued = self.codes.pop(code, None)  # a code works once
        problem = None  # recorded for the tests; the answer says only the error code
        if (client_id, client_secret) != (CLIENT_ID, CLIENT_SECRET):
            problem = "invalid_client"
        elif form.get("grant_type") != "authorization_code" or issued is None:
            problem = "invalid_grant: unknown or used code"
        elif form.get("redirect_uri") != issued.redirect_uri:
            problem = "invalid_grant: redirect_uri differs"
        elif not verifier or _s256(verifier) != issued.code_challenge:
            problem = "invalid_grant: PKCE verifier does not match"
        self.token_requests.append(TokenRequest(code, verifier, problem or "ok"))
        if problem or issued is None:
            error = (problem or "invalid_grant").split(":")[0]
            return 400, {"error": error, "error_description": "refused by the fake provider"}
        access_token = secrets.token_urlsafe(24)
        self.access_tokens[access_token] = issued.account
        answer: dict[str, Any] = {
            "access_token": access_token,
            "token_type": "bearer",
            "scope": issued.scope,
        }
        if self.flavour == "google":
            answer["expires_in"] = 3599
            answer["id_token"] = self.id_token(issued)
        return 200, answer

    def id_token(self, issued: IssuedCode) -> str:
        now = int(time.time())
        account = issued.account
        claims: dict[str, Any] = {
            "iss": self.url,
            "aud": CLIENT_ID,
            "sub": account.subject,
            "email": account.email,
            "email_verified": account.email_verified,
            "iat": now,
            "exp": now + 3600,
        }
        if issued.nonce is not None:
            claims["nonce"] = issued.nonce
        claims.update(self.id_token_changes)
        claims = {key: value for key, value in claims.items() if value is not None}
        key = self.unknown_key if self.sign_with_unknown_key else self.key
        return jwt.encode({"alg": "RS256", "kid": "fake-1"}, claims, key)

    def api(self, path: str, bearer: str | None) -> tuple[int, Any]:
        account = self.access_tokens.get(bearer or "")
        if account is None:
            return 401, {"message": "Bad credentials"}
        if path == "/api/user":
            return 200, {"id": int(account.subject), "login": account.email.split("@")[0]}
        if path == "/api/user/emails":
            return 200, [
                {
                    "email": account.email,
                    "primary": True,
                    "verified": account.email_verified,
                    "visibility": "private",
                },
                {
                    "email": f"{account.subject}@users.noreply.github.com",
                    "primary": False,
                    "verified": True,
                    "visibility": None,
                },
            ]
        if path == "/api/user/orgs":
            return 200, [{"login": org, "id": i} for i, org in enumerate(account.organizations)]
        if path == "/v1/userinfo":
            return 200, {"sub": account.subject, "email": account.email}
        return 404, {"message": "Not Found"}

    def jwks(self) -> dict[str, Any]:
        return KeySet([self.key]).as_dict(private=False)

    # --- lifecycle ----------------------------------------------------------------------

    def __enter__(self) -> FakeProvider:
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=10)


def _s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _handler(provider: FakeProvider) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the http.server name)
            parts = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(parts.query).items()}
            if parts.path == "/.well-known/openid-configuration":
                self._json(200, provider.discovery())
            elif parts.path in ("/login/oauth/authorize", "/o/oauth2/v2/auth"):
                status, headers, body = provider.authorize(query)
                self._json(status, body, headers)
            elif parts.path == "/oauth2/v3/certs":
                self._json(200, provider.jwks())
            else:
                auth = self.headers.get("authorization", "")
                bearer = auth[7:] if auth.lower().startswith("bearer ") else None
                self._json(*provider.api(parts.path, bearer))

        def do_POST(self) -> None:  # noqa: N802
            length = int(self.headers.get("content-length", "0"))
            form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
            if urlsplit(self.path).path not in ("/login/oauth/access_token", "/token"):
                self._json(404, {"error": "not found"})
                return
            self._json(*provider.token(form, self._basic()))

        def _basic(self) -> tuple[str, str] | None:
            auth = self.headers.get("authorization", "")
            if not auth.lower().startswith("basic "):
                return None
            user, _, password = base64.b64decode(auth[6:]).decode().partition(":")
            return unquote_plus(user), unquote_plus(password)  # RFC 6749 2.3.1 form-encodes

        def _json(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
            data = b"" if body is None else json.dumps(body).encode()
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            """Quiet: pytest shows failures, not every request."""

    return Handler
