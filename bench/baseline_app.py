"""The baseline: a Starlette endpoint that only reads the body and answers 202."""

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


async def events(request: Request) -> Response:
    await request.body()
    return Response(status_code=202)


app = Starlette(routes=[Route("/api/events", events, methods=["POST"])])
