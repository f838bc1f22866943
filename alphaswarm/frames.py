"""The frame envelope and the FrameBus that fans frames out to subscribers.

Every engine event leaves a session as one JSON object::

    {"task_id": "<paper_run_id>", "stage": "order.filled", "message": "BUY 10 DEMO @ 101.20",
     "timestamp": "2026-11-24T10:31:00.123Z", "ts": 1795516260.123, "seq": 42,
     "recorded_at": "2026-11-24T10:31:00.123Z", "bar_time": "2024-01-02T15:04:00.000Z",
     ...extras}

Two clocks, named apart: ``timestamp``/``ts`` and their alias ``recorded_at`` are
the wall time the frame was made; ``bar_time`` is the time of the market bar the
frame belongs to (``None`` before the first bar), which a replayed or backtested
feed sets far from the wall clock. Both are UTC.

``seq`` grows by one per frame within a run, so a client can detect gaps and
resume. The bus never slows the publisher: each subscriber has a bounded
buffer, and a slow one loses its oldest frames and is told how many.
"""

from __future__ import annotations

import asyncio
import logging
import marshal
import math
import threading
import time
from collections import deque
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

log = logging.getLogger(__name__)

#: Stages a session emits.
STAGES = (
    "session.started",
    "metadata_gate",
    "bar.received",
    "signal.emitted",
    "order.placed",
    "order.rejected",
    "order.filled",
    "order.cancelled",
    "equity.update",
    "risk.halted",
    "heartbeat",
    "ledger.behind",
    "ledger.caught_up",
    "session.stopped",
    "error",
    "done",
)
#: Stages after which a run publishes nothing more.
TERMINAL_STAGES = ("done",)
LAGGED = "subscriber.lagged"


#: The last whole second :func:`iso_timestamp` formatted, and its text up to the dot.
_second_text: tuple[int, str] = (-1, "")


def iso_timestamp(epoch: float) -> str:
    """ISO-8601 UTC with milliseconds and a ``Z``."""
    global _second_text
    fraction, whole = math.modf(epoch)
    micros = round(fraction * 1e6)  # as datetime.fromtimestamp rounds
    second = int(whole)
    if micros >= 1_000_000:
        second, micros = second + 1, micros - 1_000_000
    elif micros < 0:
        second, micros = second - 1, micros + 1_000_000
    cached = _second_text  # one read: another thread may replace it meanwhile
    if cached[0] == second:
        text = cached[1]
    else:
        text = datetime.fromtimestamp(second, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.")
        _second_text = (second, text)
    return f"{text}{micros // 1000:03d}Z"


#: Values :func:`json_safe` returns unchanged (checked by exact type).
_SAFE_TYPES = frozenset({str, int, bool, type(None)})
_isfinite = math.isfinite


def json_safe(value: Any) -> Any:
    """Replace NaN/inf floats by None and datetimes by ISO strings, recursively."""
    kind = type(value)
    if kind in _SAFE_TYPES:
        return value
    if kind is float:
        return value if math.isfinite(value) else None
    if kind is dict:  # plain leaves are kept without a call each
        return {
            k: v
            if (t := type(v)) in _SAFE_TYPES or (t is float and math.isfinite(v))
            else json_safe(v)
            for k, v in value.items()
        }
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def iso_bar_time(value: datetime | None) -> str | None:
    """A bar's time as ISO-8601 UTC with milliseconds and a ``Z`` (``None`` stays)."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    value = value.astimezone(UTC)
    return f"{value:%Y-%m-%dT%H:%M:%S}.{value.microsecond // 1000:03d}Z"


def make_frame(
    task_id: str,
    stage: str,
    message: str,
    seq: int,
    *,
    now: float | None = None,
    bar_time: str | None = None,
    **extras: Any,
) -> dict[str, Any]:
    """Build one frame envelope.

    Parameters
    ----------
    task_id : str
        The paper run id.
    stage : str
        One of :data:`STAGES` (extensions may add their own).
    message : str
        A human sentence.
    seq : int
        Position of the frame within its run.
    now : float, optional
        Epoch seconds; the wall clock by default. Sets ``timestamp``, ``ts`` and
        ``recorded_at``.
    bar_time : str, optional
        The time of the bar the frame belongs to (see :func:`iso_bar_time`).
    **extras
        Stage-specific data.
    """
    return frame_envelope(task_id, stage, message, seq, extras, now=now, bar_time=bar_time)


def frame_envelope(
    task_id: str,
    stage: str,
    message: str,
    seq: int,
    extras: dict[str, Any],
    *,
    now: float | None = None,
    bar_time: str | None = None,
) -> dict[str, Any]:
    """:func:`make_frame` with the extras as one dict (not copied into keywords)."""
    ts = time.time() if now is None else now
    stamp = iso_timestamp(ts)
    frame = {
        "task_id": task_id,
        "stage": stage,
        "message": message,
        "timestamp": stamp,
        "ts": ts,
        "seq": seq,
        "recorded_at": stamp,
        "bar_time": bar_time,
    }
    for key, value in extras.items():  # plain values (most) without a call each
        kind = type(value)
        if kind in _SAFE_TYPES or (kind is float and _isfinite(value)):
            frame[key] = value
        else:
            frame[key] = json_safe(value)
    return frame


def _compact(frame: dict[str, Any]) -> bytes | dict[str, Any]:
    """A frame as bytes (untracked by the garbage collector), or as is if it cannot be."""
    try:
        return marshal.dumps(frame)
    except ValueError:  # a value of a type marshal does not know: keep the dict
        return frame


def _expand(task_id: str, held: bytes | dict[str, Any] | tuple) -> dict[str, Any]:
    """The frame :func:`_compact` stored (a fresh, equal dict), or a record's envelope."""
    kind = type(held)
    if kind is bytes:
        return marshal.loads(held)
    if kind is tuple:
        from alphaswarm.frame_records import expand_record

        return expand_record(task_id, held)
    return held


def _wake(waiter: tuple[asyncio.AbstractEventLoop, asyncio.Event] | None) -> bool:
    """Set a waiting reader's event from any thread; ``False`` when its loop is closed."""
    if waiter is None:
        return True
    loop, event = waiter
    try:
        loop.call_soon_threadsafe(event.set)
    except RuntimeError:
        return False
    return True


class Subscription:
    """A bounded buffer of frames for one subscriber.

    Use :meth:`drain` from periodic callbacks (the dashboard) or ``await get()``
    from asyncio code (the WebSocket). When the buffer overflows the oldest
    frames are dropped and the next read starts with a ``subscriber.lagged``
    frame saying how many.
    """

    def __init__(self, bus: FrameBus, maxsize: int) -> None:
        self._bus = bus
        self._buffer: deque[dict[str, Any]] = deque()
        self.maxsize = maxsize
        self.dropped = 0
        self._unreported = 0
        self._lock = threading.Lock()
        self._waiter: tuple[asyncio.AbstractEventLoop, asyncio.Event] | None = None
        self.closed = False

    def _push(self, frame: dict[str, Any]) -> None:
        self._push_many([frame])

    def _push_many(self, frames: list[dict[str, Any]]) -> None:
        with self._lock:
            buffer = self._buffer
            over = len(buffer) + len(frames) - self.maxsize
            if over > 0:
                dropped = min(over, len(buffer))
                for _ in range(dropped):
                    buffer.popleft()
                skipped = over - dropped  # more frames than the buffer holds: the oldest go
                frames = frames[skipped:]
                self.dropped += over
                self._unreported += over
            buffer.extend(frames)
            waiter, self._waiter = self._waiter, None
        if not _wake(waiter):  # the waiting loop is closed
            self._waiter = None

    def _lag_frame(self) -> dict[str, Any] | None:
        if not self._unreported:
            return None
        n, self._unreported = self._unreported, 0
        return {
            "stage": LAGGED,
            "message": f"{n} frame(s) dropped: this subscriber was too slow",
            "dropped": n,
            "task_id": self._bus.task_id,
            "seq": None,
        }

    def drain(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Take every buffered frame (at most ``limit``) without waiting."""
        with self._lock:
            out: list[dict[str, Any]] = []
            lag = self._lag_frame()
            if lag is not None:
                out.append(lag)
            n = len(self._buffer) if limit is None else min(limit, len(self._buffer))
            for _ in range(n):
                out.append(self._buffer.popleft())
        return out

    async def get(self, timeout: float | None = None) -> list[dict[str, Any]]:
        """Wait for at least one frame and return all that are buffered.

        Returns an empty list on timeout or when the bus is closed and empty.
        """
        frames = self.drain()
        if frames or self.closed:
            return frames
        event = asyncio.Event()
        self._waiter = (asyncio.get_running_loop(), event)
        try:
            frames = self.drain()  # a frame may have arrived before the waiter was set
            if frames:
                return frames
            try:
                async with asyncio.timeout(timeout):  # no task per wait, unlike wait_for
                    await event.wait()
            except TimeoutError:
                return []
            return self.drain()
        finally:
            self._waiter = None

    def close(self) -> None:
        """Stop receiving frames."""
        self.closed = True
        self._bus.unsubscribe(self)
        _wake(self._waiter)


class FrameBus:
    """Fan frames of one run out to any number of subscribers.

    Sync callbacks run in the publisher's thread and must be quick (exceptions
    are logged, never raised into the engine); buffered subscriptions are
    bounded. ``history`` keeps the last frames in memory for late joiners.

    Parameters
    ----------
    task_id : str
        The run id the frames belong to.
    history : int
        Frames kept in memory for :meth:`recent` (late joiners read older ones from the
        ledger). They are held serialised (:func:`marshal.dumps`, a bytes object the
        garbage collector never tracks) rather than as nested dicts: with hundreds of
        sessions, the dicts of every frame held were most of what a full collection
        walked. :meth:`recent` returns equal copies.
    """

    def __init__(self, task_id: str = "", history: int = 200) -> None:
        self.task_id = task_id
        self._callbacks: list[Callable[[dict[str, Any]], None]] = []
        self._subs: list[Subscription] = []
        self._recent: deque[dict[str, Any]] = deque(maxlen=history)
        self._lock = threading.Lock()
        self.published = 0
        self.closed = False

    @property
    def has_subscribers(self) -> bool:
        """True when anyone listens."""
        return bool(self._callbacks or self._subs)

    def subscribe(
        self, callback: Callable[[dict[str, Any]], None] | None = None, *, maxsize: int = 10_000
    ) -> Subscription | Callable[[dict[str, Any]], None]:
        """Add a sync ``callback`` (returned as is) or, without one, a :class:`Subscription`."""
        with self._lock:
            if callback is not None:
                self._callbacks.append(callback)
                return callback
            sub = Subscription(self, maxsize)
            if self.closed:
                sub.closed = True
            self._subs.append(sub)
            return sub

    def unsubscribe(self, subscriber: Any) -> None:
        """Remove a callback or subscription (unknown ones are ignored)."""
        with self._lock:
            if subscriber in self._callbacks:
                self._callbacks.remove(subscriber)
            if subscriber in self._subs:
                self._subs.remove(subscriber)

    def publish(self, frame: dict[str, Any] | tuple) -> None:
        """Deliver one frame to every subscriber."""
        self.publish_many([frame])

    def publish_many(self, frames: list[dict[str, Any] | tuple]) -> None:
        """Deliver ``frames`` in order, as :meth:`publish` of each would.

        A frame may be a record (:mod:`alphaswarm.frame_records`): its envelope is made
        only when someone listens, else the history keeps the record itself. Only the
        frames the history keeps are serialised for it, and each buffered subscription
        takes them under one lock, waking its reader once.
        """
        if not frames:
            return
        keep = self._recent.maxlen
        listened = bool(self._callbacks or self._subs)
        if listened and any(type(f) is tuple for f in frames):
            from alphaswarm.frame_records import as_frames

            frames = as_frames(self.task_id, frames)
        for frame in frames if keep is None else frames[-keep:]:
            self._recent.append(frame if type(frame) is tuple else _compact(frame))
        self.published += len(frames)
        if not listened:
            return
        for callback in list(self._callbacks):
            for frame in frames:
                try:
                    callback(frame)
                except Exception:  # noqa: BLE001 - a subscriber never breaks the engine
                    log.exception("frame subscriber %r failed", callback)
        for sub in list(self._subs):
            sub._push_many(frames)

    def recent(self, since_seq: int | None = None) -> list[dict[str, Any]]:
        """Frames still held in memory (after ``since_seq`` when given)."""
        task_id = self.task_id
        frames = [_expand(task_id, f) for f in list(self._recent)]
        if since_seq is None:
            return frames
        return [f for f in frames if f.get("seq") is not None and f["seq"] > since_seq]

    def close(self) -> None:
        """Mark the bus finished and wake every waiting subscriber."""
        self.closed = True
        for sub in list(self._subs):
            sub.closed = True
            _wake(sub._waiter)
