"""The response bodies of the HTTP API, declared once.

``/openapi.json`` publishes :func:`alphaswarm.schema.json_schema` of each class here;
the route tests read real responses against the same classes
(:func:`alphaswarm.schema.validate`). A response class is ``OPEN``: a body may carry
more keys than it declares (a ledger row is sent whole), never fewer than ``REQUIRED``.
"""

from __future__ import annotations

from typing import ClassVar

import param

from alphaswarm.paper.killswitch import MODES
from alphaswarm.schema import Mapping, Shaped, Text


def _text(doc: str) -> Text:
    return Text(None, allow_None=True, doc=doc)


def _number(doc: str) -> param.Number:
    return param.Number(None, allow_None=True, doc=doc)


def _integer(doc: str, minimum: int | None = None) -> param.Integer:
    return param.Integer(None, allow_None=True, bounds=(minimum, None), doc=doc)


def _time(doc: str) -> Shaped:
    """An ISO 8601 time, or null."""
    return Shaped(None, json={"type": "string", "format": "date-time", "nullable": True}, doc=doc)


def _texts(doc: str) -> param.List:
    return param.List(None, allow_None=True, item_type=str, doc=doc)


class Response(param.Parameterized):
    """Base of the response bodies: open (more keys may come), none required."""

    OPEN: ClassVar[bool] = True
    REQUIRED: ClassVar[tuple[str, ...]] = ()


class BotCreated(Response):
    """A bot created, a new version of it, or the same spec again."""

    REQUIRED = ("bot_id", "version", "spec_hash")
    bot_id = _text("The bot id (the slug of its name).")
    version = _integer("The version this spec is.")
    spec_hash = _text("Content hash of the normalised spec.")
    name_ = _text("The bot's name.")
    created = param.Boolean(None, allow_None=True, doc="Whether this request made a new version.")


class BacktestResult(Response):
    """A recorded backtest and its metrics (also at the top level)."""

    REQUIRED = ("backtest_id", "metrics")
    backtest_id = _text("The backtest run id.")
    bot_id = _text("The bot id.")
    bot_version = _integer("The bot version backtested.")
    bars = _integer("Bars run.")
    metrics = Mapping(None, allow_None=True, doc="Every stored metric.")
    sharpe = _number("The Sharpe ratio (null when undefined).")


class PaperStarted(Response):
    """A paper session started."""

    REQUIRED = ("paper_run_id", "task_id", "stream_url", "status")
    paper_run_id = _text("The paper run id.")
    task_id = _text("The frames' task_id (the run id).")
    stream_url = _text("The run's WebSocket path.")
    status = _text("The session's status.")
    bot_id = _text("The bot id.")
    bot_version = _integer("The bot version running.")
    gate = Mapping(None, allow_None=True, doc="What the paper gate judged.")


class Stopped(Response):
    """One session stopped, or already final."""

    OPEN = False
    REQUIRED = ("paper_run_id", "stopped", "status")
    paper_run_id = _text("The paper run id.")
    stopped = param.Boolean(None, allow_None=True, doc="Whether this request stopped it.")
    status = _text("The run's status.")
    final_row_written = param.Boolean(
        None, allow_None=True, doc="Whether the run's final row is in the ledger."
    )


class Halted(Response):
    """A kill-switch target halted."""

    REQUIRED = ("target", "halted", "failures")
    target = _text("The target halted.")
    halted = _integer("Sessions halted.", minimum=0)
    failures = _texts("Targets that failed to halt, with why.")
    elapsed_ms = _number("Milliseconds the halt took.")


class Run(Response):
    """A paper run (its ledger row; ``live`` while it runs in this process)."""

    REQUIRED = ("id", "status")
    id = _text("The paper run id.")
    paper_run_id = _text("The paper run id.")
    bot_id = _text("The bot id.")
    status = _text("The run's status.")
    total_pnl = _number("Profit and loss so far.")
    num_fills = _integer("Fills so far.")
    started_at = _time("When the run started (ISO 8601).")
    ended_at = _time("When the run ended (ISO 8601).")
    stream_url = _text("The run's WebSocket path.")


class KillSwitchState(Response):
    """The kill switch's state."""

    REQUIRED = ("engaged", "mode", "reason", "engaged_at", "last")
    engaged = param.Boolean(None, allow_None=True, doc="Whether it is engaged.")
    persisted = param.Boolean(None, allow_None=True, doc="Whether the ledger holds the state.")
    mode = param.Selector(default=None, objects=list(MODES), allow_None=True,
                          doc="The effect of the engagement.")  # fmt: skip
    reason = _text("Why it was engaged.")
    engaged_at = Shaped(None, json={"type": "string", "nullable": True},
                        doc="When it was engaged (ISO 8601), or null.")  # fmt: skip
    ttl_seconds = _number("Seconds until it releases itself.")
    halted_bots = _texts("Bots halted one by one.")
    store_ok = param.Boolean(None, allow_None=True, doc="Whether the ledger answered.")
    last = Mapping(None, allow_None=True, doc="The last engagement's figures.")


class Error(Response):
    """An error: a short code and a sentence (more keys for some errors)."""

    REQUIRED = ("error", "detail")
    error = _text("A short machine-readable code (invalid, not_found ...).")
    detail = _text("What was wrong and, where it helps, what is allowed.")


class BacktestRef(Response):
    """A bot's latest backtest, as ``GET /bots/{id}`` shows it."""

    id = _text("The backtest run id.")
    created_at = _time("When it was recorded.")
    sharpe = _number("Its Sharpe ratio.")
    max_drawdown = _number("Its largest drawdown (a fraction).")
    bot_version = _integer("The bot version backtested.")


class Bot(Response):
    """A bot with its latest backtest reference and Sharpe ratio."""

    REQUIRED = ("id", "bot_id", "name", "backtest_runs", "sharpe")
    id = _text("The bot id.")
    bot_id = _text("The bot id.")
    name_ = _text("The bot's name.")
    version = _integer("The latest version.")
    latest_version = _integer("The latest version.")
    spec = Mapping(None, allow_None=True, doc="The latest version's spec.")
    spec_hash = Shaped(None, json={"type": "string", "nullable": True}, doc="Its content hash.")
    created_at = _time("When the bot was created.")
    backtest_runs = param.ClassSelector(class_=BacktestRef, default=None, allow_None=True,
                                        doc="The latest backtest, or null.")  # fmt: skip
    sharpe = _number("The latest backtest's Sharpe ratio.")


class BotList(Response):
    """Every bot."""

    OPEN = False
    REQUIRED = ("bots",)
    bots = param.List(None, allow_None=True, item_type=Bot, doc="The bots.")


class BotVersions(Response):
    """The versions of a bot."""

    OPEN = False
    REQUIRED = ("bot_id", "versions")
    bot_id = _text("The bot id.")
    versions = param.List(None, allow_None=True, doc="Each version: number, spec, hash, time.")


class RunList(Response):
    """Paper runs, newest first."""

    OPEN = False
    REQUIRED = ("runs",)
    runs = param.List(None, allow_None=True, item_type=Run, doc="The runs.")


class Fill(Response):
    """One fill of a paper run."""

    order_id = _text("The order filled.")
    symbol = _text("The symbol.")
    side = _text("buy or sell.")
    qty = _number("Quantity filled.")
    price = _number("Fill price.")
    filled_at = _time("The fill's bar time (UTC).")
    recorded_at = _time("Wall time the fill was written (UTC).")


class Fills(Response):
    """The fills of a paper run."""

    OPEN = False
    REQUIRED = ("paper_run_id", "fills")
    paper_run_id = _text("The paper run id.")
    fills = param.List(None, allow_None=True, item_type=Fill, doc="The fills, oldest first.")


class KillSwitchEngaged(Response):
    """The kill switch engaged: what each target did, and the state after."""

    REQUIRED = ("engaged", "targets", "failures", "elapsed_ms")
    engaged = param.Boolean(None, allow_None=True, doc="Whether it is engaged.")
    persisted = param.Boolean(None, allow_None=True, doc="Whether the ledger holds the state.")
    mode = _text("The effect of the engagement.")
    reason = _text("Why it was engaged.")
    targets = Mapping(None, allow_None=True, doc="Each target's halted count and failures.")
    failures = _texts("Targets that failed to halt, with why.")
    elapsed_ms = _number("Milliseconds the engagement took.")
    final_rows_committed_ms = _number("Milliseconds until every final run row was committed.")
    closing_rows_committed_ms = _number("Milliseconds until every closing row was committed.")
    request_to_engage_ms = _number("Milliseconds from the request's headers to the engagement.")
    state = param.ClassSelector(class_=KillSwitchState, default=None, allow_None=True,
                                doc="The state after.")  # fmt: skip


class GateJudged(Response):
    """The backtest the paper gate judged."""

    REQUIRED = ("id", "start_ts", "end_ts", "bars", "num_trades", "text")
    id = _text("The backtest run id.")
    bot_version = _integer("The bot version backtested.")
    start_ts = _text("First bar time.")
    end_ts = _text("Last bar time.")
    bars = _integer("Bars run.")
    num_trades = _integer("Trades made.")
    sharpe = _number("Its Sharpe ratio.")
    max_drawdown = _number("Its largest drawdown (a fraction).")
    created_at = _text("When it was recorded.")
    halted = Mapping(None, allow_None=True, doc="Why the backtest halted, if it did.")
    text = _text("The judgement in one sentence.")


class GateExtras(Response):
    """What the gate looked at."""

    judged = param.ClassSelector(class_=GateJudged, default=None, allow_None=True,
                                 doc="The backtest judged (null: none).")  # fmt: skip


class GateRefused(Response):
    """The paper gate refused: every failing rule."""

    REQUIRED = ("error", "detail", "errors")
    error = Text(None, allow_None=True, choices=("gate_refused",), doc="gate_refused.")
    detail = _text("The refusal in one sentence.")
    errors = _texts("Every rule that failed.")
    warnings = _texts("Rules that passed with a warning.")
    gate = param.ClassSelector(class_=GateExtras, default=None, allow_None=True,
                               doc="What the gate looked at.")  # fmt: skip


#: Every response model, by the OpenAPI component name it is published under.
RESPONSE_MODELS: dict[str, type[Response]] = {
    "BotCreated": BotCreated,
    "BacktestResult": BacktestResult,
    "PaperStarted": PaperStarted,
    "Stopped": Stopped,
    "Halted": Halted,
    "Run": Run,
    "KillSwitchState": KillSwitchState,
    "Error": Error,
    "Bot": Bot,
    "BotList": BotList,
    "BotVersions": BotVersions,
    "RunList": RunList,
    "Fills": Fills,
    "KillSwitchEngaged": KillSwitchEngaged,
    "GateJudged": GateJudged,
    "GateRefused": GateRefused,
}
