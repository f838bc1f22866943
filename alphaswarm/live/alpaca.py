"""US equity bars from Alpaca through the official SDK, ``alpaca-py``.

``data: {feed: alpaca, interval: 1m, source: iex|sip}`` streams minute bars (the
``b`` messages of the market data stream v2, which Alpaca sends when a bar
closes) through :class:`alpaca.data.live.StockDataStream`, and serves historical
bars for backtests and warm-up through
:class:`alpaca.data.historical.StockHistoricalDataClient` (paginated by
``next_page_token``), cached as Parquet under ``$ALPHASWARM_HOME/data``.

Keys come from ``ALPACA_API_KEY``/``ALPACA_SECRET_KEY``, or from the environment
variables a bot names with ``key_env``/``secret_env``. They are held privately,
never logged, never part of ``repr``, the fingerprint, the ledger or a frame.
Market hours follow the exchange calendar (``XNYS`` by default).
"""

from __future__ import annotations

import json
import logging
import os
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar

import pandas as pd

from alphaswarm.data.base import DAY, FeedError, parse_interval
from alphaswarm.extras import import_extra
from alphaswarm.live.base import FeedAuthError, LiveFeed, Malformed
from alphaswarm.live.cache import BarCache, empty_bars, history_blocks
from alphaswarm.live.hours import AlwaysOpen, ExchangeHours
from alphaswarm.model import Bar, ModelError, to_utc

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from alphaswarm.data.base import Block

__all__ = ["AlpacaFeed"]

log = logging.getLogger(__name__)

ALPACA_KEYS = ("source", "key_env", "secret_env", "calendar", "urls", "history")
DEFAULT_KEY_ENV = "ALPACA_API_KEY"
DEFAULT_SECRET_ENV = "ALPACA_SECRET_KEY"
_AUTH_CODES = {401, 402, 403}


def read_keys(key_env: str, secret_env: str, error: type[Exception], block: str) -> tuple[str, str]:
    """The Alpaca API key and secret from the environment variables named.

    Parameters
    ----------
    key_env, secret_env : str
        Names of the environment variables.
    error : type of Exception
        Raised when a variable is unset or empty (the caller's error type).
    block : str
        The spec block whose ``key_env``/``secret_env`` name other variables
        (``data``, ``broker``), for the message.

    Returns
    -------
    (str, str)
        The key and the secret (never log or store them).
    """
    key, secret = os.environ.get(key_env, ""), os.environ.get(secret_env, "")
    missing = [name for name, value in ((key_env, key), (secret_env, secret)) if not value]
    if missing:
        raise error(
            f"alpaca: no API keys: set the environment variable(s) {', '.join(missing)} "
            f"(or name others with {block}.key_env / {block}.secret_env)"
        )
    return key, secret


def _alpaca() -> Any:
    """Import alpaca-py (its import of ``websockets.legacy`` warns; that is not ours)."""
    modules = ("common.exceptions", "data.enums", "data.historical", "data.live",
               "data.requests", "data.timeframe", "trading.client", "trading.requests")  # fmt: skip
    return import_extra(tuple(f"alpaca.{m}" for m in modules), package="alpaca-py",
                        extra="alpaca", who="data.feed: 'alpaca'", error=FeedError,
                        quiet=True)  # fmt: skip


class AlpacaFeed(LiveFeed):
    """Alpaca market data (US equities).

    Parameters
    ----------
    symbols : list of str
        Tickers.
    interval : str
        ``1m`` for streaming; any interval for history.
    source : str
        ``iex`` (free) or ``sip`` (subscription).
    key_env, secret_env : str
        Names of the environment variables holding the keys.
    calendar : str
        Exchange calendar (``XNYS``) or ``24x7``.
    urls : dict, optional
        ``{stream, data, trading}`` base URL overrides (proxies, tests).
    history : str
        How far back ``groups()``/``frame()`` reach without a start (``7d``).
    **live
        :class:`~alphaswarm.live.base.LiveFeed` settings.

    Raises
    ------
    FeedAuthError
        When a key variable is unset or empty.
    """

    kind: ClassVar[str] = "alpaca"
    #: The SDK connects, authenticates and subscribes inside ``_open``.
    connects_in_open: ClassVar[bool] = True

    def __init__(
        self,
        symbols: Iterable[str],
        *,
        interval: str = "1m",
        source: str = "iex",
        key_env: str = DEFAULT_KEY_ENV,
        secret_env: str = DEFAULT_SECRET_ENV,
        calendar: str = "XNYS",
        urls: dict[str, str] | None = None,
        history: str = "7d",
        **live: Any,
    ) -> None:
        hours = AlwaysOpen() if calendar == "24x7" else ExchangeHours(calendar)
        super().__init__(
            symbols,
            interval,
            "24x7" if calendar == "24x7" else "equities",
            hours=hours,
            **live,
        )
        if source not in ("iex", "sip"):
            raise FeedError(f"data.source: {source!r} is not one of iex, sip")
        urls = dict(urls or {})
        unknown = set(urls) - {"stream", "data", "trading"}
        if unknown:
            raise FeedError(
                f"data.urls: unknown key(s) {sorted(unknown)}; allowed: stream, data, trading"
            )
        self.source = source
        self.urls = urls
        self.history = pd.Timedelta(seconds=parse_interval(history))
        self.key_env, self.secret_env = key_env, secret_env
        key, secret = read_keys(key_env, secret_env, FeedAuthError, "data")
        self.__key, self.__secret = key, secret
        self._stream: Any = None

    def _public_config(self) -> dict[str, Any]:
        return {"source": self.source, "calendar": self.hours.name}

    def _auth_error(self, detail: str) -> FeedAuthError:
        return FeedAuthError(
            f"alpaca refused the API keys from ${self.key_env}/${self.secret_env}: {detail}"
        )

    # -- REST: markets and history -----------------------------------------------------

    def _trading(self) -> Any:
        alpaca = _alpaca()
        return alpaca.trading.client.TradingClient(
            self.__key,
            self.__secret,
            paper=True,
            raw_data=True,
            url_override=self.urls.get("trading"),
        )

    def _historical(self) -> Any:
        alpaca = _alpaca()
        return alpaca.data.historical.StockHistoricalDataClient(
            self.__key, self.__secret, raw_data=True, url_override=self.urls.get("data")
        )

    def _rest_call(self, what: str, call: Any) -> Any:
        _alpaca()
        from alpaca.common.exceptions import APIError

        try:
            return call()
        except APIError as exc:
            if exc.status_code in _AUTH_CODES:
                raise self._auth_error(f"HTTP {exc.status_code} {exc.message}") from None
            raise FeedError(
                f"alpaca: {what} failed: HTTP {exc.status_code} {exc.message}"
            ) from None
        except OSError as exc:
            raise FeedError(f"alpaca: {what} failed: {type(exc).__name__}: {exc}") from None

    def covers(self, symbols: Iterable[str]) -> list[str]:
        """Symbols Alpaca does not list as active, tradable US equities (one assets lookup).

        Also checks the keys: a refusal raises :class:`FeedAuthError` before any run starts.
        """
        _alpaca()
        from alpaca.trading.requests import GetAssetsRequest

        client = self._trading()
        assets = self._rest_call(
            "asset lookup",
            lambda: client.get_all_assets(
                GetAssetsRequest(status="active", asset_class="us_equity")
            ),
        )
        have = {a.get("symbol") for a in assets if a.get("tradable", True)}
        return [s for s in symbols if s not in have]

    def _timeframe(self) -> Any:
        _alpaca()
        from alpaca.data.timeframe import TimeFrame, TimeFrameUnit

        seconds = self.interval_seconds
        for unit, size in (
            (TimeFrameUnit.Week, 7 * DAY),
            (TimeFrameUnit.Day, DAY),
            (TimeFrameUnit.Hour, 3600),
            (TimeFrameUnit.Minute, 60),
        ):
            if seconds % size == 0:
                return TimeFrame(seconds // size, unit)
        raise FeedError(f"data.interval: alpaca has no {self.interval} bars")

    def _download(self, symbol: str, from_ns: int, to_ns: int) -> pd.DataFrame:
        _alpaca()
        from alpaca.data.enums import DataFeed
        from alpaca.data.requests import StockBarsRequest

        client = self._historical()
        request = StockBarsRequest(
            symbol_or_symbols=symbol,
            timeframe=self._timeframe(),
            start=datetime.fromtimestamp(from_ns / 1e9, tz=UTC),
            end=datetime.fromtimestamp(to_ns / 1e9, tz=UTC),
            feed=DataFeed(self.source),
        )
        raw = self._rest_call(f"bars of {symbol}", lambda: client.get_stock_bars(request))
        rows = raw.get(symbol) or []
        if not rows:
            return empty_bars()
        frame = pd.DataFrame(rows)
        ts = pd.to_datetime(frame["t"], utc=True)
        if self.interval_seconds >= DAY:
            ts = ts.dt.floor("D")
        return pd.DataFrame(
            {
                "ts": pd.DatetimeIndex(ts).as_unit("ns").asi8,
                "open": frame["o"].astype(float),
                "high": frame["h"].astype(float),
                "low": frame["l"].astype(float),
                "close": frame["c"].astype(float),
                "volume": frame["v"].astype(float),
            }
        )

    def _blocks(self, start: int | None, end: int | None) -> Iterator[Block]:
        cache = BarCache("alpaca", self.source, self.interval)
        yield from history_blocks(
            self.symbols, cache, self._download, start, end, self.interval_seconds, self.history
        )

    # -- streaming ---------------------------------------------------------------------

    async def _on_bar(self, bar: Any) -> None:  # registered only so the SDK subscribes
        return None

    async def _open(self) -> None:
        if self.interval_seconds != 60:
            raise FeedError(f"data.interval: alpaca streams 1m bars, not {self.interval}")
        alpaca = _alpaca()
        from alpaca.data.enums import DataFeed

        stream = alpaca.data.live.StockDataStream(
            self.__key,
            self.__secret,
            raw_data=True,
            feed=DataFeed(self.source),
            url_override=self.urls.get("stream"),
        )
        stream.subscribe_bars(self._on_bar, *self.symbols)
        self._stream = stream
        try:
            # the SDK's own connect, auth and subscribe messages (msgpack frames)
            await stream._start_ws()
        except ValueError as exc:
            text = str(exc)
            if "auth" in text and "timeout" not in text:
                raise self._auth_error(text) from None
            raise ConnectionError(f"alpaca stream: {text}") from None
        await stream._send_subscribe_msg()

    async def _receive(self) -> list[Bar | Malformed]:
        import msgpack

        raw = await self._stream._ws.recv()
        try:
            msgs = msgpack.unpackb(raw) if isinstance(raw, bytes) else json.loads(raw)
        except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as exc:
            return [Malformed(f"undecodable frame: {exc}")]
        if isinstance(msgs, dict):
            msgs = [msgs]
        if not isinstance(msgs, list):
            return [Malformed(f"expected a list of messages, got {type(msgs).__name__}")]
        out: list[Bar | Malformed] = []
        for msg in msgs:
            kind = msg.get("T") if isinstance(msg, dict) else None
            if kind == "b":
                out.append(self._parse_bar(msg))
            elif kind == "error":
                code = msg.get("code")
                if code in _AUTH_CODES:
                    raise self._auth_error(f"{msg.get('msg')} ({code})")
                log.warning("alpaca stream error: %s (%s)", msg.get("msg"), code)
            elif kind == "subscription":
                missing = sorted(set(self.symbols) - set(msg.get("bars") or []))
                if missing:
                    log.warning("alpaca did not subscribe bars of %s", ", ".join(missing))
            elif kind in ("success", "s", "t", "q", "u", "d", "c", "x", "l"):
                continue
            else:
                out.append(Malformed(f"unknown message {msg!r:.200}"))
        return out

    @staticmethod
    def _parse_bar(msg: dict[str, Any]) -> Bar | Malformed:
        try:
            t = msg["t"]
            ts = t.to_datetime() if hasattr(t, "to_datetime") else to_utc(t)
            return Bar(
                msg["S"],
                to_utc(ts),
                msg["o"],
                msg["h"],
                msg["l"],
                msg["c"],
                msg.get("v", 0.0),
            )
        except (KeyError, TypeError, ValueError, ModelError) as exc:
            return Malformed(f"bar {msg!r:.200}: {exc}")

    async def _close(self) -> None:
        stream, self._stream = self._stream, None
        await self._close_quietly(stream)

    def __reduce__(self) -> Any:
        raise TypeError("an AlpacaFeed holds API keys and cannot be pickled")
