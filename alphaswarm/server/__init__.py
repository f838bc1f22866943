"""The HTTP face: Tornado REST + WebSocket handlers beside the Panel dashboard.

``serve()`` runs one server on one port (default ``127.0.0.1:8000``);
``make_routes()`` gives the API routes to mount on any Panel/Bokeh server, and
``alphaswarm.server.routes`` does so for ``panel serve --plugins``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ServerConfigError", "ServerThread", "build_server", "make_routes", "serve"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from alphaswarm.server import app

        return getattr(app, name)
    raise AttributeError(f"module 'alphaswarm.server' has no attribute {name!r}")
