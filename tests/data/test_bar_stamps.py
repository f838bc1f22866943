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
    ],
)
def test_chunk_datetimes_are_the_utc_datetimes_pandas_gives(stamps):
    ts_ns = pd.DatetimeIndex(stamps).as_unit("ns").asi8
    expected = pd.DatetimeIndex(ts_ns.view("M8[ns]")).tz_localize(UTC).to_pydatetime()
    got = list(_chunk_datetimes(np.asarray(ts_ns)))
    assert got == list(expected)
    assert all(d.tzinfo is UTC for d in got)
    assert [d.isoformat() for d in got] == [d.isoformat() for d in expected]
