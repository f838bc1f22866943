"""What a bot spec that arrives over the network may name: files, credentials and URLs.

A bot spec written by the person running Python is trusted: ``aw.Bot(spec)`` may
name any file, any environment variable for the Alpaca keys and any provider
URL, because that person already controls the process. A spec that arrives over
HTTP (``POST /bots``, and every stored spec a request backtests or paper-trades)
is checked against a :class:`SpecPolicy` fixed when the server starts:

* ``strategy_config`` must resolve (symlinks followed) under a strategy directory;
* a replay or recording ``path`` and a live feed's ``record`` path must resolve
  under a data directory;
* the Alpaca keys come only from ``ALPACA_API_KEY``/``ALPACA_SECRET_KEY`` or
  from variable names the server was started with (``--credential-env``);
* provider URLs (Alpaca ``urls``, ccxt ``config.urls``) must start with a base
  URL the server was started with (``--feed-url``); no other ccxt ``config``
  key than ``options``, ``timeout``, ``enableRateLimit``, ``rateLimit`` and
  ``urls`` is accepted (no proxies, no headers).

When no directory is configured the server's working directory is the only root.
A refusal is a :class:`~alphaswarm.bots.BotSpecError` (a 422 over HTTP) that
names the key, never the content of the file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from alphaswarm.bots import BotSpecError

__all__ = ["SpecPolicy", "check_remote_spec"]

#: The Alpaca key variables every server may read.
DEFAULT_CREDENTIAL_ENVS = ("ALPACA_API_KEY", "ALPACA_SECRET_KEY")
#: ccxt constructor settings a remote spec may set.
CCXT_CONFIG_KEYS = ("options", "timeout", "enableRateLimit", "rateLimit", "urls")


def _url_base(url: str) -> tuple[str, str, int | None, str] | None:
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https", "ws", "wss") or not parts.hostname:
        return None
    if parts.username or parts.password:
        return None
    return parts.scheme, parts.hostname.lower(), port, parts.path.rstrip("/")


@dataclass(frozen=True)
class SpecPolicy:
    """The server's rules for specs that arrive over HTTP.

    Parameters
    ----------
    data_dirs : tuple of Path
        Roots for replay/recording/record paths (the working directory when empty).
    strategy_dirs : tuple of Path
        Roots for ``strategy_config`` files (the working directory when empty).
    feed_urls : tuple of str
        Base URLs a spec's provider URLs may start with (``--feed-url``).
    credential_envs : tuple of str
        More environment variables a spec may name as ``key_env``/``secret_env``.
    """

    data_dirs: tuple[Path, ...] = field(default=())
    strategy_dirs: tuple[Path, ...] = field(default=())
    feed_urls: tuple[str, ...] = field(default=())
    credential_envs: tuple[str, ...] = field(default=())

    @classmethod
    def create(
        cls,
        data_dirs: Any = (),
        strategy_dirs: Any = (),
        feed_urls: Any = (),
        credential_envs: Any = (),
    ) -> SpecPolicy:
        """Build a policy, resolving directories and checking the URLs once.

        Raises
        ------
        ValueError
            For a feed URL that is not an absolute http(s)/ws(s) URL.
        """
        for url in feed_urls:
            if _url_base(str(url)) is None:
                raise ValueError(
                    f"feed URL {url!r}: expected an absolute http(s):// or ws(s):// URL"
                )
        return cls(
            tuple(Path(d).expanduser().resolve() for d in data_dirs),
            tuple(Path(d).expanduser().resolve() for d in strategy_dirs),
            tuple(str(u).strip() for u in feed_urls),
            tuple(str(c).strip() for c in credential_envs if str(c).strip()),
        )

    # -- files ------------------------------------------------------------------------
    @staticmethod
    def _roots(configured: tuple[Path, ...]) -> tuple[Path, ...]:
        return configured or (Path.cwd().resolve(),)

    def _under(self, value: Any, roots: tuple[Path, ...], where: str, flag: str) -> None:
        if not isinstance(value, str) or not value.strip():
            raise BotSpecError(f"{where}: expected a file path relative to the server's {flag}")
        if "\x00" in value:
            raise BotSpecError(f"{where}: NUL characters are not allowed")
        path = Path(value)
        if value.startswith("~"):
            raise BotSpecError(f"{where}: '~' paths are not accepted over HTTP")
        try:
            resolved = (path if path.is_absolute() else Path.cwd() / path).resolve()
        except (OSError, RuntimeError):
            raise BotSpecError(f"{where}: the path cannot be resolved") from None
        if not any(resolved.is_relative_to(root) for root in self._roots(roots)):
            raise BotSpecError(
                f"{where}: {value!r} is outside the server's {flag} (a server option); "
                "specs sent over HTTP may only name files there"
            )

    def check_strategy_config(self, value: Any) -> None:
        """Refuse a ``strategy_config`` outside the strategy directories."""
        self._under(value, self.strategy_dirs, "strategy_config", "strategy directories")

    def check_data_path(self, value: Any, key: str = "data.path") -> None:
        """Refuse a data file outside the data directories."""
        self._under(value, self.data_dirs, key, "data directories")

    # -- credentials and URLs ------------------------------------------------------------
    def check_credential_env(self, name: Any, key: str) -> None:
        """Refuse an environment variable the server did not allow."""
        allowed = (*DEFAULT_CREDENTIAL_ENVS, *self.credential_envs)
        if name not in allowed:
            raise BotSpecError(
                f"data.{key}: {name!r} is not a credential variable this server allows "
                f"({', '.join(allowed)}; more with the server option --credential-env)"
            )

    def check_url(self, url: Any, key: str) -> None:
        """Refuse a provider URL that starts with none of the allowed base URLs."""
        base = _url_base(url) if isinstance(url, str) else None
        if base is not None:
            for allowed in self.feed_urls:
                a = _url_base(allowed)
                if a is None:
                    continue
                same = base[:3] == a[:3] or (base[1:3] == a[1:3] and {base[0], a[0]} in (
                    {"http", "ws"}, {"https", "wss"}))  # fmt: skip
                if same and (base[3] == a[3] or base[3].startswith(a[3] + "/") or not a[3]):
                    return
        raise BotSpecError(
            f"{key}: this server does not allow that provider URL (allowed base URLs are set "
            "with the server option --feed-url)"
        )


def _url_leaves(value: Any, where: str) -> list[tuple[str, Any]]:
    if isinstance(value, dict):
        out: list[tuple[str, Any]] = []
        for k, v in value.items():
            out.extend(_url_leaves(v, f"{where}.{k}"))
        return out
    if isinstance(value, list):
        out = []
        for i, v in enumerate(value):
            out.extend(_url_leaves(v, f"{where}[{i}]"))
        return out
    return [(where, value)]


def check_remote_spec(spec: dict[str, Any], policy: SpecPolicy | None = None) -> None:
    """Check a raw or stored spec that arrived over the network.

    Parameters
    ----------
    spec : dict
        The spec as sent (before :class:`~alphaswarm.bots.Bot` reads any file) or as
        stored in the ledger.
    policy : SpecPolicy, optional
        The server's rules; the defaults (working directory, default credentials,
        no URL overrides) when ``None``.

    Raises
    ------
    BotSpecError
        Naming the key that is not allowed.
    """
    policy = policy or SpecPolicy()
    if not isinstance(spec, dict):
        return  # the Bot constructor reports the shape
    if "strategy_config" in spec:
        policy.check_strategy_config(spec["strategy_config"])
    data = spec.get("data")
    if not isinstance(data, dict):
        return
    kind = data.get("feed", "synthetic")
    for key in ("path", "record"):
        if key in data and (kind in ("replay", "recording") or key == "record"):
            policy.check_data_path(data[key], f"data.{key}")
    if kind == "alpaca":
        for key in ("key_env", "secret_env"):
            if key in data:
                policy.check_credential_env(data[key], key)
        urls = data.get("urls")
        if urls is not None:
            if not isinstance(urls, dict):
                raise BotSpecError("data.urls: expected a mapping of base URLs")
            for where, value in _url_leaves(urls, "data.urls"):
                policy.check_url(value, where)
    if kind == "ccxt":
        config = data.get("config")
        if config is None:
            return
        if not isinstance(config, dict):
            raise BotSpecError("data.config: expected a mapping")
        unknown = sorted(str(k) for k in config if k not in CCXT_CONFIG_KEYS)
        if unknown:
            raise BotSpecError(
                f"data.config: key(s) {', '.join(map(repr, unknown))} are not accepted over "
                f"HTTP; allowed: {', '.join(CCXT_CONFIG_KEYS)}"
            )
        if "urls" in config:
            for where, value in _url_leaves(config["urls"], "data.config.urls"):
                policy.check_url(value, where)


def policy_from_env() -> SpecPolicy:
    """A policy from the environment, for servers started by ``panel serve --plugins``.

    ``$ALPHASWARM_DATA_DIRS`` and ``$ALPHASWARM_STRATEGY_DIRS`` (``os.pathsep``
    separated), ``$ALPHASWARM_FEED_URLS`` and ``$ALPHASWARM_CREDENTIAL_ENVS`` (comma
    separated).
    """

    def items(name: str, sep: str) -> list[str]:
        return [v for v in os.environ.get(name, "").split(sep) if v.strip()]

    return SpecPolicy.create(
        items("ALPHASWARM_DATA_DIRS", os.pathsep),
        items("ALPHASWARM_STRATEGY_DIRS", os.pathsep),
        items("ALPHASWARM_FEED_URLS", ","),
        items("ALPHASWARM_CREDENTIAL_ENVS", ","),
    )
