"""Bars on an ordinal x axis: bar ``i`` is drawn at ``x = i``, labelled with its time.

Markets close at night and at weekends; on a time axis those hours take room and a
line joins the last bar before a close to the first after it with a straight
segment that never traded. On the ordinal axis every bar takes the same width and a
closed market takes none: nothing is drawn across it. The tick labels still read as
times (UTC), through a small tick formatter that knows the runs of evenly spaced
bars (one run per session), so the page needs no array of every bar's time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

_TICK_CODE = """
const i = Math.round(tick);
if (i < 0 || i >= n) { return ""; }
let lo = 0, hi = starts.length - 1;
while (lo < hi) {
  const mid = (lo + hi + 1) >> 1;
  if (starts[mid] <= i) { lo = mid; } else { hi = mid - 1; }
}
const iso = new Date(times[lo] + (i - starts[lo]) * step).toISOString();
if (daily || (short && starts[lo] === i)) { return iso.slice(0, 10); }
return (short ? iso.slice(5, 10) : iso.slice(0, 10)) + " " + iso.slice(11, 16);
"""

#: Ticks at session opens when the view spans several sessions, else at round bar counts.
_TICKER_CODE = """
const lo = Math.max(0, Math.ceil(cb_data.start));
const hi = Math.min(n - 1, Math.floor(cb_data.end));
if (hi < lo) { return []; }
const inside = starts.filter((s) => s >= lo && s <= hi);
if (inside.length >= 3) {
  const k = Math.ceil(inside.length / target);
  return inside.filter((_, j) => j % k === 0);
}
const raw = Math.max((hi - lo) / target, 1);
const mag = Math.pow(10, Math.floor(Math.log10(raw)));
let step = 10 * mag;
for (const m of [1, 2, 5]) { if (m * mag >= raw) { step = m * mag; break; } }
const ticks = [];
for (let t = Math.ceil(lo / step) * step; t <= hi; t += step) { ticks.push(t); }
return ticks;
"""


@dataclass(frozen=True)
class TimeAxis:
    """The bar times of a run and their positions on an ordinal axis.

    Attributes
    ----------
    times : DatetimeIndex
        Time of every bar, increasing (bar ``i`` sits at ``x = i``).
    step : Timedelta
        The bar interval: the most common spacing between bars.
    segments : ndarray
        Position of the first bar of each run of bars ``step`` apart; a new run
        starts after every gap (market closed) or irregular spacing.
    """

    times: pd.DatetimeIndex
    step: pd.Timedelta
    segments: np.ndarray

    @classmethod
    def of(cls, times: Any) -> TimeAxis:
        """Build the axis of ``times`` (sorted, unique bar times)."""
        index = pd.DatetimeIndex(times)
        if index.tz is None:
            index = index.tz_localize("UTC")
        index = index.as_unit("ns")
        ns = index.asi8
        if len(ns) < 2:
            return cls(index, pd.Timedelta(minutes=1), np.zeros(min(len(ns), 1), dtype=np.int64))
        diffs = np.diff(ns)
        values, counts = np.unique(diffs, return_counts=True)
        step = int(values[np.argmax(counts)])
        starts = np.concatenate(([0], np.flatnonzero(diffs != step) + 1)).astype(np.int64)
        return cls(index, pd.Timedelta(step, unit="ns"), starts)

    def __len__(self) -> int:
        return len(self.times)

    @property
    def gaps(self) -> np.ndarray:
        """Positions of the first bar after each gap (where the market had closed)."""
        ns = self.times.asi8
        after = self.segments[1:]
        return after[(ns[after] - ns[after - 1]) > self.step.value]

    @property
    def daily(self) -> bool:
        """Whether bars are a day or more apart (labels show dates only)."""
        return self.step >= pd.Timedelta(days=1)

    def positions(self, when: Any) -> np.ndarray:
        """Position of the bar at or before each time of ``when`` (-1 before the first)."""
        stamps = pd.DatetimeIndex(pd.to_datetime(when, utc=True))
        target = stamps.as_unit("ns").asi8 if len(stamps) else np.empty(0, np.int64)
        return np.searchsorted(self.times.asi8, target, side="right") - 1

    def labels(self, positions: Any | None = None) -> np.ndarray:
        """Times of bars at ``positions`` (all bars by default) as text, like the ticks."""
        times = self.times if positions is None else self.times[np.asarray(positions)]
        fmt = "%Y-%m-%d" if self.daily else "%Y-%m-%d %H:%M"
        return np.asarray(times.tz_convert("UTC").strftime(fmt), dtype=object)

    def formatter(self, short: bool = True) -> Any:
        """A Bokeh tick formatter that labels bar positions with their UTC time.

        With ``short`` (for tick labels) the first bar of a session reads as its
        date (``2024-01-03``) and other bars as month, day and time
        (``01-03 15:10``); otherwise every bar reads ``2024-01-03 15:10``. Daily
        bars read as dates.
        """
        from bokeh.models import CustomJSTickFormatter

        seg = self.segments
        times_ms = self.times.asi8[seg] // 1_000_000 if len(seg) else np.empty(0, np.int64)
        return CustomJSTickFormatter(
            code=_TICK_CODE,
            args={
                "starts": [int(s) for s in seg],
                "times": [float(t) for t in times_ms],
                "step": self.step.value / 1e6,
                "n": len(self.times),
                "daily": self.daily,
                "short": short,
            },
        )

    def hover_formatter(self) -> Any:
        """A Bokeh hover formatter that shows a bar position as its UTC time.

        Use it for the x column in tooltips (``"@bar{custom}"``), so plots need no
        column of time strings.
        """
        from bokeh.models import CustomJSHover

        formatter = self.formatter(short=False)
        return CustomJSHover(code="const tick = value;\n" + formatter.code, args=formatter.args)

    def ticker(self, target: int = 6) -> Any:
        """A Bokeh ticker: ticks at session opens (about ``target`` of them) or round bars.

        When the visible range spans three or more runs of bars, ticks sit on the
        first bar of every k-th run (a session open, the first bar after a gap);
        inside a session they fall on round bar counts.
        """
        from bokeh.models import CustomJSTicker

        return CustomJSTicker(
            major_code=_TICKER_CODE,
            minor_code="return [];",
            args={
                "starts": [int(s) for s in self.segments],
                "n": len(self.times),
                "target": target,
            },
        )
