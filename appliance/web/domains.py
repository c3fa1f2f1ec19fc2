"""GET/POST/DELETE /api/domains: the caller's sites (the seed's domain management)."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from appliance.core.accounts import AccountError, AlreadyExists, Site, normalize_domain
from appliance.core.stores import call
from appliance.web.access import MANAGE_ROLES, ApiDenied, api_user, site_access
from appliance.web.security import appliance_of


async def list_domains(request: Request) -> JSONResponse:
    user = await api_user(request)
    memberships = await call(appliance_of(request).accounts.memberships, user.id)
    return JSONResponse(
        {
            "domains": [
                {"domain": m.site.domain, "role": m.role, "timezone": m.site.timezone}
                for m in memberships
            ]
        }
    )


async def add_domain(request: Request) -> JSONResponse:
    user = await api_user(request)
    try:
        payload = json.loads(await request.body())
    except ValueError:
        raise ApiDenied(400, 'body: send JSON like {"domain": "example.com"}') from None
    raw = payload.get("domain") if isinstance(payload, dict) else None
    if not isinstance(raw, str):
        raise ApiDenied(400, "domain: required, a string")
    site = await create_site(request, raw, user.id)
    return JSONResponse({"domain": site.domain, "role": "owner"}, status_code=201)


async def create_site(request: Request, raw_domain: str, owner_id: int) -> Site:
    """Shared by the API and the dashboard form; refreshes the ingest cache at once."""
    appliance = appliance_of(request)
    try:
        site = await call(appliance.accounts.create_site, normalize_domain(raw_domain), owner_id)
    except AccountError as error:
        status = 409 if isinstance(error, AlreadyExists) else 400
        raise ApiDenied(status, str(error)) from None
    await appliance.sites.refresh()
    return site


async def delete_domain(request: Request) -> Response:
    user = await api_user(request)
    membership = await site_access(request, user, request.path_params["domain"], MANAGE_ROLES)
    await remove_site(appliance_of(request), membership.site.id)
    return Response(status_code=204)


async def remove_site(appliance: Any, site_id: int) -> None:
    """Forget the site and every store's data of it; ingest refuses it at once."""
    await call(appliance.accounts.delete_site, site_id)
    for store in appliance.stores:
        if hasattr(store, "delete_site"):
            await call(store.delete_site, site_id)
    await appliance.sites.refresh()


routes = [
    Route("/api/domains", list_domains, methods=["GET"]),
    Route("/api/domains", add_domain, methods=["POST"]),
    Route("/api/domains/{domain}", delete_domain, methods=["DELETE"]),
]
