"""Record what a live stream handed out, and replay it with the same timing.

A recording is one Parquet file, one row per bar or event, in the order the
session received them:

========== ==========================================================
column     meaning
========== ==========================================================
seq        position in the stream
kind       ``bar`` or an event kind (``gap``, ``reconnected`` ...)
group      index of the bar's group (-1 for events)
symbol     the bar's (or a gap's) symbol
ts         bar time (UTC), null for events
arrival    wall-clock time it arrived (UTC)
open ...   prices and volume of a bar
message    an event's sentence
data       an event's details (JSON)
========== ==========================================================

``data: {feed: recording, path: rec.parquet}`` replays it: the same groups and
events in the same order, spaced by the recorded arrival times divided by the
session's ``speed`` (0 = no waiting), so a session re-run on it reproduces the
live session's fills and equity bit for bit.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd

from alphaswarm.data.base import Block, FeedError
from alphaswarm.jsoncodec import dumps_lenient
from alphaswarm.live.base import BarGroup, FeedEvent, FeedState, LiveFeed
from alphaswarm.model import Bar
from alphaswarm.model import to_utc as _to_utc

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

__all__ = ["Recorder", "RecordingFeed"]

_FLUSH_ROWS = 200
_SCHEMA_COLUMNS = (
    "seq",
    "kind",
    "group",
    "symbol",
    "ts",
    "arrival",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "message",
    "data",
)


def _ns(epoch_seconds: float) -> int:
    return round(epoch_seconds * 1e9)


class Recorder:
    """Append the items of a live stream to a Parquet file.

    Rows are buffered and written as Parquet row groups every 200 rows and on
    :meth:`close`, so a crash loses at most the last few rows.

    Parameters
    ----------
    path : str or Path
        The file to (over)write.
    feed : LiveFeed
        The feed recorded (its symbols, interval and calendar go into the metadata).
    """

    def __init__(self, path: str | Path, feed: LiveFeed) -> None:
        import pyarrow as pa

        self.path = Path(path).expanduser()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._rows: list[dict[str, Any]] = []
        self._seq = 0
        self._group = 0
        self._writer: Any = None
        meta = {
            "feed": feed.kind,
            "fingerprint": feed.fingerprint(),
            "symbols": feed.symbols,
            "interval": feed.interval,
            "calendar": feed.calendar,
            "stall_seconds": feed.stall_seconds,
            "halt_on_stall": feed.halt_on_stall,
        }
        ts = pa.timestamp("ns", tz="UTC")
        self._schema = pa.schema(
            [
                ("seq", pa.int64()),
                ("kind", pa.string()),
                ("group", pa.int64()),
                ("symbol", pa.string()),
                ("ts", ts),
                ("arrival", ts),
                ("open", pa.float64()),
                ("high", pa.float64()),
                ("low", pa.float64()),
                ("close", pa.float64()),
                ("volume", pa.float64()),
                ("message", pa.string()),
                ("data", pa.string()),
            ],
            metadata={"alphaswarm.recording": json.dumps(meta)},
        )

    def add(self, item: BarGroup | FeedEvent) -> None:
        """Record one group (a row per bar) or event."""
        if isinstance(item, FeedEvent):
            self._seq += 1
            self._rows.append(
                {
                    "seq": self._seq,
                    "kind": item.kind,
                    "group": -1,
                    "symbol": item.symbol,
                    "ts": None,
                    "arrival": _ns(item.at),
                    "message": item.message,
                    "data": dumps_lenient(item.data),
                }
            )
        else:
            arrivals = item.arrivals or [time.time()] * len(item)
            for bar, arrival in zip(item, arrivals, strict=False):
                self._seq += 1
                self._rows.append(
                    {
                        "seq": self._seq,
                        "kind": "bar",
                        "group": self._group,
                        "symbol": bar.symbol,
                        "ts": _ns(bar.ts.timestamp()),
                        "arrival": _ns(arrival),
                        "open": bar.open,
                        "high": bar.high,
                        "low": bar.low,
                        "close": bar.close,
                        "volume": bar.volume,
                    }
                )
            self._group += 1
        if len(self._rows) >= _FLUSH_ROWS:
            self.flush()

    def flush(self) -> None:
        """Write the buffered rows as one row group."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        if self._writer is None:
            self._writer = pq.ParquetWriter(self.path, self._schema)
        if not self._rows:
            return
        columns = {name: [row.get(name) for row in self._rows] for name in _SCHEMA_COLUMNS}
        self._writer.write_table(pa.Table.from_pydict(columns, schema=self._schema))
        self._rows = []

    def close(self) -> None:
        """Flush and close the file (a stream with no items still leaves a valid file)."""
        self.flush()
        if self._writer is not None:
            self._writer.close()
            self._writer = None


class RecordingFeed(LiveFeed):
    """Replay a recording made by :class:`Recorder`.

    As a plain :class:`~alphaswarm.data.base.Feed` (``groups()``, ``frame()``) it
    serves the recorded bars; as a live feed its :meth:`stream` hands out the
    recorded groups and events with the recorded timing divided by ``speed``.

    Parameters
    ----------
    path : str or Path
        The Parquet file.
    symbols : list of str, optional
        Keep only these (all recorded symbols by default).
    **live
        Overrides of the recorded ``stall_seconds``/``halt_on_stall``.
    """

    kind: ClassVar[str] = "recording"
    realtime: ClassVar[bool] = False

    def __init__(self, path: str | Path, symbols: Iterable[str] | None = None, **live: Any) -> None:
        import pyarrow.parquet as pq

        self.path = Path(path).expanduser()
        if not self.path.exists():
            raise FeedError(f"data.path: recording {self.path} does not exist")
        try:
            table = pq.read_table(self.path)
        except Exception as exc:  # noqa: BLE001 - any unreadable file is a FeedError
            raise FeedError(f"{self.path}: not a recording ({exc})") from exc
        raw_meta = (table.schema.metadata or {}).get(b"alphaswarm.recording")
        if raw_meta is None:
            raise FeedError(f"{self.path}: not an alphaswarm recording (no metadata)")
        meta = json.loads(raw_meta)
        self.meta = meta
        rows = table.to_pandas().sort_values("seq", kind="stable").reset_index(drop=True)
        keep = list(symbols) if symbols else list(meta["symbols"])
        settings = {
            "stall_seconds": meta.get("stall_seconds", 120.0),
            "halt_on_stall": meta.get("halt_on_stall", False),
            **live,
        }
        super().__init__(keep, meta["interval"], meta["calendar"], **settings)
        is_bar = rows["kind"] == "bar"
        self._rows = rows[~is_bar | rows["symbol"].isin(self.symbols)].reset_index(drop=True)
        self._digest = hashlib.sha256(self.path.read_bytes()).hexdigest()[:16]

    @property
    def bounded(self) -> bool:
        """A recording ends."""
        return True

    def covers(self, symbols: Iterable[str]) -> list[str]:
        """Symbols the recording does not hold."""
        have = set(self.meta["symbols"])
        return [s for s in symbols if s not in have]

    def fingerprint(self) -> str:
        """Hash of the recording file's bytes."""
        return f"recording:{self._digest}"

    def _public_config(self) -> dict[str, Any]:
        return {"path": str(self.path)}

    def _blocks(self, start: int | None, end: int | None) -> Iterator[Block]:
        bars = self._rows[self._rows["kind"] == "bar"]
        ts = pd.DatetimeIndex(bars["ts"]).as_unit("ns").asi8
        mask = np.ones(len(bars), bool)
        if start is not None:
            mask &= ts >= start
        if end is not None:
            mask &= ts <= end
        bars = bars[mask].assign(_ts=ts[mask]).sort_values(["_ts", "symbol"], kind="stable")
        if bars.empty:
            return
        yield Block(
            bars["_ts"].to_numpy(np.int64),
            bars["symbol"].to_numpy(object),
            *(bars[c].to_numpy(float) for c in ("open", "high", "low", "close", "volume")),
        )

    def items(self) -> list[tuple[float, BarGroup | FeedEvent]]:
        """The recorded items with their arrival times (epoch seconds), in order."""
        out: list[tuple[float, BarGroup | FeedEvent]] = []
        current: BarGroup | None = None
        current_id = None
        rows = self._rows
        arrivals = pd.DatetimeIndex(rows["arrival"]).as_unit("ns").asi8 / 1e9
        for i, row in enumerate(rows.itertuples(index=False)):
            if row.kind == "bar":
                if current is None or row.group != current_id:
                    current, current_id = BarGroup(), row.group
                    out.append((arrivals[i], current))
                bar = Bar(
                    row.symbol,
                    _to_utc(row.ts),
                    row.open,
                    row.high,
                    row.low,
                    row.close,
                    row.volume,
                )
                current.append(bar)
                current.arrivals.append(float(arrivals[i]))
                continue
            current = None
            data = json.loads(row.data) if isinstance(row.data, str) and row.data else {}
            out.append(
                (
                    arrivals[i],
                    FeedEvent(row.kind, row.message or "", float(arrivals[i]), row.symbol, data),
                )
            )
        # a group's timing is that of its last bar
        return [(item.arrived if isinstance(item, BarGroup) else at, item) for at, item in out]

    async def _open(self) -> None:  # pragma: no cover - replay has no connection
        return None

    async def _receive(self) -> list[Any]:  # pragma: no cover
        return []

    async def _close(self) -> None:  # pragma: no cover
        return None

    def stream(self, speed: float = 1.0) -> ReplayStream:
        """A replay of the recording at ``speed`` (0 = as fast as the session takes it)."""
        self._state = FeedState(connected=True)
        return ReplayStream(self, speed)


class ReplayStream:
    """Hands out a recording's items with their recorded spacing divided by ``speed``."""

    def __init__(self, feed: RecordingFeed, speed: float) -> None:
        self.feed = feed
        self.state = feed._state
        self.speed = speed
        self._items = feed.items()
        self._index = 0
        self._prev_at: float | None = None
        self._due: float | None = None
        self.recorder = None

    async def __aenter__(self) -> ReplayStream:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Nothing to connect."""
        self.state.connected = True

    async def close(self) -> None:
        """Nothing to close."""
        self.state.connected = False

    async def next(self, timeout: float | None = None) -> BarGroup | FeedEvent | None:
        """The next recorded item once its time has come, None after ``timeout``."""
        if self._index >= len(self._items):
            self._index += 1
            return FeedEvent("end", "end of the recording", time.time())
        at, item = self._items[self._index]
        loop = asyncio.get_running_loop()
        if self._due is None:
            delay = 0.0 if self._prev_at is None or self.speed <= 0 else (at - self._prev_at)
            self._due = loop.time() + max(0.0, delay) / (self.speed or 1.0)
        wait = self._due - loop.time()
        if self.speed > 0 and wait > 0:
            if timeout is not None and wait > timeout:
                await asyncio.sleep(timeout)
                return None
            await asyncio.sleep(wait)
        self._due, self._prev_at = None, at
        self._index += 1
        self._account(item)
        return item

    def _account(self, item: BarGroup | FeedEvent) -> None:
        state = self.state
        if isinstance(item, BarGroup):
            state.bars += len(item)
            state.groups += 1
            state.last_bar_ts = item.ts
            state.last_bar_arrival = time.time()
            state.stalled = False
            return
        if item.kind == "gap":
            state.gaps += 1
            state.missing_bars += int(item.data.get("missing", 0))
        elif item.kind == "reconnected":
            state.reconnects += 1
        elif item.kind == "stalled":
            state.stalled = True
        for key in ("duplicates", "out_of_order", "malformed"):
            if key in item.data:
                setattr(state, key, int(item.data[key]))


def read_recording(path: str | Path) -> pd.DataFrame:
    """The rows of a recording as a DataFrame (for inspection)."""
    return pd.read_parquet(path)
