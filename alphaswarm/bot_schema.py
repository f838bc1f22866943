"""The bot spec, declared once: the keys, types and choices of a bot file.

:class:`alphaswarm.bots.Bot` validates a spec against :class:`BotSpec` (every
unknown key of every block reported at once, with did-you-mean suggestions) and
``/openapi.json`` publishes :func:`alphaswarm.schema.json_schema` of the same class.
The first-bot tutorial's keys (``kind``, ``description``, ``strategy_config``,
``engine``, ``metrics``, ``deploy_target``, ``extras``) are part of it.
"""

from __future__ import annotations

from typing import ClassVar

import param

from alphaswarm.metric_catalog import METRIC_ALIASES, STORED_METRICS
from alphaswarm.risk.limits import RiskLimits
from alphaswarm.schema import Mapping, Shaped, Text

#: Names a spec's ``metrics:`` entries may use: the stored metrics and their aliases.
METRIC_NAMES = (*STORED_METRICS, *METRIC_ALIASES)
#: Directions a metric threshold may take, and the comparison each one means.
DIRECTIONS = {">=": ">=", "above": ">=", "higher": ">=", "<=": "<=", "below": "<=", "lower": "<="}
#: Longest bot name.
MAX_NAME = 100
#: Keys of a ``risk:`` block.
RISK_KEYS = (*RiskLimits.LIMIT_KEYS, "kill_switch_attached", "on_breach")
#: Keys of a ``strategy_config`` file.
STRATEGY_CONFIG_KEYS = ("strategy", "params", "name", "description")


def _threshold(doc: str) -> param.Number:
    return param.Number(None, allow_None=True, doc=doc)


class GateSpec(param.Parameterized):
    """The bot's own paper-gate rules (each one over the gate's default)."""

    min_sharpe = _threshold("Lowest Sharpe ratio of the judged backtest.")
    max_drawdown = _threshold("Largest drawdown (a fraction) of the judged backtest.")
    max_age_days = _threshold("Oldest judged backtest accepted, in days.")
    warn_age_hours = _threshold("Warn when the judged backtest is older than this, in hours.")
    min_trades_warning = _threshold("Warn under this many trades.")
    min_trades = _threshold("Fewest trades of the judged backtest.")
    min_bars = _threshold("Fewest bars of the judged backtest.")


class MetricSpec(param.Parameterized):
    """One entry of ``metrics:`` (a bare name is ``{name: ...}``)."""

    REQUIRED: ClassVar[tuple[str, ...]] = ("name",)

    name_ = Text(
        None, allow_None=True, choices=METRIC_NAMES, doc="The metric (a stored metric or an alias)."
    )
    threshold = _threshold("The value the metric is judged against.")
    direction = param.Selector(
        default=None,
        objects=list(DIRECTIONS),
        allow_None=True,
        doc="Which side of the threshold passes (<= for max_drawdown, else >=, by default).",
    )


class BotSpec(param.Parameterized):
    """A bot spec (:class:`alphaswarm.bots.Bot`); YAML is accepted too."""

    name_ = Text(
        None,
        allow_None=True,
        min_length=1,
        max_length=MAX_NAME,
        doc="The bot's name, its identity in the ledger.",
    )
    strategy = Shaped(
        None,
        json={"type": "string"},
        doc="A built-in strategy name or 'package.module:Class' (a Strategy class in Python).",
    )
    params = Mapping(None, allow_None=True, doc="Keyword arguments of the strategy.")
    universe = Shaped(
        None,
        json={
            "oneOf": [
                {"type": "array", "items": {"type": "string"}, "minItems": 1},
                {"type": "string"},
                {"type": "object", "properties": {"symbols": {"type": "array"}}},
            ]
        },
        doc="The symbols traded: a list, one symbol, or {symbols: [...]} (default DEMO).",
    )
    data = Mapping(None, allow_None=True, doc="The feed: {feed: synthetic|sample|replay|..., ...}.")
    risk = Mapping(None, allow_None=True, doc=f"Risk limits: {', '.join(RISK_KEYS)}.")
    broker = Mapping(None, allow_None=True, doc="Fill model, or a venue with kind and options.")
    gate = param.ClassSelector(
        class_=GateSpec, default=None, allow_None=True, doc="Paper-gate rules of this bot."
    )
    kind = param.Selector(
        default=None, objects=["trading"], allow_None=True, doc="The kind of bot (trading)."
    )
    description = Shaped(None, json={"type": "string"}, doc="Free text about the bot.")
    strategy_config = Text(
        None,
        allow_None=True,
        min_length=1,
        doc="A YAML file with strategy and params (beside the bot file).",
    )
    engine = param.Selector(
        default=None, objects=["event_driven"], allow_None=True, doc="The engine (event_driven)."
    )
    metrics = param.List(
        None, allow_None=True, doc="Metrics to report: names or {name, threshold, direction}."
    )
    deploy_target = param.Selector(
        default=None,
        objects=["paper", "backtest_only"],
        allow_None=True,
        doc="Where the bot may go.",
    )
    extras = Mapping(None, allow_None=True, doc="Free-form user data, kept with the spec.")
