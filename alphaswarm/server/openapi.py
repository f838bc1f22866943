"""The OpenAPI 3.0 description of the HTTP API (``GET /openapi.json``).

Every route, its request body and its responses. The request bodies and the bot
spec are generated from their declarations (:mod:`alphaswarm.server.requests`,
:mod:`alphaswarm.bot_schema`), the same ones the handlers validate with, so the
bounds stated here are the bounds enforced.
"""

from __future__ import annotations

from typing import Any

from alphaswarm import __version__
from alphaswarm.bot_schema import BotSpec
from alphaswarm.paper.killswitch import EXTENSION_TARGETS
from alphaswarm.schema import json_schema
from alphaswarm.server.errors import MAX_BODY_BYTES
from alphaswarm.server.limits import MAX_LIST_LIMIT, MAX_SINCE
from alphaswarm.server.requests import REQUEST_MODELS
from alphaswarm.server.responses import RESPONSE_MODELS

_STR = {"type": "string"}
_ANY_OBJ = {"type": "object", "additionalProperties": True}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _obj(props: dict[str, Any], required: tuple[str, ...] = (), extra: bool = False) -> dict:
    schema: dict[str, Any] = {"type": "object", "properties": props}
    if required:
        schema["required"] = list(required)
    schema["additionalProperties"] = extra
    return schema


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _resp(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"description": description}
    out["content"] = _json(schema or _ref("Error"))
    return out


_ERRORS = {
    "400": _resp("Malformed body (neither JSON nor YAML) or a value of the wrong type."),
    "401": _resp("A token is configured and the request did not carry it."),
    "403": _resp("Cross-origin request refused."),
    "413": _resp(f"Body larger than {MAX_BODY_BYTES} bytes."),
    "421": _resp("The Host header names another server (DNS-rebinding guard)."),
    "422": _resp("Invalid values (negative cash, NaN, unknown keys ...)."),
    "503": _resp("Busy: the bounded pool for heavy work is full; see Retry-After."),
}


def _op(
    summary: str,
    responses: dict[str, Any],
    *,
    body: dict[str, Any] | None = None,
    body_required: bool = False,
    params: list[dict[str, Any]] | None = None,
    errors: tuple[str, ...] = ("401",),
) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "responses": dict(responses)}
    for code in (*errors, "421"):
        op["responses"].setdefault(code, _ERRORS[code])
    if body is not None:
        op["requestBody"] = {"required": body_required, "content": _json(body)}
    if params:
        op["parameters"] = params
    return op


def _path_param(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": {"type": "string", "minLength": 1, "pattern": "^[^/]+$"},
    }


def _read_one(
    summary: str, what: str, schema: str, param: dict[str, Any], missing: str
) -> dict[str, Any]:
    """A route whose GET answers one ``schema`` named by ``param`` (404: ``missing``)."""
    responses = {"200": _resp(what, _ref(schema)), "404": _resp(missing)}
    return {"get": _op(summary, responses, params=[param])}


_POST_ERRORS = ("400", "401", "403", "413", "422", "503")
_BOT_ID = _path_param("bot_id", "The bot id (the slug of its name).")
_RUN_ID = _path_param("paper_run_id", "The paper run id (also the frames' task_id).")
_HALT_BODY = _ref("HaltRequest")


def _schemas() -> dict[str, Any]:
    return {
        **{name: json_schema(model) for name, model in REQUEST_MODELS.items()},
        **{name: json_schema(model) for name, model in RESPONSE_MODELS.items()},
        "BotSpec": json_schema(BotSpec, required=("name",)),
    }


def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.0 document of every route.

    Returns
    -------
    dict
        JSON-serialisable OpenAPI 3.0.3 document.
    """
    halt = {
        "post": _op(
            "Halt every target registered under this name (zero is a valid count).",
            {"200": _resp("Halted (idempotent).", _ref("Halted"))},
            body=_HALT_BODY,
            errors=_POST_ERRORS,
        )
    }
    paths: dict[str, Any] = {
        "/health": {"get": _op("Liveness.", {"200": _resp("Ready.", _obj({"status": _STR}))})},
        "/openapi.json": {"get": _op("This document.", {"200": _resp("OpenAPI.", _ANY_OBJ)})},
        "/bots": {
            "get": _op("List bots.", {"200": _resp("Bots.", _ref("BotList"))}),
            "post": _op(
                "Create a bot (or a new version) from JSON or YAML, whatever the Content-Type.",
                {
                    "200": _resp("Same spec: the existing version.", _ref("BotCreated")),
                    "201": _resp("New bot or new version.", _ref("BotCreated")),
                },
                body=_ref("BotSpec"),
                body_required=True,
                errors=_POST_ERRORS,
            ),
        },
        "/bots/{bot_id}": _read_one(
            "A bot with its latest backtest_runs reference and sharpe.",
            "Bot.",
            "Bot",
            _BOT_ID,
            "Unknown bot.",
        ),
        "/bots/{bot_id}/versions": _read_one(
            "The versions of a bot.", "Versions.", "BotVersions", _BOT_ID, "Unknown bot."
        ),
        "/bots/{bot_id}/backtest": {
            "post": _op(
                "Backtest the bot's current version over {bars} or {start, end}.",
                {
                    "201": _resp("Backtest recorded.", _ref("BacktestResult")),
                    "404": _resp("Unknown bot."),
                },
                body=_ref("BacktestRequest"),
                params=[_BOT_ID],
                errors=_POST_ERRORS,
            )
        },
        "/bots/{bot_id}/paper": {
            "post": _op(
                "Start a paper session (paper gate first).",
                {
                    "201": _resp("Started.", _ref("PaperStarted")),
                    "404": _resp("Unknown bot."),
                    "409": _resp(
                        "Gate refusal (every failing rule) or kill switch engaged.",
                        {"oneOf": [_ref("GateRefused"), _ref("Error")]},
                    ),
                },
                body=_ref("PaperRequest"),
                params=[_BOT_ID],
                errors=_POST_ERRORS,
            )
        },
        "/bots/{bot_id}/halt": {
            "post": _op(
                "Halt one bot: stop its sessions and refuse new ones until reset.",
                {"200": _resp("Halted.", _ref("Halted")), "404": _resp("Unknown bot.")},
                body=_HALT_BODY,
                params=[_BOT_ID],
                errors=_POST_ERRORS,
            )
        },
        "/bots/halt-all": {
            "post": _op(
                "Stop every paper session of every bot.",
                {"200": _resp("Halted (idempotent).", _ref("Halted"))},
                body=_HALT_BODY,
                errors=_POST_ERRORS,
            )
        },
        "/paper": {
            "get": _op(
                "Paper runs, newest first.",
                {"200": _resp("Runs.", _ref("RunList"))},
                params=[
                    {"name": "status", "in": "query", "schema": _STR},
                    {"name": "bot_id", "in": "query", "schema": _STR},
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIST_LIMIT},
                    },
                ],
                errors=("400", "401", "422"),
            )
        },
        "/paper/stop-all": {
            "post": _op(
                "Stop every running paper session.",
                {"200": _resp("Stopped (idempotent).", _ref("Halted"))},
                body=_HALT_BODY,
                errors=_POST_ERRORS,
            )
        },
        "/paper/{paper_run_id}": _read_one(
            "One paper run.", "Run.", "Run", _RUN_ID, "Unknown run."
        ),
        "/paper/{paper_run_id}/fills": _read_one(
            "The fills of a run.", "Fills.", "Fills", _RUN_ID, "Unknown run."
        ),
        "/paper/{paper_run_id}/reconcile": {
            "get": _op(
                "The run against its backtest over the same bars: fills matched, "
                "differences with their causes, P&L explained by cause; for a broker "
                "run with shadow: true, the broker's fills against the simulator's.",
                {
                    "200": _resp(
                        "Reconciliation.",
                        _obj(
                            {
                                "paper_run_id": _STR,
                                "summary": _ANY_OBJ,
                                "trades": {"type": "array", "items": _ANY_OBJ},
                                # a broker run with a shadow simulator: its fills
                                # against the simulator's, order by order
                                "shadow": {"type": "object", "nullable": True},
                            },
                            extra=True,
                        ),
                    ),
                    "404": _resp("Unknown run."),
                    "409": _resp("The run cannot be reconciled (no bars, unknown strategy)."),
                },
                params=[_RUN_ID],
                errors=("401", "503"),
            )
        },
        "/paper/{paper_run_id}/orders/{order_id}/explain": {
            "get": _op(
                "One order's life: its signal, risk checks, fills, cancellations.",
                {
                    "200": _resp("Explanation (with a readable 'text').", _ANY_OBJ),
                    "404": _resp("Unknown run or order."),
                },
                params=[_RUN_ID, _path_param("order_id", "An order id or a denied request id.")],
            )
        },
        "/paper/{paper_run_id}/stop": {
            "post": _op(
                "Stop one session (idempotent).",
                {
                    "200": _resp("Stopped, or already final.", _ref("Stopped")),
                    "404": _resp("Unknown run."),
                    "409": _resp("Running in another process."),
                },
                body=_ref("StopRequest"),
                params=[_RUN_ID],
                errors=_POST_ERRORS,
            )
        },
        "/kill-switch": {
            "get": _op("Kill switch state.", {"200": _resp("State.", _ref("KillSwitchState"))}),
            "post": _op(
                "Engage: fan out to every halt target; latched until reset.",
                {"200": _resp("Engaged.", _ref("KillSwitchEngaged"))},
                body=_ref("KillSwitchEngage"),
                errors=_POST_ERRORS,
            ),
        },
        "/kill-switch/reset": {
            "post": _op(
                "Release the kill switch (or one bot's halt with {bot}).",
                {"200": _resp("Released.", _ref("KillSwitchState"))},
                body=_ref("KillSwitchReset"),
                errors=_POST_ERRORS,
            )
        },
        "/ws/paper/{paper_run_id}": {
            "get": {
                "summary": "WebSocket: JSON frames of one run; ?since=SEQ replays from the ledger.",
                "description": "Upgrade to a WebSocket. Frames follow the envelope {task_id, "
                "stage, message, timestamp, ts, seq, recorded_at, bar_time, ...}: timestamp, ts "
                "and recorded_at are the wall time (UTC), bar_time the time of the bar the "
                "frame belongs to (UTC; null before the first bar). Closes with 1000 after `done`, "
                "4404 for an unknown run.",
                "parameters": [
                    _RUN_ID,
                    {
                        "name": "since",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 0, "maximum": MAX_SINCE},
                    },
                ],
                "responses": {
                    "101": {"description": "Switching protocols."},
                    "400": _resp("Not a WebSocket upgrade request."),
                    "401": _ERRORS["401"],
                    "403": _resp("Upgrade from a foreign Origin refused."),
                    "421": _ERRORS["421"],
                },
            }
        },
    }
    for name, route in EXTENSION_TARGETS.items():
        paths[route] = {
            "post": {**halt["post"], "summary": f"Halt the '{name}' kill-switch targets."}
        }
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "alphaswarm paper-trading API",
            "version": __version__,
            "description": "REST + WebSocket API of `alphaswarm serve` (same port as the "
            "dashboard). Bodies are parsed as JSON, then YAML, whatever the Content-Type.",
        },
        "servers": [{"url": "http://localhost:8000"}],
        "components": {
            "schemas": _schemas(),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "paths": paths,
    }
