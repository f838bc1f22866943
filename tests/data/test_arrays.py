"""Feed.arrays(): the bars groups() yields, as arrays per symbol; groups() in slices."""

from __future__ import annotations

import gc
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alphaswarm.data import ReplayFeed, SampleFeed, SyntheticFeed
from alphaswarm.data import base as feed_base

if TYPE_CHECKING:
    from alphaswarm.data.base import Feed, FeedArrays

FIELDS = ("open", "high", "low", "close", "volume")


def from_groups(feed: Feed, **bounds) -> dict[tuple[int, str], tuple[float, ...]]:
    """(group index, symbol) -> fields, as groups() yields them."""
    out = {}
    for g, group in enumerate(feed.groups(**bounds)):
        for bar in group:
            out[(g, bar.symbol)] = (bar.open, bar.high, bar.low, bar.close, bar.volume)
    return out


def from_arrays(arrays: FeedArrays) -> dict[tuple[int, str], tuple[float, ...]]:
    out = {}
    for sa in arrays.symbols:
        cols = [getattr(sa, f).tolist() for f in FIELDS]
        for i, g in enumerate(sa.groups().tolist()):
            out[(g, sa.symbol)] = tuple(c[i] for c in cols)
    return out


def check(feed: Feed, **bounds) -> FeedArrays:
    arrays = feed.arrays(**bounds)
    stamps = [group[0].ts for group in feed.groups(**bounds)]
    got = pd.DatetimeIndex(arrays.ts.view("M8[ns]")).tz_localize("UTC").to_pydatetime()
    assert list(got) == stamps
    assert from_arrays(arrays) == from_groups(feed, **bounds)
    assert arrays.n_bars == sum(len(s) for s in arrays.symbols)
    assert [s.symbol for s in arrays.symbols] == sorted(s.symbol for s in arrays.symbols)
    return arrays


def holes(symbols: list[str], seed: int, bars: int, drop: float) -> ReplayFeed:
    frame = SyntheticFeed(symbols, seed=seed, bars=bars).frame()
    keep = np.random.default_rng(seed).random(len(frame)) >= drop
    keep[0] = True  # never empty
    return ReplayFeed(frame[keep].sample(frac=1.0, random_state=seed), interval="1m")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    symbols=st.sampled_from([["A"], ["A", "B"], ["B", "A", "C"]]),
    seed=st.integers(0, 10**6),
    bars=st.integers(1, 300),
    drop=st.sampled_from([0.0, 0.3, 0.9]),
    limit=st.one_of(st.none(), st.integers(1, 400)),
)
def test_arrays_equal_groups(symbols, seed, bars, drop, limit):
    check(holes(symbols, seed, bars, drop), limit=limit)
    check(SyntheticFeed(symbols, seed=seed, bars=bars), limit=limit)


def test_aligned_flags_and_bounds():
    feed = SyntheticFeed(["AAA", "BBB"], seed=1, bars=2_000)
    arrays = check(feed, start="2024-01-03", end="2024-01-04")
    assert arrays.aligned and len(arrays.ts) == 2 * 390
    gappy = check(holes(["AAA", "BBB"], 3, 500, 0.5))
    assert not gappy.aligned
    unbounded = SyntheticFeed(["AAA"], seed=1)
    assert len(unbounded.arrays(limit=70_000).ts) == 70_000  # across generator chunks
    with pytest.raises(feed_base.FeedError, match="unbounded"):
        unbounded.arrays()


def test_sample_feed_arrays():
    check(SampleFeed(["AAPL", "GOOG"]))  # GOOG starts years later: unaligned


@pytest.mark.parametrize("drop", [0.0, 0.4])
def test_take_groups_equals_arrays_of_the_slice(drop):
    feed = holes(["AAA", "BBB", "CCC"], 5, 400, drop)
    whole = feed.arrays()
    part = whole.take_groups(100, 250)
    ts = pd.DatetimeIndex(whole.ts[100:250].view("M8[ns]")).tz_localize("UTC")
    direct = feed.arrays(start=ts[0], end=ts[-1])
    assert part.ts.tolist() == direct.ts.tolist()
    assert from_arrays(part) == from_arrays(direct)
    assert part.n_bars == direct.n_bars


def test_groups_in_slices_equal_the_frame(monkeypatch):
    monkeypatch.setattr(feed_base, "GROUPS_SLICE", 7)  # several slices per block
    monkeypatch.setattr(feed_base, "STAMP_CHUNK", 3)  # several timestamp chunks per slice
    for feed in (
        SyntheticFeed(["AAA", "BBB", "CCC"], seed=2, bars=50),
        SyntheticFeed(["ONE"], seed=3, bars=40),
        holes(["A", "B"], 1, 60, 0.3),
    ):
        frame = feed.frame()
        rows = [
            (b.ts, b.symbol, b.open, b.high, b.low, b.close, b.volume)
            for group in feed.groups()
            for b in group
        ]
        expected = list(
            zip(
                frame["ts"].dt.to_pydatetime(),
                frame["symbol"],
                *(frame[f] for f in FIELDS),
                strict=True,
            )
        )
        assert rows == expected
        assert all(len({b.ts for b in g}) == 1 for g in feed.groups())  # no group split
        assert {type(v) for row in rows for v in row[2:]} == {float}, "plain floats"


def test_a_block_being_handed_out_holds_one_chunk_the_collector_does_not_walk():
    """A paced session holds its block for hours: it keeps one chunk of raw numbers
    of its own (no big container of Python objects), not a copy of the block."""
    for symbols in (["ONE"], ["A", "B", "C"]):
        block = next(SyntheticFeed(symbols, seed=1, bars=5_000)._read(None, None, None))
        groups = feed_base._bar_groups(block)
        next(groups)
        held = {
            name: getattr(groups, name)
            for name in type(groups).__slots__
            if isinstance(getattr(groups, name), tuple | list)
            or hasattr(getattr(groups, name), "typecode")
        }
        # what a collection visits for each: its references (none for a tuple it
        # has untracked, the type only for an array of raw numbers)
        walked = {n for n, v in held.items() if gc.is_tracked(v) and len(gc.get_referents(v)) > 3}
        assert not walked, walked
        assert not hasattr(groups, "gi_frame"), "no suspended generator frame per session"
        assert len(held["_values"]) == 5 * feed_base.STAMP_CHUNK * len(symbols) < 5 * len(block)


def test_feeds_with_the_same_parameters_share_their_bars():
    """Two sessions of one bot read the same generated chunk, not a copy each."""
    first = next(SyntheticFeed(["A", "B"], seed=4)._read(None, None, None, stream=True))
    second = next(SyntheticFeed(["B", "A"], seed=4)._read(None, None, None, stream=True))
    assert np.shares_memory(first.close, second.close)
    assert np.shares_memory(first.symbol, second.symbol)
    other_seed = next(SyntheticFeed(["A", "B"], seed=5)._read(None, None, None, stream=True))
    assert not np.shares_memory(first.close, other_seed.close)
    assert not np.array_equal(first.close, other_seed.close)


def test_timestamps_become_datetimes_a_chunk_at_a_time(monkeypatch):
    converted = []
    real = feed_base._chunk_datetimes

    def spy(ts_ns):
        converted.append(len(ts_ns))
        return real(ts_ns)

    monkeypatch.setattr(feed_base, "_chunk_datetimes", spy)
    block = next(SyntheticFeed(["ONE"], seed=1, bars=5_000)._read(None, None, None))
    groups = feed_base._bar_groups(block)
    first = [next(groups) for _ in range(feed_base.STAMP_CHUNK + 1)]
    assert converted == [feed_base.STAMP_CHUNK, feed_base.STAMP_CHUNK]  # two chunks so far
    assert [g[0].ts for g in first] == list(
        pd.DatetimeIndex(block.ts[: len(first)].view("M8[ns]")).tz_localize("UTC")
    )
    rest = list(groups)
    assert len(first) + len(rest) == len(block) == 5_000
    assert sum(converted) == len(block)


def test_replay_feed_owns_its_data():
    frame = SyntheticFeed(["AAA"], seed=1, bars=20).frame()
    feed = ReplayFeed(frame)
    before = feed.arrays().symbols[0].close.tolist()
    frame.loc[0, "close"] = 1e9
    frame["open"] = frame["open"] * 2
    assert feed.arrays().symbols[0].close.tolist() == before


def _bar_rows(groups):
    return [
        [(type(b), b.symbol, b.ts, b.open, b.high, b.low, b.close, b.volume) for b in g]
        for g in groups
    ]


def _feeds_and_bounds():
    """Feeds of several shapes (aligned, one symbol, with holes), each with three reads."""
    for feed in (
        SyntheticFeed(["AAA", "BBB", "CCC"], seed=2, bars=50),
        SyntheticFeed(["ONE"], seed=3, bars=40),
        holes(["A", "B"], 1, 60, 0.3),
    ):
        ts = feed.frame()["ts"]
        for bounds in ({}, {"limit": 17}, {"start": ts.iloc[5], "end": ts.iloc[30]}):
            yield feed, bounds


@pytest.mark.parametrize("chunk", [3, feed_base.STAMP_CHUNK])
def test_replay_groups_yield_what_groups_yields(monkeypatch, chunk):
    """A backtest reads replay_groups(): the same bars, types and grouping as groups()."""
    monkeypatch.setattr(feed_base, "GROUPS_SLICE", 7)
    monkeypatch.setattr(feed_base, "STAMP_CHUNK", chunk)
    for feed, bounds in _feeds_and_bounds():
        expected = _bar_rows(feed.groups(**bounds))
        assert expected
        assert _bar_rows(feed.replay_groups(**bounds)) == expected


@pytest.mark.parametrize("chunk", [1, 3, 1024])
def test_cursor_peeks_each_groups_time_then_takes_what_groups_yields(monkeypatch, chunk):
    """A paced session reads the next group's time first and makes its bars after its wait."""
    monkeypatch.setattr(feed_base, "GROUPS_SLICE", 7)
    monkeypatch.setattr(feed_base, "STAMP_CHUNK", chunk)
    for feed, bounds in _feeds_and_bounds():
        cursor = feed.cursor(**bounds)
        taken = []
        while (when := cursor.peek()) is not None:
            assert cursor.peek() == when  # peeking again changes nothing
            group = cursor.take()
            assert {b.ts for b in group} == {when}
            taken.append(group)
        assert _bar_rows(taken) == _bar_rows(feed.groups(**bounds))
        assert cursor.take() is None
