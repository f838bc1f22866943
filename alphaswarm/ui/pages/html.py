"""Small HTML pieces the pages share: escaped tables with real links, times, the nav bar."""

from __future__ import annotations

import functools
import html
import math
from datetime import UTC, datetime, tzinfo
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pandas as pd

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

#: The sections every page links to, in the nav bar.
NAV_LINKS: tuple[tuple[str, str], ...] = (
    ("Overview", "/"),
    ("Bots", "/bots"),
    ("Sweeps", "/sweeps"),
)

TABLE_STYLE = (
    "<style>"
    ".alphaswarm-table-wrap{overflow-x:auto;max-width:100%}"
    ".alphaswarm-table{border-collapse:collapse;font-size:13px;min-width:100%}"
    ".alphaswarm-table th,.alphaswarm-table td{padding:4px 10px;border-bottom:1px solid "
    "rgba(128,128,128,.3);text-align:left;white-space:nowrap}"
    ".alphaswarm-table td.num{text-align:right;font-variant-numeric:tabular-nums}"
    "</style>"
)


class Link:
    """A cell shown as a link: ``Link(text, href)``."""

    def __init__(self, text: Any, href: str) -> None:
        self.text = text
        self.href = href


def browser_zone() -> str | None:
    """The IANA time zone of the browser viewing this page (``None`` outside one, or not yet)."""
    import panel as pn

    info = pn.state.browser_info
    zone = getattr(info, "timezone", None) if info is not None else None
    return zone or None


def _zone(zone: str | None) -> Any:
    try:
        return pd.Timestamp("2000-01-01", tz=zone or "UTC").tz
    except (KeyError, ValueError, TypeError):  # an unknown zone name: UTC
        return pd.Timestamp("2000-01-01", tz="UTC").tz


def fmt_time(value: Any, zone: str | None = None) -> str:
    """A wall-clock timestamp in the browser's zone, the zone's abbreviation after it.

    Parameters
    ----------
    value : datetime-like or None
        The time (naive times are UTC, as the ledger stores them).
    zone : str, optional
        IANA zone name; the browser's (:func:`browser_zone`), else UTC.

    Returns
    -------
    str
        ``YYYY-MM-DD HH:MM:SS ZZZ`` (``""`` for none).
    """
    return fmt_zoned(value, zone or browser_zone(), "%Y-%m-%d %H:%M:%S %Z")


def fmt_zoned(value: Any, zone: str | None, pattern: str) -> str:
    """A timestamp in ``zone`` written with the ``strftime`` ``pattern``.

    Parameters
    ----------
    value : datetime-like or None
        The time (naive times are UTC, as the ledger stores them).
    zone : str or None
        IANA zone name; UTC for ``None`` or a name not known.
    pattern : str
        The ``strftime`` pattern.

    Returns
    -------
    str
        ``""`` for no time, the value's text when it is not a time.
    """
    if value is None:
        return ""
    try:
        ts = pd.Timestamp(value)
    except (TypeError, ValueError):
        return str(value)
    if ts is pd.NaT:
        return ""
    if ts.tzinfo is None:
        ts = ts.tz_localize("UTC")
    return ts.tz_convert(_zone(zone)).strftime(pattern)


def fmt_clock(epoch: Any, zone: str | None = None) -> str:
    """A wall-clock time of day in the browser's zone with milliseconds and the zone.

    Parameters
    ----------
    epoch : float or None
        Epoch seconds (a frame's ``ts``).
    zone : str, optional
        IANA zone name; UTC when absent or unknown.

    Returns
    -------
    str
        ``HH:MM:SS.mmm ZZZ`` (``""`` for none).
    """
    if epoch is None:
        return ""
    try:
        when = datetime.fromtimestamp(float(epoch), tz=_zoneinfo(zone or "UTC"))
    except (TypeError, ValueError, OverflowError, OSError):
        return ""
    return f"{when:%H:%M:%S}.{when.microsecond // 1000:03d} {when:%Z}"


@functools.cache
def _zoneinfo(name: str) -> tzinfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):  # an unknown zone name: UTC
        return UTC


def fmt_bar_time(value: Any) -> str:
    """A bar's timestamp as the feed stamps it (UTC), labelled as bar time."""
    if value is None:
        return ""
    ts = pd.Timestamp(value)
    if ts.tzinfo is None:
        ts = ts.tz_localize("UTC")
    return ts.tz_convert("UTC").strftime("%Y-%m-%d %H:%M UTC")


def fmt_number(value: Any, spec: str = ".2f") -> str:
    """A number with ``spec`` (``"–"`` for none or NaN)."""
    if value is None:
        return "–"
    try:
        number = float(value)
    except (TypeError, ValueError):
        return html.escape(str(value))
    if math.isnan(number):
        return "–"
    return format(number, spec)


def _cell(value: Any) -> str:
    if isinstance(value, Link):
        return f'<a href="{html.escape(value.href)}">{html.escape(str(value.text))}</a>'
    if isinstance(value, float | int) and not isinstance(value, bool):
        return html.escape(fmt_number(value, ",.4g"))
    return html.escape("" if value is None else str(value))


def table(
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    css_class: str,
    empty: str = "none",
    full_width: bool = True,
) -> str:
    """An HTML table (cells escaped; :class:`Link` cells become links).

    Parameters
    ----------
    columns : sequence of str
        Header labels.
    rows : iterable of sequences
        Cells per row; numbers are right-aligned.
    css_class : str
        Class of the table (tests and styles find it by it).
    empty : str
        Text shown instead of an empty table.
    full_width : bool
        Stretch the table over the page (else it is as wide as its cells).
    """
    body = []
    for row in rows:
        cells = "".join(
            f'<td class="num">{_cell(v)}</td>'
            if isinstance(v, float | int) and not isinstance(v, bool)
            else f"<td>{_cell(v)}</td>"
            for v in row
        )
        body.append(f"<tr>{cells}</tr>")
    if not body:
        cls = html.escape(css_class)
        return f'<div class="{cls} alphaswarm-empty"><i>{html.escape(empty)}</i></div>'
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    width = "" if full_width else ' style="min-width:0"'
    return (
        f'{TABLE_STYLE}<div class="alphaswarm-table-wrap"><table{width} class="alphaswarm-table '
        f'{html.escape(css_class)}"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}'
        "</tbody></table></div>"
    )


def nav_bar(current: str = "", zone: str | None = None) -> str:
    """The links to the dashboard's sections (``current`` is the active one's label).

    The zone the page's wall-clock times are shown in is named at the end.
    """
    links = []
    for label, href in NAV_LINKS:
        weight = "800" if label == current else "500"
        links.append(
            f'<a href="{href}" style="font-weight:{weight};text-decoration:none;'
            f'padding:2px 8px">{html.escape(label)}</a>'
        )
    zone = zone or browser_zone() or "UTC"
    note = (
        f'<span class="alphaswarm-zone" style="font-size:12px;opacity:.75;margin-left:12px">'
        f"times in {html.escape(zone)}</span>"
    )
    return f'<nav class="alphaswarm-nav" style="font-size:15px">{" · ".join(links)}{note}</nav>'
