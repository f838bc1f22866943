"""EquityCurve: equity, drawdown and the price with fill markers, streamed."""

from __future__ import annotations

from typing import Any

import holoviews as hv
import pandas as pd
import panel as pn
import param
from bokeh.models import NumeralTickFormatter

from alphaswarm.ledger.run_reads import price_history
from alphaswarm.notebook import bokeh_backend
from alphaswarm.ui.base import LiveView, served_document, to_timestamp

bokeh_backend()  # no display: a notebook loads its resources through aw.extension()

_EQUITY_COLUMNS = ["ts", "equity", "drawdown"]
_PRICE_COLUMNS = ["ts", "close"]
_FILL_COLUMNS = ["ts", "price", "qty", "symbol", "side"]


def _empty(columns: list[str]) -> pd.DataFrame:
    data: dict[str, Any] = {c: pd.Series(dtype="float64") for c in columns}
    data["ts"] = pd.Series(dtype="datetime64[ns]")
    for text in ("symbol", "side"):
        if text in data:
            data[text] = pd.Series(dtype="object")
    return pd.DataFrame(data, columns=columns)


class EquityCurve(LiveView):
    """The equity curve with its drawdown below and the traded price with fill markers.

    Every series is an ``hv.streams.Buffer`` (bounded by ``length``); each tick
    sends only the new points, which Bokeh streams to the browser.

    Parameters
    ----------
    session : PaperSession or str
        A live session, or the id of a finished run (read from the ledger).
    """

    length = param.Integer(
        default=5000, bounds=(10, None), doc="Points kept per series (older ones roll over)."
    )
    symbol = param.String(
        default="", doc="Symbol whose price and fills are drawn; the bot's first by default."
    )
    max_history = param.Integer(
        default=100_000,
        bounds=(10, None),
        doc="Points at most kept per series when a long run's history is loaded.",
    )
    height = param.Integer(default=560, bounds=(200, None), doc="Total height in pixels.")

    def _build(self) -> None:
        if not self.symbol:
            universe: list[str] = []
            if self.session is not None and self.session.bot is not None:
                universe = self.session.bot.universe
            else:
                row = self.run_row() or {}
                universe = ((row.get("config") or {}).get("bot") or {}).get("universe") or []
            self.symbol = universe[0] if universe else ""
        self.equity_buffer = hv.streams.Buffer(
            _empty(_EQUITY_COLUMNS), length=self.length, index=False
        )
        self.price_buffer = hv.streams.Buffer(
            _empty(_PRICE_COLUMNS), length=self.length, index=False
        )
        self.fills_buffer = hv.streams.Buffer(
            _empty(_FILL_COLUMNS), length=self.length, index=False
        ).rename(data="fills")
        # A server document streams the new points (the Buffers above); a notebook
        # output gets each series whole, through Pipes, once per tick that changed
        # it: a notebook front end sends streamed columns back to the kernel with
        # the times as floats, and appending those to datetime columns fails.
        self._streaming = served_document() is not None
        if self._streaming:
            equity_streams: list[Any] = [self.equity_buffer]
            price_streams: list[Any] = [self.price_buffer, self.fills_buffer]
            self._pipes: dict[str, hv.streams.Pipe] = {}
        else:
            self._pipes = {
                "equity": hv.streams.Pipe(data=self.equity_buffer.data),
                "price": hv.streams.Pipe(data=self.price_buffer.data),
                "fills": hv.streams.Pipe(data=self.fills_buffer.data).rename(data="fills"),
            }
            equity_streams = [self._pipes["equity"]]
            price_streams = [self._pipes["price"], self._pipes["fills"]]
        self._peak = 0.0
        self._bar_ts: pd.Timestamp | None = None
        h = self.height
        symbol = self.symbol or "price"
        # Buffers follow their data, so no framewise range recomputation is needed.
        equity = hv.DynamicMap(
            lambda data: hv.Curve(data, "ts", "equity", label="equity"),
            streams=equity_streams,
        ).opts(
            responsive=True,
            height=int(h * 0.42),
            color="#1565c0",
            xaxis=None,
            line_width=2,
            ylabel="equity",
            title="Equity",
            tools=["hover"],
            # as many decimals as the ticks need: a flat curve's ticks (99,999.5, 100,000,
            # 100,000.5) stay distinct where a fixed "%.0f" printed 100000 twice
            yformatter=NumeralTickFormatter(format="0,0.[00]"),
        )
        drawdown = hv.DynamicMap(
            lambda data: hv.Area(data, "ts", "drawdown", label="drawdown"),
            streams=equity_streams,
        ).opts(
            responsive=True,
            height=int(h * 0.22),
            color="#c62828",
            xaxis=None,
            yformatter=NumeralTickFormatter(format="0.[000]"),
            alpha=0.35,
            line_color="#c62828",
            ylabel="drawdown %",
            title="Drawdown",
        )

        def prices(data: pd.DataFrame, fills: pd.DataFrame) -> hv.Overlay:
            buys = fills[fills["side"] == "buy"] if len(fills) else fills
            sells = fills[fills["side"] == "sell"] if len(fills) else fills
            return (
                hv.Curve(data, "ts", "close", label=symbol).opts(color="#455a64", line_width=1.5)
                * hv.Scatter(buys, "ts", ["price", "qty"], label="buy").opts(
                    color="#2e7d32", marker="triangle", size=11, tools=["hover"]
                )
                * hv.Scatter(sells, "ts", ["price", "qty"], label="sell").opts(
                    color="#c62828", marker="inverted_triangle", size=11, tools=["hover"]
                )
            )

        price = hv.DynamicMap(prices, streams=price_streams).opts(
            responsive=True,
            height=int(h * 0.36),
            ylabel=f"{self.symbol} price" if self.symbol else "price",
            xlabel="bar time (UTC)",
            legend_position="top_left",
            show_legend=True,
        )
        if not self._streaming:  # whole series replace the data: ranges follow them
            equity, drawdown, price = (p.opts(framewise=True) for p in (equity, drawdown, price))
        self.plot = hv.Layout([equity, drawdown, price]).cols(1).opts(shared_axes=True)
        self._pane = pn.pane.HoloViews(
            self.plot, sizing_mode="stretch_width", min_height=h, linked_axes=True
        )

    # -- data -----------------------------------------------------------------------
    def _load(self) -> None:
        if not self.run_id:
            return
        ledger = self.ledger_()
        # a live run: what its bus still holds comes from the frames, the rest from the ledger
        recent = self.recent_frames()
        seqs = [f["seq"] for f in recent if isinstance(f.get("seq"), int)]
        first_seq = min(seqs) if seqs else None
        first_bar = next(
            (
                to_timestamp((f.get("bar") or {}).get("ts"))
                for f in recent
                if f.get("stage") == "bar.received"
            ),
            None,
        )
        prices = price_history(ledger, self.run_id, self.symbol or None, before_seq=first_seq)
        if self.symbol == "" and len(prices):
            self.symbol = str(prices["symbol"].iloc[0])
            prices = prices[prices["symbol"] == self.symbol]
        eq = ledger.equity(self.run_id)
        fills = ledger.fills(self.run_id)
        fills = fills[fills["symbol"] == self.symbol] if len(fills) else fills
        if first_bar is not None:
            cut = pd.Timestamp(first_bar)
            eq = eq[[to_timestamp(t) < cut for t in eq["ts"]]] if len(eq) else eq
            fills = (
                fills[[to_timestamp(t) < cut for t in fills["filled_at"]]] if len(fills) else fills
            )
        # the whole history fits, however long the run (up to max_history points)
        grow = max(len(prices), len(eq)) + (len(recent) if recent else 0)
        if grow > self.length:
            for buffer in (self.equity_buffer, self.price_buffer, self.fills_buffer):
                buffer.length = min(max(grow * 2, self.length), self.max_history)
        if len(eq):
            self._send_equity(
                [(to_timestamp(t), e) for t, e in zip(eq["ts"], eq["equity"], strict=True)]
            )
        if len(prices):
            self.price_buffer.send(prices[_PRICE_COLUMNS].reset_index(drop=True))
            self._publish("price", self.price_buffer)
            self._bar_ts = to_timestamp(prices["ts"].iloc[-1])
        self._send_fills(
            [
                (to_timestamp(r.filled_at), r.price, r.qty, r.symbol, r.side)
                for r in fills.itertuples()
            ]
        )
        if self.session is not None:
            self._update(self._new(recent))

    def _send_equity(self, points: list[tuple[pd.Timestamp | None, float]]) -> None:
        rows = []
        for ts, equity in points:
            if ts is None or equity is None:
                continue
            self._peak = max(self._peak, equity)
            dd = (equity / self._peak - 1.0) * 100 if self._peak > 0 else 0.0
            rows.append((ts, equity, dd))
        if rows:
            self.equity_buffer.send(pd.DataFrame(rows, columns=_EQUITY_COLUMNS))
            self._publish("equity", self.equity_buffer)

    def _publish(self, name: str, buffer: hv.streams.Buffer) -> None:
        """Hand a notebook output the whole series (a server document streamed it)."""
        pipe = self._pipes.get(name)
        if pipe is not None:
            pipe.send(buffer.data)

    def _send_fills(self, fills: list[tuple[Any, ...]]) -> None:
        rows = [f for f in fills if f[0] is not None]
        if rows:
            self.fills_buffer.send(pd.DataFrame(rows, columns=_FILL_COLUMNS))
            self._publish("fills", self.fills_buffer)

    @property
    def buys(self) -> pd.DataFrame:
        """Buy fills plotted on the price."""
        data = self.fills_buffer.data
        return data[data["side"] == "buy"]

    @property
    def sells(self) -> pd.DataFrame:
        """Sell fills plotted on the price."""
        data = self.fills_buffer.data
        return data[data["side"] == "sell"]

    def _update(self, frames: list[dict[str, Any]]) -> None:
        if not frames:
            return
        equity: list[tuple[pd.Timestamp | None, float]] = []
        prices: list[tuple[pd.Timestamp | None, float]] = []
        fills: list[tuple[Any, ...]] = []
        symbol = self.symbol
        for frame in frames:
            stage = frame.get("stage")
            if stage == "bar.received":
                bar = frame.get("bar") or {}
                ts = to_timestamp(bar.get("ts"))
                self._bar_ts = ts
                if not symbol:
                    symbol = self.symbol = bar.get("symbol", "")
                if bar.get("symbol") == symbol:
                    prices.append((ts, bar.get("close")))
            elif stage == "equity.update":
                if self._bar_ts is not None:
                    equity.append((self._bar_ts, frame.get("equity")))
            elif stage == "order.filled":
                fill = frame.get("fill") or {}
                if fill.get("symbol") == symbol:
                    ts = to_timestamp(fill.get("filled_at")) or self._bar_ts
                    fills.append(
                        (
                            ts,
                            fill.get("price"),
                            fill.get("qty"),
                            fill.get("symbol"),
                            fill.get("side"),
                        )
                    )
        self._send_equity(equity)
        if prices:
            self.price_buffer.send(pd.DataFrame(prices, columns=_PRICE_COLUMNS))
            self._publish("price", self.price_buffer)
        self._send_fills(fills)

    @property
    def points(self) -> int:
        """Equity points currently plotted."""
        return len(self.equity_buffer.data)

    def __panel__(self) -> pn.viewable.Viewable:
        """The plot pane."""
        return self._pane
