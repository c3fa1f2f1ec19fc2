"""Self-hosted, real-time, cookie-less web analytics."""

import pluggy

__version__ = "0.1.0"

hookimpl = pluggy.HookimplMarker("appliance")

__all__ = ["__version__", "hookimpl"]
