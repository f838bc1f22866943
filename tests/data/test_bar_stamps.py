"""The datetimes feeds stamp their bars with, whole-second or not."""

from __future__ import annotations

from datetime import UTC

import numpy as np
import pandas as pd
import pytest

from alphaswarm.data.base import _chunk_datetimes


@pytest.mark.parametrize(
    "stamps",
    [
        ["2024-01-02 14:30", "2024-01-02 14:31", "2024-03-10 07:00:59"],
        ["1969-12-31 23:59:59", "1960-05-01", "2038-01-19 03:14:08"],
        ["2024-01-02 14:30:00.5", "2024-01-02 14:30:01.000001"],
        # a minute grid with the overnight gap: the first stamp plus cached offsets
        ["2024-01-02 15:58", "2024-01-02 15:59", "2024-01-03 09:30", "2024-01-03 09:31"],
        # one-second steps across a weekend: too many offsets for the cache
        ["2024-01-05 20:59:59", "2024-01-05 21:00:00", "2024-01-08 14:30:01"],
        ["2024-01-02 14:30"],
        [],
    ],
)
def test_chunk_datetimes_are_the_utc_datetimes_pandas_gives(stamps):
    ts_ns = pd.DatetimeIndex(stamps).as_unit("ns").asi8
    expected = pd.DatetimeIndex(ts_ns.view("M8[ns]")).tz_localize(UTC).to_pydatetime()
    got = list(_chunk_datetimes(np.asarray(ts_ns)))
    assert got == list(expected)
    assert all(d.tzinfo is UTC for d in got)
    assert [d.isoformat() for d in got] == [d.isoformat() for d in expected]


def test_a_whole_chunk_of_minute_bars_matches_pandas_and_is_not_a_list():
    ts_ns = pd.date_range("2024-01-02 14:30", periods=1024, freq="min").as_unit("ns").asi8
    got = _chunk_datetimes(np.asarray(ts_ns))
    assert got.dtype == object and len(got) == 1024
    expected = pd.DatetimeIndex(ts_ns.view("M8[ns]")).tz_localize(UTC).to_pydatetime()
    assert list(got) == list(expected)
