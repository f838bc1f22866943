"""Routes for ``panel serve apps/dashboard.py --plugins alphaswarm.server.routes``.

Panel imports this module and adds ``ROUTES`` to its server. The ledger is the
process default (``$ALPHASWARM_DB_URL`` or ``~/.alphaswarm/ledger.db``) and the
token ``$ALPHASWARM_TOKEN``; with a token, dashboard pages are authorised by
Panel's ``authorize_callback`` (bearer header, ``?token=`` or the cookie).

``ALPHASWARM_TUNE_INTERPRETER=1`` opts the served process in to interpreter tuning,
as ``alphaswarm serve --tune-interpreter`` does (:mod:`alphaswarm.paper.tuning`).
"""

from __future__ import annotations

import hmac
import os
from typing import Any

from alphaswarm.paper import tuning
from alphaswarm.server.app import make_routes
from alphaswarm.server.security import TOKEN_COOKIE, Security

SECURITY = Security.from_env()
ROUTES = make_routes(None, SECURITY)
#: The environment variable that opts ``panel serve`` in to interpreter tuning.
TUNE_ENV = "ALPHASWARM_TUNE_INTERPRETER"

if os.environ.get(TUNE_ENV, "").strip().lower() in ("1", "true", "yes"):
    tuning.enable()


def authorize(user_info: Any, path: str) -> bool:
    """Panel ``authorize_callback``: a page needs the token when one is set."""
    import panel as pn

    token = SECURITY.token
    if token is None:
        return True
    headers = pn.state.headers or {}
    presented = None
    scheme, _, value = str(headers.get("Authorization", "")).partition(" ")
    if scheme.lower() == "bearer":
        presented = value.strip()
    if not presented:
        args = pn.state.session_args.get("token") or []
        presented = args[-1].decode() if args else None
    if not presented:
        presented = (pn.state.cookies or {}).get(TOKEN_COOKIE)
    return bool(presented) and hmac.compare_digest(str(presented).encode(), token.encode())


if SECURITY.token is not None:
    import panel as pn

    pn.config.authorize_callback = authorize
