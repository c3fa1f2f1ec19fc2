"""The embedded profile loads no client library it has no use for.

Measured in `serve`'s memory: psycopg 13 MiB, Authlib + httpx2 ~15 MiB, cryptography ~7 MiB.
Each is imported by the plugin that needs it once it is in use: Postgres as a store, an
OAuth provider with credentials, a two-factor secret to seal or open.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

UNUSED_BY_EMBEDDED = ("psycopg", "psycopg_pool", "authlib", "httpx2", "joserfc", "cryptography")
BUILD_APP = """
import json, sys
from appliance.app import create_app
from appliance.core.runtime import Appliance
appliance = Appliance.create()
create_app(appliance)
print(json.dumps({
    "loaded": sorted(m for m in %r if m in sys.modules),
    "providers": sorted(p.id for p in appliance.auth_providers),
}))
"""


def loaded_by_app(tmp_path: Path, **settings: str) -> dict[str, list[str]]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("APPLIANCE_")}
    env |= {"APPLIANCE_ENV": "embedded", "APPLIANCE_DATA_DIR": str(tmp_path), **settings}
    done = subprocess.run(
        [sys.executable, "-c", BUILD_APP % (UNUSED_BY_EMBEDDED,)],
        env=env, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return json.loads(done.stdout.splitlines()[-1])


def test_embedded_app_imports_no_postgres_oauth_or_cryptography(tmp_path: Path) -> None:
    found = loaded_by_app(tmp_path)
    assert found["loaded"] == []
    assert found["providers"] == ["password"]


def test_a_provider_with_credentials_loads_its_oauth_client(tmp_path: Path) -> None:
    found = loaded_by_app(
        tmp_path,
        APPLIANCE_AUTH_GITHUB__CLIENT_ID="id",
        APPLIANCE_AUTH_GITHUB__CLIENT_SECRET="secret",
    )
    assert "github" in found["providers"]
    assert {"authlib", "httpx2"} <= set(found["loaded"])
    assert "psycopg" not in found["loaded"]
