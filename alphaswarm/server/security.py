"""Who may talk to the server: same-origin browsers, and bearer-token holders when set.

* State-changing requests (POST) carrying an ``Origin`` header must come from the
  server's own origin; WebSocket upgrades likewise. Requests without ``Origin``
  (curl, scripts) are not browsers and pass this check.
* With a token (``--token`` or ``ALPHASWARM_TOKEN``) every route requires
  ``Authorization: Bearer <token>``; browsers may pass ``?token=`` once (the
  server answers with a cookie) and WebSockets may use ``?token=`` too.
* A non-loopback bind address needs a token.
* The ``Host`` header must name this server (DNS rebinding): the bound address,
  ``localhost``, ``127.0.0.1``, ``[::1]`` or a name given with ``--allow-host``.
  A server bound to every interface also accepts IP-literal hosts (a rebinding
  attack needs a DNS name). This is checked before anything else.
* Tokens never reach a log line: :func:`redact` removes ``token=`` values from URIs.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from tornado.httputil import HTTPServerRequest

TOKEN_ENV = "ALPHASWARM_TOKEN"
TOKEN_COOKIE = "alphaswarm_token"
#: More allowed ``Host`` names, comma-separated (like ``--allow-host``).
ALLOW_HOSTS_ENV = "ALPHASWARM_ALLOW_HOSTS"
#: Host names that always name this machine.
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
#: Bind addresses meaning "every interface".
WILDCARD_ADDRESSES = frozenset({"", "0.0.0.0", "::"})
_TOKEN_IN_URI = re.compile(r"(?i)((?:^|[?&;])token=)[^&;#\s]*")
#: Paths served without a token: static assets carry no data.
PUBLIC_PREFIXES = ("/static/", "/favicon.ico")


class ServerConfigError(ValueError):
    """The server refuses to start with this configuration."""


@dataclass(frozen=True)
class Security:
    """The security settings of one server.

    Parameters
    ----------
    token : str or None
        The bearer token every request must carry; ``None`` disables the check.
    bind_address : str or None
        The address the server listens on (its own name is an allowed ``Host``).
    allowed_hosts : tuple of str
        More host names the ``Host`` header may carry (``--allow-host``).
    """

    token: str | None = None
    bind_address: str | None = "127.0.0.1"
    allowed_hosts: tuple[str, ...] = field(default=())

    @classmethod
    def from_env(
        cls,
        token: str | None = None,
        *,
        bind_address: str | None = "127.0.0.1",
        allowed_hosts: tuple[str, ...] | list[str] = (),
    ) -> Security:
        """``token`` if given, else ``$ALPHASWARM_TOKEN`` (empty means none).

        ``allowed_hosts`` adds to ``$ALPHASWARM_ALLOW_HOSTS`` (comma-separated).
        """
        token = token if token is not None else os.environ.get(TOKEN_ENV, "")
        hosts = [h for h in os.environ.get(ALLOW_HOSTS_ENV, "").split(",") if h.strip()]
        hosts.extend(allowed_hosts or ())
        return cls(
            token=token.strip() or None,
            bind_address=bind_address,
            allowed_hosts=tuple(normalise_host(h) for h in hosts if h.strip()),
        )

    def host_allowed(self, host: str | None) -> bool:
        """True when a ``Host`` header names this server (see the module docstring)."""
        name = host_name(host)
        if name is None:
            return False
        if name in LOOPBACK_NAMES or name in self.allowed_hosts:
            return True
        bound = normalise_host(self.bind_address or "")
        if bound and name == bound:
            return True
        if bound in WILDCARD_ADDRESSES:
            try:
                ipaddress.ip_address(name)
            except ValueError:
                return False
            return True
        return False

    def presented_token(self, request: HTTPServerRequest, allow_query: bool = True) -> str | None:
        """The token a request carries: bearer header, ``?token=`` or the cookie."""
        auth = request.headers.get("Authorization", "")
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
        if allow_query:
            values = request.query_arguments.get("token")
            if values:
                return values[-1].decode("utf-8", "replace")
        cookie = request.cookies.get(TOKEN_COOKIE)
        if cookie is not None and cookie.value:
            return cookie.value
        return None

    def authorized(self, request: HTTPServerRequest, allow_query: bool = True) -> bool:
        """True when no token is configured or the request carries the right one."""
        if self.token is None:
            return True
        presented = self.presented_token(request, allow_query)
        if presented is None:
            return False
        return hmac.compare_digest(presented.encode(), self.token.encode())


def same_origin(origin: str | None, host: str | None) -> bool:
    """True when ``origin`` (an ``Origin`` header) names the ``host`` the request was sent to.

    ``None`` (no header: not a browser) passes; ``"null"`` and malformed origins fail.
    """
    if origin is None:
        return True
    if not host:
        return False
    try:
        parts = urlsplit(origin.strip())
        origin_host = parts.hostname
        origin_port = parts.port
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or not origin_host:
        return False
    default = 443 if parts.scheme == "https" else 80
    try:
        target = urlsplit(f"//{host.strip()}")
        target_host, target_port = target.hostname, target.port
    except ValueError:
        return False
    if target_host is None:
        return False
    return origin_host.lower() == target_host.lower() and (origin_port or default) == (
        target_port or default
    )


def is_loopback(address: str | None) -> bool:
    """True for ``127.0.0.0/8``, ``::1`` and ``localhost``."""
    if not address:
        return False  # bokeh binds every interface when the address is empty
    if address.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(address.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(address: str | None, security: Security) -> None:
    """Refuse to listen beyond this machine without a token.

    Raises
    ------
    ServerConfigError
        When ``address`` is not a loopback address and no token is set.
    """
    if not is_loopback(address) and security.token is None:
        raise ServerConfigError(
            f"refusing to listen on {address or 'every interface'!r} without a token: anyone "
            f"who can reach it could trade and stop sessions. Pass --token (or set "
            f"{TOKEN_ENV}), or bind 127.0.0.1."
        )


def is_public_path(path: str) -> bool:
    """Paths served without a token (static assets)."""
    return path.startswith(PUBLIC_PREFIXES)


def normalise_host(name: str) -> str:
    """A host name lower-cased, without brackets or a trailing dot."""
    return name.strip().strip("[]").rstrip(".").lower()


def host_name(host: str | None) -> str | None:
    """The name part of a ``Host`` header (``None`` when missing or malformed)."""
    if not host or any(c.isspace() or c in "/@?#\\" for c in host.strip()):
        return None
    try:
        parts = urlsplit(f"//{host.strip()}")
        name = parts.hostname
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        return None
    return normalise_host(name) if name else None


def redact(text: str) -> str:
    """``text`` (a URI or a log message) with every ``token=`` value replaced by ``***``."""
    return _TOKEN_IN_URI.sub(r"\1***", text)
