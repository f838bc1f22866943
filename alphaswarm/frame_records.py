"""Frame records: a paper session's per-bar frames as flat tuples, envelopes made on demand.

A paper session makes two frames per bar (``bar.received`` and ``equity.update``).
Building each envelope (a dict of a dozen keys, its message text, its ISO times, a
positions snapshot made JSON-safe) was most of a fast replay's time, although in a
replay nobody may be listening. So the session records what such a frame is made
of, as a tuple of plain values, and the envelope is made from it only when it is
wanted: by a subscriber of the session's :class:`~alphaswarm.frames.FrameBus`, by
:meth:`~alphaswarm.frames.FrameBus.recent`, or when the ledger reads the frame back.
:func:`expand_record` gives exactly the envelope the session would have built (same
keys in the same order, same values), so ``?since=0`` replays what a live subscriber
saw.

Layouts (``ts`` and ``bar_time`` as :func:`stamp` stores them)::

    ("bar.received", seq, wall, symbol, ts, open, high, low, close, volume,
     equity, bar_time, *positions)
    ("equity.update", seq, wall, equity, cash, bar_time, *positions)

``wall`` is the epoch time the frame was made (its ``timestamp``); ``positions``
are ``symbol, qty, avg_price, last_price, unrealized_pnl, realized_pnl`` for each
open position, one after the other, at the end of the record.

A record holds no tuple of its own: the collector stops tracking a tuple of plain
values at the first young collection it survives, but a tuple holding a tracked
tuple only one collection after that one is untracked. Records wait in memory for
their batch's commit (thousands of bars at speed 0); nested, they survived the young
collections and set off full ones.

Blocks written before this layout hold ``positions`` as a list of lists in place
(``("bar.received", ..., equity, positions, bar_time)``, 13 values, and
``("equity.update", ..., cash, positions, bar_time)``, 7 values; a record of the
present layout has 12 or 6 values plus 6 per position, never 13 or 7):
:func:`expand_record` reads both.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any, NamedTuple

from alphaswarm.frames import frame_envelope, iso_bar_time, json_safe

__all__ = [
    "BAR_RECEIVED",
    "EQUITY_UPDATE",
    "RECORD_STAGES",
    "as_frame",
    "as_frames",
    "expand_record",
    "json_ready_positions",
    "positions_record",
    "stamp",
]

BAR_RECEIVED = "bar.received"
EQUITY_UPDATE = "equity.update"
#: The stages a session records rather than builds.
RECORD_STAGES = frozenset({BAR_RECEIVED, EQUITY_UPDATE})

#: Keys of one position in a frame's ``positions``, in order.
POSITION_KEYS = ("qty", "avg_price", "last_price", "unrealized_pnl", "realized_pnl")


def stamp(value: datetime | None) -> float | str | None:
    """A datetime as a record holds it: epoch seconds when UTC, else its ISO text.

    Epoch seconds come back exactly (to the microsecond) for a UTC datetime up to the
    year 2241 (later, a double's step passes half a microsecond and one in a few hundred
    comes back a microsecond off); the text keeps another zone's offset, or no zone, as
    the envelope shows it.
    """
    if value is None:
        return None
    if value.tzinfo is UTC:
        return value.timestamp()
    return value.isoformat()


#: The last stamp :func:`_times` read, with its texts: the records of one bar share
#: their stamps.
_last_times: tuple[Any, _Times | None] = (None, None)


class _Times(NamedTuple):
    """What the frames of a record show of one of its stamps."""

    when: datetime
    bar_time: str | None  # as ``bar_time`` (:func:`~alphaswarm.frames.iso_bar_time`)
    iso: str  # as a bar's ``ts``
    minute: str  # as a ``bar.received`` message shows it


def _times(value: float | str) -> _Times:
    """The datetime a record's stamp stands for, and its texts."""
    global _last_times
    cached = _last_times  # one read: another thread may replace it meanwhile
    if cached[0] == value and type(cached[0]) is type(value):
        return cached[1]
    if type(value) is str:
        when = datetime.fromisoformat(value)
    else:
        when = datetime.fromtimestamp(value, UTC)
    iso = when.isoformat()
    if when.tzinfo is UTC and when.year >= 1000:  # cut from isoformat(), cheaper than strftime
        bar_time = f"{iso[:19]}.{when.microsecond // 1000:03d}Z"
        times = _Times(when, bar_time, iso, f"{iso[:10]} {iso[11:16]}")
    else:
        times = _Times(when, iso_bar_time(when), iso, f"{when:%Y-%m-%d %H:%M}")
    _last_times = (value, times)
    return times


def positions_record(positions: dict[str, Any]) -> list[Any]:
    """The open positions of a broker's ``positions`` dict, as a record's tail holds them."""
    held: list[Any] = []
    for s, p in positions.items():
        if p.qty:
            held += (s, p.qty, p.avg_price, p.last_price, p.unrealized_pnl, p.realized_pnl)
    return held


def json_ready_positions(positions: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """A fresh positions snapshot as :func:`~alphaswarm.frames.json_safe` would give it.

    Its numbers are finite almost always: then it is returned as is (one sum per
    position checks them), else made safe by ``json_safe``.
    """
    try:
        if all(math.isfinite(sum(p.values())) for p in positions.values()):
            return positions
    except TypeError:  # a value that is not a number
        pass
    return json_safe(positions)


#: Values per position in a record's tail: the symbol and :data:`POSITION_KEYS`.
_PER_POSITION = 1 + len(POSITION_KEYS)
#: The length of a record of the earlier layout (positions nested in place), by stage.
_NESTED_LENGTH = {"bar.received": 13, "equity.update": 7}


def _positions(held: Any) -> dict[str, dict[str, Any]]:
    """A record's positions as a frame's ``positions`` (JSON-safe, as the session made it).

    ``held`` is the record's tail (symbol and values of each position, one after the
    other), or a list of positions (a record of the earlier layout).
    """
    if not held:
        return {}
    if type(held[0]) in (list, tuple):
        return json_ready_positions(
            {p[0]: dict(zip(POSITION_KEYS, p[1:], strict=True)) for p in held}
        )
    positions = {}
    for i in range(0, len(held), _PER_POSITION):
        symbol, qty, avg_price, last_price, unrealized, realized = held[i : i + _PER_POSITION]
        positions[symbol] = {
            "qty": qty,
            "avg_price": avg_price,
            "last_price": last_price,
            "unrealized_pnl": unrealized,
            "realized_pnl": realized,
        }
    if len(held) == _PER_POSITION and _finite_numbers(*held[1:]):  # one position, the usual
        return positions
    return json_ready_positions(positions)


def expand_record(task_id: str, record: Any) -> dict[str, Any]:
    """The frame envelope of ``record`` (a tuple, or a list once stored as JSON).

    Parameters
    ----------
    task_id : str
        The run id the frame belongs to.
    record : tuple or list
        One of the layouts in the module docstring.

    Returns
    -------
    dict
        The envelope, as :func:`~alphaswarm.frames.frame_envelope` builds it.
    """
    stage = record[0]
    if len(record) == _NESTED_LENGTH.get(stage):  # the earlier layout: positions in place
        record = [*record[:-2], record[-1], *record[-2]]
    if stage == BAR_RECEIVED:
        _, seq, wall, symbol, ts, open_, high, low, close, volume, equity, bar_time = record[:12]
        held = record[12:]
        times = _times(ts)
        message = f"{symbol} {times.minute} close {_number(close):.2f}"
        bar = {
            "symbol": symbol,
            "ts": times.iso,
            "open": open_,
            "high": high,
            "low": low,
            "close": close,
            "volume": volume,
        }
        # a bar's prices are finite numbers (almost always): then it is JSON-safe as is
        extras: tuple[tuple[str, Any], ...] = (
            ("bar", bar if _finite_numbers(open_, high, low, close, volume) else json_safe(bar)),
            ("equity", _safe(equity)),
        )
    elif stage == EQUITY_UPDATE:
        _, seq, wall, equity, cash, bar_time = record[:6]
        held = record[6:]
        message = f"equity {_number(equity):,.2f}"
        extras = (("equity", _safe(equity)), ("cash", _safe(cash)))
    else:
        raise ValueError(f"not a frame record: stage {stage!r}")
    frame = frame_envelope(
        task_id,
        stage,
        message,
        seq,
        _NO_EXTRAS,
        now=wall,
        bar_time=_times(bar_time).bar_time if bar_time is not None else None,
    )
    for key, value in extras:  # made JSON-safe as frame_envelope makes its extras
        frame[key] = value
    frame["positions"] = _positions(held)
    return frame


_NO_EXTRAS: dict[str, Any] = {}
_isfinite = math.isfinite


def _safe(value: Any) -> Any:
    """``value`` as :func:`~alphaswarm.frames.frame_envelope` stores an extra."""
    return value if type(value) is float and _isfinite(value) else json_safe(value)


def _finite_numbers(*values: Any) -> bool:
    """Whether every value is a finite number (a non-finite one makes the sum so).

    Then :func:`~alphaswarm.frames.json_safe` would keep each as it is.
    """
    try:
        return _isfinite(sum(values))
    except (TypeError, OverflowError):  # not a number, or an integer past a float's range
        return False


def _number(value: float | None) -> float:
    """A number of a message (a record read back from JSON holds NaN as ``None``)."""
    return math.nan if value is None else value


def as_frame(task_id: str, item: Any) -> dict[str, Any]:
    """``item`` as an envelope: a record expanded, a frame dict as it is."""
    return item if type(item) is dict else expand_record(task_id, item)


def as_frames(task_id: str, items: list[Any]) -> list[dict[str, Any]]:
    """:func:`as_frame` of each item, in order."""
    return [item if type(item) is dict else expand_record(task_id, item) for item in items]
