"""Local accounts: email + password (argon2id), the one-time setup of the first admin,
two-factor login (TOTP with recovery codes), sign-up from an invitation, and throttled
password guessing.

Settings, section `auth_local`: `require_two_factor` (every password account must enrol
before its first session), `max_failures_per_account` and `max_failures_per_ip` (failed
logins allowed per `failure_window_s` seconds before answering 429). Session lifetime and
cookie flags are the core's `auth.*` keys.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from starlette.routing import Route

from appliance import hookimpl
from appliance.core.auth import AuthProvider
from appliance.core.settings import is_bool, is_int, require
from plugins.auth_local import routes, signup, two_factor_pages


@hookimpl
def settings_defaults() -> dict[str, Any]:
    return {
        "auth_local": {
            "require_two_factor": False,
            "max_failures_per_account": 5,
            "max_failures_per_ip": 30,
            "failure_window_s": 900,
        }
    }


@hookimpl
def validate_settings(settings: Any) -> list[str]:
    problems = [
        require(settings, "auth_local.require_two_factor", is_bool),
        require(settings, "auth_local.max_failures_per_account", is_int(1, 1000)),
        require(settings, "auth_local.max_failures_per_ip", is_int(1, 100_000)),
        require(settings, "auth_local.failure_window_s", is_int(1, 86400)),
    ]
    return [problem for problem in problems if problem]


@hookimpl
def register_auth_providers(appliance: Any) -> list[AuthProvider]:
    pages = two_factor_pages
    return [
        AuthProvider(
            id="password",
            label="Email and password",
            login_template="auth_local/password_form.html",
            signup_template="auth_local/signup.html",
            order=0,
            routes=[
                Route("/login/password", routes.password_login, methods=["POST"]),
                Route("/login/two-factor", pages.login_code, methods=["POST"]),
                Route("/login/two-factor/enrol", pages.login_enrol, methods=["POST"]),
                Route("/setup", routes.setup_page, methods=["GET"]),
                Route("/setup", routes.setup_submit, methods=["POST"]),
                Route("/account/two-factor", pages.account_page, methods=["GET"]),
                Route("/account/two-factor/start", pages.account_start, methods=["POST"]),
                Route("/account/two-factor/confirm", pages.account_confirm, methods=["POST"]),
                Route("/account/two-factor/disable", pages.account_disable, methods=["POST"]),
                Route(
                    "/invitations/{token}/password",
                    signup.signup_with_password,
                    methods=["POST"],
                ),
            ],
        )
    ]


@hookimpl
def template_dirs() -> list[str]:
    return [str(Path(__file__).parent / "templates")]
