"""Terminal output of the ``alphaswarm`` command: tables, metrics, frame lines, status line."""

from __future__ import annotations

import json
import re
import shutil
import sys
import time
from collections import Counter
from datetime import UTC, date, datetime
from typing import IO, Any

from alphaswarm.jsoncodec import dumps_lenient
from alphaswarm.metric_catalog import METRIC_ALIASES, PERCENT_METRICS, STORED_METRICS

#: Order of the metrics a backtest prints.
METRIC_ORDER = STORED_METRICS
_ISO_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d")
#: Columns of ``paper list`` (the tutorial's SQL columns first).
RUN_COLUMNS = ("id", "bot_id", "status", "total_pnl", "num_fills", "started_at", "ended_at")


def to_json(value: Any) -> str:
    """Serialise ``value`` for ``--json`` output (datetimes as ISO strings)."""

    def default(obj: Any) -> Any:
        if isinstance(obj, datetime | date):
            return obj.isoformat()
        item = getattr(obj, "item", None)
        if callable(item):
            return item()
        return str(obj)

    return json.dumps(value, default=default, indent=2, sort_keys=False)


def fmt_value(value: Any, key: str = "") -> str:
    """Format one value for a table cell."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        return utc_text(value)
    if isinstance(value, int):
        return f"{value:,}" if key not in ("version", "bot_version", "seq") else str(value)
    if isinstance(value, float):
        if value != value:  # NaN
            return "-"
        if METRIC_ALIASES.get(key, key) in PERCENT_METRICS:
            return f"{value:.2%}"
        if key in ("sharpe", "sortino"):
            return f"{value:.3f}"
        if key == "num_trades":
            return f"{value:,.0f}"
        return f"{value:,.2f}"
    if isinstance(value, dict | list):
        return json.dumps(value, default=str)
    text = str(value)
    if _ISO_TIME.match(text):  # timestamps from the JSON API, shown like the ledger's
        try:
            return utc_text(datetime.fromisoformat(text))
        except ValueError:
            return f"{text[:10]} {text[11:19]}"
    return text


def utc_text(value: datetime) -> str:
    """A time as ``YYYY-MM-DD HH:MM:SS UTC`` (a time without a zone is taken as UTC)."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%d %H:%M:%S UTC")


def print_kv(pairs: list[tuple[str, Any]], out: IO[str] | None = None, indent: str = "") -> None:
    """Print aligned ``key  value`` lines."""
    out = out or sys.stdout
    width = max((len(k) for k, _ in pairs), default=0)
    for key, value in pairs:
        out.write(f"{indent}{key:<{width}}  {fmt_value(value, key)}\n")


def print_table(
    rows: list[dict[str, Any]], columns: tuple[str, ...], out: IO[str] | None = None
) -> None:
    """Print ``rows`` as a padded text table with the given ``columns``."""
    out = out or sys.stdout
    cells = [[fmt_value(row.get(c), c) for c in columns] for row in rows]
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]
    out.write("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    out.write("\n")
    for r in cells:
        out.write("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() + "\n")


def print_metrics(result: dict[str, Any], out: IO[str] | None = None) -> None:
    """Print a backtest result: its id, bot, size and the metrics table."""
    out = out or sys.stdout
    metrics = result.get("metrics") or {}
    head = f"backtest {result.get('id') or '-'}"
    if result.get("bot_id"):
        head += f"  bot {result['bot_id']}"
        if result.get("bot_version") is not None:
            head += f" v{result['bot_version']}"
    if result.get("bars"):
        head += f"  {result['bars']:,} bars"
    if result.get("elapsed"):
        head += f"  {result['elapsed']:.2f} s"
    out.write(head + "\n")
    keys = [k for k in METRIC_ORDER if k in metrics]
    keys += [k for k in metrics if k not in keys]
    print_kv([(k, metrics[k]) for k in keys], out, indent="  ")
    gate = result.get("gate")
    if gate:
        line = f"paper gate: {gate.get('status')}"
        problems = list(gate.get("errors") or []) + list(gate.get("warnings") or [])
        if problems:
            line += " (" + "; ".join(problems) + ")"
        out.write(line + "\n")


def status_text(status: dict[str, Any]) -> str:
    """The one-line status of a session: status, equity, P&L, fills, bars."""
    equity = status.get("equity")
    pnl = status.get("total_pnl")
    parts = [f"[{status.get('status') or '?'}]"]
    if status.get("paper_run_id"):
        parts.append(str(status["paper_run_id"]))
    parts.append(f"equity {equity:,.2f}" if isinstance(equity, int | float) else "equity -")
    parts.append(f"P&L {pnl:+,.2f}" if isinstance(pnl, int | float) else "P&L -")
    parts.append(f"fills {status.get('num_fills') or 0}")
    parts.append(f"bars {status.get('bars_seen') or 0}")
    if status.get("stop_reason") and status.get("status") not in ("running", None):
        parts.append(f"({status['stop_reason']})")
    return "  ".join(parts)


def frame_line(frame: dict[str, Any]) -> str:
    """One compact line for a frame: local time with its zone, seq, stage, message."""
    ts = frame.get("ts")
    if isinstance(ts, int | float):
        local = datetime.fromtimestamp(ts).astimezone()
        when = f"{local.strftime('%H:%M:%S.%f')[:-3]} {local.tzname()}"
    else:
        stamp = str(frame.get("timestamp") or "")
        when = stamp[11:23] if len(stamp) >= 23 else stamp
    seq = frame.get("seq")
    seq_text = f"#{seq}" if seq is not None else "#-"
    message = str(frame.get("message") or "").replace("\n", " ")
    return f"{when} {seq_text:>7} {frame.get('stage', '?'):<16} {message}"


class FramePrinter:
    """Print frames as they arrive, one line each, and keep a live status line.

    On a terminal the status line stays at the bottom and is rewritten in place;
    otherwise it is printed every ``status_every`` seconds and at the end.

    Parameters
    ----------
    mode : str
        ``lines`` (a line per frame), ``json`` (each frame as one JSON line),
        ``summary`` (only order fills and the session's start and end) or
        ``quiet`` (status lines only).
    out : file, optional
        Where to write (stdout by default).
    status_every : float
        Seconds between status lines when ``out`` is not a terminal.
    """

    SUMMARY_STAGES = frozenset(
        {"session.started", "order.filled", "order.rejected", "risk.halted", "error"}
    )

    def __init__(
        self, mode: str = "lines", out: IO[str] | None = None, status_every: float = 10.0
    ) -> None:
        self.mode = mode
        self.out = out or sys.stdout
        self.tty = bool(getattr(self.out, "isatty", lambda: False)()) and mode != "json"
        self.status_every = status_every
        self.counts: Counter[str] = Counter()
        self.status: dict[str, Any] = {"status": "running"}
        self.starting_cash: float | None = None
        self.result: dict[str, Any] | None = None
        self.last_seq: int | None = None
        self._status_shown = False
        self._last_status = time.monotonic()

    # -- frames ----------------------------------------------------------------------
    def frame(self, frame: dict[str, Any]) -> None:
        """Account for one frame and print it according to the mode."""
        stage = str(frame.get("stage") or "?")
        self.counts[stage] += 1
        if isinstance(frame.get("seq"), int):
            self.last_seq = frame["seq"]
        self._track(stage, frame)
        if self.mode == "json":
            self._write(dumps_lenient(frame) + "\n")
        elif self.mode == "lines" or (self.mode == "summary" and stage in self.SUMMARY_STAGES):
            self._write(frame_line(frame) + "\n")

    def _track(self, stage: str, frame: dict[str, Any]) -> None:
        status = self.status
        if frame.get("task_id"):
            status["paper_run_id"] = frame["task_id"]
        if stage == "session.started" and isinstance(frame.get("starting_cash"), int | float):
            self.starting_cash = float(frame["starting_cash"])
        equity = frame.get("equity")
        if isinstance(equity, int | float):
            status["equity"] = float(equity)
            if self.starting_cash is not None:
                status["total_pnl"] = float(equity) - self.starting_cash
        if stage == "order.filled":
            status["num_fills"] = (status.get("num_fills") or 0) + 1
        elif stage == "bar.received":
            status["bars_seen"] = (status.get("bars_seen") or 0) + 1
        elif stage == "done" and isinstance(frame.get("result"), dict):
            self.result = frame["result"]
            status.update(
                {k: v for k, v in self.result.items() if k != "final_equity"},
                equity=self.result.get("final_equity", status.get("equity")),
            )

    def update(self, **status: Any) -> None:
        """Replace parts of the status (e.g. from the session's own outputs)."""
        self.status.update({k: v for k, v in status.items() if v is not None})

    # -- status line -----------------------------------------------------------------
    def tick(self, force: bool = False) -> None:
        """Refresh the status line (in place on a terminal, periodically otherwise)."""
        if self.mode == "json":
            self.out.flush()
            return
        now = time.monotonic()
        if self.tty:
            width = shutil.get_terminal_size().columns - 1
            self.out.write("\r\x1b[K" + status_text(self.status)[: max(width, 20)])
            self.out.flush()
            self._status_shown = True
        elif force or now - self._last_status >= self.status_every:
            self._last_status = now
            self.out.write(status_text(self.status) + "\n")
        self.out.flush()

    def final(self, status: dict[str, Any] | None = None) -> None:
        """Print the last status line (the run's final figures)."""
        if status:
            self.update(**status)
        if self.mode == "json":
            return
        self._clear()
        self.out.write(status_text(self.status) + "\n")
        self.out.flush()

    def summary(self) -> str:
        """Frame counts per stage, e.g. ``823 frames: bar.received 390, ...``."""
        total = sum(self.counts.values())
        parts = ", ".join(f"{stage} {n}" for stage, n in self.counts.most_common())
        return f"{total} frames: {parts}"

    def note(self, text: str) -> None:
        """Print a line of commentary (not a frame)."""
        if self.mode == "json":
            sys.stderr.write(text + "\n")
            return
        self._write(text + "\n")

    def _clear(self) -> None:
        if self._status_shown:
            self.out.write("\r\x1b[K")
            self._status_shown = False

    def _write(self, text: str) -> None:
        self._clear()
        self.out.write(text)
