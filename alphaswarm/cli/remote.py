"""The ``--url`` backend: the same commands against a running ``alphaswarm serve``.

HTTP goes through the standard library; a ``paper run`` streams its frames from
``WS /ws/paper/{id}`` with the ``websockets`` package (and falls back to polling
``GET /paper/{id}`` once a second when that package is missing).
"""

from __future__ import annotations

import dataclasses
import json
import signal
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import TYPE_CHECKING, Any

from alphaswarm.cli.embedded import (
    BacktestOptions,
    PaperOptions,
    SignalTrap,
    looks_like_file,
    version_rows,
)
from alphaswarm.cli.errors import (
    EXIT_ERROR,
    EXIT_GATE_REFUSED,
    EXIT_KILL_SWITCH,
    EXIT_SERVER,
    CliError,
)

if TYPE_CHECKING:
    from alphaswarm.bots import Bot
    from alphaswarm.cli.output import FramePrinter

FINAL_STATUSES = ("completed", "stopped", "halted", "killed", "failed", "refused", "crashed")
_LOOPBACK = ("localhost", "127.0.0.1", "::1", "[::1]")


class RemoteBackend:
    """Commands sent to the server at ``url`` (``http://host:port``).

    Parameters
    ----------
    url : str
        Base URL of the server.
    token : str, optional
        Sent as ``Authorization: Bearer <token>``.
    timeout : float
        Seconds to wait for each HTTP answer.
    """

    mode = "remote"

    def __init__(self, url: str, token: str | None = None, timeout: float = 60.0) -> None:
        parsed = urllib.parse.urlsplit(url if "://" in url else f"http://{url}")
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise CliError(f"--url: expected http://host:port, got {url!r}")
        self.base = f"{parsed.scheme}://{parsed.netloc}{parsed.path.rstrip('/')}"
        self.token = token or None
        self.timeout = timeout
        handlers: list[Any] = []
        if parsed.hostname in _LOOPBACK:
            handlers.append(urllib.request.ProxyHandler({}))  # never proxy loopback
        self._opener = urllib.request.build_opener(*handlers)

    # -- HTTP ------------------------------------------------------------------------
    def request(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        query: dict[str, Any] | None = None,
    ) -> Any:
        """Send one request and return the decoded JSON answer.

        Raises
        ------
        CliError
            With the server's ``detail`` and an exit code that fits the status.
        """
        url = self.base + path
        if query:
            query = {k: v for k, v in query.items() if v is not None}
            if query:
                url += "?" + urllib.parse.urlencode(query)
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(url, data=data, method=method)
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if self.token:
            req.add_header("Authorization", f"Bearer {self.token}")
        try:
            with self._opener.open(req, timeout=self.timeout) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            raise self._http_error(method, path, exc) from None
        except (urllib.error.URLError, OSError) as exc:
            why = getattr(exc, "reason", exc)
            raise CliError(
                f"cannot reach the server at {self.base}: {why}",
                EXIT_SERVER,
                hint="is `alphaswarm serve` running there? (or drop --url to use the ledger)",
            ) from None
        if not raw:
            return {}
        try:
            return json.loads(raw)
        except ValueError:
            raise CliError(
                f"{method} {path}: the server answered with something that is not JSON",
                EXIT_SERVER,
            ) from None

    def _http_error(self, method: str, path: str, exc: urllib.error.HTTPError) -> CliError:
        try:
            payload = json.loads(exc.read() or b"{}")
        except ValueError:
            payload = {}
        if not isinstance(payload, dict):
            payload = {"detail": payload}
        detail = payload.get("detail") or payload.get("error") or exc.reason
        error = str(payload.get("error") or "")
        status = exc.code
        if status == 409 and (error == "gate_refused" or payload.get("errors")):
            return CliError(
                "the paper gate refused to start the session",
                EXIT_GATE_REFUSED,
                details=_judged(payload) + [str(e) for e in payload.get("errors") or [detail]],
                hint="run `alphaswarm backtest BOT` first, choose one with --backtest ID, "
                "or pass --force --reason TEXT",
            )
        if status == 409 and ("kill_switch" in error or "kill switch" in str(detail)):
            return CliError(
                str(detail), EXIT_KILL_SWITCH, hint="release it with `alphaswarm kill --reset`"
            )
        if status == 401:
            return CliError(
                f"{status} unauthorized: {detail}",
                EXIT_ERROR,
                hint="pass --token TOKEN or set ALPHASWARM_TOKEN",
            )
        code = EXIT_SERVER if status >= 500 else EXIT_ERROR
        return CliError(f"{method} {path}: {status} {detail}", code)

    # -- bots ------------------------------------------------------------------------
    def bot_id(self, ref: str) -> str:
        """Create the bot when ``ref`` is a file; otherwise ``ref`` is the bot id."""
        if looks_like_file(ref):
            return self.create_bot(self.load_bot(ref))["bot_id"]
        return ref

    @staticmethod
    def load_bot(ref: str) -> Bot:
        """Read a bot file here (``strategy_config`` resolves beside it)."""
        from alphaswarm.bots import Bot

        return Bot.load(ref)

    def create_bot(self, bot: Bot) -> dict[str, Any]:
        """``POST /bots`` with the bot's normalised spec."""
        return self.request("POST", "/bots", bot.spec)

    def list_bots(self) -> list[dict[str, Any]]:
        """``GET /bots``."""
        return _items(self.request("GET", "/bots"), "bots")

    def show_bot(self, ref: str) -> dict[str, Any]:
        """``GET /bots/{id}`` and its versions."""
        bot = self.request("GET", f"/bots/{_q(ref)}")
        versions = _items(self.request("GET", f"/bots/{_q(ref)}/versions"), "versions")
        bot["versions"] = version_rows(versions)
        return bot

    # -- backtest --------------------------------------------------------------------
    def backtest(self, ref: str, options: BacktestOptions) -> dict[str, Any]:
        """``POST /bots/{id}/backtest``."""
        bot_id = self.bot_id(ref)
        body = dataclasses.asdict(options)
        result = self.request(
            "POST",
            f"/bots/{_q(bot_id)}/backtest",
            {k: v for k, v in body.items() if v is not None},
        )
        metrics = result.get("metrics") or {
            k: v for k, v in result.items() if isinstance(v, int | float)
        }
        bot = self.request("GET", f"/bots/{_q(bot_id)}")
        return {
            "id": result.get("id") or result.get("backtest_id"),
            "bot_id": result.get("bot_id", bot_id),
            "bot_version": result.get("bot_version"),
            "bars": result.get("bars"),
            "elapsed": result.get("elapsed_seconds"),
            "metrics": metrics,
            "halted": result.get("halted"),
            "sharpe_on_bot": bot.get("sharpe"),
        }

    # -- paper -----------------------------------------------------------------------
    def paper_run(self, ref: str, options: PaperOptions, printer: FramePrinter) -> dict[str, Any]:
        """Start a session on the server and stream its frames until it ends."""
        bot_id = self.bot_id(ref)
        body: dict[str, Any] = {
            "starting_cash": options.starting_cash,
            "duration_minutes": options.duration_minutes,
            "speed": options.speed,
            "max_bars": options.max_bars,
            "run_name": options.run_name or None,
            "backtest_id": options.backtest_id,
        }
        if options.force:
            body.update(force=True, reason=options.reason)
        body = {k: v for k, v in body.items() if v is not None}
        with SignalTrap() as trap:
            started = self.request("POST", f"/bots/{_q(bot_id)}/paper", body)
            run_id = started.get("paper_run_id") or started.get("task_id")
            if not run_id:
                raise CliError("POST /bots/{id}/paper: the answer has no paper_run_id", EXIT_SERVER)
            stream = started.get("stream_url") or f"/ws/paper/{run_id}"
            try:
                from websockets.sync.client import connect  # noqa: F401
            except ImportError:
                printer.note("(the websockets package is missing: polling GET /paper/{id})")
                self._poll_run(run_id, printer, trap)
            else:
                self._stream(run_id, stream, printer, trap)
        run = self.request("GET", f"/paper/{_q(run_id)}")
        final = {**run, "paper_run_id": run_id, "signal": trap.received}
        final["equity"] = run.get("final_equity")
        return final

    def _ws_url(self, stream: str) -> str:
        base = urllib.parse.urlsplit(self.base)
        scheme = "wss" if base.scheme == "https" else "ws"
        path = stream if stream.startswith("/") else "/" + stream
        sep = "&" if "?" in path else "?"
        return f"{scheme}://{base.netloc}{path}{sep}since=0"

    def _stream(self, run_id: str, stream: str, printer: FramePrinter, trap: SignalTrap) -> None:
        from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
        from websockets.sync.client import connect

        headers = {"Authorization": f"Bearer {self.token}"} if self.token else None
        url = self._ws_url(stream)
        try:
            try:
                ws = connect(url, additional_headers=headers, proxy=None, open_timeout=10)
            except TypeError:  # websockets < 15 has no proxy option
                ws = connect(url, additional_headers=headers, open_timeout=10)
        except InvalidStatus as exc:
            raise CliError(
                f"WebSocket {stream}: refused with HTTP {exc.response.status_code}", EXIT_SERVER
            ) from None
        except (InvalidHandshake, OSError, TimeoutError) as exc:
            raise CliError(f"WebSocket {stream}: {exc}", EXIT_SERVER) from None
        stop_sent_at: float | None = None
        with ws:
            while True:
                if trap.received is not None and stop_sent_at is None:
                    stop_sent_at = time.monotonic()
                    name = signal.Signals(trap.received).name
                    printer.note(f"{name}: stopping paper run {run_id} ...")
                    self._stop_quietly(run_id, f"interrupted by {name}")
                if stop_sent_at is not None and time.monotonic() - stop_sent_at > 15:
                    return
                try:
                    message = ws.recv(timeout=0.25)
                except TimeoutError:
                    printer.tick()
                    continue
                except ConnectionClosed:
                    return
                try:
                    frame = json.loads(message)
                except ValueError:
                    continue
                if not isinstance(frame, dict):
                    continue
                printer.frame(frame)
                if frame.get("stage") == "error" and frame.get("seq") is None:
                    raise CliError(f"WebSocket {stream}: {frame.get('message')}", EXIT_SERVER)
                if frame.get("stage") == "done":
                    return
                printer.tick()

    def _stop_quietly(self, run_id: str, reason: str) -> None:
        try:
            self.request("POST", f"/paper/{_q(run_id)}/stop", {"reason": reason})
        except CliError as exc:
            sys.stderr.write(f"alphaswarm: could not stop {run_id}: {exc.message}\n")

    def _poll_run(self, run_id: str, printer: FramePrinter, trap: SignalTrap) -> None:
        stop_sent = False
        while True:
            if trap.received is not None and not stop_sent:
                stop_sent = True
                self._stop_quietly(run_id, f"interrupted by {signal.Signals(trap.received).name}")
            run = self.request("GET", f"/paper/{_q(run_id)}")
            live = run.get("live") or {}
            printer.update(
                status=run.get("status"),
                equity=live.get("equity", run.get("final_equity")),
                total_pnl=live.get("total_pnl", run.get("total_pnl")),
                num_fills=live.get("num_fills", run.get("num_fills")),
                bars_seen=live.get("bars_seen", run.get("bars_seen")),
            )
            if run.get("status") in FINAL_STATUSES:
                return
            printer.tick(force=True)
            time.sleep(1.0)

    def paper_stop(self, run_id: str, reason: str, wait: float) -> dict[str, Any]:
        """``POST /paper/{id}/stop``, then the run row."""
        before = self.request("GET", f"/paper/{_q(run_id)}")
        if before.get("status") in FINAL_STATUSES:
            return {**before, "already": True}
        self.request("POST", f"/paper/{_q(run_id)}/stop", {"reason": reason})
        return {**self.request("GET", f"/paper/{_q(run_id)}"), "already": False}

    def paper_list(
        self, status: str | None = None, bot: str | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """``GET /paper``."""
        return _items(
            self.request("GET", "/paper", query={"status": status, "bot_id": bot, "limit": limit}),
            "runs",
        )

    def paper_show(self, run_id: str) -> dict[str, Any]:
        """``GET /paper/{id}`` and the count of ``GET /paper/{id}/fills``."""
        run = self.request("GET", f"/paper/{_q(run_id)}")
        fills = _items(self.request("GET", f"/paper/{_q(run_id)}/fills"), "fills")
        run["fills_count"] = len(fills)
        return run

    # -- kill switch -----------------------------------------------------------------
    def kill(
        self, mode: str, reason: str, ttl_seconds: float | None, bot: str | None
    ) -> dict[str, Any]:
        """``POST /kill-switch`` (or ``POST /bots/{id}/halt``)."""
        if bot:
            result = self.request("POST", f"/bots/{_q(bot)}/halt", {"reason": reason, "mode": mode})
            return {
                "engaged": False,
                "mode": mode,
                "reason": reason,
                "bot": bot,
                "targets": {result.get("target", f"bot:{bot}"): result},
                "failures": result.get("failures") or [],
                "elapsed_ms": result.get("elapsed_ms"),
            }
        body = {"mode": mode, "reason": reason, "ttl_seconds": ttl_seconds}
        return self.request(
            "POST", "/kill-switch", {k: v for k, v in body.items() if v is not None}
        )

    def kill_reset(self, bot: str | None) -> dict[str, Any]:
        """``POST /kill-switch/reset``."""
        return self.request("POST", "/kill-switch/reset", {"bot": bot} if bot else {})

    def kill_status(self) -> dict[str, Any]:
        """``GET /kill-switch``."""
        return self.request("GET", "/kill-switch")


def _q(value: str) -> str:
    return urllib.parse.quote(str(value), safe="")


def _items(payload: Any, key: str) -> list[dict[str, Any]]:
    if isinstance(payload, list):
        return payload
    if isinstance(payload, dict) and isinstance(payload.get(key), list):
        return payload[key]
    return []


def _judged(payload: dict[str, Any]) -> list[str]:
    """``judged backtest ...`` from a gate refusal's body, when it names one."""
    judged = (payload.get("gate") or {}).get("judged") if isinstance(payload, dict) else None
    return [f"judged backtest {judged['text']}"] if isinstance(judged, dict) else []
