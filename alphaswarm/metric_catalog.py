"""The catalogue of metrics the kit knows, without numpy or pandas.

:data:`METRICS` names every metric once: which are stored with every backtest run,
how each is labelled and what kind of value it is. Kept apart from
:mod:`alphaswarm.metrics` (which computes them) so that the command line and the bot
spec can name metrics without importing pandas.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Metric:
    """One metric: its name, label in words, kind of value and whether runs store it.

    Attributes
    ----------
    name : str
        Key in metric dicts, ledger columns and ``result.stats``.
    label : str
        How a table or axis names it.
    kind : str
        ``percent`` (a fraction shown as percent), ``ratio``, ``count``, ``money``,
        ``time`` or ``duration``; decides :func:`format_metric`.
    stored : bool
        Whether :func:`summarize` computes it for every run (and the ledger stores it).
    """

    name: str
    label: str
    kind: str
    stored: bool = False


#: Every metric, in the order tables show them.
METRICS: tuple[Metric, ...] = (
    Metric("start", "Start", "time"),
    Metric("end", "End", "time"),
    Metric("duration", "Duration", "duration"),
    Metric("bars", "Bars", "count"),
    Metric("starting_equity", "Starting equity", "money"),
    Metric("final_equity", "Final equity", "money"),
    Metric("equity_peak", "Equity peak", "money"),
    Metric("total_return", "Return", "percent", stored=True),
    Metric("cagr", "CAGR", "percent"),
    Metric("sharpe", "Sharpe ratio", "ratio", stored=True),
    Metric("sortino", "Sortino ratio", "ratio", stored=True),
    Metric("max_drawdown", "Max drawdown", "percent", stored=True),
    Metric("max_drawdown_duration", "Longest drawdown", "duration"),
    Metric("exposure", "Exposure", "percent", stored=True),
    Metric("num_trades", "Trades", "count", stored=True),
    Metric("win_rate", "Win rate", "percent", stored=True),
    Metric("profit_factor", "Profit factor", "ratio"),
    Metric("best_trade", "Best trade", "percent"),
    Metric("worst_trade", "Worst trade", "percent"),
    Metric("avg_trade", "Average trade", "percent"),
    Metric("avg_trade_pnl", "Average trade P&L", "money"),
    Metric("avg_trade_duration", "Average trade duration", "duration"),
)
#: Metrics by name.
METRIC_BY_NAME: dict[str, Metric] = {m.name: m for m in METRICS}
#: Metrics :func:`summarize` computes for every run (ledger columns, sweep trials).
STORED_METRICS: tuple[str, ...] = tuple(m.name for m in METRICS if m.stored)
#: Metrics whose values are fractions shown as percentages.
PERCENT_METRICS: frozenset[str] = frozenset(m.name for m in METRICS if m.kind == "percent")
#: Other names a bot spec may use for a stored metric.
METRIC_ALIASES: dict[str, str] = {"hit_rate": "win_rate"}


def metric_name(name: str) -> str:
    """The stored metric ``name`` means (aliases such as ``hit_rate`` resolved).

    Raises
    ------
    ValueError
        When ``name`` is neither a stored metric nor an alias of one.
    """
    resolved = METRIC_ALIASES.get(name, name)
    if resolved not in STORED_METRICS:
        known = ", ".join((*STORED_METRICS, *METRIC_ALIASES))
        raise ValueError(f"{name!r} is not a metric; use one of {known}")
    return resolved
