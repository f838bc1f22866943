"""ReplayFeed: validation errors, sorting, CSV/Parquet round trips, property tests."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alphaswarm.data import FeedError, ReplayFeed, SyntheticFeed, make_feed


def good_frame(n: int = 6, symbols: tuple[str, ...] = ("AAA", "BBB")) -> pd.DataFrame:
    ts = pd.date_range("2024-01-02 14:30", periods=n, freq="1min", tz="UTC")
    rows = []
    for k, sym in enumerate(symbols):
        for i, t in enumerate(ts):
            price = 100.0 + 10 * k + i
            rows.append(
                {
                    "ts": t,
                    "symbol": sym,
                    "open": price,
                    "high": price + 1,
                    "low": price - 1,
                    "close": price + 0.5,
                    "volume": 1000 + i,
                }
            )
    return pd.DataFrame(rows)


def test_valid_frame_round_trips_values_and_metadata():
    df = good_frame()
    feed = ReplayFeed(df)
    assert feed.symbols == ["AAA", "BBB"]
    assert feed.interval == "1m" and feed.interval_seconds == 60
    assert feed.calendar == "equities"
    out = feed.frame()
    expected = df.sort_values(["ts", "symbol"]).reset_index(drop=True)
    np.testing.assert_array_equal(out["close"], expected["close"])
    assert (out["ts"] == expected["ts"]).all()
    groups = list(feed.groups())
    assert len(groups) == 6 and all(len(g) == 2 for g in groups)
    assert groups[0][1].symbol == "BBB" and groups[0][1].open == 110.0


def test_unsorted_input_gets_sorted():
    df = good_frame().sample(frac=1.0, random_state=3)
    out = ReplayFeed.from_frame(df).frame()
    assert out["ts"].is_monotonic_increasing
    assert out.equals(out.sort_values(["ts", "symbol"]).reset_index(drop=True))


def test_case_insensitive_columns_aliases_and_single_symbol():
    df = good_frame(symbols=("AAA",)).drop(columns="symbol")
    df.columns = ["Date", "OPEN", "High", "low", "Close", "Volume"]
    feed = ReplayFeed.from_frame(df, symbol="SPY")
    assert feed.symbols == ["SPY"]
    assert len(feed.frame()) == 6
    indexed = df.set_index("Date")
    assert ReplayFeed(indexed, symbol="SPY").fingerprint() == feed.fingerprint()


def test_naive_timestamps_are_utc_and_volume_optional():
    df = good_frame().drop(columns="volume")
    df["ts"] = df["ts"].dt.tz_localize(None).astype(str)
    out = ReplayFeed(df).frame()
    assert str(out["ts"].dtype) == "datetime64[ns, UTC]"
    assert out["ts"].iloc[0] == pd.Timestamp("2024-01-02 14:30", tz="UTC")
    assert (out["volume"] == 0).all()


def test_symbol_argument_filters_a_long_frame():
    feed = ReplayFeed(good_frame(), symbol="BBB")
    assert feed.symbols == ["BBB"] and len(feed) == 6
    with pytest.raises(FeedError, match="no rows for symbol 'ZZZ'; available: AAA, BBB"):
        ReplayFeed(good_frame(), symbol="ZZZ")


def test_missing_columns_are_named():
    df = good_frame().drop(columns=["close", "high"])
    with pytest.raises(FeedError, match=r"missing column\(s\): high, close"):
        ReplayFeed(df)
    with pytest.raises(FeedError, match="symbol"):
        ReplayFeed(good_frame().drop(columns="symbol"))
    with pytest.raises(FeedError, match="ts"):
        ReplayFeed(good_frame().drop(columns="ts"))


def test_duplicate_symbol_ts_is_named():
    df = good_frame()
    df = pd.concat([df, df.iloc[[3]]], ignore_index=True)
    with pytest.raises(FeedError, match=r"duplicate bar for \(AAA, 2024-01-02T14:33:00\+00:00\)"):
        ReplayFeed(df)


@pytest.mark.parametrize(
    ("column", "value", "match"),
    [
        ("close", -5.0, r"column 'close', row 2: must be > 0"),
        ("open", 0.0, r"column 'open', row 2: must be > 0"),
        ("close", float("nan"), r"column 'close', row 2: must be a finite number"),
        ("high", float("inf"), r"column 'high', row 2: must be a finite number"),
        ("volume", -1.0, r"column 'volume', row 2: must be >= 0"),
        ("low", "abc", r"column 'low', row 2: 'abc' is not a number"),
        ("high", 100.5, r"row 2 \(AAA\): high/low"),
        ("ts", "yesterday-ish", r"column 'ts', row 2: 'yesterday-ish' is not a timestamp"),
    ],
)
def test_bad_values_are_named(column, value, match):
    df = good_frame()
    df[column] = df[column].astype(object)
    df.loc[2, column] = value
    with pytest.raises(FeedError, match=match):
        ReplayFeed(df)


def test_empty_and_non_frames():
    with pytest.raises(FeedError, match="no rows"):
        ReplayFeed(good_frame().iloc[:0])
    with pytest.raises(FeedError, match="expected a pandas DataFrame"):
        ReplayFeed([1, 2, 3])  # type: ignore[arg-type]


def test_csv_round_trip(tmp_path):
    df = good_frame(n=20)
    path = tmp_path / "bars.csv"
    df.to_csv(path, index=False)
    feed = ReplayFeed.from_csv(path)
    assert feed.source == str(path)
    assert feed.fingerprint() == ReplayFeed(df).fingerprint()
    pd.testing.assert_frame_equal(feed.frame(), ReplayFeed(df).frame())


@pytest.mark.parametrize(
    "spellings",
    [
        # ISO 8601 in several spellings and offsets: the vectorised parser
        ["2024-01-02T09:30:00-05:00", "2024-01-02 14:31:00Z", "2024-01-02 14:32",
         "2024-01-02 14:33:00.000000+00:00"],
        # one value in another spelling: every value goes through the per-value parser
        ["2024-01-02 14:30:00+00:00", "Jan 2 2024 14:31", "2024-01-02 14:32",
         "01/02/2024 14:33"],
    ],
)  # fmt: skip
def test_text_timestamps_in_any_spelling_read_as_the_same_utc_bars(tmp_path, spellings):
    df = good_frame(n=4, symbols=("AAA",))
    expected = ReplayFeed(df).frame()
    df["ts"] = spellings
    path = tmp_path / "bars.csv"
    df.to_csv(path, index=False)
    pd.testing.assert_frame_equal(ReplayFeed.from_csv(path).frame(), expected)


@pytest.mark.parametrize("separator", [" ", "T"])
def test_large_text_timestamps_read_the_same_through_pyarrow(tmp_path, monkeypatch, separator):
    pytest.importorskip("pyarrow", reason="the fast path needs pyarrow")
    from alphaswarm.data import replay

    monkeypatch.setattr(replay, "ARROW_MIN_ROWS", 10)
    df = good_frame(n=40, symbols=("AAA", "BBB"))
    df["ts"] = [t.isoformat(sep=separator) for t in df["ts"]]
    df.loc[3, "ts"] = df.loc[3, "ts"].replace("+00:00", "-05:00")  # another zone, same rules
    path = tmp_path / "bars.csv"
    df.to_csv(path, index=False)
    raw = pd.read_csv(path)["ts"]
    fast = replay._arrow_stamps(raw)
    assert fast is not None
    pd.testing.assert_series_equal(fast, pd.to_datetime(raw, utc=True, format="ISO8601"),
                                   check_dtype=False)  # fmt: skip
    via_arrow = ReplayFeed.from_csv(path).frame()
    monkeypatch.setattr(replay, "ARROW_MIN_ROWS", 10**9)
    pd.testing.assert_frame_equal(via_arrow, ReplayFeed.from_csv(path).frame())
    raw[5] = "2024-01-02 14:35:00.5+00:00"  # a fraction: not a spelling pyarrow is given
    monkeypatch.setattr(replay, "ARROW_MIN_ROWS", 10)
    assert replay._arrow_stamps(raw) is None


def test_a_number_among_text_timestamps_is_named_and_warns_nothing():
    df = good_frame(n=3, symbols=("AAA",))
    df["ts"] = pd.Series(["2024-01-02 14:30:00Z", 1704205860, "2024-01-02 14:32:00Z"], dtype=object)
    with pytest.raises(FeedError, match=r"row 1.*1704205860 is not a timestamp"):
        ReplayFeed(df)


def test_an_object_column_of_dates_reads_as_midnight_utc():
    import datetime as dt

    df = good_frame(n=1, symbols=("AAA",))
    df = pd.concat([df] * 3, ignore_index=True)
    df["ts"] = pd.Series([dt.date(2024, 1, 2 + i) for i in range(3)], dtype=object)
    got = ReplayFeed(df).frame()["ts"].tolist()
    assert got == [pd.Timestamp(f"2024-01-0{2 + i}", tz="UTC") for i in range(3)]


def test_an_object_column_of_numbers_counts_epoch_seconds_like_a_numeric_one():
    df = good_frame(n=3, symbols=("AAA",))
    expected = ReplayFeed(df).frame()
    seconds = (df["ts"] - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)
    df["ts"] = pd.Series(seconds.tolist(), dtype=object)
    pd.testing.assert_frame_equal(ReplayFeed(df).frame(), expected)


def test_parquet_round_trip(tmp_path):
    source = SyntheticFeed(["AAA", "BBB"], seed=2, bars=500)
    path = tmp_path / "bars.parquet"
    source.frame().to_parquet(path)
    feed = ReplayFeed.from_parquet(path)
    assert feed.interval == "1m" and feed.calendar == "equities"
    pd.testing.assert_frame_equal(feed.frame(), source.frame())
    csv = tmp_path / "bars.csv"
    source.frame().to_csv(csv, index=False)
    assert ReplayFeed.from_csv(csv).fingerprint() == feed.fingerprint()


def test_file_errors_name_the_file(tmp_path):
    with pytest.raises(FeedError, match="nope.csv: no such file"):
        ReplayFeed.from_csv(tmp_path / "nope.csv")
    with pytest.raises(FeedError, match="nope.parquet: no such file"):
        ReplayFeed.from_parquet(tmp_path / "nope.parquet")
    bad = tmp_path / "bad.csv"
    good_frame().drop(columns="open").to_csv(bad, index=False)
    with pytest.raises(FeedError, match=r"bad.csv: missing column\(s\): open"):
        ReplayFeed.from_csv(bad)
    junk = tmp_path / "junk.parquet"
    junk.write_bytes(b"not parquet at all")
    with pytest.raises(FeedError, match="junk.parquet: cannot read as Parquet"):
        ReplayFeed.from_parquet(junk)


def test_interval_and_calendar_inference():
    daily = good_frame(n=10, symbols=("A",))
    daily["ts"] = pd.bdate_range("2024-01-01", periods=10, tz="UTC")
    feed = ReplayFeed(daily)
    assert feed.interval == "1d" and feed.calendar == "equities"
    assert feed.periods_per_year == 252
    weekend = daily.copy()
    weekend["ts"] = pd.date_range("2024-01-01", periods=10, freq="1h", tz="UTC")
    assert ReplayFeed(weekend).interval == "1h"
    weekend["ts"] = pd.date_range("2024-01-01", periods=10, freq="1D", tz="UTC")
    assert ReplayFeed(weekend).calendar == "24x7"
    assert ReplayFeed(weekend, interval="1d", calendar="equities").calendar == "equities"


def test_bounds_limit_and_select():
    feed = ReplayFeed(good_frame(n=10))
    assert len(feed.frame(start="2024-01-02 14:32", end="2024-01-02 14:34")) == 6
    assert len(list(feed.groups(limit=4))) == 4
    assert feed.covers(["AAA", "CCC"]) == ["CCC"]
    only = feed.select(["BBB"])
    assert only.symbols == ["BBB"] and set(only.frame()["symbol"]) == {"BBB"}
    with pytest.raises(FeedError, match="no data for CCC; available: AAA, BBB"):
        feed.select(["CCC"])


def test_make_feed_replay(tmp_path):
    good_frame().to_csv(tmp_path / "bars.csv", index=False)
    feed = make_feed({"feed": "replay", "path": "bars.csv"}, ["BBB"], base_dir=tmp_path)
    assert isinstance(feed, ReplayFeed) and feed.symbols == ["BBB"]
    with pytest.raises(FeedError, match="no data for ZZZ"):
        make_feed({"feed": "replay", "path": str(tmp_path / "bars.csv")}, ["ZZZ"])
    with pytest.raises(FeedError, match="unknown key.*'seed'.*allowed: feed, path"):
        make_feed({"feed": "replay", "path": "x.csv", "seed": 1}, ["A"])
    with pytest.raises(FeedError, match="data.path: required"):
        make_feed({"feed": "replay"}, ["A"])


# -- property tests --------------------------------------------------------------------

prices = st.floats(min_value=0.01, max_value=1e6, allow_nan=False, allow_infinity=False)


@st.composite
def valid_frames(draw):
    symbols = draw(st.lists(st.sampled_from(["A", "BB", "CCC", "spy"]), min_size=1, unique=True))
    n = draw(st.integers(min_value=1, max_value=12))
    minutes = draw(st.lists(st.integers(0, 10_000), min_size=n, max_size=n, unique=True))
    rows = []
    for sym in symbols:
        for m in minutes:
            o, c = draw(prices), draw(prices)
            up, down = draw(st.floats(0, 1)), draw(st.floats(0, 0.99))
            rows.append(
                {
                    "ts": pd.Timestamp("2024-03-01", tz="UTC") + pd.Timedelta(minutes=m),
                    "symbol": sym,
                    "open": o,
                    "high": max(o, c) * (1 + up),
                    "low": min(o, c) * (1 - down),
                    "close": c,
                    "volume": draw(st.floats(0, 1e9)),
                }
            )
    return pd.DataFrame(rows).sample(frac=1.0, random_state=draw(st.integers(0, 99)))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(valid_frames())
def test_property_valid_frames_preserve_values(df):
    feed = ReplayFeed.from_frame(df)
    bars = [b for g in feed.groups() for b in g]
    assert len(bars) == len(df)
    expected = {
        (r.symbol, r.ts.to_pydatetime()): (r.open, r.high, r.low, r.close, r.volume)
        for r in df.itertuples()
    }
    got = {(b.symbol, b.ts): (b.open, b.high, b.low, b.close, b.volume) for b in bars}
    assert got == expected
    keys = [(b.ts, b.symbol) for b in bars]
    assert keys == sorted(keys)


corruptions = st.sampled_from(
    [
        ("drop", "open"),
        ("drop", "ts"),
        ("drop", "symbol"),
        ("set", "close", -1.0),
        ("set", "open", 0.0),
        ("set", "high", float("nan")),
        ("set", "low", float("inf")),
        ("set", "close", "x"),
        ("set", "volume", -3.0),
        ("set", "volume", None),
        ("set", "ts", "not a time"),
        ("set", "ts", None),
        ("set", "symbol", ""),
        ("set", "symbol", 5),
        ("set", "symbol", None),
        ("set", "open", [1, 2]),
        ("set", "high", 1e-9),
        ("set", "low", 1e12),
        ("dup",),
    ]
)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(valid_frames(), corruptions, st.data())
def test_property_corrupted_frames_raise_feed_error_only(df, corruption, data):
    df = df.reset_index(drop=True)
    if corruption[0] == "drop":
        df = df.drop(columns=corruption[1])
    elif corruption[0] == "dup":
        df = pd.concat([df, df.iloc[[data.draw(st.integers(0, len(df) - 1))]]], ignore_index=True)
    else:
        _, column, value = corruption
        row = data.draw(st.integers(0, len(df) - 1))
        df[column] = df[column].astype(object)
        df.at[row, column] = value
    with pytest.raises(FeedError):
        ReplayFeed.from_frame(df)


@settings(max_examples=60, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["ts", "Symbol", "OPEN", "high", "low", "close", "volume", "junk"]),
        st.lists(
            st.one_of(
                st.none(),
                st.booleans(),
                st.integers(-(2**63), 2**63 - 1),
                st.floats(),
                st.text(max_size=5),
                st.datetimes(),
            ),
            min_size=3,
            max_size=3,
        ),
        min_size=1,
    )
)
def test_property_arbitrary_frames_raise_nothing_but_feed_error(columns):
    df = pd.DataFrame(columns)
    try:
        feed = ReplayFeed.from_frame(df)
    except FeedError:
        return
    for group in feed.groups():
        for bar in group:
            assert bar.low <= min(bar.open, bar.close) <= max(bar.open, bar.close) <= bar.high
            assert math.isfinite(bar.volume) and bar.volume >= 0


def _interval_by_every_distinct_timestamp(ts: np.ndarray) -> str:
    """The reference rule: median spacing over all distinct timestamps."""
    from alphaswarm.data.base import DAY, format_interval

    distinct = np.unique(ts)
    if len(distinct) < 2:
        return "1d"
    seconds = int(np.median(np.diff(distinct)) // 10**9)
    if seconds <= 0:
        return "1s"
    if seconds >= DAY:
        seconds = DAY * max(1, round(seconds / DAY))
    return format_interval(seconds)


def _session_minutes(days: int, symbols: int) -> np.ndarray:
    """Minute bars of ``days`` trading sessions (390 a day, weekends and nights skipped)."""
    days_ = pd.bdate_range("2024-01-02", periods=days, tz="UTC") + pd.Timedelta("14h30min")
    opens = days_.as_unit("ns").asi8
    minutes = (opens[:, None] + np.arange(390)[None, :] * 60 * 10**9).ravel()
    return np.repeat(minutes, symbols)


@pytest.mark.parametrize(
    ("days", "symbols"),
    [(3, 1), (200, 1), (600, 1), (180, 3), (40, 50), (2, 400)],
)
def test_inferred_interval_matches_the_rule_over_every_timestamp(days, symbols):
    """Large feeds sample neighbour pairs; the answer is the one every timestamp gives."""
    from alphaswarm.data.replay import _infer_interval

    ts = _session_minutes(days, symbols)
    assert _infer_interval(ts) == _interval_by_every_distinct_timestamp(ts) == "1m"


def test_inferred_interval_of_a_large_irregular_feed():
    """Hourly bars with random holes past the sampling threshold: still the full rule's answer."""
    from alphaswarm.data.replay import _INFER_SAMPLE, _infer_interval

    rng = np.random.default_rng(3)
    hours = np.arange(3 * _INFER_SAMPLE, dtype=np.int64) * 3600 * 10**9
    ts = np.sort(rng.choice(hours, size=2 * _INFER_SAMPLE, replace=False))
    assert _infer_interval(ts) == _interval_by_every_distinct_timestamp(ts)
