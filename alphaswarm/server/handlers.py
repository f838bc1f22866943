"""REST handlers: the HTTP table of DESIGN.md, JSON in and out.

Every handler validates the whole request before it touches the ledger, runs
blocking work in a thread pool so the IOLoop stays free (the kill path on its
own reserved threads, backtests and big bodies in a bounded pool that answers
503 when full: :mod:`alphaswarm.server.capacity`), and answers errors as
``{"error": ..., "detail": ...}`` (see :mod:`alphaswarm.server.errors`).

Bodies are streamed: one larger than :data:`~alphaswarm.server.errors.MAX_BODY_BYTES`
is refused with a JSON 413 as soon as its ``Content-Length`` is seen (a chunked
one once it passes the limit), and never buffered whole.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any, ClassVar

from tornado.web import HTTPError, RequestHandler, stream_request_body

from alphaswarm.backtest import backtest
from alphaswarm.bots import Bot, BotSpecError
from alphaswarm.data.base import FeedError
from alphaswarm.jsoncodec import dumps_lenient, jsonable
from alphaswarm.model import ModelError
from alphaswarm.paper.gate import GateRefused
from alphaswarm.paper.killswitch import EXTENSION_TARGETS, KillSwitch, KillSwitchEngaged
from alphaswarm.paper.session import FINAL_STATUSES, PaperSession
from alphaswarm.server.body import INLINE_PARSE_BYTES, parse_body
from alphaswarm.server.capacity import Busy, Capacity
from alphaswarm.server.errors import (
    ERROR_CODES,
    MAX_BODY_BYTES,
    ApiError,
    bad_request,
    conflict,
    invalid,
    misdirected,
    not_found,
    too_large,
)
from alphaswarm.server.limits import MAX_BACKTEST_BARS, MAX_LIST_LIMIT
from alphaswarm.server.requests import (
    BacktestRequest,
    HaltRequest,
    KillSwitchEngage,
    KillSwitchReset,
    PaperRequest,
    StopRequest,
    read_body,
)
from alphaswarm.server.route_context import RouteContext
from alphaswarm.server.security import Security, redact, same_origin
from alphaswarm.spec_policy import SpecPolicy, check_remote_spec

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    import param

    from alphaswarm.ledger import Ledger
    from alphaswarm.paper.registry import SessionRegistry
    from alphaswarm.paper.runtime import Runtime

log = logging.getLogger(__name__)

#: A chunked body may run this many times past the limit before the connection is cut.
CHUNKED_SLACK = 4


# --------------------------------------------------------------------------- base

_FALLBACK: list[Capacity] = []


def _fallback_capacity() -> Capacity:
    """The pools of handlers mounted without ``make_routes`` (one per process)."""
    if not _FALLBACK:
        _FALLBACK.append(Capacity())
    return _FALLBACK[0]


@stream_request_body
class BaseHandler(RouteContext, RequestHandler):
    """JSON in and out, the host, token and origin rules, the size limit and JSON errors.

    Parameters (route kwargs)
    -------------------------
    ledger : Ledger or None
        The ledger to use; the runtime's ledger when ``None``.
    runtime : Runtime or None
        The sessions' ledger, kill switch, registry and engine loop; the process's
        runtime (:meth:`alphaswarm.paper.runtime.Runtime.default`) when ``None``.
    security : Security
        Token and host settings.
    policy : SpecPolicy
        What specs sent over HTTP may name (files, credentials, URLs).
    capacity : Capacity
        The server's thread pools.
    """

    STATE_CHANGING: ClassVar[tuple[str, ...]] = ("POST", "PUT", "PATCH", "DELETE")

    def initialize(
        self,
        ledger: Ledger | None = None,
        security: Security | None = None,
        policy: SpecPolicy | None = None,
        capacity: Capacity | None = None,
        runtime: Runtime | None = None,
    ) -> None:
        """Take the route kwargs."""
        self._take_context(ledger, runtime, security)
        self.policy = policy or SpecPolicy()
        self.capacity = capacity or _fallback_capacity()
        self._chunks: list[bytes] = []
        self._body_size = 0
        self._holds_slot = False  # True while this request holds a heavy slot

    def set_default_headers(self) -> None:
        """JSON responses, never cached."""
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.set_header("Cache-Control", "no-store")
        self.set_header("X-Content-Type-Options", "nosniff")

    def check_xsrf_cookie(self) -> None:
        """Cross-site requests are refused by the origin rule in :meth:`prepare` instead."""

    def prepare(self) -> None:
        """Apply the host, token, origin and size rules (before the body is read)."""
        if not self.security.host_allowed(self.request.host):
            raise misdirected(self.request.host)
        if not self.security.authorized(self.request):
            self.set_header("WWW-Authenticate", 'Bearer realm="alphaswarm"')
            raise ApiError(401, "this server needs 'Authorization: Bearer <token>'")
        if self.request.method in self.STATE_CHANGING and not same_origin(
            self.request.headers.get("Origin"), self.request.host
        ):
            raise ApiError(
                403,
                f"cross-origin request refused: Origin {self.request.headers.get('Origin')!r} "
                f"is not this server ({self.request.host})",
            )
        length = self.request.headers.get("Content-Length")
        try:
            size = int(length) if length else 0
        except ValueError:
            raise bad_request(f"Content-Length: not a number ({length!r})") from None
        if size > MAX_BODY_BYTES:
            raise too_large(size)
        if not length:  # chunked: refused once past the limit, cut off well after it
            self.request.connection.set_max_body_size(CHUNKED_SLACK * MAX_BODY_BYTES)
        self._rules_passed = True

    def data_received(self, chunk: bytes) -> None:
        """Keep the body up to the limit; count (and drop) what goes past it."""
        self._body_size += len(chunk)
        if self._body_size <= MAX_BODY_BYTES:
            self._chunks.append(chunk)
        else:
            self._chunks = []

    @property
    def body(self) -> bytes:
        """The request body (413 when it went past the limit)."""
        if self._body_size > MAX_BODY_BYTES:
            raise too_large(self._body_size)
        return b"".join(self._chunks)

    def _request_summary(self) -> str:
        return redact(super()._request_summary())

    # -- output ---------------------------------------------------------------------
    def send(self, value: Any, status: int = 200) -> None:
        """Write ``value`` as the JSON response."""
        self.set_status(status)
        self.finish(dumps_lenient(value))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """Answer every error as JSON ``{error, detail}``."""
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, Busy):
            self.set_header("Retry-After", str(exc.retry_after))
        if status_code == 405 or (isinstance(exc, ApiError) and exc.status == 405):
            self.set_header("Allow", ", ".join(self.allowed_methods()))
        refused_unread = not getattr(self, "_rules_passed", False) and self._has_body()
        if refused_unread or (isinstance(exc, ApiError) and exc.status in (413, 421)):
            # the body was never read, so this connection closes after the answer: say so,
            # or a client reusing it (keep-alive) gets a reset on its next request
            self.set_header("Connection", "close")
        if isinstance(exc, ApiError):
            self.set_status(exc.status)
            body = exc.body()
        elif isinstance(exc, HTTPError):
            body = {
                "error": ERROR_CODES.get(status_code, "error"),
                "detail": exc.log_message % exc.args if exc.log_message else self._reason,
            }
        elif status_code >= 500:
            if exc is not None:
                log.error("%s %s failed", self.request.method, self.request.path, exc_info=exc)
                detail = f"unexpected {type(exc).__name__}; see the server log"
            else:
                detail = self._reason
            body = {"error": "internal_error", "detail": detail}
        else:
            body = {"error": ERROR_CODES.get(status_code, "error"), "detail": self._reason}
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.finish(dumps_lenient(body))

    def _has_body(self) -> bool:
        headers = self.request.headers
        return bool(headers.get("Content-Length", "0") not in ("", "0")) or (
            "chunked" in headers.get("Transfer-Encoding", "").lower()
        )

    def allowed_methods(self) -> list[str]:
        """The HTTP methods this route answers (the ``Allow`` header of a 405)."""
        return [
            m
            for m in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
            if getattr(type(self), m.lower()) is not getattr(RequestHandler, m.lower())
        ] or ["GET"]

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        """Log expected API errors briefly and unexpected ones with their traceback."""
        if isinstance(value, ApiError):
            log.info("%s %s -> %d: %s", self.request.method, self.request.path, value.status,
                     value.detail)  # fmt: skip
            return
        super().log_exception(typ, value, tb)

    # -- input ----------------------------------------------------------------------
    async def body_mapping(
        self, *, required: bool = False, bot_spec: bool = False
    ) -> dict[str, Any]:
        """The body parsed (JSON, else YAML) and checked to be a mapping.

        Only an empty body (no bytes at all) means "no options"; ``null``, blank or
        control-character bodies and YAML documents with no value are refused like
        any other non-mapping, so they cannot engage or release a halt. Bodies over
        :data:`~alphaswarm.server.body.INLINE_PARSE_BYTES` are parsed off the IOLoop in
        the bounded pool (503 when full), on every route: a big body sent to the kill
        switch cannot occupy the kill path's reserved threads.
        """
        raw = self.body
        if len(raw) <= INLINE_PARSE_BYTES:
            data = parse_body(raw, required=required, bot_spec=bot_spec)
        elif self._holds_slot:
            data = await self.in_heavy_pool(parse_body, raw, required=required, bot_spec=bot_spec)
        else:
            data = await self.heavy("a large request body", parse_body, raw, required=required,
                                    bot_spec=bot_spec)  # fmt: skip
        if not isinstance(data, dict):
            got = "null" if data is None else type(data).__name__
            raise bad_request(f"the body must be a JSON object (a mapping), got {got}")
        return data

    async def read(self, model: type[param.Parameterized]) -> dict[str, Any]:
        """The body read against its declared ``model`` (:mod:`alphaswarm.server.requests`)."""
        return read_body(model, await self.body_mapping())

    def query_int(self, name: str, minimum: int = 0, maximum: int | None = None) -> int | None:
        """An optional whole-number query argument (at most 20 digits are read)."""
        raw = self.get_query_argument(name, None)
        if raw is None or raw == "":
            return None
        text = raw.strip()
        if len(text.lstrip("+-")) > 20 or not text.lstrip("+-").isdigit():
            raise bad_request(f"{name}: expected a whole number, got {raw[:40]!r}")
        value = int(text)
        if value < minimum:
            raise invalid(f"{name}: must be >= {minimum}, got {value}")
        if maximum is not None and value > maximum:
            raise invalid(f"{name}: must be <= {maximum}, got {value}")
        return value

    async def blocking(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run ``fn`` (short blocking work) in the server's ordinary pool."""
        return await self._run(self.capacity.light, fn, *args, **kwargs)

    async def on_kill_path(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run ``fn`` on the threads reserved for the kill switch and halts."""
        return await self._run(self.capacity.kill, fn, *args, **kwargs)

    async def heavy(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run ``fn`` in the bounded pool, or answer 503 + ``Retry-After`` when it is full."""
        with self.capacity.slot(what):
            return await self.in_heavy_pool(fn, *args, **kwargs)

    async def holding_slot(
        self, what: str, answer: Callable[..., Awaitable[None]], *args: Any
    ) -> None:
        """Answer with ``answer(*args)`` while holding a slot of the bounded pool.

        A full pool answers 503 + ``Retry-After`` at once (``what`` names the work);
        while the slot is held, large bodies are parsed in it (:meth:`body_mapping`).
        """
        with self.capacity.slot(what):
            self._holds_slot = True
            await answer(*args)

    async def in_heavy_pool(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run ``fn`` in the bounded pool (the caller holds a ``capacity.slot``)."""
        return await self._run(self.capacity.heavy, fn, *args, **kwargs)

    @staticmethod
    async def _run(pool: Any, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        from functools import partial

        from tornado.ioloop import IOLoop

        return await IOLoop.current().run_in_executor(pool, partial(fn, *args, **kwargs))

    def check_spec(self, spec: dict[str, Any]) -> None:
        """422 when a spec names a file, credential or URL this server does not allow."""
        try:
            check_remote_spec(spec, self.policy)
        except BotSpecError as exc:
            raise invalid(str(exc)) from None

    def bot_or_404(self, bot_id: str) -> dict[str, Any]:
        """The ledger's bot record, or a 404."""
        bot = self.ledger.get_bot(bot_id)
        if bot is None:
            raise not_found(f"no bot {bot_id!r}; GET /bots lists them")
        return bot

    def run_or_404(self, run_id: str) -> dict[str, Any]:
        """The ledger's paper run, or a 404."""
        run = self.ledger.get_run(run_id)
        if run is None:
            raise not_found(f"no paper run {run_id!r}; GET /paper lists them")
        return run


class NotFoundHandler(BaseHandler):
    """JSON 404 for unknown API routes."""

    def prepare(self) -> None:
        """Apply the token, origin and size rules before any handler runs."""
        super().prepare()
        raise not_found(f"no route {self.request.method} {self.request.path}; see /openapi.json")


class HealthHandler(BaseHandler):
    """``GET /health``: liveness."""

    def get(self) -> None:
        """Answer the GET."""
        self.send({"status": "ok"})


# --------------------------------------------------------------------------- bots


def _bot_view(bot: dict[str, Any]) -> dict[str, Any]:
    out = dict(bot)
    out["bot_id"] = bot["id"]
    out["version"] = bot.get("latest_version")
    return out


class BotsHandler(BaseHandler):
    """``GET /bots`` lists bots; ``POST /bots`` creates one (or a new version)."""

    async def get(self) -> None:
        """Answer the GET."""
        bots = await self.blocking(self.ledger.list_bots)
        self.send({"bots": [_bot_view(b) for b in bots]})

    async def post(self) -> None:
        """Answer the POST."""
        data = await self.body_mapping(required=True, bot_spec=True)
        self.check_spec(data)
        try:
            bot = Bot(data)
        except BotSpecError as exc:  # every problem at once; unknown keys with suggestions
            raise invalid(str(exc), **({"unknown": exc.unknown} if exc.unknown else {})) from None
        except ModelError as exc:
            raise invalid(str(exc)) from None
        bot_id, version, created = await self.blocking(
            self.ledger.register_bot, bot.name, bot.spec, bot.spec_hash
        )
        self.send(
            {
                "bot_id": bot_id,
                "version": version,
                "spec_hash": bot.spec_hash,
                "name": bot.name,
                "created": created,
            },
            201 if created else 200,
        )


class BotHandler(BaseHandler):
    """``GET /bots/{id}``: the bot, its latest ``backtest_runs`` reference and ``sharpe``."""

    async def get(self, bot_id: str) -> None:
        """Answer the GET."""
        bot = await self.blocking(self.bot_or_404, bot_id)
        self.send(_bot_view(bot))


class BotVersionsHandler(BaseHandler):
    """``GET /bots/{id}/versions``."""

    async def get(self, bot_id: str) -> None:
        """Answer the GET."""
        await self.blocking(self.bot_or_404, bot_id)
        versions = await self.blocking(self.ledger.bot_versions, bot_id)
        self.send({"bot_id": bot_id, "versions": versions})


class BacktestHandler(BaseHandler):
    """``POST /bots/{id}/backtest`` with ``{bars}`` or ``{start, end}`` → metrics."""

    async def post(self, bot_id: str) -> None:
        """Answer the POST (503 at once when the bounded pool is full)."""
        await self.holding_slot("backtests", self._backtest, bot_id)

    async def _backtest(self, bot_id: str) -> None:
        body = await self.read(BacktestRequest)
        bars, start, end = body["bars"], body["start"], body["end"]
        await self.blocking(self.bot_or_404, bot_id)
        spec = await self.blocking(self.ledger.bot_spec, bot_id)
        self.check_spec(spec)
        try:
            bot = Bot(spec)
            result = await self.in_heavy_pool(
                backtest,
                bot,
                # a date range is capped at MAX_BACKTEST_BARS bar times too
                bars if bars is not None or not (start or end) else MAX_BACKTEST_BARS,
                start=start,
                end=end,
                starting_cash=body["starting_cash"],
                ledger=self.ledger,
            )
        except (ModelError, FeedError) as exc:
            raise invalid(str(exc)) from None
        self.send(
            {
                "backtest_id": result.id,
                "id": result.id,
                "bot_id": result.bot_id,
                "bot_version": result.bot_version,
                "bars": result.bars,
                "elapsed_seconds": result.elapsed,
                "halted": result.halted,
                "metrics": result.metrics,
                **result.metrics,
            },
            201,
        )


class PaperStartHandler(BaseHandler):
    """``POST /bots/{id}/paper``: gate, then start a session on the engine loop."""

    async def post(self, bot_id: str) -> None:
        """Answer the POST (503 at once when the bounded pool is full)."""
        await self.holding_slot("starting paper sessions", self._paper, bot_id)

    async def _paper(self, bot_id: str) -> None:
        body = await self.read(PaperRequest)
        reason = body["reason"] or ""
        params: dict[str, Any] = {
            "starting_cash": body["starting_cash"],
            "duration_minutes": body["duration_minutes"],
            "force": body["force"],
            "reason": reason,
        }
        for key in ("speed", "max_bars", "run_name", "backtest_id"):
            if body[key] is not None and body[key] != "":
                params[key] = body[key]
        await self.blocking(self.bot_or_404, bot_id)
        self.check_spec(await self.blocking(self.ledger.bot_spec, bot_id))
        try:
            session = await self.in_heavy_pool(self._start, bot_id, params)
        except GateRefused as exc:
            result = exc.result
            raise conflict(
                str(exc),
                "gate_refused",
                errors=list(result.errors),
                warnings=list(result.warnings),
                gate=result.to_frame_extras(),
            ) from None
        except KillSwitchEngaged as exc:
            raise conflict(
                str(exc), "kill_switch_engaged", kill_switch=_ks_state(self.runtime.kill_switch)
            ) from None
        except (ModelError, FeedError) as exc:
            raise invalid(str(exc)) from None
        run_id = session.paper_run_id
        self.send(
            {
                "paper_run_id": run_id,
                "task_id": run_id,
                "stream_url": f"/ws/paper/{run_id}",
                "status": session.status,
                "bot_id": session.bot_id,
                "bot_version": session.bot_version,
                "gate": session.gate,
            },
            201,
        )

    def _start(self, bot_id: str, params: dict[str, Any]) -> PaperSession:
        bot = Bot(self.ledger.bot_spec(bot_id))
        self.runtime.kill_switch.check_start(bot_id)
        try:
            feed = bot.make_feed()
        except FeedError:
            missing = _uncovered_symbols(bot)
            if missing:  # the gate's coverage rule, reached before the feed could be built
                raise conflict(
                    f"paper gate refused: the feed cannot serve universe symbol(s): "
                    f"{', '.join(missing)}",
                    "gate_refused",
                    errors=[f"the feed cannot serve universe symbol(s): {', '.join(missing)}"],
                    warnings=[],
                ) from None
            raise
        runtime = self.runtime
        session = PaperSession(bot, ledger=self.ledger, feed=feed, runtime=runtime, **params)
        return session.start(loop=runtime.engine_loop())


def _uncovered_symbols(bot: Bot) -> list[str]:
    """Universe symbols a stored feed (sample, replay) does not hold; ``[]`` when unknown."""
    from alphaswarm.data import make_feed
    from alphaswarm.data.sample import available_symbols

    data = bot.spec.get("data") or {}
    kind = data.get("feed", "synthetic")
    try:
        if kind == "sample":
            have = set(available_symbols())
        elif kind == "replay":
            have = set(make_feed(data, []).symbols)
        else:
            return []
    except (FeedError, ModelError, OSError):
        return []
    return [s for s in bot.universe if s not in have]


class BotHaltHandler(BaseHandler):
    """``POST /bots/{id}/halt``: stop that bot's sessions and refuse new ones until reset."""

    async def post(self, bot_id: str) -> None:
        """Answer the POST."""
        body = await self.read(HaltRequest)
        reason = body["reason"] or f"bot {bot_id} halted via api"
        mode = body["mode"]
        await self.on_kill_path(self.bot_or_404, bot_id)
        switch = self.runtime.kill_switch
        result = await self.on_kill_path(switch.engage, reason, mode=mode, bot=bot_id,
                                         actor="api")  # fmt: skip
        target = result["targets"].get(f"bot:{bot_id}", {"halted": 0, "failures": []})
        self.send(
            {
                "target": f"bot:{bot_id}",
                "halted": target["halted"],
                "failures": result["failures"],
                "elapsed_ms": result["elapsed_ms"],
                "halted_bots": list(switch.halted_bots),
            }
        )


# --------------------------------------------------------------------------- paper runs


def _run_view(run: dict[str, Any], sessions: SessionRegistry) -> dict[str, Any]:
    out = dict(run)
    out["paper_run_id"] = run["id"]
    out["stream_url"] = f"/ws/paper/{run['id']}"
    session = sessions.get(run["id"])
    if session is not None and not session.finished:
        out["live"] = {
            "status": session.status,
            "equity": session.equity,
            "cash": session.cash,
            "positions": session.positions,
            "num_fills": session.num_fills,
            "bars_seen": session.bars_seen,
            "total_pnl": session.total_pnl,
        }
    return out


class RunsHandler(BaseHandler):
    """``GET /paper[?status=&bot_id=&limit=]``: runs, newest first."""

    async def get(self) -> None:
        """Answer the GET."""
        status = self.get_query_argument("status", None) or None
        bot_id = self.get_query_argument("bot_id", None) or None
        limit = self.query_int("limit", 1, MAX_LIST_LIMIT)
        runs = await self.blocking(self.ledger.list_runs, status, bot_id, limit)
        self.send({"runs": [_run_view(r, self.runtime.registry) for r in runs]})


class RunHandler(BaseHandler):
    """``GET /paper/{id}``."""

    async def get(self, run_id: str) -> None:
        """Answer the GET."""
        run = await self.blocking(self.run_or_404, run_id)
        self.send(_run_view(run, self.runtime.registry))


class FillsHandler(BaseHandler):
    """``GET /paper/{id}/fills``."""

    async def get(self, run_id: str) -> None:
        """Answer the GET."""
        await self.blocking(self.run_or_404, run_id)
        fills = await self.blocking(self.ledger.fills, run_id)
        self.send({"paper_run_id": run_id, "fills": jsonable(fills)})


class ReconcileHandler(BaseHandler):
    """``GET /paper/{id}/reconcile``: the run against its backtest, fill by fill."""

    async def get(self, run_id: str) -> None:
        """Answer the GET."""
        from alphaswarm.reconcile import reconcile

        await self.blocking(self.run_or_404, run_id)
        try:
            result = await self.heavy("reconciliations", reconcile, run_id, self.ledger)
        except (ModelError, BotSpecError) as exc:
            raise conflict(f"paper run {run_id} cannot be reconciled: {exc}") from None
        self.send(result.to_dict())


class OrderExplainHandler(BaseHandler):
    """``GET /paper/{id}/orders/{order_id}/explain``: one order's life."""

    async def get(self, run_id: str, order_id: str) -> None:
        """Answer the GET."""
        from alphaswarm.paper.explain import OrderNotFound, explain_order

        await self.blocking(self.run_or_404, run_id)
        try:
            self.send(await self.blocking(explain_order, self.ledger, run_id, order_id))
        except OrderNotFound as exc:
            raise not_found(str(exc)) from None


class RunStopHandler(BaseHandler):
    """``POST /paper/{id}/stop``: stop one session (idempotent)."""

    async def post(self, run_id: str) -> None:
        """Answer the POST."""
        body = await self.read(StopRequest)
        reason = body["reason"] or "stopped via api"
        session = self.runtime.registry.get(run_id)
        if session is not None:
            # A session of this process stops without the ledger: while it is out of
            # reach the final row is written when it returns (final_row_written False).
            stopped = False
            if not session.finished:
                stopped = await self.on_kill_path(session.stop, reason)
            self.send(
                {
                    "paper_run_id": run_id,
                    "stopped": stopped,
                    "status": session.status,
                    "final_row_written": session.final_row_written,
                }
            )
            return
        run = await self.on_kill_path(self.run_or_404, run_id)
        if run["status"] not in FINAL_STATUSES:
            raise conflict(
                f"paper run {run_id} is {run['status']} but not in this server process; "
                "stop it where it runs (or engage the kill switch)"
            )
        self.send(
            {
                "paper_run_id": run_id,
                "stopped": False,
                "status": run["status"],
                "final_row_written": True,
            }
        )


async def _halt_body(handler: BaseHandler) -> tuple[str, str]:
    body = await handler.read(HaltRequest)
    return body["reason"] or f"{handler.request.path} via api", body["mode"]


class StopAllHandler(BaseHandler):
    """``POST /paper/stop-all``: stop every running paper session of this process."""

    async def post(self) -> None:
        """Answer the POST."""
        reason, mode = await _halt_body(self)
        self.send(await self.on_kill_path(self._stop_all, reason, mode))

    def _stop_all(self, reason: str, mode: str) -> dict[str, Any]:
        import time

        t0 = time.perf_counter()
        failures: list[str] = []
        halted = 0
        try:
            sessions = self.runtime.registry
            halted = sessions.stop_many(sessions.running(), "stopped", reason, mode)
        except Exception as exc:  # noqa: BLE001 - a halt route never 5xx's on a target
            log.exception("paper stop-all failed")
            failures.append(f"paper: {type(exc).__name__}: {exc}")
        return {
            "target": "paper",
            "halted": halted,
            "failures": failures,
            "elapsed_ms": (time.perf_counter() - t0) * 1e3,
        }


class HaltTargetHandler(BaseHandler):
    """``POST /bots/halt-all`` and the extension routes: halt one named kill-switch target."""

    def initialize(self, target: str = "", **kwargs: Any) -> None:
        """Take the route kwargs."""
        super().initialize(**kwargs)
        self.target = target

    async def post(self) -> None:
        """Answer the POST."""
        reason, mode = await _halt_body(self)
        self.send(await self.on_kill_path(self._halt, reason, mode))

    def _halt(self, reason: str, mode: str) -> dict[str, Any]:
        try:
            return self.runtime.kill_switch.halt_target(self.target, reason, mode)
        except Exception as exc:  # noqa: BLE001 - listed, never a 5xx
            log.exception("halt target %s failed", self.target)
            return {
                "target": self.target,
                "halted": 0,
                "failures": [f"{self.target}: {type(exc).__name__}: {exc}"],
                "elapsed_ms": 0.0,
            }


# --------------------------------------------------------------------------- kill switch


def _ks_state(switch: KillSwitch) -> dict[str, Any]:
    return jsonable(switch.state())


class KillSwitchHandler(BaseHandler):
    """``GET /kill-switch`` state; ``POST /kill-switch`` engage (fans out to every target)."""

    def get(self) -> None:
        """Answer the GET."""
        self.send(_ks_state(self.runtime.kill_switch))

    async def post(self) -> None:
        """Answer the POST."""
        body = await self.read(KillSwitchEngage)
        reason = body["reason"] or "kill switch engaged via api"
        mode, ttl = body["mode"], body["ttl_seconds"]
        # the request's clock starts when its headers were read (before any wait)
        accepted = self.request._start_time
        switch = self.runtime.kill_switch

        def engage() -> dict[str, Any]:
            started = time.time()
            result = switch.engage(reason, mode=mode, ttl_seconds=ttl, actor="api")
            return {**result, "request_to_engage_ms": (started - accepted) * 1e3}

        try:
            result = await self.on_kill_path(engage)
        except ModelError as exc:
            raise invalid(str(exc)) from None
        self.send({**result, "state": _ks_state(switch)})


class KillSwitchResetHandler(BaseHandler):
    """``POST /kill-switch/reset``: release it (or only one bot's halt with ``{"bot": id}``)."""

    async def post(self) -> None:
        """Answer the POST."""
        bot = (await self.read(KillSwitchReset))["bot"]
        state = await self.on_kill_path(self.runtime.kill_switch.reset, bot=bot, actor="api")
        self.send(jsonable(state))


#: Extension halt routes and the kill-switch target each one halts.
EXTENSION_ROUTES = {path: name for name, path in EXTENSION_TARGETS.items()}
