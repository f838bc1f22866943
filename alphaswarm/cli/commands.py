"""The ``alphaswarm`` command line: argument parsing and one handler per command."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import TYPE_CHECKING, Any, NoReturn

from alphaswarm.cli.errors import (
    EXIT_CODES_HELP,
    EXIT_ERROR,
    EXIT_GATE_REFUSED,
    EXIT_INTERRUPTED,
    EXIT_KILL_SWITCH,
    EXIT_OK,
    EXIT_SESSION_FAILED,
    CliError,
)
from alphaswarm.cli.output import (
    RUN_COLUMNS,
    FramePrinter,
    print_kv,
    print_metrics,
    print_table,
    status_text,
    to_json,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

PROG = "alphaswarm"
KILL_MODES = ("cancel", "flatten", "reduce_only", "freeze")
RUN_STATUSES = (
    "running",
    "completed",
    "stopped",
    "halted",
    "killed",
    "failed",
    "refused",
    "crashed",
)


DESCRIPTION = """\
AlphaSwarm paper-trading kit: bots, backtests, paper sessions and the kill switch.

Every command works on the embedded ledger (--db URL, else $ALPHASWARM_DB_URL, else
~/.alphaswarm/ledger.db) without a server, or against a running `alphaswarm serve`
with --url http://host:port.

quick start:
  alphaswarm demo                         register, backtest and paper trade sma-demo
  alphaswarm bots create bot.yaml         register a bot (a changed spec: new version)
  alphaswarm backtest bot.yaml --bars 7800
  alphaswarm paper run bot.yaml --speed 60 --duration 60
  alphaswarm kill --reason "enough"       engage the kill switch; `kill --reset` releases
"""


# --------------------------------------------------------------------------- parsing


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line and exit with code 1."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_ERROR, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def _number(text: str, kind: type[float] | type[int], zero_allowed: bool) -> Any:
    """``text`` read as ``kind``: finite, > 0 (>= 0 with ``zero_allowed``)."""
    noun = "a number" if kind is float else "a whole number"
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {noun}, got {text!r}") from None
    if not (value >= 0 if zero_allowed else value > 0) or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be {noun} {'>=' if zero_allowed else '>'} 0, "
                                         f"got {text}")  # fmt: skip
    return value


def _positive_float(text: str) -> float:
    return _number(text, float, zero_allowed=False)


def _non_negative_float(text: str) -> float:
    return _number(text, float, zero_allowed=True)


def _positive_int(text: str) -> int:
    return _number(text, int, zero_allowed=False)


def _date(text: str) -> str:
    """A ``--start``/``--end`` value, checked before anything runs (kept as text)."""
    from alphaswarm.data.base import FeedError, to_ns

    try:
        to_ns(text, name="date")
    except (FeedError, ValueError, OverflowError):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a valid date or timestamp (use e.g. 2024-01-31 or 2024-01-31T14:30)"
        ) from None
    return text


def _port(text: str) -> int:
    value = _positive_int(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"must be a port number 1-65535, got {text}")
    return value


#: Global options taking a value: flag, metavar, help.
_GLOBAL_VALUES = (
    ("--db", "URL",
     "ledger URL (or SQLite file path); default $ALPHASWARM_DB_URL or ~/.alphaswarm/ledger.db"),
    ("--url", "URL",
     "talk to a running server (http://host:port) over its REST API instead"),
    ("--token", "T",
     "bearer token for --url (and for `serve`); default $ALPHASWARM_TOKEN"),
)  # fmt: skip
#: Global on/off options: flag, help.
_GLOBAL_SWITCHES = (
    ("--json", "machine-readable output (JSON; one JSON frame per line for `paper run`)"),
    ("--debug", "show tracebacks and engine log messages"),
)
#: ``serve``'s repeatable allow-lists of what bots sent over HTTP may name: flag, metavar, help.
_SERVE_ALLOW_LISTS = (
    ("--allow-host", "NAME",
     "another name the Host header may carry (repeatable; the bound address, "
     "localhost, 127.0.0.1 and [::1] always may): refuses DNS-rebinding requests"),
    ("--data-dir", "DIR",
     "where replay/recording files named by bots sent over HTTP may be "
     "(repeatable; default: the working directory)"),
    ("--strategy-dir", "DIR",
     "where strategy_config files named by bots sent over HTTP may be "
     "(repeatable; default: the working directory)"),
    ("--feed-url", "URL",
     "a provider base URL bots sent over HTTP may name in data.urls / "
     "data.config.urls (repeatable; e.g. a local test server)"),
    ("--credential-env", "NAME",
     "another environment variable bots sent over HTTP may name as key_env / "
     "secret_env (repeatable; ALPACA_API_KEY and ALPACA_SECRET_KEY always may)"),
)  # fmt: skip


def _add_globals(parser: argparse.ArgumentParser, suppress: bool) -> None:
    """The global options; repeated on every command so they work in either position."""

    def default(value: Any) -> Any:
        return argparse.SUPPRESS if suppress else value

    group = parser.add_argument_group("global options")
    for flag, metavar, help_text in _GLOBAL_VALUES:
        group.add_argument(flag, metavar=metavar, default=default(None), help=help_text)
    for flag, help_text in _GLOBAL_SWITCHES:
        group.add_argument(flag, action="store_true", default=default(False), help=help_text)


def build_parser() -> argparse.ArgumentParser:
    """Build the ``alphaswarm`` argument parser.

    Returns
    -------
    argparse.ArgumentParser
        The parser; every leaf command sets ``func`` to its handler.
    """
    common = _Parser(add_help=False)
    _add_globals(common, suppress=True)
    fmt = argparse.RawDescriptionHelpFormatter
    parser = _Parser(
        prog=PROG, description=DESCRIPTION, epilog=EXIT_CODES_HELP, formatter_class=fmt
    )
    _add_globals(parser, suppress=False)
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    sub.required = True

    def leaf(
        container: Any, name: str, help_text: str, func: Any, description: str = ""
    ) -> argparse.ArgumentParser:
        p = container.add_parser(
            name,
            help=help_text,
            description=description or help_text,
            parents=[common],
            formatter_class=fmt,
            epilog=EXIT_CODES_HELP,
        )
        p.set_defaults(func=func)
        return p

    # serve
    p = leaf(
        sub,
        "serve",
        "start the dashboard and the REST/WebSocket API on one port",
        cmd_serve,
        "Start the Panel dashboard and the REST + WebSocket API on one Tornado server.\n"
        "The global --db and --token apply to the server.",
    )
    p.add_argument("--address", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=_port, default=8000, help="port (default 8000)")
    p.add_argument("--demo", action="store_true", help="create, backtest and run the demo bot")
    p.add_argument("--show", action="store_true", help="open the dashboard in a browser")
    p.add_argument(
        "--tune-interpreter",
        action="store_true",
        help="tune this server's interpreter for many sessions and fast halts: a shorter "
        "switch interval, the heap frozen while sessions run (unfrozen and collected when "
        "none runs), no collection during a kill-switch halt. Off by default",
    )
    p.add_argument(
        "--switch-interval-ms",
        type=float,
        default=1.0,
        help="with --tune-interpreter: how often a busy thread hands over the interpreter "
        "lock, in ms (default 1; Python's own is 5)",
    )
    for flag, metavar, help_text in _SERVE_ALLOW_LISTS:
        p.add_argument(flag, action="append", default=[], metavar=metavar, help=help_text)

    # bots
    bots = sub.add_parser(
        "bots", help="create, list and show bots", description="Create, list and show bots."
    )
    bots_sub = bots.add_subparsers(dest="bots_command", metavar="COMMAND", title="commands")
    bots_sub.required = True
    p = leaf(
        bots_sub,
        "create",
        "register a bot from a YAML or JSON file",
        cmd_bots_create,
        "Register a bot from a YAML or JSON file and print its bot_id, version and\n"
        "spec_hash. The same spec keeps its version; a changed spec becomes the next one.\n"
        "A relative strategy_config path is read beside the bot file.",
    )
    p.add_argument("file", metavar="FILE", help="bot file (.yaml, .yml or .json)")
    leaf(bots_sub, "list", "list bots with their latest version and Sharpe", cmd_bots_list)
    p = leaf(bots_sub, "show", "show one bot: spec, versions, latest backtest", cmd_bots_show)
    p.add_argument("bot", metavar="BOT", help="bot id or name")

    # backtest
    p = leaf(
        sub,
        "backtest",
        "backtest a bot and store the run",
        cmd_backtest,
        "Backtest a bot (a bot file, or a bot id in the ledger) with the paper engine,\n"
        "store the backtest_runs row, print the metrics and whether the paper gate\n"
        "would pass. Without --bars/--start/--end a synthetic feed runs 7,800 bars\n"
        "(twenty trading days of minute bars) and a replay feed runs all its bars.",
    )
    p.add_argument("bot", metavar="BOT_OR_FILE", help="bot id or name, or a bot file")
    p.add_argument("--bars", type=_positive_int, help="number of bars (timestamps) to run")
    p.add_argument(
        "--start", metavar="DATE", type=_date, help="first bar time (inclusive), e.g. 2024-01-01"
    )
    p.add_argument(
        "--end", metavar="DATE", type=_date, help="last bar time (inclusive; a date: whole day)"
    )
    p.add_argument("--cash", type=_positive_float, help="starting cash (default 100000)")

    # paper
    paper = sub.add_parser(
        "paper",
        help="run, stop, list and show paper sessions",
        description="Run, stop, list and show paper sessions.",
    )
    paper_sub = paper.add_subparsers(dest="paper_command", metavar="COMMAND", title="commands")
    paper_sub.required = True
    p = leaf(
        paper_sub,
        "run",
        "run a paper session here, printing its frames live",
        cmd_paper_run,
        "Start a paper session (after the paper gate) and print its frames live, one\n"
        "line each (time, seq, stage, message), with a status line (equity, P&L,\n"
        "fills, bars). The command ends with the session.\n\n"
        "Ctrl-C (SIGINT) stops the session cleanly: its open orders are cancelled, the\n"
        "run is recorded with status `stopped` and the command exits with code 130\n"
        "(SIGTERM: the same, code 143). A second Ctrl-C gives up waiting.\n\n"
        "`alphaswarm paper stop ID` and `alphaswarm kill` from another terminal reach\n"
        "this session through the ledger within half a second.",
    )
    p.add_argument("bot", metavar="FILE_OR_BOT", help="bot file, or bot id or name")
    p.add_argument(
        "--cash", type=_positive_float, default=100_000.0, help="starting cash (default 100000)"
    )
    p.add_argument(
        "--duration",
        type=_positive_float,
        metavar="MIN",
        help="stop after MIN minutes of bar time (default: until the data ends or Ctrl-C)",
    )
    p.add_argument(
        "--speed",
        type=_non_negative_float,
        default=1.0,
        metavar="S",
        help="1 = real time (default), 60 = a minute bar per second, 0 = as fast as possible",
    )
    p.add_argument("--max-bars", type=_positive_int, metavar="N", help="stop after N bars")
    p.add_argument(
        "--feed",
        metavar="FEED",
        help="trade another feed without editing the bot: ccxt:<exchange>, alpaca[:iex|sip], "
        "recording:<path>, synthetic or sample (the changed bot is backtested on it first)",
    )
    p.add_argument(
        "--symbols",
        metavar="SYMS",
        help="comma-separated universe for --feed (e.g. BTC/USDT)",
    )
    p.add_argument(
        "--backtest",
        metavar="ID",
        help="the backtest the paper gate judges (of the bot's current version; "
        "the most recent one by default)",
    )
    p.add_argument("--force", action="store_true", help="override a gate refusal (needs --reason)")
    p.add_argument("--reason", default="", metavar="TEXT", help="why the gate is forced (audited)")
    p.add_argument("--name", default="", metavar="TEXT", help="a label for the run")
    p.add_argument(
        "--quiet", action="store_true", help="no frame lines, only the status line and the result"
    )
    p = leaf(
        paper_sub,
        "stop",
        "stop a running paper session",
        cmd_paper_stop,
        "Stop a running paper session. Embedded: the session's process (an\n"
        "`alphaswarm paper run`) sees the request in the ledger and stops it; a run whose\n"
        "process is gone is closed as stopped. With --url: POST /paper/{id}/stop.",
    )
    p.add_argument("run_id", metavar="ID", help="paper run id")
    p.add_argument("--reason", default="stopped by `alphaswarm paper stop`", metavar="TEXT")
    p.add_argument(
        "--wait",
        type=_positive_float,
        default=10.0,
        metavar="SECONDS",
        help="how long to wait for the session to stop (default 10)",
    )
    p = leaf(paper_sub, "list", "list paper runs, newest first", cmd_paper_list)
    p.add_argument("--status", choices=RUN_STATUSES, help="only runs with this status")
    p.add_argument("--bot", metavar="BOT", help="only runs of this bot")
    p.add_argument("--limit", type=_positive_int, default=20, help="at most N runs (default 20)")
    p = leaf(paper_sub, "show", "show one paper run and its number of fills", cmd_paper_show)
    p.add_argument("run_id", metavar="ID", help="paper run id")

    # kill
    p = leaf(
        sub,
        "kill",
        "engage, reset or show the kill switch",
        cmd_kill,
        "Engage the kill switch: it latches (until --reset or --ttl) and halts every\n"
        "paper session. Modes: cancel (stop sessions, cancel open orders; default),\n"
        "flatten (also close positions), reduce_only (sessions go on, only orders that\n"
        "shrink exposure pass), freeze (sessions go on, no new orders).",
    )
    action = p.add_mutually_exclusive_group()
    action.add_argument("--reset", action="store_true", help="release the kill switch")
    action.add_argument("--status", action="store_true", help="show the kill switch state")
    p.add_argument("--mode", choices=KILL_MODES, default="cancel", help="default cancel")
    p.add_argument("--reason", default="kill switch engaged from the CLI", metavar="TEXT")
    p.add_argument(
        "--ttl", type=_positive_float, metavar="SECONDS", help="release itself after SECONDS"
    )
    p.add_argument("--bot", metavar="BOT", help="halt (or with --reset release) only this bot")

    # demo
    p = leaf(
        sub,
        "demo",
        "the quick terminal demo: sma-demo bot, backtest, short paper replay",
        cmd_demo,
        "Register the demo bot sma-demo (SMA cross 10/30 on a seeded synthetic DEMO\n"
        "feed), backtest it, print the metrics, then replay 390 minute bars (one\n"
        "trading day) as a paper session at speed 0 and print a frame summary and the\n"
        "final paper_trading_runs row.",
    )
    p.add_argument("--bars", type=_positive_int, default=7800, help="backtest bars (default 7800)")
    p.add_argument(
        "--paper-bars", type=_positive_int, default=390, help="paper replay bars (default 390)"
    )

    # sweep run|resume|status|top|rerun
    from alphaswarm.cli.sweep import add_parser as add_sweep_parser

    add_sweep_parser(sub)
    return parser


def _version() -> str:
    from alphaswarm import __version__  # the package's own: no distribution metadata scan

    return __version__


# --------------------------------------------------------------------------- backends


def _backend(args: argparse.Namespace) -> Any:
    if args.url:
        if args.db:
            raise CliError("use --db (embedded ledger) or --url (a server), not both")
        from alphaswarm.cli.remote import RemoteBackend

        return RemoteBackend(args.url, args.token or os.environ.get("ALPHASWARM_TOKEN"))
    from alphaswarm.cli.embedded import EmbeddedBackend

    return EmbeddedBackend(args.db)


def _out(args: argparse.Namespace, value: Any) -> bool:
    """Print ``value`` as JSON when --json was given; True when it did."""
    if args.json:
        sys.stdout.write(to_json(value) + "\n")
        return True
    return False


# --------------------------------------------------------------------------- commands


def cmd_serve(args: argparse.Namespace) -> int:
    """``alphaswarm serve``: the dashboard and the API on one port."""
    try:
        from alphaswarm.server.app import serve
    except ImportError as exc:
        raise CliError(f"the server is not available: {exc}") from None
    from alphaswarm.cli.embedded import ledger_url
    from alphaswarm.cli.server_logging import keep_server_logging

    keep_server_logging()  # a sweep in this process must not silence the access log
    serve(
        address=args.address,
        port=args.port,
        db_url=ledger_url(args.db),
        demo=args.demo,
        show=args.show,
        token=args.token or os.environ.get("ALPHASWARM_TOKEN") or None,
        tune_interpreter=args.tune_interpreter,
        switch_interval_ms=args.switch_interval_ms,
        allow_hosts=args.allow_host,
        data_dirs=args.data_dir,
        strategy_dirs=args.strategy_dir,
        feed_urls=args.feed_url,
        credential_envs=args.credential_env,
    )
    return EXIT_OK


def _bot_file(path: str) -> Any:
    from alphaswarm.bots import Bot

    return Bot.load(path)


def cmd_bots_create(args: argparse.Namespace) -> int:
    """``alphaswarm bots create FILE``."""
    bot = _bot_file(args.file)
    backend = _backend(args)
    result = backend.create_bot(bot)
    if not _out(args, result):
        print_kv(
            [
                ("bot_id", result.get("bot_id")),
                ("version", result.get("version")),
                ("spec_hash", result.get("spec_hash")),
            ]
        )
        created = result.get("created")
        if created is not None:
            print("new version" if created else "unchanged spec: same version")
    return EXIT_OK


def cmd_bots_list(args: argparse.Namespace) -> int:
    """``alphaswarm bots list``."""
    bots = _backend(args).list_bots()
    if _out(args, bots):
        return EXIT_OK
    if not bots:
        print("no bots yet: `alphaswarm bots create FILE` or `alphaswarm demo`")
        return EXIT_OK
    rows = []
    for bot in bots:
        ref = bot.get("backtest_runs") or {}
        rows.append(
            {
                "id": bot.get("id") or bot.get("bot_id"),
                "name": bot.get("name"),
                "version": bot.get("latest_version", bot.get("version")),
                "sharpe": bot.get("sharpe"),
                "backtest": ref.get("id"),
                "created_at": bot.get("created_at"),
            }
        )
    print_table(rows, ("id", "name", "version", "sharpe", "backtest", "created_at"))
    return EXIT_OK


def cmd_bots_show(args: argparse.Namespace) -> int:
    """``alphaswarm bots show BOT``."""
    bot = _backend(args).show_bot(args.bot)
    if _out(args, bot):
        return EXIT_OK
    ref = bot.get("backtest_runs") or {}
    print_kv(
        [
            ("bot_id", bot.get("id") or bot.get("bot_id")),
            ("name", bot.get("name")),
            ("version", bot.get("latest_version", bot.get("version"))),
            ("spec_hash", bot.get("spec_hash")),
            ("created_at", bot.get("created_at")),
            ("backtest", ref.get("id")),
            ("sharpe", bot.get("sharpe")),
            ("max_drawdown", ref.get("max_drawdown")),
            ("paper_runs", bot.get("paper_runs")),
        ]
    )
    versions = bot.get("versions") or []
    if versions:
        print("versions:")
        for v in versions:
            print(f"  v{v.get('version')}  {v.get('spec_hash')}  {v.get('created_at')}")
    if bot.get("spec"):
        import yaml

        print("spec:")
        text = yaml.safe_dump(bot["spec"], sort_keys=False, default_flow_style=False)
        for line in text.rstrip().splitlines():
            print(f"  {line}")
    return EXIT_OK


def cmd_backtest(args: argparse.Namespace) -> int:
    """``alphaswarm backtest BOT_OR_FILE``."""
    if args.bars is not None and args.end is not None:
        raise CliError("use --bars N or --start/--end, not --bars with --end")
    from alphaswarm.cli.embedded import BacktestOptions

    options = BacktestOptions(args.bars, args.start, args.end, args.cash)
    result = _backend(args).backtest(args.bot, options)
    if not _out(args, result):
        print_metrics(result)
    return EXIT_OK


def _printer(args: argparse.Namespace, mode: str | None = None) -> FramePrinter:
    if mode is None:
        mode = "json" if args.json else ("quiet" if getattr(args, "quiet", False) else "lines")
    return FramePrinter(mode)


def _paper_exit(final: dict[str, Any]) -> int:
    if final.get("signal"):
        return 128 + int(final["signal"])
    status = final.get("status")
    if status == "killed":
        return EXIT_KILL_SWITCH
    if status == "failed":
        return EXIT_SESSION_FAILED
    return EXIT_OK


def cmd_paper_run(args: argparse.Namespace) -> int:
    """``alphaswarm paper run FILE_OR_BOT``."""
    from alphaswarm.cli.embedded import PaperOptions

    if args.force and not args.reason.strip():
        raise CliError("--force needs --reason TEXT (it is written to the audit log)")
    options = PaperOptions(
        starting_cash=args.cash,
        duration_minutes=args.duration,
        speed=args.speed,
        force=args.force,
        reason=args.reason,
        max_bars=args.max_bars,
        run_name=args.name,
        feed=args.feed,
        symbols=[x for x in (args.symbols or "").split(",") if x.strip()] or None,
        backtest_id=args.backtest,
    )
    if args.symbols and not args.feed:
        raise CliError("--symbols goes with --feed")
    if args.feed and args.url:
        raise CliError("--feed works on the embedded ledger; edit the bot's data block for --url")
    printer = _printer(args)
    final = _backend(args).paper_run(args.bot, options, printer)
    _report_final(printer, final)
    return _paper_exit(final)


def _report_final(printer: FramePrinter, final: dict[str, Any]) -> None:
    printer.final(
        {
            "status": final.get("status"),
            "paper_run_id": final.get("paper_run_id"),
            "equity": final.get("equity"),
            "total_pnl": final.get("total_pnl"),
            "num_fills": final.get("num_fills"),
            "bars_seen": final.get("bars_seen"),
            "stop_reason": final.get("stop_reason"),
        }
    )
    if final.get("error"):
        sys.stderr.write(f"{PROG}: the session failed: {final['error']}\n")


def cmd_paper_stop(args: argparse.Namespace) -> int:
    """``alphaswarm paper stop ID``."""
    run = _backend(args).paper_stop(args.run_id, args.reason, args.wait)
    if not _out(args, run):
        if run.get("already"):
            print(f"paper run {args.run_id} is already {run.get('status')}")
        else:
            print(f"paper run {args.run_id} {run.get('status')}")
        print(status_text({**run, "paper_run_id": args.run_id, "equity": run.get("final_equity")}))
    return EXIT_OK


def cmd_paper_list(args: argparse.Namespace) -> int:
    """``alphaswarm paper list``."""
    runs = _backend(args).paper_list(args.status, args.bot, args.limit)
    if _out(args, runs):
        return EXIT_OK
    if not runs:
        print("no paper runs" + (f" with status {args.status}" if args.status else ""))
        return EXIT_OK
    print_table(runs, RUN_COLUMNS)
    return EXIT_OK


def cmd_paper_show(args: argparse.Namespace) -> int:
    """``alphaswarm paper show ID``."""
    run = _backend(args).paper_show(args.run_id)
    if _out(args, run):
        return EXIT_OK
    keys = (
        "id",
        "bot_id",
        "bot_version",
        "run_name",
        "status",
        "starting_cash",
        "final_equity",
        "total_pnl",
        "realized_pnl",
        "max_drawdown",
        "num_fills",
        "fills_count",
        "bars_seen",
        "orders_submitted",
        "started_at",
        "last_heartbeat_at",
        "ended_at",
        "stop_reason",
        "error",
        "owner",
    )
    print_kv([(k, run.get(k)) for k in keys if k in run])
    return EXIT_OK


def cmd_kill(args: argparse.Namespace) -> int:
    """``alphaswarm kill`` (engage), ``kill --reset`` and ``kill --status``."""
    backend = _backend(args)
    if args.status:
        state = backend.kill_status()
        if not _out(args, state):
            _print_ks_state(state)
        return EXIT_OK
    if args.reset:
        state = backend.kill_reset(args.bot)
        if not _out(args, state):
            print(f"kill switch reset{' for bot ' + args.bot if args.bot else ''}")
            _print_ks_state(state)
        return EXIT_OK
    result = backend.kill(args.mode, args.reason, args.ttl, args.bot)
    if not _out(args, result):
        scope = f"bot {args.bot}" if args.bot else "everything"
        print(f"kill switch ENGAGED ({result.get('mode', args.mode)}, {scope}): {args.reason}")
        for name, target in (result.get("targets") or {}).items():
            line = f"  {name:<14} halted {target.get('halted', 0)}"
            if target.get("failures"):
                line += "  failures: " + "; ".join(target["failures"])
            print(line)
        if result.get("elapsed_ms") is not None:
            print(f"  elapsed {result['elapsed_ms']:.1f} ms")
        if args.ttl:
            print(f"  releases itself after {args.ttl:g} s")
        if not args.url:
            print(
                "sessions of other `alphaswarm paper run` processes on this ledger see it "
                "within a second"
            )
    failures = result.get("failures") or []
    if failures:
        raise CliError("the kill switch reported failures: " + "; ".join(failures))
    return EXIT_OK


def _print_ks_state(state: dict[str, Any]) -> None:
    engaged = state.get("engaged")
    pairs = [("engaged", bool(engaged))]
    if engaged:
        pairs += [
            ("mode", state.get("mode")),
            ("reason", state.get("reason")),
            ("engaged_at", state.get("engaged_at")),
            ("ttl_seconds", state.get("ttl_seconds")),
            ("expires_at", state.get("expires_at")),
        ]
    if state.get("halted_bots"):
        pairs.append(("halted_bots", ", ".join(state["halted_bots"])))
    if state.get("store_ok") is False:
        pairs.append(("store_ok", "no: the ledger state cannot be read (failing closed)"))
    print_kv(pairs)


def cmd_demo(args: argparse.Namespace) -> int:
    """``alphaswarm demo``: register, backtest and paper trade the demo bot."""
    from alphaswarm.bots import DEMO_SPEC, Bot
    from alphaswarm.cli.embedded import BacktestOptions, PaperOptions

    backend = _backend(args)
    bot = Bot(DEMO_SPEC)
    created = backend.create_bot(bot)
    print(
        f"== bot {created.get('bot_id')} v{created.get('version')} "
        f"(spec_hash {str(created.get('spec_hash'))[:12]})"
    )
    result = backend.backtest(created["bot_id"], BacktestOptions(bars=args.bars))
    print("== backtest")
    print_metrics(result)
    print(f"== paper replay: {args.paper_bars} bars at speed 0")
    printer = _printer(args, "summary")
    options = PaperOptions(
        starting_cash=100_000.0,
        speed=0.0,
        max_bars=args.paper_bars,
        run_name="sma-demo (alphaswarm demo)",
    )
    final = backend.paper_run(created["bot_id"], options, printer)
    printer.final({k: final.get(k) for k in ("status", "paper_run_id", "equity", "total_pnl",
                                             "num_fills", "bars_seen", "stop_reason")})  # fmt: skip
    print(printer.summary())
    print("== paper_trading_runs row")
    print_kv([(k, final.get(k)) for k in RUN_COLUMNS], indent="  ")
    print(f"next: alphaswarm paper show {final.get('paper_run_id')}")
    return _paper_exit(final)


# --------------------------------------------------------------------------- main


class _OneLineFormatter(logging.Formatter):
    """Log records as one line each, the exception reduced to its type and message."""

    def format(self, record: logging.LogRecord) -> str:
        text = f"{PROG}: {record.levelname.lower()}: {record.getMessage()}"
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            text += f" ({type(exc).__name__}: {exc})"
        return text


def _setup_logging(debug: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if not debug:
        handler.setFormatter(_OneLineFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if debug else logging.WARNING)
    if debug:
        for noisy in ("bokeh", "tornado", "asyncio", "websockets", "urllib3", "sqlalchemy"):
            logging.getLogger(noisy).setLevel(logging.INFO)


def _report(error: CliError) -> int:
    sys.stdout.flush()
    lines = [f"{PROG}: {error.message}"]
    lines += [f"  - {d}" for d in error.details]
    if error.hint:
        lines.append(f"hint: {error.hint}")
    sys.stderr.write("\n".join(lines) + "\n")
    return error.code


def _gate_details(result: Any) -> list[str]:
    """The gate's errors, after the backtest it judged."""
    judged = result.judged
    head = [f"judged backtest {judged['text']}"] if judged else []
    return head + list(result.errors)


def _translate(exc: BaseException) -> CliError | None:
    """Turn the kit's own exceptions into readable CLI errors (None: unexpected)."""
    from alphaswarm.ledger import LedgerError
    from alphaswarm.paper.gate import GateRefused
    from alphaswarm.paper.killswitch import KillSwitchEngaged

    if isinstance(exc, GateRefused):
        return CliError(
            "the paper gate refused to start the session",
            EXIT_GATE_REFUSED,
            details=_gate_details(exc.result),
            hint="run `alphaswarm backtest BOT` first, choose one with --backtest ID, "
            "or pass --force --reason TEXT",
        )
    if isinstance(exc, KillSwitchEngaged):
        return CliError(str(exc), EXIT_KILL_SWITCH, hint="`alphaswarm kill --reset` releases it")
    if isinstance(exc, LedgerError):
        return CliError(f"ledger: {exc}")
    if isinstance(exc, ValueError):  # BotSpecError, FeedError, ModelError
        return CliError(str(exc))
    if isinstance(exc, OSError):
        where = f" {exc.filename!r}" if getattr(exc, "filename", None) else ""
        return CliError(f"{exc.strerror or exc}{where}")
    return None


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Run the ``alphaswarm`` command and exit with its code.

    Parameters
    ----------
    argv : sequence of str, optional
        The arguments (``sys.argv[1:]`` by default).
    """
    sys.exit(run(argv))


def run(argv: Sequence[str] | None = None) -> int:
    """Run the ``alphaswarm`` command and return its exit code (never raises).

    Parameters
    ----------
    argv : sequence of str, optional
        The arguments (``sys.argv[1:]`` by default).

    Returns
    -------
    int
        The exit code (see ``alphaswarm --help``).
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0) if not isinstance(exc.code, str) else EXIT_ERROR
    _setup_logging(args.debug)
    try:
        return int(args.func(args))
    except CliError as exc:
        return _report(exc)
    except KeyboardInterrupt:
        sys.stderr.write(f"{PROG}: interrupted\n")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_OK
    except Exception as exc:  # noqa: BLE001 - one readable line, never a traceback
        if args.debug:
            raise
        error = _translate(exc)
        if error is None:
            error = CliError(
                f"unexpected {type(exc).__name__}: {exc}",
                hint="run again with --debug for the traceback",
            )
        return _report(error)


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
