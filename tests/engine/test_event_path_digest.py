"""The event path's fills, orders, equity and frames, pinned by digest.

The digests were recorded from the engine before its hot loop was tuned for
speed (issue 22): any change to what a seeded backtest fills, what it books as
equity, or what the engine reports to a listener (the frames a paper session
persists) changes a digest. Floats are hashed by ``repr`` so the check is bit for
bit.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any, ClassVar

import pytest

from alphaswarm import Bot
from alphaswarm.backtest import backtest
from alphaswarm.data import SyntheticFeed
from alphaswarm.engine.broker import BrokerConfig, SimulatedBroker
from alphaswarm.engine.loop import Engine
from alphaswarm.risk.limits import RiskLimits
from alphaswarm.strategies.base import Strategy

if TYPE_CHECKING:
    import pandas as pd

SYMBOLS = ["AAA", "BBB", "CCC"]
BARS = 3_000

BOTS: dict[str, dict[str, Any]] = {
    "sma": {
        "strategy": "sma_cross",
        "params": {"fast": 5, "slow": 20, "qty": 10},
        "broker": {"commission_per_share": 0.01, "slippage_bps": 1},
    },
    "meanrev": {
        "strategy": "mean_reversion",
        "params": {},
        "broker": {"commission_bps": 2, "slippage_bps": 3, "commission_min": 1.0},
    },
    "halt": {
        "strategy": "sma_cross",
        "params": {"fast": 3, "slow": 8, "qty": 500},
        "risk": {"max_drawdown_pct": 0.002},
    },
}

#: Recorded from the engine before the speed work (see the module docstring).
EXPECTED_BACKTEST = {
    "halt": "f6b8431b1796e967f82ca22be44abf7b17220f733eee1c8f01df78d1c98be247",
    "meanrev": "00bc0ddb4158143f265981afe3bbdc5b78659bbe02823e17e1a932dd53694daa",
    "sma": "b3e978a8e2d8f34d197dea3cb7e39fd5b3728c00cd0968c13a36a22d68310f84",
}
EXPECTED_FRAMES = {
    "halt": "d523eea738aab858f9b7abdb200d6238c7b322235093fdd850fda24cfe6969f0",
    "meanrev": "29fdc5d571f3331f03a6b956858c154a1fc4f3440367cb25fef154ae4bf4a9e0",
    "sma": "cd412cde0d691ad2787fb9e5768f3d1c625d44af30e0deed017f07157c051d14",
}


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, default=repr, sort_keys=True).encode()).hexdigest()


def _frame_rows(df: pd.DataFrame) -> list[list[str]]:
    return [[repr(v) for v in row] for row in df.itertuples(index=True)]


def _bot(name: str) -> Bot:
    spec = BOTS[name]
    return Bot(
        name=f"digest-{name}",
        strategy=spec["strategy"],
        params=spec["params"],
        universe=SYMBOLS,
        **{k: v for k, v in spec.items() if k in ("broker", "risk")},
    )


def backtest_digest(name: str) -> str:
    feed = SyntheticFeed(SYMBOLS, seed=11, bars=BARS)
    result = backtest(_bot(name), feed=feed, store=False, engine="event")
    return _digest(
        {
            "fills": _frame_rows(result.fills),
            "orders": _frame_rows(result.orders),
            "equity": _frame_rows(result.equity),
            "halted": result.halted,
        }
    )


def frames_digest(name: str) -> str:
    bot = _bot(name)
    feed = SyntheticFeed(SYMBOLS, seed=11, bars=BARS)
    events: list[Any] = []
    broker = SimulatedBroker(100_000.0, BrokerConfig(**BOTS[name].get("broker", {})))
    engine = Engine(
        bot.make_strategy(),
        broker,
        bot.risk_limits(),
        listener=lambda stage, message, extras: events.append((stage, message, extras)),
    )
    for group in feed.groups(limit=BARS):
        engine.step(group)
        if engine.halted is not None:
            break
    engine.finish()
    return _digest(events)


@pytest.mark.parametrize("name", sorted(BOTS))
def test_a_seeded_backtest_fills_and_equity_are_unchanged(name):
    assert backtest_digest(name) == EXPECTED_BACKTEST[name]


@pytest.mark.parametrize("name", sorted(BOTS))
def test_the_engine_events_a_listener_gets_are_unchanged(name):
    assert frames_digest(name) == EXPECTED_FRAMES[name]


if __name__ == "__main__":  # print the digests to record
    for n in sorted(BOTS):
        print(n, backtest_digest(n), frames_digest(n))


def _engine(name: str) -> Engine:
    bot = _bot(name)
    broker = SimulatedBroker(100_000.0, BrokerConfig(**BOTS[name].get("broker", {})))
    return Engine(bot.make_strategy(), broker, bot.risk_limits())


@pytest.mark.parametrize("name", sorted(BOTS))
def test_engine_run_is_step_by_step(name):
    feed = SyntheticFeed(SYMBOLS, seed=3, bars=1_000)
    stepped = _engine(name)
    for group in feed.groups(limit=1_000):
        stepped.step(group)
        if stepped.halted is not None:
            break
    ran = _engine(name)
    ran.run(feed.groups(limit=1_000))
    for engine in (stepped, ran):
        engine.finish()
    assert ran.summary() == stepped.summary()
    assert ran.bar_index == stepped.bar_index
    assert ran.bars_in_market == stepped.bars_in_market
    assert ran.equity_values == stepped.equity_values
    assert ran.cash_values == stepped.cash_values
    assert ran.equity_ts == stepped.equity_ts
    assert [f.to_dict() for f in ran.broker.fills] == [f.to_dict() for f in stepped.broker.fills]
    assert ran.risk_events == stepped.risk_events


class _Breakout(Strategy):
    """A user-style strategy that reads bar history (``uses_history`` left on)."""

    name = "breakout-digest"
    defaults: ClassVar[dict[str, Any]] = {"lookback": 15}

    def on_bar(self, bar, ctx):
        lookback = self.params["lookback"]
        # the window before this bar (the history ends with the bar itself)
        highs = ctx.history(lookback + 1, "high")[:-1]
        lows = ctx.history(lookback + 1, "low")[:-1]
        if len(highs) < lookback:
            return None
        if bar.close >= highs.max():
            return "buy"
        if bar.close <= lows.min():
            return "flat"
        return None


#: Recorded from the engine before the speed work: (Engine.run, no listener) and
#: (Engine.step, with a listener).
EXPECTED_HISTORY = (
    "9f79c59feb1e42f465dee6316027745d0d4b2144ad2149fa0f553e27895da676",
    "ab9a97a8e87c2de9fa292b4c2a94ebd4f918ec75a3d9fa909086947449f6d489",
)


def _history_digest(listen: bool) -> tuple[str, int]:
    events: list[Any] = []
    broker = SimulatedBroker(100_000.0, BrokerConfig(slippage_bps=2))
    engine = Engine(
        _Breakout(qty=7),
        broker,
        RiskLimits(),
        history_window=40,
        listener=(lambda s, m, x: events.append((s, m, x))) if listen else None,
    )
    groups = SyntheticFeed(SYMBOLS, seed=5, bars=2_000).groups(limit=2_000)
    if listen:
        for group in groups:
            engine.step(group)
    else:
        engine.run(groups)
    engine.finish()
    digest = _digest(
        {
            "fills": [f.to_dict() for f in broker.fills],
            "equity": [repr(v) for v in engine.equity_values],
            "cash": [repr(v) for v in engine.cash_values],
            "events": events,
        }
    )
    return digest, len(broker.fills)


def test_a_strategy_reading_bar_history_trades_as_before():
    (ran, fills), (stepped, _) = _history_digest(False), _history_digest(True)
    assert fills > 20
    assert (ran, stepped) == EXPECTED_HISTORY
