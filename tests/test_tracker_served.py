"""/tracker.js as the appliance serves it: the size budget, caching, and a current build."""

from __future__ import annotations

import gzip
import json
import os
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
from starlette.testclient import TestClient

TRACKER_DIR = Path(__file__).resolve().parents[1] / "tracker"
BUDGET_GZIPPED = 1024  # bytes, as `gzip -9` sends it


def test_the_served_tracker_fits_the_gzipped_budget(client: TestClient) -> None:
    body = client.get("/tracker.js").content
    size = len(gzip.compress(body, compresslevel=9))
    assert size <= BUDGET_GZIPPED, f"tracker.js is {size} bytes gzipped"


def test_the_served_tracker_is_the_committed_build_with_long_caching(client: TestClient) -> None:
    response = client.get("/tracker.js")
    assert response.status_code == 200
    assert response.content == (TRACKER_DIR / "tracker.js").read_bytes()
    assert response.headers["content-type"].startswith("text/javascript")
    assert "max-age=86400" in response.headers["cache-control"]
    assert response.headers["access-control-allow-origin"] == "*"
    again = client.get("/tracker.js", headers={"if-none-match": response.headers["etag"]})
    assert again.status_code == 304
    assert again.content == b""


def test_the_tracker_never_touches_cookies(client: TestClient) -> None:
    assert b"cookie" not in client.get("/tracker.js").content.lower()


@pytest.mark.parametrize("path", ["/tracker.js", "/api/pixel.gif?d=example.com"])
def test_loading_the_tracker_or_the_pixel_sets_no_cookie(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code < 500
    assert "set-cookie" not in response.headers


def test_the_committed_build_matches_the_source(tmp_path: Path) -> None:
    """tracker.js must be rebuilt (`npm run build`) whenever src/tracker.js changes."""
    terser = TRACKER_DIR / "node_modules" / ".bin" / "terser"
    if shutil.which("node") is None or not terser.exists():
        reason = "terser is not installed: run `npm ci` in tracker/ to check the build"
        if os.environ.get("CI", "").lower() in ("true", "1"):
            pytest.fail(f"{reason} (CI=true: `make test` installs it)")
        pytest.skip(reason)
    build = shlex.split(json.loads((TRACKER_DIR / "package.json").read_text())["scripts"]["build"])
    assert build[0] == "terser"
    build[build.index("--output") + 1] = str(tmp_path / "tracker.js")
    subprocess.run([str(terser), *build[1:]], cwd=TRACKER_DIR, check=True, timeout=60)
    assert (tmp_path / "tracker.js").read_bytes() == (TRACKER_DIR / "tracker.js").read_bytes()


def test_the_tracker_is_sent_gzipped_to_clients_that_take_it(client: TestClient) -> None:
    plain = client.get("/tracker.js", headers={"accept-encoding": "identity"})
    assert "content-encoding" not in plain.headers
    assert int(plain.headers["content-length"]) == len((TRACKER_DIR / "tracker.js").read_bytes())
    packed = client.get("/tracker.js", headers={"accept-encoding": "br, gzip;q=0.8"})
    assert packed.headers["content-encoding"] == "gzip"
    assert int(packed.headers["content-length"]) <= BUDGET_GZIPPED
    assert packed.content == plain.content  # httpx unpacked it
    assert packed.headers["vary"] == plain.headers["vary"] == "Accept-Encoding"
    assert packed.headers["etag"] != plain.headers["etag"]  # two representations
    refused = client.get("/tracker.js", headers={"accept-encoding": "gzip;q=0"})
    assert "content-encoding" not in refused.headers
