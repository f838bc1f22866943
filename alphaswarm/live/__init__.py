"""Live market data: paper sessions on real-time bars.

* :class:`~alphaswarm.live.alpaca.AlpacaFeed` -- US equities through ``alpaca-py``
  (``data: {feed: alpaca, interval: 1m, source: iex}``);
* :class:`~alphaswarm.live.ccxt.CcxtFeed` -- any ccxt exchange, public data
  (``data: {feed: ccxt, exchange: binance, interval: 1m}``);
* :class:`~alphaswarm.live.recording.RecordingFeed` -- a recorded live stream
  (``data: {feed: recording, path: rec.parquet}``);
* :func:`make_live_feed` builds one from a ``data:`` block, :func:`feed_override`
  rewrites a bot's ``data:`` block for ``--feed ccxt:binance --symbols BTC/USDT``.

The providers' packages are optional extras (``alphaswarm[alpaca]``,
``alphaswarm[ccxt]``) imported only when such a feed is built.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from alphaswarm.data import register_feed_kind
from alphaswarm.data.base import FeedError
from alphaswarm.live.alpaca import ALPACA_KEYS
from alphaswarm.live.base import (
    LIVE_KEYS,
    BarGroup,
    BarSequencer,
    FeedAuthError,
    FeedEvent,
    FeedState,
    LiveFeed,
    LiveStream,
    Malformed,
)
from alphaswarm.live.ccxt import CCXT_KEYS

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = [
    "LIVE_FEED_KEYS",
    "BarGroup",
    "BarSequencer",
    "FeedAuthError",
    "FeedEvent",
    "FeedState",
    "LiveFeed",
    "LiveStream",
    "Malformed",
    "feed_override",
    "is_live",
    "make_live_feed",
]

LIVE_FEED_KEYS: dict[str, tuple[str, ...]] = {
    "alpaca": ("feed", "universe", "interval", *ALPACA_KEYS, *LIVE_KEYS),
    "ccxt": ("feed", "universe", "interval", *CCXT_KEYS, *LIVE_KEYS),
    "recording": ("feed", "path", "universe", "stall_seconds", "halt_on_stall"),
}
"""Keys a live ``data:`` block may hold, per feed kind."""


def is_live(feed: Any) -> bool:
    """True for a feed whose bars come from :meth:`LiveFeed.stream` rather than ``groups()``."""
    return isinstance(feed, LiveFeed)


def make_live_feed(
    data: Mapping[str, Any], universe: list[str], *, base_dir: str | Path | None = None
) -> LiveFeed:
    """Build the live feed a ``data:`` block describes (keys already checked).

    Parameters
    ----------
    data : dict
        ``{feed: alpaca|ccxt|recording, ...}``; see :data:`LIVE_FEED_KEYS`.
    universe : list of str
        The bot's symbols; a ``universe`` key in the block takes precedence.
    base_dir : str or Path, optional
        Directory a relative recording ``path`` (or ``record`` path) is taken from.

    Raises
    ------
    FeedError
        For bad values; :class:`FeedAuthError` when Alpaca keys are missing.
    """
    options = {k: v for k, v in data.items() if k != "feed"}
    kind = data["feed"]
    symbols = options.pop("universe", None) or list(universe)
    if isinstance(symbols, str):
        symbols = [symbols]
    for key in ("path", "record"):
        if key in options:
            value = options[key]
            if not isinstance(value, str | Path) or not str(value).strip():
                raise FeedError(f"data.{key}: expected a file path, got {value!r}")
            path = Path(value).expanduser()
            if base_dir is not None and not path.is_absolute():
                path = Path(base_dir) / path
            options[key] = str(path)
    try:
        if kind == "recording":
            from alphaswarm.live.recording import RecordingFeed

            if "path" not in options:
                raise FeedError("data.path: required for feed 'recording' (a .parquet file)")
            return RecordingFeed(options.pop("path"), symbols or None, **options)
        if not symbols:
            raise FeedError(f"universe: feed {kind!r} needs at least one symbol")
        if kind == "alpaca":
            from alphaswarm.live.alpaca import AlpacaFeed

            return AlpacaFeed(symbols, **options)
        if kind == "ccxt":
            from alphaswarm.live.ccxt import CcxtFeed

            return CcxtFeed(symbols, **options)
    except TypeError as exc:  # a value of the wrong shape reaching a constructor
        raise FeedError(f"data: {exc}") from exc
    raise FeedError(f"data.feed: {kind!r} is not a live feed ({', '.join(LIVE_FEED_KEYS)})")


_CARRIED = ("interval", "stall_seconds", "halt_on_stall", "record", "group_grace")


def feed_override(
    spec_data: Mapping[str, Any] | None, feed_arg: str, symbols: list[str] | None = None
) -> tuple[dict[str, Any], list[str]]:
    """Rewrite a bot's ``data:`` block for a command-line ``--feed``/``--symbols``.

    Parameters
    ----------
    spec_data : dict or None
        The bot's ``data:`` block (not modified).
    feed_arg : str
        ``ccxt:<exchange>``, ``alpaca`` or ``alpaca:<iex|sip>``,
        ``recording:<path>``, or a stored feed kind (``synthetic``, ``sample``).
    symbols : list of str, optional
        ``--symbols`` (comma-separated items are split).

    Returns
    -------
    (dict, list of str)
        The new ``data:`` block, and the universe to trade: the given symbols, or
        an empty list meaning "keep the bot's universe". Settings that carry over
        (``interval``, ``stall_seconds``, ``halt_on_stall``, ``record``) are kept when
        the kind does not change them.

    Raises
    ------
    FeedError
        For a malformed ``feed_arg`` (the message lists the accepted forms).
    """
    spec_data = dict(spec_data or {})
    if not isinstance(feed_arg, str) or not feed_arg.strip():
        raise FeedError("--feed: expected ccxt:<exchange>, alpaca[:iex|sip] or recording:<path>")
    kind, _, arg = feed_arg.strip().partition(":")
    data: dict[str, Any] = {"feed": kind}
    if kind == "ccxt":
        if not arg:
            raise FeedError("--feed: ccxt needs an exchange id, e.g. ccxt:binance")
        data["exchange"] = arg
    elif kind == "alpaca":
        if arg:
            data["source"] = arg
    elif kind == "recording":
        if not arg:
            raise FeedError("--feed: recording needs a path, e.g. recording:runs/btc.parquet")
        data["path"] = arg
    elif kind in ("synthetic", "sample", "replay"):
        if kind == "replay":
            if not arg:
                raise FeedError("--feed: replay needs a path, e.g. replay:bars.parquet")
            data["path"] = arg
    else:
        raise FeedError(
            f"--feed: {kind!r} is not one of ccxt:<exchange>, alpaca[:iex|sip], "
            "recording:<path>, replay:<path>, synthetic, sample"
        )
    if kind in ("ccxt", "alpaca"):
        for key in _CARRIED:
            if key in spec_data and spec_data.get("feed") in ("ccxt", "alpaca"):
                data[key] = spec_data[key]
        data.setdefault("interval", spec_data.get("interval", "1m"))
    universe: list[str] = []
    for item in symbols or []:
        universe.extend(s.strip() for s in str(item).split(",") if s.strip())
    return data, list(dict.fromkeys(universe))


for _kind, _keys in LIVE_FEED_KEYS.items():  # make_feed builds live feeds from here on
    register_feed_kind(_kind, _keys, make_live_feed)
