"""JSON error responses with a reason a person can act on."""

from __future__ import annotations

from starlette.responses import JSONResponse


def json_error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)
