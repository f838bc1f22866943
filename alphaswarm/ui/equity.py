"""EquityCurve: equity, drawdown and the price with fill markers, streamed."""

from __future__ import annotations

from typing import Any

import holoviews as hv
import pandas as pd
import panel as pn
import param
from bokeh.layouts import column as bokeh_column
from bokeh.models import ColumnDataSource, HoverTool, NumeralTickFormatter
from bokeh.plotting import figure

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


def _columns(frame: pd.DataFrame) -> dict[str, Any]:
    """A frame as a Bokeh source's columns (NumPy arrays: times stay datetime64)."""
    return {c: frame[c].to_numpy() for c in frame.columns}


class EquityCurve(LiveView):
    """The equity curve with its drawdown below and the traded price with fill markers.

    Every series is an ``hv.streams.Buffer`` (bounded by ``length``). On a served
    page the plots are plain Bokeh figures whose sources stream only each tick's new
    points to the browser; a notebook output draws the Buffers through HoloViews.

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
        # A server document streams the new points (Bokeh sources beside the Buffers
        # above); a notebook output gets each series whole, through Pipes, once per tick
        # that changed it: a notebook front end sends streamed columns back to the kernel
        # with the times as floats, and appending those to datetime columns fails.
        self._streaming = served_document() is not None
        self._pipes: dict[str, hv.streams.Pipe] = {}
        self._sources: dict[str, ColumnDataSource] = {}
        self._peak = 0.0
        self._bar_ts: pd.Timestamp | None = None
        if self._streaming:
            # A served page: plain Bokeh figures over sources that stream the new points.
            # HoloViews' pipeline cost most of a run view's build (about a third of it).
            self._pane = self._bokeh_plots()
            return
        self._pipes = {
            "equity": hv.streams.Pipe(data=self.equity_buffer.data),
            "price": hv.streams.Pipe(data=self.price_buffer.data),
            "fills": hv.streams.Pipe(data=self.fills_buffer.data).rename(data="fills"),
        }
        equity_streams = [self._pipes["equity"]]
        price_streams = [self._pipes["price"], self._pipes["fills"]]
        h = self.height
        symbol = self.symbol or "price"
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

        # The markers' prices share the line's dimension, so one y-range covers both. In a
        # notebook the ranges follow each replaced series (framewise); an overlay's
        # elements need that option themselves (on the overlay it is not applied to them,
        # and the price axis stayed at 0 to 1 with the line off screen).
        marker_hover = [("fill price", "@close{0,0.00}"), ("qty", "@qty{0,0.[00]}")]
        framewise = not self._streaming

        def prices(data: pd.DataFrame, fills: pd.DataFrame) -> hv.Overlay:
            marks = fills.rename(columns={"price": "close"})
            buys = marks[marks["side"] == "buy"] if len(marks) else marks
            sells = marks[marks["side"] == "sell"] if len(marks) else marks
            return (
                hv.Curve(data, "ts", "close", label=symbol).opts(
                    color="#455a64", line_width=1.5, framewise=framewise
                )
                * hv.Scatter(buys, "ts", ["close", "qty"], label="buy").opts(
                    color="#2e7d32",
                    marker="triangle",
                    size=11,
                    tools=["hover"],
                    hover_tooltips=marker_hover,
                    framewise=framewise,
                )
                * hv.Scatter(sells, "ts", ["close", "qty"], label="sell").opts(
                    color="#c62828",
                    marker="inverted_triangle",
                    size=11,
                    tools=["hover"],
                    hover_tooltips=marker_hover,
                    framewise=framewise,
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
        # whole series replace the data: ranges follow them
        equity, drawdown, price = (p.opts(framewise=True) for p in (equity, drawdown, price))
        self.plot = hv.Layout([equity, drawdown, price]).cols(1).opts(shared_axes=True)
        self._pane = pn.pane.HoloViews(
            self.plot, sizing_mode="stretch_width", min_height=h, linked_axes=True
        )

    def _bokeh_plots(self) -> pn.pane.Bokeh:
        """Equity, drawdown and price with fill markers as Bokeh figures (a served page)."""
        sources = self._sources
        sources["equity"] = ColumnDataSource(_columns(_empty(_EQUITY_COLUMNS)))
        sources["price"] = ColumnDataSource(_columns(_empty(_PRICE_COLUMNS)))
        for side in ("buy", "sell"):
            sources[side] = ColumnDataSource(_columns(_empty(_FILL_COLUMNS)))
        h = self.height
        tools = "pan,wheel_zoom,box_zoom,reset,save"
        common: dict[str, Any] = {
            "x_axis_type": "datetime",
            "sizing_mode": "stretch_width",
            "tools": tools,
            "active_scroll": None,
            "min_border_left": 70,
        }
        equity = figure(height=int(h * 0.42), title="Equity", y_axis_label="equity", **common)
        equity.line("ts", "equity", source=sources["equity"], color="#1565c0", line_width=2)
        equity.yaxis.formatter = NumeralTickFormatter(format="0,0.[00]")
        equity.add_tools(
            HoverTool(
                tooltips=[("ts", "@ts{%F %T}"), ("equity", "@equity{0,0.00}")],
                formatters={"@ts": "datetime"},
            )
        )
        drawdown = figure(
            height=int(h * 0.22),
            title="Drawdown",
            y_axis_label="drawdown %",
            x_range=equity.x_range,
            **common,
        )
        drawdown.varea(
            "ts", 0, "drawdown", source=sources["equity"], fill_color="#c62828", fill_alpha=0.35
        )
        drawdown.line("ts", "drawdown", source=sources["equity"], color="#c62828")
        drawdown.yaxis.formatter = NumeralTickFormatter(format="0.[000]")
        price = figure(
            height=int(h * 0.36),
            y_axis_label=f"{self.symbol} price" if self.symbol else "price",
            x_axis_label="bar time (UTC)",
            x_range=equity.x_range,
            **common,
        )
        price.line(
            "ts",
            "close",
            source=sources["price"],
            color="#455a64",
            line_width=1.5,
            legend_label=self.symbol or "price",
        )
        markers = []
        for side, marker, color in (
            ("buy", "triangle", "#2e7d32"),
            ("sell", "inverted_triangle", "#c62828"),
        ):
            markers.append(
                price.scatter(
                    "ts",
                    "price",
                    source=sources[side],
                    marker=marker,
                    size=11,
                    color=color,
                    legend_label=side,
                )
            )
        price.add_tools(
            HoverTool(
                renderers=markers,
                tooltips=[("ts", "@ts{%F %T}"), ("price", "@price"), ("qty", "@qty")],
                formatters={"@ts": "datetime"},
            )
        )
        price.legend.location = "top_left"
        for fig in (equity, drawdown):
            fig.xaxis.visible = False
        plots = bokeh_column(equity, drawdown, price, sizing_mode="stretch_width")
        return pn.pane.Bokeh(plots, sizing_mode="stretch_width", min_height=h)

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
            frame = prices[_PRICE_COLUMNS].reset_index(drop=True)
            self.price_buffer.send(frame)
            self._publish("price", self.price_buffer, frame)
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
            frame = pd.DataFrame(rows, columns=_EQUITY_COLUMNS)
            self.equity_buffer.send(frame)
            self._publish("equity", self.equity_buffer, frame)

    def _publish(self, name: str, buffer: hv.streams.Buffer, rows: pd.DataFrame) -> None:
        """Show ``rows``, just sent to ``buffer``: streamed on a served page, whole otherwise."""
        pipe = self._pipes.get(name)
        if pipe is not None:
            pipe.send(buffer.data)
        if not self._sources:
            return
        parts = [(name, rows)]
        if name == "fills":
            parts = [(side, rows[rows["side"] == side]) for side in ("buy", "sell")]
        for key, part in parts:
            if len(part):
                self._sources[key].stream(_columns(part), rollover=buffer.length)

    def _send_fills(self, fills: list[tuple[Any, ...]]) -> None:
        rows = [f for f in fills if f[0] is not None]
        if rows:
            frame = pd.DataFrame(rows, columns=_FILL_COLUMNS)
            self.fills_buffer.send(frame)
            self._publish("fills", self.fills_buffer, frame)

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
            frame = pd.DataFrame(prices, columns=_PRICE_COLUMNS)
            self.price_buffer.send(frame)
            self._publish("price", self.price_buffer, frame)
        self._send_fills(fills)

    @property
    def points(self) -> int:
        """Equity points currently plotted."""
        return len(self.equity_buffer.data)

    def __panel__(self) -> pn.viewable.Viewable:
        """The plot pane."""
        return self._pane
