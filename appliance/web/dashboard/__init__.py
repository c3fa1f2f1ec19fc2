"""The HTMX dashboard of one site."""

from appliance.web.dashboard.views import routes

__all__ = ["routes"]
