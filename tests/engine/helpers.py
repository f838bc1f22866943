"""Hand-made bars and a bar-by-bar driver for the broker and engine tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from alphaswarm.model import Bar, OrderRequest

if TYPE_CHECKING:
    from alphaswarm.engine.broker import BrokerEvent, SimulatedBroker
    from alphaswarm.model import Order

T0 = datetime(2024, 1, 2, 14, 30, tzinfo=UTC)
SYM = "XYZ"


def ts_of(i: int, day: int = 0) -> datetime:
    """Timestamp of bar ``i`` (minutes after the open) on trading day ``day``."""
    return T0 + timedelta(days=day, minutes=i)


def bar(
    i: int,
    o: float,
    h: float | None = None,
    lo: float | None = None,
    c: float | None = None,
    v: float = 1_000_000.0,
    *,
    symbol: str = SYM,
    day: int = 0,
) -> Bar:
    """A bar at minute ``i``; missing high/low/close default to a flat bar at ``o``."""
    c = o if c is None else c
    h = max(o, c) if h is None else h
    lo = min(o, c) if lo is None else lo
    return Bar(symbol, ts_of(i, day), o, h, lo, c, v)


class Driver:
    """Feed hand-made bars to a SimulatedBroker the way the engine does.

    Bar ``k`` passed to :meth:`step` gets bar index ``k``; orders submitted with
    :meth:`submit` carry the index and time of the last bar stepped.
    """

    def __init__(self, broker: SimulatedBroker) -> None:
        self.broker = broker
        self.index = -1
        self.ts = T0
        self.events: list[BrokerEvent] = []

    def step(self, b: Bar) -> list[BrokerEvent]:
        """Process one bar: expire day orders, fill, mark to the close."""
        self.index += 1
        self.ts = b.ts
        events = self.broker.begin_bar(b.ts)
        events += self.broker.process_bar(b, self.index)
        self.broker.mark(b.symbol, b.close)
        self.events += events
        return events

    def submit(self, *args, **kwargs) -> Order:
        """Submit ``OrderRequest(*args, **kwargs)`` on the current bar."""
        request = args[0] if args and isinstance(args[0], OrderRequest) else None
        if request is None:
            request = OrderRequest(*args, **kwargs)
        return self.broker.submit(request, self.ts, self.index)
