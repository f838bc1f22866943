"""Real daily bars shipped with ``bokeh_sampledata``: AAPL, GOOG, IBM, MSFT (and FB).

The series are public-domain Quandl WIKI prices (unadjusted open, high, low, close
and volume), daily from 2000-03-01 (GOOG from 2004-08-19, FB from 2012-05-18) to
2013-03-01. Loaded once per process.
"""

from __future__ import annotations

import functools
import hashlib
from typing import TYPE_CHECKING

from alphaswarm.data.base import FeedError, check_symbols
from alphaswarm.data.replay import ReplayFeed

if TYPE_CHECKING:
    from collections.abc import Iterable

    import pandas as pd

__all__ = ["SampleFeed", "available_symbols"]


@functools.cache
def _stocks() -> pd.DataFrame:
    try:
        from bokeh_sampledata import stocks
    except ImportError as exc:  # pragma: no cover - it is a declared dependency
        raise FeedError(
            f"sample data: the bokeh_sampledata package is not installed ({exc})"
        ) from exc
    frame = stocks.data
    return frame.rename(columns={"ticker": "symbol"})[
        ["date", "symbol", "open", "high", "low", "close", "volume"]
    ]


def available_symbols() -> list[str]:
    """Symbols of the sample data set."""
    return sorted(_stocks()["symbol"].unique().tolist())


class SampleFeed(ReplayFeed):
    """Daily bars of real stocks from the ``bokeh_sampledata`` package.

    Parameters
    ----------
    symbols : str or iterable of str
        Any of ``AAPL``, ``FB``, ``GOOG``, ``IBM``, ``MSFT``; default ``("AAPL",)``.

    Raises
    ------
    FeedError
        If a symbol is not in the data set (the message lists the available ones).

    Notes
    -----
    Bars are stamped at 00:00 UTC of their trading date; interval ``1d``, calendar
    ``equities``. Symbols with a shorter history are absent from the early groups.
    """

    kind = "sample"

    def __init__(self, symbols: str | Iterable[str] = ("AAPL",)) -> None:
        wanted = check_symbols(symbols)
        available = available_symbols()
        missing = [s for s in wanted if s not in available]
        if missing:
            raise FeedError(
                f"sample data: no data for {', '.join(map(repr, missing))}; "
                f"available: {', '.join(available)}"
            )
        data = _stocks()
        super().__init__(
            data[data["symbol"].isin(wanted)],
            interval="1d",
            calendar="equities",
            source="bokeh_sampledata stocks",
        )
        self.symbols = list(wanted)

    def fingerprint(self) -> str:
        """Hash of the data set name and the symbols (the data set is fixed)."""
        blob = "sample:bokeh_sampledata.stocks:" + ",".join(sorted(self.symbols))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]
