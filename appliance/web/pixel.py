"""GET /api/pixel.gif?d=DOMAIN: the no-JavaScript fallback, one pageview per image load.

`<noscript><img src=".../api/pixel.gif?d=example.com"></noscript>` has no script to tell us the
path, so it comes from the Referer header. The event goes through the same ingest pipeline as
tracker.js. Every answer is the same uncached 1x1 GIF, so the page never shows a broken image
(Chromium draws an image body whatever the status), and the status says what happened, for
whoever debugs a site whose pixel counts nothing. Only a 200 stored anything.
"""

from __future__ import annotations

import base64
from urllib.parse import urlsplit

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from appliance.core.ingest import UnknownDomain
from appliance.core.ratelimit import RateLimited
from appliance.core.transport import TransportFull, TransportUnavailable
from appliance.web.security import appliance_of, client_ip

# The smallest transparent 1x1 GIF (43 bytes).
GIF = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")

# Each load must reach us to be counted: no browser or proxy cache may answer for us.
NO_CACHE = {
    "cache-control": "no-cache, no-store, must-revalidate, max-age=0",
    "pragma": "no-cache",
    "expires": "0",
}


def pixel_event(domain: str, referer: str) -> bytes:
    """The tracker's JSON for a pageview of the page that embeds the image.

    Without a Referer (a no-referrer policy), the path is unknown and counted as "/".
    """
    event: dict[str, str] = {"domain": domain, "path": urlsplit(referer).path or "/"}
    if referer:
        event["url"] = referer
    return msgspec.json.encode(event)


def gif(status: int) -> Response:
    return Response(GIF, status_code=status, media_type="image/gif", headers=NO_CACHE)


async def pixel(request: Request) -> Response:
    domain = request.query_params.get("d", "")
    if not domain:
        return gif(400)
    if request.method == "HEAD":  # link checkers, not visits
        return gif(200)
    ingest = appliance_of(request).ingest
    ip = client_ip(request, request.app.state.trusted_proxies)
    try:
        body = pixel_event(domain, request.headers.get("referer", ""))
        await ingest.accept(body, ip, request.headers.get("user-agent", ""))
    except ValueError:  # EventDecodeError (a field too long), or a Referer that is no URL
        ingest.stats.rejected += 1
        return gif(400)
    except UnknownDomain:
        ingest.stats.rejected += 1
        return gif(404)
    except RateLimited:
        return gif(429)
    except TransportFull:
        ingest.stats.overloaded += 1
        return gif(503)
    except TransportUnavailable:
        return gif(503)
    return gif(200)


routes = [Route("/api/pixel.gif", pixel, methods=["GET"])]
