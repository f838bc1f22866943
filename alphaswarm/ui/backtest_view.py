"""The view of a finished backtest: price with trades, equity, drawdown, trade P&L, stats.

``result.plot()`` returns a :class:`BacktestView`; ``pn.panel(result)`` and the
dashboard show the same. The plots share one x axis of bar positions
(:class:`~alphaswarm.ui.time_axis.TimeAxis`), so zooming one zooms all and closed
markets take no room:

* one price panel per symbol (a symbol selector beyond :data:`MAX_PRICE_PANELS`):
  OHLC candles up to ``max_candles`` bars, a close line beyond, with entry
  markers, exit markers coloured by outcome and a line from each entry to its exit;
* equity with its running peak and the deepest drawdown marked;
* drawdown as a percentage below the running peak;
* the net P&L of every round trip at its exit bar;
* the stats table (:attr:`BacktestResult.stats`) and the trades.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import panel as pn
import param

from alphaswarm.metrics import METRIC_BY_NAME, format_metric
from alphaswarm.ui.time_axis import TimeAxis

if TYPE_CHECKING:
    from alphaswarm.backtest import BacktestResult

#: Largest number of bars drawn as candles; longer runs are drawn as a close line.
MAX_CANDLES = 5_000
#: Most symbols drawn as separate price panels; more get one panel with a selector.
MAX_PRICE_PANELS = 4
#: Most points of a line; longer lines keep each bucket's lowest and highest point.
MAX_LINE_POINTS = 20_000
#: Trades listed in the trades table (the last ones).
MAX_TRADE_ROWS = 500

UP, DOWN = "#26a69a", "#ef5350"
WIN, LOSS = "#2e7d32", "#c62828"
EQUITY_COLOR, PEAK_COLOR, ENTRY_COLOR = "#1565c0", "#90a4ae", "#283593"
X = "bar"
#: Font sizes of every plot (the dashboard's theme would make tick labels collide).
FONT_SIZES = {"title": "11pt", "labels": "10pt", "xticks": "8pt", "yticks": "8pt", "legend": "9pt"}
X_LABEL = "Time (UTC; closed markets take no room)"


def _hv() -> Any:
    import holoviews as hv
    import holoviews.plotting.bokeh  # noqa: F401 - registers the renderer outside notebooks

    return hv


def _numeral(fmt: str) -> Any:
    from bokeh.models import NumeralTickFormatter

    return NumeralTickFormatter(format=fmt)


def thin(x: np.ndarray, y: np.ndarray, points: int = MAX_LINE_POINTS) -> tuple[Any, Any]:
    """At most about ``points`` points of a line: each bucket's lowest and highest point.

    Extremes survive (a spike or a crash is still drawn) and order is kept.
    """
    n = len(x)
    if n <= points:
        return x, y
    buckets = max(points // 2, 1)
    ids = (np.arange(n, dtype=np.int64) * buckets) // n
    order = np.lexsort((y, ids))  # by bucket, then by value within it
    first = np.searchsorted(ids, np.arange(buckets), side="left")
    last = np.append(first[1:], n) - 1
    keep = np.unique(np.concatenate((order[first], order[last])))
    return x[keep], y[keep]


class BacktestView(pn.viewable.Viewer):
    """Everything a backtest shows: price and trades, equity, drawdown, trade P&L, stats.

    Examples
    --------
    >>> result.plot()              # in a notebook cell
    >>> result.save("report.html")  # the same as a standalone offline page
    """

    result = param.Parameter(doc="The BacktestResult shown.")
    max_candles = param.Integer(
        default=MAX_CANDLES,
        bounds=(0, None),
        doc="Largest number of bars drawn as OHLC candles; longer runs get a close line.",
    )
    plot_height = param.Integer(
        default=320, bounds=(120, None), doc="Height in pixels of each price panel."
    )

    def __init__(self, result: BacktestResult | None = None, **params: Any) -> None:
        if result is not None:
            params["result"] = result
        super().__init__(**params)
        self._layout: pn.viewable.Viewable | None = None
        self.axis = TimeAxis.of(self.result.equity.index)

    # -- data ---------------------------------------------------------------------------
    def _trades(self) -> pd.DataFrame:
        trades = self.result.trades.copy()
        if not len(trades):
            empty = {c: [] for c in ("entry_bar", "exit_bar", "ret")}
            return trades.assign(**empty)
        trades["entry_bar"] = self.axis.positions(trades["entry_time"])
        trades["exit_bar"] = self.axis.positions(trades["exit_time"])
        trades["ret"] = trades["pnl"] / (trades["entry_price"] * trades["qty"]).abs()
        return trades

    def _opts(self, **extra: Any) -> dict[str, Any]:
        base = {
            "responsive": True,
            "xformatter": self._formatter,
            "xticks": self._ticker,
            "xlabel": "",
            "show_grid": True,
            "fontsize": FONT_SIZES,
            "toolbar": "above",
        }
        base.update(extra)
        return base

    # -- price --------------------------------------------------------------------------
    def price_panel(self, symbol: str, bars: pd.DataFrame, ydim: Any) -> Any:
        """Candles or a close line of ``symbol`` with its trades, on the shared axis."""
        hv = _hv()
        x = self.axis.positions(bars["ts"])
        ok = x >= 0
        bars, x = bars[ok], x[ok]
        if len(bars) <= self.max_candles:
            up = (bars["close"] >= bars["open"]).to_numpy()
            color = np.where(up, UP, DOWN)
            lo = np.minimum(bars["open"], bars["close"]).to_numpy()
            hi = np.maximum(bars["open"], bars["close"]).to_numpy()
            y = ydim.name
            frame = pd.DataFrame(
                {
                    X: x - 0.35,
                    y: lo,
                    "x1": x + 0.35,
                    "y1": hi,
                    "open": bars["open"].to_numpy(),
                    "high": bars["high"].to_numpy(),
                    "low": bars["low"].to_numpy(),
                    "close": bars["close"].to_numpy(),
                    "color": color,
                }
            )
            kdims = [hv.Dimension(X, label="Time"), ydim, "x1", "y1"]
            wicks = hv.Segments(
                pd.DataFrame({X: x, y: bars["low"], "x1": x, "y1": bars["high"], "color": color}),
                kdims,
                ["color"],
            ).opts(color="color", line_width=1)
            bodies = hv.Rectangles(frame, kdims, ["open", "high", "low", "close", "color"]).opts(
                color="color",
                line_color="color",
                tools=["hover"],
                hover_formatters=self._hover,
                hover_tooltips=[
                    ("time", "@{bar}{custom}"),
                    ("open", "@open{0,0.00}"),
                    ("high", "@high{0,0.00}"),
                    ("low", "@low{0,0.00}"),
                    ("close", "@close{0,0.00}"),
                ],
            )
            price = wicks * bodies
        else:
            tx, ty = thin(x, bars["close"].to_numpy(float))
            price = hv.Curve(
                pd.DataFrame({X: tx, ydim.name: ty}),
                hv.Dimension(X, label="Time"),
                [ydim],
                label=f"{symbol} close",
            ).opts(
                color="#37474f",
                line_width=1,
                tools=["hover"],
                hover_formatters=self._hover,
                hover_tooltips=[
                    ("time", "@{bar}{custom}"),
                    ("close", f"@{{{ydim.name}}}{{0,0.00}}"),
                ],
            )
        layers = [price, *self._trade_marks(symbol, ydim)]
        return hv.Overlay(layers).opts(
            **self._opts(
                height=self.plot_height,
                ylabel=f"{symbol} price",
                yformatter=_numeral("0,0.00"),
                title=f"{symbol}: {'candles' if len(bars) <= self.max_candles else 'close'}"
                f" with trades",
                legend_position="top",
                legend_cols=3,
                show_legend=True,
            )
        )

    def _trade_marks(self, symbol: str, ydim: Any) -> list[Any]:
        hv = _hv()
        trades = self._trade_frame[self._trade_frame["symbol"] == symbol]
        if not len(trades):
            return []
        won = trades["pnl"] > 0
        outcome = np.where(won, WIN, LOSS)
        lines = hv.Segments(
            pd.DataFrame(
                {
                    X: trades["entry_bar"],
                    ydim.name: trades["entry_price"],
                    "x1": trades["exit_bar"],
                    "y1": trades["exit_price"],
                    "color": outcome,
                }
            ),
            [hv.Dimension(X, label="Time"), ydim, "x1", "y1"],
            ["color"],
        ).opts(color="color", line_width=2, line_dash="dashed", alpha=0.8)
        hover = [
            ("", "@direction @qty{0,0.[00]}"),
            ("entry", "@{entry_bar}{custom} @entry_price{0,0.00}"),
            ("exit", "@{exit_bar}{custom} @exit_price{0,0.00}"),
            ("P&L", "@pnl{+0,0.00} (@ret{+0.00%})"),
        ]
        info = ["direction", "qty", "entry_price", "exit_price", "entry_bar", "exit_bar"]
        info += ["pnl", "ret"]
        entries = trades.assign(
            marker=np.where(trades["direction"] == "long", "triangle", "inverted_triangle"),
            **{X: trades["entry_bar"], ydim.name: trades["entry_price"]},
        )
        entry = hv.Scatter(
            entries,
            hv.Dimension(X, label="Time"),
            [ydim, *info, "marker"],
            label="entry (▲ long, ▼ short)",
        ).opts(
            color=ENTRY_COLOR,
            marker="marker",
            size=10,
            tools=["hover"],
            hover_tooltips=hover,
            hover_formatters=self._hover,
        )
        exits = trades.assign(
            exit_color=outcome, **{X: trades["exit_bar"], ydim.name: trades["exit_price"]}
        )
        exit_ = hv.Scatter(
            exits,
            hv.Dimension(X, label="Time"),
            [ydim, *info, "exit_color"],
            label="exit (green won, red lost)",
        ).opts(
            color="exit_color",
            size=8,
            line_color="white",
            tools=["hover"],
            hover_tooltips=hover,
            hover_formatters=self._hover,
        )
        return [lines, entry, exit_]

    def price_panels(self) -> list[Any]:
        """One price panel per symbol, or one with a symbol selector for many symbols."""
        hv = _hv()
        prices = self.result.prices()
        if prices is None or not len(prices):
            return []
        symbols = list(dict.fromkeys(prices["symbol"]))
        groups = {s: part for s, part in prices.groupby("symbol", sort=False)}
        if len(symbols) <= MAX_PRICE_PANELS:
            return [
                self.price_panel(s, groups[s], hv.Dimension(f"price_{i}", label=f"{s} price"))
                for i, s in enumerate(symbols)
            ]
        ydim = hv.Dimension("price", label="Price")
        frames = {s: self.price_panel(s, groups[s], ydim) for s in symbols}
        return [
            hv.HoloMap(frames, kdims=[hv.Dimension("symbol", label="Symbol")]).opts(framewise=True)
        ]

    # -- equity, drawdown, P&L ------------------------------------------------------------
    def equity_panel(self) -> Any:
        """Equity and its running peak, with the deepest drawdown marked."""
        hv = _hv()
        eq = self.result.equity["equity"].to_numpy(float)
        x = np.arange(len(eq))
        tx, ty = thin(x, eq)
        peak = np.maximum.accumulate(eq)
        px, py = thin(x, peak)
        xdim = hv.Dimension(X, label="Time")
        ydim = hv.Dimension("equity", label="Equity")
        curve = hv.Curve(
            pd.DataFrame({X: tx, "equity": ty}),
            xdim,
            [ydim],
            label="equity",
        ).opts(
            color=EQUITY_COLOR,
            line_width=2,
            tools=["hover"],
            hover_formatters=self._hover,
            hover_tooltips=[("time", "@{bar}{custom}"), ("equity", "@equity{0,0.00}")],
        )
        peaks = hv.Curve(
            pd.DataFrame({X: px, "equity": py}), xdim, ydim, label="running peak"
        ).opts(color=PEAK_COLOR, line_dash="dashed", line_width=1)
        layers = [peaks, curve]
        if len(eq) and peak.max() > 0:
            dd = eq / peak - 1.0
            trough = int(np.argmin(dd))
            if dd[trough] < 0:
                layers.append(
                    hv.Scatter(
                        pd.DataFrame(
                            {X: [trough], "equity": [eq[trough]], "drawdown": [dd[trough]]}
                        ),
                        xdim,
                        [ydim, "drawdown"],
                        label=f"max drawdown {format_metric('max_drawdown', -dd[trough])}",
                    ).opts(
                        color=LOSS,
                        marker="inverted_triangle",
                        size=11,
                        tools=["hover"],
                        hover_tooltips=[("drawdown", "@drawdown{0.00%}")],
                    )
                )
        return hv.Overlay(layers).opts(
            **self._opts(
                height=260,
                ylabel="Equity",
                yformatter=_numeral("0,0"),
                title="Equity",
                legend_position="top",
                legend_cols=3,
            )
        )

    def drawdown_panel(self) -> Any:
        """Drawdown below the running peak, in percent."""
        hv = _hv()
        dd = self.result.equity["drawdown"].to_numpy(float)
        x = np.arange(len(dd))
        tx, ty = thin(x, dd)
        xdim = hv.Dimension(X, label="Time")
        ydim = hv.Dimension("drawdown", label="Drawdown")
        frame = pd.DataFrame({X: tx, "drawdown": ty})
        area = hv.Area(frame, xdim, ydim).opts(color=LOSS, alpha=0.3, line_alpha=0)
        edge = hv.Curve(frame, xdim, [ydim]).opts(
            color=LOSS,
            line_width=1,
            tools=["hover"],
            hover_formatters=self._hover,
            hover_tooltips=[("time", "@{bar}{custom}"), ("drawdown", "@drawdown{0.00%}")],
        )
        return (area * edge).opts(
            **self._opts(
                height=140,
                ylabel="Drawdown",
                yformatter=_numeral("0.00%"),
                title="Drawdown from the running peak",
            )
        )

    def pnl_panel(self) -> Any:
        """Net P&L of each round trip at its exit bar, green for a win, red for a loss."""
        hv = _hv()
        trades = self._trade_frame
        xdim = hv.Dimension(X, label="Time")
        ydim = hv.Dimension("pnl", label="Trade P&L")
        frame = trades.assign(
            **{X: trades["exit_bar"]}, color=np.where(trades["pnl"] > 0, WIN, LOSS)
        )
        points = hv.Scatter(
            frame,
            xdim,
            [ydim, "ret", "symbol", "direction", "qty", "entry_bar", "color"],
        ).opts(
            color="color",
            size=8,
            marker="diamond",
            tools=["hover"],
            hover_formatters=self._hover,
            hover_tooltips=[
                ("", "@symbol @direction @qty{0,0.[00]}"),
                ("entry", "@{entry_bar}{custom}"),
                ("exit", "@{bar}{custom}"),
                ("P&L", "@pnl{+0,0.00} (@ret{+0.00%})"),
            ],
        )
        zero = hv.HLine(0).opts(color="#757575", line_width=1)
        return (points * zero).opts(
            **self._opts(
                height=160,
                ylabel="Trade P&L",
                yformatter=_numeral("+0,0"),
                xlabel=X_LABEL,
                title=f"Net P&L of {len(trades):,} round trips (at exit)",
            )
        )

    def plots(self) -> Any:
        """Price panels, equity, drawdown and trade P&L in one column with one x axis."""
        hv = _hv()
        self._formatter = self.axis.formatter()
        self._ticker = self.axis.ticker()
        when = self.axis.hover_formatter()
        self._hover = {"@{bar}": when, "@{entry_bar}": when, "@{exit_bar}": when}
        self._trade_frame = self._trades()
        panels = [*self.price_panels(), self.equity_panel(), self.drawdown_panel()]
        panels.append(self.pnl_panel())
        return hv.Layout(panels).cols(1).opts(shared_axes=True, merge_tools=True)

    # -- tables -------------------------------------------------------------------------
    def stats_table(self) -> pn.pane.HTML:
        """The stats as a two-column table of labels in words and formatted values."""
        rows = "".join(
            f"<tr><th>{html.escape(METRIC_BY_NAME[k].label)}</th>"
            f"<td>{html.escape(format_metric(k, v))}</td></tr>"
            for k, v in self.result.stats.items()
        )
        style = (
            "<style>.aw-stats{border-collapse:collapse;font-size:13px;width:100%}"
            ".aw-stats th{text-align:left;font-weight:500;color:#455a64;padding:3px 12px 3px 0}"
            ".aw-stats td{text-align:right;font-variant-numeric:tabular-nums;padding:3px 0;"
            "white-space:nowrap}"
            ".aw-stats tr{border-bottom:1px solid #eceff1}</style>"
        )
        return pn.pane.HTML(
            f'{style}<table class="aw-stats">{rows}</table>',
            width=310,
            css_classes=["alphaswarm-backtest-stats"],
        )

    def trades_table(self) -> pn.pane.HTML:
        """The round trips (the last :data:`MAX_TRADE_ROWS`), numbers formatted."""
        trades = self.result.trades.tail(MAX_TRADE_ROWS)
        if not len(trades):
            return pn.pane.HTML("<i>No closed trades.</i>")
        shown = pd.DataFrame(
            {
                "Symbol": trades["symbol"],
                "Side": trades["direction"],
                "Qty": trades["qty"].map("{:,.4g}".format),
                "Entry time": [format_metric("start", t) for t in trades["entry_time"]],
                "Entry price": trades["entry_price"].map("{:,.2f}".format),
                "Exit time": [format_metric("end", t) for t in trades["exit_time"]],
                "Exit price": trades["exit_price"].map("{:,.2f}".format),
                "Commission": trades["commission"].map("{:,.2f}".format),
                "P&L": trades["pnl"].map("{:+,.2f}".format),
                "Return": [format_metric("avg_trade", r) for r in self._trades_returns()],
            }
        )
        note = (
            f"<p>Last {MAX_TRADE_ROWS:,} of {len(self.result.trades):,} trades.</p>"
            if len(self.result.trades) > MAX_TRADE_ROWS
            else ""
        )
        table = shown.to_html(index=False, classes="aw-trades", border=0)
        style = (
            "<style>.aw-trades{border-collapse:collapse;font-size:12px}"
            ".aw-trades th,.aw-trades td{padding:2px 10px;text-align:right}"
            ".aw-trades tr:nth-child(even){background:#f5f7f8}</style>"
        )
        return pn.pane.HTML(
            style + note + table,
            max_height=320,
            sizing_mode="stretch_width",
            styles={"overflow-y": "auto"},
            css_classes=["alphaswarm-backtest-trades"],
        )

    def _trades_returns(self) -> pd.Series:
        trades = self.result.trades.tail(MAX_TRADE_ROWS)
        return trades["pnl"] / (trades["entry_price"] * trades["qty"]).abs()

    def header(self) -> pn.pane.HTML:
        """Bot, bars, interval, period and the engine that ran."""
        r = self.result
        stats = r.stats
        config = r.config or {}
        symbols = r.bot.universe
        each = f" for {len(symbols)} symbols" if len(symbols) > 1 else ""
        bits = [
            f"<b>{html.escape(r.bot.name)}</b> backtest",
            f"{len(self.axis):,} bars of {html.escape(self._interval())}{each}",
            f"{format_metric('start', stats['start'])} to {format_metric('end', stats['end'])}",
        ]
        if config.get("engine"):
            bits.append(f"{html.escape(str(config['engine']))} engine")
        if r.id:
            bits.append(f"run <code>{html.escape(r.id)}</code>")
        halted = ""
        if r.halted:
            reason = r.halted.get("reason") or r.halted.get("message") or "risk limit"
            halted = f'<div style="color:{LOSS}">Halted: {html.escape(str(reason))}</div>'
        return pn.pane.HTML(
            f'<div style="font-size:15px">{" · ".join(bits)}</div>{halted}',
            sizing_mode="stretch_width",
        )

    def _interval(self) -> str:
        step = self.axis.step
        if step >= pd.Timedelta(days=1):
            return f"{step.days} d" if step.days > 1 else "1 day"
        minutes = step.total_seconds() / 60
        return f"{minutes:g} min" if minutes < 60 else f"{minutes / 60:g} h"

    def __panel__(self) -> pn.viewable.Viewable:
        """Header, the plots beside the stats table (below it when narrow), the trades below."""
        if self._layout is None:
            pane = pn.pane.HoloViews(
                self.plots(),
                sizing_mode="stretch_width",
                widget_location="top_left",
                css_classes=["alphaswarm-backtest-plots"],
            )
            plots = pane.layout  # the plots with the symbol selector, when there is one
            # the plots take the room the stats leave; on a narrow screen the stats go below
            plots.styles = {**plots.styles, "flex": "1 1 560px", "min-width": "300px"}
            self._layout = pn.Column(
                self.header(),
                pn.FlexBox(
                    plots, self.stats_table(), flex_wrap="wrap", sizing_mode="stretch_width"
                ),
                pn.pane.HTML("<b>Trades</b>"),
                self.trades_table(),
                sizing_mode="stretch_width",
                css_classes=["alphaswarm-backtest"],
            )
        return self._layout

    def save(self, path: Any, title: str | None = None) -> None:
        """Write the view as a standalone HTML page with every resource inline (offline).

        Parameters
        ----------
        path : str or Path
            The ``.html`` file to write.
        title : str, optional
            Page title (default: the bot's name and "backtest").
        """
        title = title or f"{self.result.bot.name} backtest"
        save_offline(self, path, title)


def save_offline(obj: Any, path: Any, title: str) -> None:
    """Save a Panel object as one HTML file that needs no network.

    Bokeh's and Panel's scripts are inlined (``resources=INLINE``), widget states
    are embedded, any global design is ignored (its scripts only load from a CDN),
    and the style sheets and icon Panel would fetch from its CDN are replaced by
    their content from the installed package.
    """
    from bokeh.document import Document
    from bokeh.models import UIElement
    from bokeh.resources import INLINE
    from panel.io.embed import embed_state
    from panel.io.notebook import patch_inline_stylesheets
    from pyviz_comms import Comm

    viewable = pn.panel(obj)
    doc = Document()
    # design=None: a dashboard template served in this process sets Panel's global
    # design, whose script modules only load from the CDN; the page uses the default look.
    with pn.config.set(embed=True, inline=True, design=None):
        model = viewable.get_root(doc, Comm())
        embed_state(viewable, model, doc, json=False, progress=False)
        for root in doc.roots:
            for element in root.select({"type": UIElement}):
                patch_inline_stylesheets(element)
        pn.io.save.save(
            doc,
            str(path),
            title=title,
            resources=INLINE,
            template_variables={"app_favicon": _favicon()},
        )


def _favicon() -> str:
    """Panel's icon as a data URI (the page template links it from the CDN otherwise)."""
    import base64
    from pathlib import Path

    icon = Path(pn.__file__).parent / "dist" / "images" / "favicon.ico"
    if not icon.exists():
        return ""
    return "data:image/x-icon;base64," + base64.b64encode(icon.read_bytes()).decode("ascii")
