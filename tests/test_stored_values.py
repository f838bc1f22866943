"""The forgiving readers of ledger values shared by the ledger reads, the trail and the views."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from alphaswarm.stored_values import json_object, naive_utc, utc_timestamp


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"a": 1}, {"a": 1}),
        ('{"a": 1}', {"a": 1}),
        (b'{"a": 1}', {"a": 1}),
        ("[1, 2]", {}),
        ("not json", {}),
        (None, {}),
        (3, {}),
    ],
)
def test_json_object(value, expected):
    assert json_object(value) == expected


def test_timestamps_are_utc_naive_or_aware():
    aware = dt.datetime(2026, 1, 2, 4, 0, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    assert naive_utc(aware) == pd.Timestamp("2026-01-02 03:00")
    assert naive_utc(aware).tzinfo is None
    assert naive_utc("2026-01-02T03:00:00") == pd.Timestamp("2026-01-02 03:00")
    assert utc_timestamp("2026-01-02T03:00:00") == pd.Timestamp("2026-01-02 03:00", tz="UTC")
    assert str(utc_timestamp(aware).tz) == "UTC"
    for bad in (None, pd.NaT, "not a time", object()):
        assert naive_utc(bad) is None
        assert utc_timestamp(bad) is None
