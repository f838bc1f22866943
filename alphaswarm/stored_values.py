"""Values read back from the ledger: JSON objects and UTC timestamps, forgiving.

A ledger column may hold a dict or its JSON text (depending on the dialect) and a
timestamp as a string, a naive UTC datetime or an aware one; these helpers turn
each into one form, and anything unreadable into an empty dict or ``None``.
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

__all__ = ["json_object", "naive_utc", "records", "utc_timestamp"]


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The rows of ``frame`` as dicts, a missing value (NaN, NaT) as ``None``.

    Examples
    --------
    >>> records(pd.DataFrame({"a": [1.5, float("nan")]}))
    [{'a': 1.5}, {'a': None}]
    """
    return frame.astype(object).where(frame.notna(), None).to_dict("records")


def json_object(value: Any) -> dict[str, Any]:
    """``value`` as a dict: itself, or the object its JSON text holds; ``{}`` otherwise.

    Parameters
    ----------
    value : Any
        A dict, JSON text (``str`` or ``bytes``) or anything else.

    Returns
    -------
    dict
        The object, or an empty dict when ``value`` holds none.
    """
    if isinstance(value, dict):
        return value
    if isinstance(value, str | bytes):
        try:
            out = json.loads(value)
        except ValueError:
            return {}
        return out if isinstance(out, dict) else {}
    return {}


def utc_timestamp(value: Any) -> pd.Timestamp | None:
    """``value`` as an aware UTC :class:`pandas.Timestamp` (naive means UTC), or ``None``.

    Parameters
    ----------
    value : Any
        A timestamp, datetime, ISO string or number pandas reads.

    Returns
    -------
    pandas.Timestamp or None
        ``None`` for ``None``, ``NaT`` or a value pandas cannot read.
    """
    if value is None:
        return None
    try:
        ts = pd.Timestamp(value)
    except (TypeError, ValueError):
        return None
    if ts is pd.NaT:
        return None
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def naive_utc(value: Any) -> pd.Timestamp | None:
    """``value`` as a naive UTC :class:`pandas.Timestamp` (the ledger's form), or ``None``.

    Parameters
    ----------
    value : Any
        As for :func:`utc_timestamp`.

    Returns
    -------
    pandas.Timestamp or None
        Naive, in UTC; ``None`` where :func:`utc_timestamp` gives ``None``.
    """
    ts = utc_timestamp(value)
    return None if ts is None else ts.tz_localize(None)
