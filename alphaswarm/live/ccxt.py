"""Crypto bars from any exchange ccxt supports: public data, no keys.

``data: {feed: ccxt, exchange: binance, interval: 1m}`` streams with ccxt.pro's
``watch_ohlcv`` where the exchange has it, otherwise ``watch_trades`` aggregated
into bars when the bar's end plus ``trade_grace`` seconds has passed (by the
exchange's clock, estimated from the latest trade). Historical bars come from
paginated ``fetch_ohlcv`` within the exchange's rate limit and are cached as
Parquet. ``config`` is passed to the ccxt exchange constructor (``urls``,
``options``, ``timeout`` ...; never keys: public data needs none).
"""

from __future__ import annotations

import asyncio
import math
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd

from alphaswarm.data.base import FeedError, parse_interval
from alphaswarm.extras import import_extra
from alphaswarm.live.base import FeedAuthError, LiveFeed, Malformed
from alphaswarm.live.cache import BarCache, empty_bars, history_blocks
from alphaswarm.model import Bar, ModelError

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from alphaswarm.data.base import Block

__all__ = ["CcxtFeed", "TradeAggregator"]

CCXT_KEYS = ("exchange", "use", "trade_grace", "config", "history")


def _import_ccxt() -> Any:
    return import_extra(("ccxt",), package="ccxt", extra="ccxt", who="data.feed: 'ccxt'",
                        error=FeedError)  # fmt: skip


class TradeAggregator:
    """Aggregate trades into OHLCV bars, closing each bar after its end plus a grace.

    Parameters
    ----------
    interval_seconds : int
        Bar length.
    grace : float
        Seconds after a bar's end (by the exchange's clock) before it is closed;
        later trades of that bar are counted in ``late`` and dropped.
    """

    def __init__(self, interval_seconds: int, grace: float = 2.0) -> None:
        self.step_ms = interval_seconds * 1000
        self.grace_ms = grace * 1000
        self._bars: dict[tuple[str, int], list[float]] = {}
        self._closed: dict[str, int] = {}
        self._exchange_ms: float | None = None
        self._wall_at: float = 0.0
        self.late = 0

    def add(self, symbol: str, ts_ms: int, price: float, amount: float, wall: float) -> None:
        """Take one trade (exchange time ``ts_ms``, received at ``wall`` epoch seconds)."""
        bucket = ts_ms - ts_ms % self.step_ms
        if bucket <= self._closed.get(symbol, -1):
            self.late += 1
            return
        if self._exchange_ms is None or ts_ms >= self._exchange_ms:
            self._exchange_ms, self._wall_at = float(ts_ms), wall
        bar = self._bars.get((symbol, bucket))
        if bar is None:
            self._bars[(symbol, bucket)] = [price, price, price, price, amount]
        else:
            bar[1] = max(bar[1], price)
            bar[2] = min(bar[2], price)
            bar[3] = price
            bar[4] += amount

    def close(self, wall: float) -> list[Bar]:
        """The bars whose end plus grace has passed at wall-clock ``wall``."""
        if self._exchange_ms is None:
            return []
        now_ms = self._exchange_ms + (wall - self._wall_at) * 1000
        out = []
        for key in sorted(self._bars, key=lambda k: (k[1], k[0])):
            symbol, bucket = key
            if bucket + self.step_ms + self.grace_ms <= now_ms:
                o, h, lo, c, v = self._bars.pop(key)
                self._closed[symbol] = max(self._closed.get(symbol, -1), bucket)
                out.append(
                    Bar(symbol, datetime.fromtimestamp(bucket / 1000, tz=UTC), o, h, lo, c, v)
                )
        return out


class CcxtFeed(LiveFeed):
    """Public crypto bars from a ccxt exchange.

    Parameters
    ----------
    symbols : list of str
        Unified ccxt symbols (``BTC/USDT``).
    exchange : str
        A ccxt exchange id (``binance``, ``kraken``, ``coinbase`` ...).
    interval : str
        Bar interval; must be one of the exchange's timeframes for ``watch_ohlcv``.
    use : str
        ``auto`` (``watch_ohlcv`` when the exchange has it), ``ohlcv`` or ``trades``.
    trade_grace : float
        Seconds after a bar's end before a bar built from trades (or an idle candle)
        is closed.
    config : dict, optional
        Extra ccxt constructor settings (``urls``, ``options``, ``timeout`` ...).
    history : str
        How far back ``groups()``/``frame()`` reach when no start is given (``7d``).
    **live
        :class:`~alphaswarm.live.base.LiveFeed` settings.
    """

    kind: ClassVar[str] = "ccxt"

    def __init__(
        self,
        symbols: Iterable[str],
        *,
        exchange: str = "binance",
        interval: str = "1m",
        use: str = "auto",
        trade_grace: float = 2.0,
        config: dict[str, Any] | None = None,
        history: str = "7d",
        **live: Any,
    ) -> None:
        super().__init__(symbols, interval, "24x7", **live)
        ccxt = _import_ccxt()
        if not isinstance(exchange, str) or exchange not in ccxt.exchanges:
            raise FeedError(f"data.exchange: {exchange!r} is not a ccxt exchange id")
        if use not in ("auto", "ohlcv", "trades"):
            raise FeedError(f"data.use: {use!r} is not one of auto, ohlcv, trades")
        if config is not None and not isinstance(config, dict):
            raise FeedError(f"data.config: expected a mapping, got {type(config).__name__}")
        for secret in ("apiKey", "secret", "password", "uid", "privateKey"):
            if config and secret in config:
                raise FeedError(
                    f"data.config: {secret!r} is not allowed: the ccxt feed uses public data"
                )
        self.exchange_id = exchange
        self.use = use
        self.trade_grace = float(trade_grace)
        self.config = dict(config or {})
        self.history = pd.Timedelta(seconds=parse_interval(history))
        self._rest: Any = None
        self._pro: Any = None
        self._mode: str | None = None
        self._markets: Any = None
        self._candles: dict[str, dict[int, list[float]]] = {}
        self._touched: dict[tuple[str, int], float] = {}
        self._closed_ts: dict[str, int] = {}
        self._trades = TradeAggregator(self.interval_seconds, self.trade_grace)

    # -- exchanges ---------------------------------------------------------------------

    def _settings(self) -> dict[str, Any]:
        return {"enableRateLimit": True, **self.config}

    @property
    def rest(self) -> Any:
        """The synchronous ccxt exchange (markets, historical bars)."""
        if self._rest is None:
            self._rest = getattr(_import_ccxt(), self.exchange_id)(self._settings())
        return self._rest

    @property
    def timeframe(self) -> str:
        """The ccxt timeframe string of the interval."""
        return self.interval

    def _public_config(self) -> dict[str, Any]:
        return {"exchange": self.exchange_id, "use": self.use}

    def _load_markets(self) -> dict[str, Any]:
        ccxt = _import_ccxt()
        try:
            return self.rest.load_markets()
        except ccxt.AuthenticationError as exc:
            raise FeedAuthError(f"{self.exchange_id}: {exc}") from exc
        except ccxt.BaseError as exc:
            raise FeedError(f"{self.exchange_id}: cannot load markets ({exc})") from exc

    def covers(self, symbols: Iterable[str]) -> list[str]:
        """Symbols the exchange does not list (a market lookup).

        Parameters
        ----------
        symbols : iterable of str
            Unified symbols.
        """
        markets = self._load_markets()
        return [s for s in symbols if s not in markets]

    # -- history -----------------------------------------------------------------------

    def _download(self, symbol: str, from_ns: int, to_ns: int) -> pd.DataFrame:
        """Paginated ``fetch_ohlcv`` from ``from_ns`` to ``to_ns`` (ccxt keeps the rate limit)."""
        ccxt = _import_ccxt()
        rest = self.rest
        if not rest.has.get("fetchOHLCV"):
            raise FeedError(f"{self.exchange_id}: the exchange has no fetchOHLCV")
        since = math.ceil(from_ns / 1e6)
        end_ms = to_ns // 10**6
        step_ms = self.interval_seconds * 1000
        rows: list[list[float]] = []
        while since <= end_ms:
            try:
                page = rest.fetch_ohlcv(symbol, self.timeframe, since=since, limit=1000)
            except ccxt.BaseError as exc:
                raise FeedError(f"{self.exchange_id}: fetch_ohlcv {symbol} failed ({exc})") from exc
            page = [r for r in page if r and r[0] is not None and r[0] >= since]
            if not page:
                break
            rows.extend(r for r in page if r[0] <= end_ms)
            since = int(page[-1][0]) + step_ms
        if not rows:
            return empty_bars()
        arr = np.asarray([r[:6] for r in rows], dtype=float)
        return pd.DataFrame(
            {
                "ts": arr[:, 0].astype(np.int64) * 10**6,
                "open": arr[:, 1],
                "high": arr[:, 2],
                "low": arr[:, 3],
                "close": arr[:, 4],
                "volume": np.nan_to_num(arr[:, 5]),
            }
        )

    def _blocks(self, start: int | None, end: int | None) -> Iterator[Block]:
        cache = BarCache("ccxt", self.exchange_id, self.interval)
        yield from history_blocks(
            self.symbols, cache, self._download, start, end, self.interval_seconds, self.history
        )

    # -- streaming ---------------------------------------------------------------------

    async def _open(self) -> None:
        if self._pro is None:
            try:
                import ccxt.pro as ccxtpro
            except ImportError:  # pragma: no cover
                raise FeedError("data.feed: 'ccxt' streaming needs ccxt.pro (ccxt >= 4)") from None
            self._pro = getattr(ccxtpro, self.exchange_id)(self._settings())
        pro = self._pro
        if self._mode is None:
            has = pro.has
            if self.use == "trades" or (self.use == "auto" and not has.get("watchOHLCV")):
                if not has.get("watchTrades"):
                    raise FeedError(f"{self.exchange_id}: neither watchOHLCV nor watchTrades")
                self._mode = "trades"
            else:
                if not has.get("watchOHLCV"):
                    raise FeedError(f"{self.exchange_id}: no watchOHLCV (use: trades)")
                self._mode = "ohlcv"
        if self._markets is not None:
            pro.set_markets(self._markets)
        else:
            self._markets = await pro.load_markets()
        # ccxt.pro (re)subscribes on the first watch call of each connection

    async def _watch(self) -> Any:
        pro, symbols, tf = self._pro, self.symbols, self.timeframe
        if self._mode == "ohlcv":
            if len(symbols) == 1:
                candles = await pro.watch_ohlcv(symbols[0], tf)
                return {symbols[0]: candles}
            if pro.has.get("watchOHLCVForSymbols"):
                result = await pro.watch_ohlcv_for_symbols([[s, tf] for s in symbols])
                return {s: by_tf.get(tf, []) for s, by_tf in result.items()}
            tasks = [asyncio.ensure_future(pro.watch_ohlcv(s, tf)) for s in symbols]
            done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in pending:
                task.cancel()
            return {s: t.result() for s, t in zip(symbols, tasks, strict=True) if t in done}
        if len(symbols) == 1:
            return await pro.watch_trades(symbols[0])
        if pro.has.get("watchTradesForSymbols"):
            return await pro.watch_trades_for_symbols(symbols)
        tasks = [asyncio.ensure_future(pro.watch_trades(s)) for s in symbols]
        done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        return [trade for t in done for trade in t.result()]

    async def _receive(self) -> list[Bar | Malformed]:
        ccxt = _import_ccxt()
        try:
            result = await self._watch()
        except ccxt.AuthenticationError as exc:
            raise FeedAuthError(f"{self.exchange_id}: {exc}") from exc
        except (ccxt.BadSymbol, ccxt.BadRequest) as exc:
            raise FeedAuthError(f"{self.exchange_id}: subscription refused ({exc})") from exc
        wall = time.time()
        if self._mode == "trades":
            return self._take_trades(result, wall)
        return self._take_candles(result, wall)

    def _take_trades(self, trades: list[dict[str, Any]], wall: float) -> list[Bar | Malformed]:
        out: list[Bar | Malformed] = []
        for trade in trades:
            try:
                symbol, ts = trade["symbol"], int(trade["timestamp"])
                price, amount = float(trade["price"]), float(trade["amount"])
                if not (math.isfinite(price) and price > 0 and math.isfinite(amount)):
                    raise ValueError(f"price {price}, amount {amount}")
            except (KeyError, TypeError, ValueError) as exc:
                out.append(Malformed(f"trade {trade!r}: {exc}"))
                continue
            self._trades.add(symbol, ts, price, amount, wall)
        out.extend(self._trades.close(wall))
        return out

    def _take_candles(self, by_symbol: dict[str, Any], wall: float) -> list[Bar | Malformed]:
        out: list[Bar | Malformed] = []
        for symbol, candles in by_symbol.items():
            book = self._candles.setdefault(symbol, {})
            closed_ts = self._closed_ts.get(symbol, -1)
            for candle in candles:
                try:
                    ts = int(candle[0])
                    values = [float(x) for x in candle[1:6]]
                except (TypeError, ValueError, IndexError) as exc:
                    out.append(Malformed(f"candle {candle!r}: {exc}"))
                    continue
                if ts <= closed_ts:  # a re-send of a closed bar: the sequencer counts it
                    try:
                        when = datetime.fromtimestamp(ts / 1000, tz=UTC)
                        out.append(Bar(symbol, when, *values[:4], values[4] or 0.0))
                    except ModelError as exc:
                        out.append(Malformed(f"candle {candle!r}: {exc}"))
                    continue
                book[ts] = values
                self._touched[(symbol, ts)] = wall
            if book:
                newest = max(book)
                for ts in sorted(t for t in book if t < newest):
                    out.append(self._close_candle(symbol, ts))
        return out

    def _close_candle(self, symbol: str, ts: int) -> Bar | Malformed:
        o, h, lo, c, v = self._candles[symbol].pop(ts)
        self._touched.pop((symbol, ts), None)
        self._closed_ts[symbol] = max(self._closed_ts.get(symbol, -1), ts)
        try:
            return Bar(symbol, datetime.fromtimestamp(ts / 1000, tz=UTC), o, h, lo, c, v or 0.0)
        except ModelError as exc:
            return Malformed(f"candle {symbol} {ts}: {exc}")

    def _tick(self, now: float) -> list[Bar]:
        if self._mode == "trades":
            return self._trades.close(now)
        step = self.interval_seconds
        out = []
        for (symbol, ts), touched in sorted(self._touched.items(), key=lambda kv: kv[0][1]):
            ends = ts / 1000 + step
            if now >= ends + self.trade_grace and now - touched >= self.trade_grace:
                bar = self._close_candle(symbol, ts)
                if isinstance(bar, Bar):
                    out.append(bar)
        return out

    async def _close(self) -> None:
        pro, self._pro = self._pro, None
        await self._close_quietly(pro)
