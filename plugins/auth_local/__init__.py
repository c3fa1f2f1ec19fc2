"""Local accounts: email + password (argon2id), and the one-time setup of the first admin.

No settings of its own; session lifetime and cookie flags are the core's ``auth.*`` keys.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from starlette.routing import Route

from appliance import hookimpl
from appliance.core.auth import AuthProvider
from plugins.auth_local import routes


@hookimpl
def register_auth_providers(appliance: Any) -> list[AuthProvider]:
    return [
        AuthProvider(
            id="password",
            label="Email and password",
            login_template="auth_local/password_form.html",
            order=0,
            routes=[
                Route("/login/password", routes.password_login, methods=["POST"]),
                Route("/setup", routes.setup_page, methods=["GET"]),
                Route("/setup", routes.setup_submit, methods=["POST"]),
            ],
        )
    ]


@hookimpl
def template_dirs() -> list[str]:
    return [str(Path(__file__).parent / "templates")]
