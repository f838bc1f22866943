"""``sma_cross`` side by side with a plain-loop reference, on both backtest paths.

A cross is a change of sign of ``fast SMA - slow SMA`` between two readings (the
definition backtesting libraries share): the first bar where both averages exist
is never a cross. The reference below is written from that definition alone --
plain sums over each window, no running state -- and its trades must be the
backtest's, bar for bar, over several seeds.
"""

from __future__ import annotations

import pandas as pd
import pytest

from alphaswarm import Bot
from alphaswarm.backtest import backtest
from alphaswarm.data import SyntheticFeed

FAST, SLOW, BARS = 10, 30, 4_000


def reference_trades(close: list[float], fast: int, slow: int) -> list[tuple[int, int]]:
    """(entry bar, exit bar) of each closed long trade of a plain crossover loop.

    A signal on bar ``i`` is filled at the open of bar ``i + 1``.
    """
    trades: list[tuple[int, int]] = []
    prev_diff = None  # the previous non-zero reading
    entry = None
    for i in range(slow - 1, len(close)):
        fast_sma = sum(close[i - fast + 1 : i + 1]) / fast
        slow_sma = sum(close[i - slow + 1 : i + 1]) / slow
        diff = fast_sma - slow_sma
        if diff == 0:
            continue
        crossed_up = prev_diff is not None and prev_diff < 0 < diff
        crossed_down = prev_diff is not None and prev_diff > 0 > diff
        prev_diff = diff
        if i + 1 >= len(close):
            break  # a signal on the last bar has no bar to fill on
        if crossed_up and entry is None:
            entry = i + 1
        elif crossed_down and entry is not None:
            trades.append((entry, i + 1))
            entry = None
    return trades


@pytest.mark.parametrize("engine", ["event", "vector"])
@pytest.mark.parametrize("seed", [1, 7, 42, 2024, 31337])
def test_sma_cross_trades_match_a_plain_loop(seed, engine):
    feed = SyntheticFeed(["DEMO"], seed=seed, bars=BARS)
    frame = feed.frame()
    close = frame["close"].tolist()
    bar_of = {ts: i for i, ts in enumerate(pd.DatetimeIndex(frame["ts"]))}
    bot = Bot(
        name="sma-reference",
        strategy="sma_cross",
        params={"fast": FAST, "slow": SLOW, "qty": 1},
        universe=["DEMO"],
    )
    result = backtest(bot, feed=feed, store=False, engine=engine)
    assert result.config["engine"] == engine
    got = [
        (bar_of[pd.Timestamp(t.entry_time)], bar_of[pd.Timestamp(t.exit_time)])
        for t in result.trades.itertuples()
    ]
    expected = reference_trades(close, FAST, SLOW)
    assert len(expected) > 20
    assert len(got) == len(expected) == result.metrics["num_trades"]
    assert got == expected
    # the first bar where both averages exist never trades
    first_fill = bar_of[pd.Timestamp(result.fills["filled_at"].iloc[0])]
    assert first_fill > SLOW
