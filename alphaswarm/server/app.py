"""One Tornado server: the Panel dashboard and the REST + WebSocket API on the same port.

>>> from alphaswarm.server import serve
>>> serve(port=8000, demo=True)  # doctest: +SKIP

``make_routes`` gives the API routes for any Tornado/Bokeh server;
``alphaswarm.server.routes`` exposes them for ``panel serve --plugins``.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
import time
from typing import TYPE_CHECKING, Any

from tornado.web import RequestHandler

from alphaswarm.paper import tuning
from alphaswarm.server import handlers as h
from alphaswarm.server.capacity import Capacity
from alphaswarm.server.dashboard import LazyDashboard
from alphaswarm.server.errors import MAX_BODY_BYTES
from alphaswarm.server.openapi import openapi_document
from alphaswarm.server.pages import DashboardPaths, TrailingSlashHandler
from alphaswarm.server.security import (
    TOKEN_COOKIE,
    Security,
    ServerConfigError,
    check_bind,
    is_public_path,
    redact,
)
from alphaswarm.server.ws import PaperSocket
from alphaswarm.spec_policy import SpecPolicy, policy_from_env

if TYPE_CHECKING:
    from tornado.httpserver import HTTPServer
    from tornado.httputil import HTTPServerRequest
    from tornado.ioloop import IOLoop
    from tornado.web import Application

    from alphaswarm.ledger import Ledger
    from alphaswarm.paper.runtime import Runtime

log = logging.getLogger(__name__)

#: Interpreter switch interval of a tuned server process, in ms (Python's default is 5).
SERVER_SWITCH_INTERVAL_MS = 1.0
#: Bytes the server buffers per connection (Bokeh's WebSocket messages are up to 20 MB).
MAX_BUFFER_BYTES = 24 * 1024 * 1024
#: Seconds a shutdown waits for WebSocket clients to receive their ``done`` frame.
SHUTDOWN_GRACE_SECONDS = 5.0
#: Seconds a shutdown waits for the final rows a busy ledger did not take at once.
SHUTDOWN_WRITES_SECONDS = 30.0

__all__ = [
    "AppServer",
    "ServerConfigError",
    "ServerThread",
    "build_server",
    "make_routes",
    "serve",
]

#: Path prefixes of the API; unknown paths under them get a JSON 404.
API_PREFIXES = (
    "bots",
    "paper",
    "kill-switch",
    "agents",
    "rl",
    "workflows",
    "terraform",
    "quant-agents",
    "ws",
)


class OpenAPIHandler(h.BaseHandler):
    """``GET /openapi.json``."""

    def get(self) -> None:
        """Answer the GET."""
        self.send(openapi_document())


def make_routes(
    ledger: Ledger | None = None,
    security: Security | None = None,
    policy: SpecPolicy | None = None,
    capacity: Capacity | None = None,
    runtime: Runtime | None = None,
) -> list[tuple[str, type[RequestHandler], dict[str, Any]]]:
    """The REST and WebSocket routes, for ``extra_patterns`` of a Panel/Bokeh server.

    Parameters
    ----------
    ledger : Ledger, optional
        The ledger the handlers use; the process default when ``None``.
    security : Security, optional
        The token and host settings (``$ALPHASWARM_TOKEN`` when ``None``).
    policy : SpecPolicy, optional
        What specs sent over HTTP may name (``$ALPHASWARM_DATA_DIRS`` ... when ``None``).
    capacity : Capacity, optional
        The thread pools (new ones when ``None``).
    runtime : Runtime, optional
        The sessions' ledger, kill switch, registry and engine loop; the process's
        runtime (:meth:`alphaswarm.paper.runtime.Runtime.default`) when ``None``.

    Returns
    -------
    list of (pattern, handler class, kwargs)
    """
    security = security if security is not None else Security.from_env()
    policy = policy if policy is not None else policy_from_env()
    capacity = capacity if capacity is not None else Capacity()
    kw: dict[str, Any] = {
        "ledger": ledger, "security": security, "policy": policy, "capacity": capacity,
        "runtime": runtime,
    }  # fmt: skip
    bot = r"/bots/([^/]+)"
    run = r"/paper/([^/]+)"
    routes: list[tuple[str, type[RequestHandler], dict[str, Any]]] = [
        (r"/health", h.HealthHandler, kw),
        (r"/openapi.json", OpenAPIHandler, kw),
        (r"/bots", h.BotsHandler, kw),
        (r"/bots/halt-all", h.HaltTargetHandler, {**kw, "target": "bots"}),
        (bot, h.BotHandler, kw),
        (bot + "/versions", h.BotVersionsHandler, kw),
        (bot + "/backtest", h.BacktestHandler, kw),
        (bot + "/paper", h.PaperStartHandler, kw),
        (bot + "/halt", h.BotHaltHandler, kw),
        (r"/paper", h.RunsHandler, kw),
        (r"/paper/stop-all", h.StopAllHandler, kw),
        (run, h.RunHandler, kw),
        (run + "/fills", h.FillsHandler, kw),
        (run + "/reconcile", h.ReconcileHandler, kw),
        (run + r"/orders/([^/]+)/explain", h.OrderExplainHandler, kw),
        (run + "/stop", h.RunStopHandler, kw),
        (r"/kill-switch", h.KillSwitchHandler, kw),
        (r"/kill-switch/reset", h.KillSwitchResetHandler, kw),
        (r"/ws/paper/([^/]+)", PaperSocket, kw),
    ]
    for path, target in h.EXTENSION_ROUTES.items():
        routes.append((path, h.HaltTargetHandler, {**kw, "target": target}))
    api = "|".join(API_PREFIXES)
    routes.append((rf"/(?:{api})(?:/.*)?", h.NotFoundHandler, kw))
    return routes


# --------------------------------------------------------------------------- dashboard


def _placeholder() -> Any:
    import panel as pn

    return pn.Column(
        pn.pane.Markdown(
            "# alphaswarm\n\n**PAPER: simulated execution**\n\n"
            "The dashboard is not installed in this build. The API is live: "
            "[`/openapi.json`](/openapi.json), [`/bots`](/bots), [`/paper`](/paper), "
            "[`/kill-switch`](/kill-switch)."
        ),
        name="alphaswarm",
    )


def dashboard_app() -> Any:
    """The dashboard for one browser session (``alphaswarm.ui.app.dashboard``, imported lazily).

    A placeholder page answers while that module does not exist.
    """
    try:
        from alphaswarm.ui.app import dashboard
    except ModuleNotFoundError as exc:
        if exc.name not in ("alphaswarm.ui.app", "alphaswarm.ui"):
            raise
        return _placeholder()
    except ImportError:
        log.exception("the dashboard could not be imported")
        return _placeholder()
    return dashboard(landing=_landing_run())


def _page_apps() -> dict[str, Any]:
    """The dashboard's application routes: ``/`` and every page address."""
    from alphaswarm.ui.routes import server_patterns

    return {"/": dashboard_app, **dict.fromkeys(server_patterns(), dashboard_app)}


def _landing_run() -> str:
    """The demo's running session, opened when the overview page loads ('' for none)."""
    from alphaswarm.paper.registry import registry
    from alphaswarm.server.demo import DEMO_RUN_NAME

    demo = [s for s in registry().running() if s.run_name == DEMO_RUN_NAME]
    return demo[0].paper_run_id if demo else ""


# --------------------------------------------------------------------------- server


class _TokenCookieHandler(RequestHandler):
    """``GET /page?token=...``: remember the token in a cookie and drop it from the URL."""

    def initialize(self, token: str) -> None:
        """Take the route kwargs."""
        self.token = token

    def get(self) -> None:
        """Set the cookie and redirect."""
        from urllib.parse import urlencode

        self.set_cookie(TOKEN_COOKIE, self.token, httponly=True, samesite="Strict", path="/")
        rest = {k: v[-1].decode() for k, v in self.request.query_arguments.items() if k != "token"}
        self.redirect(self.request.path + ("?" + urlencode(rest) if rest else ""))


class _MisdirectedHandler(h.BaseHandler):
    def prepare(self) -> None:
        """Always 421: the Host header names another server."""
        from alphaswarm.server.errors import misdirected

        raise misdirected(self.request.host)


class _UnauthorizedHandler(h.BaseHandler):
    def prepare(self) -> None:
        """Always 401."""
        from alphaswarm.server.errors import ApiError

        self.set_header("WWW-Authenticate", 'Bearer realm="alphaswarm"')
        raise ApiError(401, "this server needs 'Authorization: Bearer <token>' (or ?token=)")


def log_request(handler: RequestHandler) -> None:
    """The access log line of one request, its URI's ``token=`` redacted."""
    from tornado.log import access_log

    status = handler.get_status()
    method = access_log.info if status < 400 else access_log.warning
    if status >= 500:
        method = access_log.error
    request = handler.request
    summary = redact(f"{request.method} {request.uri} ({request.remote_ip})")
    method("%d %s %.2fms", status, summary, 1000.0 * request.request_time())


def _drop_token(request: HTTPServerRequest) -> None:
    """Remove an (already checked) ``?token=`` from a request bound for a Bokeh handler."""
    if "token" in request.query_arguments:
        request.uri = redact(request.uri)
        request.query = redact(request.query)
        request.query_arguments.pop("token", None)
        request.arguments.pop("token", None)


def _not_found_and_log(app: Application, security: Security) -> None:
    """JSON 404s for unknown paths and the redacting access log, on ``app``."""
    app.settings["default_handler_class"] = h.NotFoundHandler
    app.settings["default_handler_args"] = {"security": security}
    app.settings["log_function"] = log_request


def _dispatch(app: Application, paths: DashboardPaths, dashboard: LazyDashboard) -> None:
    """Send dashboard paths to the dashboard (built then, if need be), the rest to the API."""
    find_handler = app.find_handler

    def dispatched(request: HTTPServerRequest, **kwargs: Any) -> Any:
        target = paths.redirect(request.path)
        if target is not None:
            return app.get_handler_delegate(request, TrailingSlashHandler, {}, [target])
        if paths.answers(request):
            return dashboard.handler(request)
        return find_handler(request, **kwargs)

    app.find_handler = dispatched


def _guard(app: Application, security: Security) -> None:
    """Put the host rule, then the token rule, in front of every route.

    Dashboard pages and Bokeh's socket are covered too; the access log redacts tokens.
    """
    find_handler = app.find_handler

    def guarded(request: HTTPServerRequest, **kwargs: Any) -> Any:
        if not security.host_allowed(request.host):
            return app.get_handler_delegate(request, _MisdirectedHandler, {"security": security})
        if security.token is None:
            return find_handler(request, **kwargs)
        if is_public_path(request.path):
            _drop_token(request)
            return find_handler(request, **kwargs)
        if not security.authorized(request):
            return app.get_handler_delegate(request, _UnauthorizedHandler, {"security": security})
        api = request.path.strip("/").split("/")[0] in (*API_PREFIXES, "health", "openapi.json")
        if request.method == "GET" and "token" in request.query_arguments and not api:
            return app.get_handler_delegate(request, _TokenCookieHandler, {"token": security.token})
        if not api:  # Bokeh's handlers log URIs themselves: they never see the token
            _drop_token(request)
        return find_handler(request, **kwargs)

    app.find_handler = guarded


class AppServer:
    """One listening HTTP server: the API, and the dashboard once a page is asked for.

    Made by :func:`build_server` (already listening); :meth:`start` and
    :meth:`stop` as for a Bokeh server.

    Parameters
    ----------
    app : tornado.web.Application
        The API application (its lookup also hands dashboard paths to ``dashboard``).
    http : tornado.httpserver.HTTPServer
        The listening server.
    port : int
        The port it listens on.
    loop : IOLoop
        Its loop.
    dashboard : LazyDashboard
        The dashboard, built on the first request for one of its paths.
    """

    def __init__(
        self, app: Application, http: HTTPServer, port: int, loop: IOLoop, dashboard: LazyDashboard
    ) -> None:
        self.app, self.port, self.io_loop, self.dashboard = app, port, loop, dashboard
        self._http = http
        self._show_url: str | None = None

    def start(self) -> None:
        """Open a browser tab when asked to (the server already listens)."""
        if self._show_url is not None:
            import webbrowser

            self.io_loop.add_callback(webbrowser.open, self._show_url)

    def stop(self) -> None:
        """Stop listening, and the dashboard's housekeeping."""
        self._http.stop()
        self.dashboard.stop()

    async def close_sessions(self) -> None:
        """Destroy the dashboard's browser sessions (see :meth:`LazyDashboard.close_sessions`)."""
        await self.dashboard.close_sessions()


def build_server(
    address: str = "127.0.0.1",
    port: int = 8000,
    *,
    ledger: Ledger | None = None,
    token: str | None = None,
    dashboard: bool = True,
    loop: IOLoop | None = None,
    num_procs: int = 1,
    show: bool = False,
    allow_hosts: tuple[str, ...] | list[str] = (),
    policy: SpecPolicy | None = None,
    capacity: Capacity | None = None,
    **session_options: Any,
) -> AppServer:
    """Create the server with the API routes, listening; the dashboard is built on demand.

    Nothing of Panel, Bokeh or HoloViews is imported until the first request for a
    dashboard page (or its resources): the API and the kill switch answer before.

    Parameters
    ----------
    address, port : str, int
        Where to listen.
    ledger : Ledger, optional
        The ledger (the process default otherwise).
    token : str, optional
        Bearer token (``$ALPHASWARM_TOKEN`` otherwise); required off loopback.
    dashboard : bool
        Serve the dashboard at ``/`` and its pages (a minimal page at ``/`` otherwise).
    loop : IOLoop, optional
        The IOLoop to run on (the current one otherwise).
    num_procs : int
        Worker processes (forked once the port is bound).
    show : bool
        Open a browser tab once started.
    allow_hosts : list of str
        More names the ``Host`` header may carry (the bound address, ``localhost``,
        ``127.0.0.1`` and ``[::1]`` always may).
    policy : SpecPolicy, optional
        What specs sent over HTTP may name (data/strategy directories, provider
        URLs, credential variables); from the environment when ``None``.
    capacity : Capacity, optional
        The thread pools (new ones when ``None``).
    **session_options
        Bokeh server session settings, e.g. ``unused_session_lifetime_milliseconds``
        and ``check_unused_sessions_milliseconds``.

    Raises
    ------
    ServerConfigError
        A non-loopback address without a token.
    """
    from tornado.httpserver import HTTPServer
    from tornado.ioloop import IOLoop
    from tornado.netutil import bind_sockets
    from tornado.process import fork_processes
    from tornado.web import Application

    security = Security.from_env(token, bind_address=address, allowed_hosts=allow_hosts)
    check_bind(address, security)
    app = Application(make_routes(ledger, security, policy, capacity))
    _not_found_and_log(app, security)
    sockets = bind_sockets(port, address or None)
    port = sockets[0].getsockname()[1]
    if num_procs != 1:
        fork_processes(num_procs)
    io_loop = loop if loop is not None else IOLoop.current()
    # Bokeh's origin list cannot hold IPv6 literals; the Host rule covers them
    names = {"localhost", "127.0.0.1", *security.allowed_hosts}
    if address:
        names.add(address)
    shown = f"[{address}]" if ":" in (address or "") else (address or "localhost")
    lazy = LazyDashboard(
        _page_apps if dashboard else (lambda: {"/": _placeholder}),
        url=f"http://{shown}:{port}/",
        websocket_origins=sorted(f"{n}:{port}" for n in names if ":" not in n),
        loop=io_loop,
        session_options=session_options,
        configure=lambda bokeh_app: _not_found_and_log(bokeh_app, security),
    )
    _dispatch(app, DashboardPaths(pages=dashboard), lazy)  # before the guard, which runs first
    _guard(app, security)
    http = HTTPServer(app, max_body_size=MAX_BODY_BYTES, max_buffer_size=MAX_BUFFER_BYTES)
    http.add_sockets(sockets)
    server = AppServer(app, http, port, io_loop, lazy)
    if show:
        server._show_url = f"http://{shown}:{port}/"
    return server


def _prepare_ledger(db_url: str | None) -> Ledger:
    from alphaswarm.ledger.store import process_owner
    from alphaswarm.paper.runtime import get_ledger, set_ledger

    ledger = set_ledger(db_url) if db_url else get_ledger()
    assert ledger is not None
    ledger.ensure_schema()
    if ledger.dialect == "postgresql":
        # Several servers may share this ledger: a stale heartbeat does not mean a dead
        # owner there. Owners' advisory locks decide (alphaswarm.paper.recovery, run by
        # set_ledger/get_ledger and every few seconds by the cluster listener).
        return ledger
    try:
        crashed = ledger.mark_crashed(90.0, exclude_owner=process_owner())
        if crashed:
            log.warning("marked %d orphaned run(s) crashed: %s", len(crashed), ", ".join(crashed))
    except Exception:  # noqa: BLE001 - recovery is best effort; serving must go on
        log.exception("could not mark orphaned runs")
    return ledger


def serve(
    address: str = "127.0.0.1",
    port: int = 8000,
    db_url: str | None = None,
    demo: bool = False,
    show: bool = False,
    token: str | None = None,
    dashboard: bool = True,
    num_procs: int = 1,
    switch_interval_ms: float = SERVER_SWITCH_INTERVAL_MS,
    allow_hosts: tuple[str, ...] | list[str] = (),
    data_dirs: tuple[str, ...] | list[str] = (),
    strategy_dirs: tuple[str, ...] | list[str] = (),
    feed_urls: tuple[str, ...] | list[str] = (),
    credential_envs: tuple[str, ...] | list[str] = (),
    *,
    tune_interpreter: bool = False,
) -> None:
    """Serve the dashboard and the API until SIGINT or SIGTERM (blocking).

    Either signal shuts down cleanly: every session of this process is stopped
    with the reason ``server shut down``, its final rows are written and its
    WebSocket clients receive their ``done`` frame before the process exits.

    Parameters
    ----------
    address : str
        Bind address; anything but loopback needs a token.
    port : int
        Port (8000 makes the tutorial's ``localhost:8000`` URLs work).
    db_url : str, optional
        Ledger URL; ``$ALPHASWARM_DB_URL`` or ``~/.alphaswarm/ledger.db`` otherwise.
    demo : bool
        Register, backtest and start the demo bot (idempotent).
    show : bool
        Open a browser tab.
    token : str, optional
        Require ``Authorization: Bearer <token>`` everywhere (``$ALPHASWARM_TOKEN``).
    dashboard : bool
        Serve the dashboard at ``/``.
    num_procs : int
        Worker processes (keep 1 with SQLite).
    switch_interval_ms : float
        With ``tune_interpreter``: how often, at most, a thread busy with Python
        code hands the interpreter lock to a waiting one
        (:func:`sys.setswitchinterval`, Python's own is 5 ms). The default 1 ms
        lets a request (a kill switch) reach its handler sooner while the engine
        thread processes bars. Checked even when tuning is off.
    allow_hosts : list of str
        More names the ``Host`` header may carry (``--allow-host``).
    data_dirs, strategy_dirs : list of str
        Where files named by specs sent over HTTP may be (``--data-dir``,
        ``--strategy-dir``); the working directory when empty.
    feed_urls : list of str
        Provider base URLs specs sent over HTTP may name (``--feed-url``).
    credential_envs : list of str
        More environment variables such specs may name for keys (``--credential-env``).
    tune_interpreter : bool
        Opt in to interpreter tuning for the rest of this call
        (:func:`alphaswarm.paper.tuning.enable`): the switch interval above, the heap
        frozen while sessions run and unfrozen and collected when none runs, no
        collection during a kill-switch halt. Everything is undone when the server
        stops. Off by default: the server then changes nothing interpreter-wide.

    Raises
    ------
    ServerConfigError
        A non-loopback address without a token, or a bad option value.
    """
    check_bind(address, Security.from_env(token))
    try:
        policy = SpecPolicy.create(data_dirs, strategy_dirs, feed_urls, credential_envs)
    except ValueError as exc:
        raise ServerConfigError(str(exc)) from None
    if isinstance(switch_interval_ms, bool) or not 0 < switch_interval_ms <= 100:
        raise ServerConfigError(f"switch_interval_ms must be in (0, 100], got {switch_interval_ms}")
    if tune_interpreter:
        tuning.enable(switch_interval_ms)
    try:
        _serve(address, port, db_url, demo, show, token, dashboard, num_procs, allow_hosts, policy)
    finally:
        if tune_interpreter:
            tuning.disable()


def _serve(
    address: str,
    port: int,
    db_url: str | None,
    demo: bool,
    show: bool,
    token: str | None,
    dashboard: bool,
    num_procs: int,
    allow_hosts: tuple[str, ...] | list[str],
    policy: SpecPolicy,
) -> None:
    ledger = _prepare_ledger(db_url)
    server = build_server(
        address, port, ledger=ledger, token=token, dashboard=dashboard, num_procs=num_procs,
        show=show, allow_hosts=allow_hosts, policy=policy,
    )  # fmt: skip
    server.start()
    _on_signals(server, (signal.SIGINT, signal.SIGTERM))
    from alphaswarm.paper.killswitch import kill_switch

    kill_switch().watch(lambda: True)  # follow other processes' engagements while serving
    starting = threading.Thread(target=_start_demo, args=(ledger,), name="alphaswarm-demo")
    if demo:  # the API answers while the demo bot is backtested and started
        starting.start()
    shown = f"[{address}]" if ":" in address else address
    print(f"alphaswarm serving http://{shown}:{server.port}/ (API: /openapi.json)")  # noqa: T201
    try:
        server.io_loop.start()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        if starting.is_alive():  # its session, once started, gets its final row too
            starting.join(SHUTDOWN_WRITES_SECONDS)
        _stop_sessions("server shut down")


def _start_demo(ledger: Ledger) -> None:
    """Register, backtest (when needed) and start the demo bot's session."""
    from alphaswarm.server.demo import ensure_demo

    try:
        session = ensure_demo(ledger)
    except Exception:  # noqa: BLE001 - the server goes on without its demo
        log.exception("the demo session could not be started")
        return
    if session is not None:
        log.info("demo session %s running at speed 60", session.paper_run_id)


def _on_signals(server: AppServer, signals: tuple[signal.Signals, ...]) -> None:
    """Shut down cleanly on these signals (a second one stops at once).

    Only :func:`serve`, which owns its process, calls this.
    """
    loop = server.io_loop.asyncio_loop  # type: ignore[attr-defined]
    state = {"stopping": False}

    def on_signal(signum: int) -> None:
        if state["stopping"]:
            loop.stop()
            return
        state["stopping"] = True
        name = signal.Signals(signum).name
        log.info("%s received: stopping sessions, then the server", name)
        asyncio.ensure_future(_shut_down(server, f"server shut down ({name})"), loop=loop)

    for sig in signals:
        try:
            loop.add_signal_handler(sig, on_signal, int(sig))
        except (RuntimeError, ValueError):  # not the main thread: Python's default applies
            log.warning("cannot handle %s here (not the main thread)", signal.Signals(sig).name)


async def _shut_down(server: AppServer, reason: str) -> None:
    """Stop every session, give WebSocket clients their ``done`` frame, stop the loop."""
    loop = asyncio.get_running_loop()
    try:
        await loop.run_in_executor(None, _stop_sessions, reason)
        deadline = time.monotonic() + SHUTDOWN_GRACE_SECONDS
        while PaperSocket.streaming() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
    except Exception:  # noqa: BLE001 - the process must still exit
        log.exception("clean shutdown failed")
    finally:
        server.io_loop.stop()


def _stop_sessions(reason: str) -> None:
    """Give every session of this process its final row before the process exits."""
    from alphaswarm.paper.registry import registry

    running = registry().running()
    if running:
        log.info("stopping %d paper session(s): %s", len(running), reason)
        registry().stop_many(running, "stopped", reason)
        # what a busy ledger did not take at once is written in the background: wait
        from alphaswarm.paper.final_writes import final_writes

        deadline = time.monotonic() + SHUTDOWN_WRITES_SECONDS
        for session in running:
            session.wait(max(0.0, deadline - time.monotonic()))
        final_writes().wait_idle(max(0.0, deadline - time.monotonic()))


class ServerThread:
    """The server running on a background thread (tests, notebooks).

    Parameters
    ----------
    address, port : str, int
        Where to listen (pick a free port yourself; 0 is not supported).
    ledger : Ledger, optional
        The ledger.
    token : str, optional
        Bearer token.
    dashboard : bool
        Serve the dashboard.
    **options
        More :func:`build_server` options (``allow_hosts``, ``policy``, ``capacity``).
    """

    def __init__(
        self,
        address: str = "127.0.0.1",
        port: int = 8000,
        *,
        ledger: Ledger | None = None,
        token: str | None = None,
        dashboard: bool = True,
        **options: Any,
    ) -> None:
        self.address, self.port = address, port
        self._own_capacity = options.get("capacity") is None
        if self._own_capacity:
            options["capacity"] = Capacity()
        self._kwargs = {"ledger": ledger, "token": token, "dashboard": dashboard, **options}
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self.server: AppServer | None = None
        self._thread = threading.Thread(target=self._run, name="alphaswarm-server", daemon=True)

    @property
    def url(self) -> str:
        """``http://address:port`` (an IPv6 address in brackets)."""
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"http://{host}:{self.port}"

    def _run(self) -> None:
        from tornado.ioloop import IOLoop

        asyncio.set_event_loop(asyncio.new_event_loop())
        loop = IOLoop.current()
        try:
            self.server = build_server(self.address, self.port, loop=loop, **self._kwargs)
            self.server.start()
        except BaseException as exc:  # noqa: BLE001 - reported to start()
            self._error = exc
            self._ready.set()
            return
        self._loop = loop
        loop.add_callback(self._ready.set)
        loop.start()
        self.server.stop()
        loop.close(all_fds=True)

    def start(self, timeout: float = 30.0) -> ServerThread:
        """Start and wait until listening."""
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError("the server did not start")
        if self._error is not None:
            raise self._error
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server and its thread; its browser sessions are destroyed first."""
        loop = getattr(self, "_loop", None)
        if loop is not None:

            async def close_then_stop() -> None:
                try:
                    await self.server.close_sessions()
                    # what the closed pages left scheduled ends here, not with the loop
                    pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
                    for task in pending:
                        task.cancel()
                    if pending:
                        await asyncio.wait(pending, timeout=timeout / 4)
                finally:
                    loop.stop()

            loop.add_callback(close_then_stop)
        self._thread.join(timeout)
        if self._own_capacity:
            self._kwargs["capacity"].shutdown()
