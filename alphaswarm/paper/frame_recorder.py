"""A paper session's per-bar frames, recorded as tuples (see :mod:`alphaswarm.frame_records`)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from alphaswarm.frame_records import BAR_RECEIVED, EQUITY_UPDATE, positions_record, stamp

if TYPE_CHECKING:
    from datetime import datetime

    from alphaswarm.engine.loop import Engine
    from alphaswarm.model import Bar
    from alphaswarm.paper.session import PaperSession


class SessionRecorder:
    """The :class:`~alphaswarm.engine.loop.FrameRecorder` of one paper session.

    Each event takes the session's next ``seq`` and goes into its pending frames as a
    record, in order with the frames built in full (orders, fills ...). What the
    envelope shows of the account (equity, open positions) is read when the event
    happens, as the envelope built then would have shown it.

    Parameters
    ----------
    session : PaperSession
        The session whose ``seq`` and pending frames the records join.
    """

    __slots__ = ("_cached", "_session", "engine")

    def __init__(self, session: PaperSession) -> None:
        self._session = session
        #: The engine whose account the records show (set once it is built).
        self.engine: Engine | None = None
        self._cached: tuple[Any, Any] = (None, None)  # (a datetime, its stamp)

    def _stamp(self, value: datetime | None) -> float | str | None:
        cached = self._cached
        if cached[0] is value:
            return cached[1]
        held = stamp(value)
        self._cached = (value, held)
        return held

    def bar_received(self, bar: Bar) -> None:
        """Record the ``bar.received`` frame of ``bar``."""
        session, engine = self._session, self.engine
        broker = engine.broker
        session._seq = seq = session._seq + 1
        ts = self._stamp(bar.ts)
        session._pending.append(
            (
                BAR_RECEIVED,
                seq,
                time.time(),
                bar.symbol,
                ts,
                bar.open,
                bar.high,
                bar.low,
                bar.close,
                bar.volume,
                broker.equity,
                ts if bar.ts is engine.last_ts else self._stamp(engine.last_ts),
                *positions_record(broker.positions),
            )
        )

    def equity_update(self, equity: float, cash: float) -> None:
        """Record the ``equity.update`` frame after a bar group."""
        session, engine = self._session, self.engine
        session._seq = seq = session._seq + 1
        session._pending.append(
            (
                EQUITY_UPDATE,
                seq,
                time.time(),
                equity,
                cash,
                self._stamp(engine.last_ts),
                *positions_record(engine.broker.positions),
            )
        )
