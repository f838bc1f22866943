"""What a user strategy sees of each bar on the event path, pinned by digest.

A strategy written against the documented :class:`~alphaswarm.model.Bar`
(``symbol``, ``ts``, ``open``, ``high``, ``low``, ``close``, ``volume``,
``to_dict()``) and the context's ``now`` / ``bar`` must read the same values,
types and order of bars however the engine's feed iteration is tuned (issue 22).
The digests were recorded on the engine before that work; floats are hashed by
``repr`` so the check is bit for bit.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, ClassVar

import pytest

from alphaswarm import Bot
from alphaswarm.data import ReplayFeed, SyntheticFeed
from alphaswarm.model import Bar
from alphaswarm.research.backtest import backtest
from alphaswarm.strategies.base import Strategy

#: Recorded from the engine before the speed work (see the module docstring).
EXPECTED = {
    "one-symbol": "245bab21724ded0d99f93188993e2e5c2900b8f891066ee4231fa46aa707f8c3",
    "three-symbols": "d51924fbf452fd084d4e03bf3d01386d7605a77b01c5b6d646e41243f2fe35b4",
}

SEEN: list[Any] = []


class _Reader(Strategy):
    """A user-style strategy that reads every documented bar attribute."""

    name = "bar-reader-digest"
    defaults: ClassVar[dict[str, Any]] = {"qty": 5}

    def on_bar(self, bar: Bar, ctx: Any) -> str | None:
        SEEN.append(
            [
                type(bar).__name__,
                isinstance(bar, Bar),
                bar.symbol,
                type(bar.ts).__name__,
                bar.ts.isoformat(),
                repr(bar.ts.tzinfo),
                [repr(getattr(bar, f)) for f in ("open", "high", "low", "close", "volume")],
                [type(getattr(bar, f)).__name__ for f in ("open", "high", "low", "close")],
                bar.to_dict(),
                ctx.now == bar.ts,
                ctx.bar is bar,
            ]
        )
        n = len(SEEN)
        return "buy" if n % 97 == 0 else ("flat" if n % 97 == 50 else None)

    def size(self, bar: Bar, ctx: Any) -> float:
        return float(self.params["qty"])


def _feed(name: str) -> Any:
    if name == "one-symbol":
        frame = SyntheticFeed(["DEMO"], seed=5, bars=2_500).frame()
        return ReplayFeed(frame, interval="1m"), ["DEMO"]
    symbols = ["AAA", "BBB", "CCC"]
    return SyntheticFeed(symbols, seed=9, bars=2_500), symbols


def bars_digest(name: str) -> str:
    feed, symbols = _feed(name)
    bot = Bot(name=f"reader-{name}", strategy=_Reader, universe=symbols)
    SEEN.clear()
    result = backtest(bot, feed=feed, store=False, engine="event", bars=2_500)
    seen = list(SEEN)
    SEEN.clear()
    assert len(seen) == 2_500 * len(symbols)  # every bar of every group, once
    assert len(result.fills) > 10
    payload = {"seen": seen, "fills": [[repr(v) for v in row] for row in result.fills.itertuples()]}
    return hashlib.sha256(json.dumps(payload, default=repr).encode()).hexdigest()


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_a_user_strategy_reads_the_same_bars(name):
    assert bars_digest(name) == EXPECTED[name]
