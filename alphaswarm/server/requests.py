"""The request bodies of the HTTP API, declared once.

Each body is a :class:`param.Parameterized` class, with its rules across keys in
``RULES`` (:class:`~alphaswarm.schema.Rule`): the handlers read bodies with
:func:`read_body` and ``/openapi.json`` describes them with
:func:`alphaswarm.schema.json_schema`, both from these declarations and the
bounds of :mod:`alphaswarm.server.limits`.
"""

from __future__ import annotations

from typing import Any, ClassVar

import pandas as pd
import param

from alphaswarm.paper.killswitch import MODES
from alphaswarm.schema import TYPE, DateText, Rule, Text, did_you_mean, keys, validate
from alphaswarm.server.errors import ApiError
from alphaswarm.server.limits import (
    MAX_BACKTEST_BARS,
    MAX_BOT_ID,
    MAX_CASH,
    MAX_DURATION_MINUTES,
    MAX_REASON,
    MAX_RUN_NAME,
    MAX_SESSION_BARS,
    MAX_SPEED,
    MAX_TTL_SECONDS,
)

#: Cash a backtest or paper session starts with when the body does not say.
DEFAULT_CASH = 100_000.0
#: Longest ``backtest_id`` accepted.
MAX_BACKTEST_ID = 64


def _cash() -> param.Number:
    return param.Number(
        DEFAULT_CASH,
        allow_None=True,
        bounds=(0, MAX_CASH),
        inclusive_bounds=(False, True),
        doc="Cash the account starts with.",
    )


def _reason(doc: str = "Why (kept in the ledger and the audit trail).") -> Text:
    return Text(None, allow_None=True, max_length=MAX_REASON, doc=doc)


def _mode() -> param.Selector:
    return param.Selector(
        default="cancel", objects=list(MODES), doc="What the halt does to open orders/positions."
    )


def _naive_utc(text: str) -> pd.Timestamp:
    ts = pd.Timestamp(text)
    return ts.tz_convert(None) if ts.tzinfo is not None else ts


def _start_after_end(values: dict[str, Any]) -> str | None:
    start, end = values["start"], values["end"]
    if start and end and _naive_utc(start) > _naive_utc(end):
        return f"start: {start} is after end {end}"
    return None


def _force_without_reason(values: dict[str, Any]) -> str | None:
    if values["force"] and not (values["reason"] or "").strip():
        return "reason: forcing the gate needs a non-empty reason"
    return None


class BacktestRequest(param.Parameterized):
    """Backtest the bot's current version over ``bars`` or ``start``/``end``."""

    bars = param.Integer(
        None,
        allow_None=True,
        bounds=(1, MAX_BACKTEST_BARS),
        doc="How many bars to run (a date range is capped at the same number).",
    )
    start = DateText(None, allow_None=True, doc="First date, e.g. 2024-01-01.")
    end = DateText(None, allow_None=True, doc="Last date, e.g. 2024-06-30.")
    starting_cash = _cash()

    RULES: ClassVar[tuple[Rule, ...]] = (
        Rule(("start", "end"), "start is not after end", _start_after_end),
    )


class PaperRequest(param.Parameterized):
    """Start a paper session; the paper gate judges the bot first."""

    starting_cash = _cash()
    duration_minutes = param.Number(
        None,
        allow_None=True,
        bounds=(0, MAX_DURATION_MINUTES),
        inclusive_bounds=(False, True),
        doc="Stop after this many minutes of market time (none: until stopped).",
    )
    speed = param.Number(
        None,
        allow_None=True,
        bounds=(0, MAX_SPEED),
        doc="Replay speed: bars per bar interval (0: as fast as possible).",
    )
    force = param.Boolean(
        False, allow_None=True, doc="Start even though the gate refuses (needs a reason)."
    )
    reason = _reason("Why the gate is forced (required with force).")
    run_name = Text(None, allow_None=True, max_length=MAX_RUN_NAME, doc="A label for the run.")
    max_bars = param.Integer(
        None, allow_None=True, bounds=(1, MAX_SESSION_BARS), doc="Stop after this many bars."
    )
    backtest_id = Text(
        None,
        allow_None=True,
        min_length=1,
        max_length=MAX_BACKTEST_ID,
        doc="The backtest the gate judges (of the bot's current version); the most recent "
        "one when absent.",
    )

    RULES: ClassVar[tuple[Rule, ...]] = (
        Rule(("reason", "force"), "force needs a non-empty reason", _force_without_reason),
    )


class HaltRequest(param.Parameterized):
    """Halt a kill-switch target (a bot, every bot, every session or an extension)."""

    reason = _reason()
    mode = _mode()


class StopRequest(param.Parameterized):
    """Stop one paper session."""

    reason = _reason()


class KillSwitchEngage(param.Parameterized):
    """Engage the kill switch: every target halts; latched until reset."""

    reason = _reason()
    mode = _mode()
    ttl_seconds = param.Number(
        None,
        allow_None=True,
        bounds=(0, MAX_TTL_SECONDS),
        inclusive_bounds=(False, True),
        doc="Release by itself after this many seconds (none: until reset).",
    )


class KillSwitchReset(param.Parameterized):
    """Release the kill switch, or only one bot's halt."""

    bot = Text(None, allow_None=True, max_length=MAX_BOT_ID, doc="Release only this bot's halt.")


#: Every request body model, by the OpenAPI component name it is published under.
REQUEST_MODELS: dict[str, type[param.Parameterized]] = {
    "BacktestRequest": BacktestRequest,
    "PaperRequest": PaperRequest,
    "HaltRequest": HaltRequest,
    "StopRequest": StopRequest,
    "KillSwitchEngage": KillSwitchEngage,
    "KillSwitchReset": KillSwitchReset,
}


def read_body(model: type[param.Parameterized], body: dict[Any, Any]) -> dict[str, Any]:
    """The values of ``body`` read against ``model`` (defaults where absent).

    Parameters
    ----------
    model : type of param.Parameterized
        One of :data:`REQUEST_MODELS`.
    body : dict
        The parsed request body.

    Returns
    -------
    dict
        Every declared key with its value.

    Raises
    ------
    ApiError
        400 when a value has the wrong type, else 422 (a value out of bounds, a broken
        rule of the model's ``RULES``); ``detail`` names every problem, ``fields``
        maps each key to its message (every key of a broken rule) and ``unknown``
        each unknown key to the closest declared one (or ``None``).
    """
    values, problems = validate(model, body)
    if not problems:
        return values
    status = 400 if any(p.kind == TYPE for p in problems) else 422
    extra: dict[str, Any] = {"fields": {f: p.message for p in problems for f in p.fields}}
    unknown = did_you_mean(body, keys(model))
    if unknown:
        extra["unknown"] = unknown
        extra["allowed"] = list(keys(model))
    raise ApiError(status, "; ".join(p.message for p in problems), **extra)
